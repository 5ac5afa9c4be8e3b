//! How each machine takes the driver's inputs ([`Endpoint`]): the only per-machine code
//! the one driver loop needs.

use super::driver::{Arrival, Endpoint};
use crate::rtp::{H264Receiver, H264Sender, RtpReceiver, RtpSender};
use crate::secure::pairing::{PairInitiator, PairInput, PairResponder};
use crate::web::fanout::{FanoutInput, FanoutStats, WebFanout};
use crate::{Receiver, ReceiverInput, ReceiverStats, Sender, SenderInput, SenderStats};

/// A sender's inputs: feedback from the peer, a peer coming and going.
fn sender_arrival(arrival: Arrival<'_>) -> Option<SenderInput<'_>> {
    Some(match arrival {
        Arrival::Packet { data, .. } => SenderInput::Packet(data),
        Arrival::Connected => SenderInput::NewReceiver,
        Arrival::Disconnected => SenderInput::Disconnected,
    })
}

/// A receiver's inputs: a lost stream means waiting for (and asking for) a keyframe.
fn receiver_arrival(arrival: Arrival<'_>) -> Option<ReceiverInput<'_>> {
    match arrival {
        Arrival::Packet { from, data, .. } => Some(ReceiverInput::Packet { from, data }),
        Arrival::Connected => None,
        Arrival::Disconnected => Some(ReceiverInput::RequestKeyframe),
    }
}

macro_rules! sender_endpoint {
    ($t:ty, |$m:ident| $queued:expr) => {
        impl Endpoint for $t {
            type Stats = SenderStats;
            fn timeout_input<'a>() -> SenderInput<'a> {
                SenderInput::Timeout
            }
            fn arrival_input(arrival: Arrival<'_>) -> Option<SenderInput<'_>> {
                sender_arrival(arrival)
            }
            fn offline_input<'a>() -> Option<SenderInput<'a>> {
                Some(SenderInput::Disconnected)
            }
            fn queued(&self) -> usize {
                let $m = self;
                $queued
            }
            fn stats(&self) -> SenderStats {
                <$t>::stats(self)
            }
        }
    };
}

macro_rules! receiver_endpoint {
    ($t:ty, $close:expr) => {
        impl Endpoint for $t {
            type Stats = ReceiverStats;
            fn timeout_input<'a>() -> ReceiverInput<'a> {
                ReceiverInput::Timeout
            }
            fn arrival_input(arrival: Arrival<'_>) -> Option<ReceiverInput<'_>> {
                receiver_arrival(arrival)
            }
            fn closing_input<'a>() -> Option<ReceiverInput<'a>> {
                $close
            }
            fn queued(&self) -> usize {
                0
            }
            fn stats(&self) -> ReceiverStats {
                <$t>::stats(self)
            }
        }
    };
}

sender_endpoint!(Sender, |s| s.queued_frames());
sender_endpoint!(RtpSender, |s| s.queued_packets());
// Unpaced: a drain hands out everything it has.
sender_endpoint!(H264Sender, |_s| 0);
// picam's receiver says bye; the interop peers have nothing to say on the way out.
receiver_endpoint!(Receiver, Some(ReceiverInput::Close));
receiver_endpoint!(RtpReceiver, None);
receiver_endpoint!(H264Receiver, None);

/// Pairing's inputs: datagrams and timers; it has no counters.
macro_rules! pairing_endpoint {
    ($t:ty) => {
        impl Endpoint for $t {
            type Stats = ();
            fn timeout_input<'a>() -> PairInput<'a> {
                PairInput::Timeout
            }
            fn arrival_input(arrival: Arrival<'_>) -> Option<PairInput<'_>> {
                match arrival {
                    Arrival::Packet { from, data, .. } => Some(PairInput::Packet { from, data }),
                    Arrival::Connected | Arrival::Disconnected => None,
                }
            }
            // Everything owed (PAIR3's copies) is handed out before `Finished`.
            fn queued(&self) -> usize {
                0
            }
            fn stats(&self) {}
        }
    };
}

pairing_endpoint!(PairInitiator);
pairing_endpoint!(PairResponder);

/// The browsers' fan-out: datagrams on the one web socket, each with the address it
/// arrived on (ICE needs it).
impl Endpoint for WebFanout {
    type Stats = FanoutStats;
    fn timeout_input<'a>() -> FanoutInput<'a> {
        FanoutInput::Timeout
    }
    fn arrival_input(arrival: Arrival<'_>) -> Option<FanoutInput<'_>> {
        match arrival {
            Arrival::Packet {
                from: Some(from),
                to: Some(to),
                data,
                ..
            } => Some(FanoutInput::Datagram {
                from,
                to,
                bytes: data,
            }),
            _ => None,
        }
    }
    // A datagram the socket cannot take is dropped, never waited for: nothing queues.
    fn queued(&self) -> usize {
        0
    }
    fn stats(&self) -> FanoutStats {
        WebFanout::stats(self)
    }
}
