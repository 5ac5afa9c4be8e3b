//! The sender's settings and its vocabulary with its surroundings: what goes in
//! ([`SenderInput`], [`SourceFrame`]) and what it asks for ([`SenderEvent`]).

use std::time::Duration;

use media::EncodedFrame;

use super::RepairConfig;
use crate::clock::WallClock;
use crate::congestion::CongestionConfig;
use crate::secure::Psk;

/// The largest frame either side accepts by default: 4 MiB, far above any H.264
/// access unit a camera produces at the sizes picam handles.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 4 << 20;

/// Knobs of the sender.
#[derive(Clone, Debug)]
pub struct SenderConfig {
    /// Largest packet handed out, header included (UDP: the datagram size; TCP: one
    /// message, normally large enough for a whole frame).
    pub max_packet: usize,
    /// Frames that may wait unsent; when a newer frame arrives beyond this, the oldest
    /// unstarted frames are dropped and a keyframe is asked for.
    pub queue_frames: usize,
    /// First frame number, normally 0 (tests start near the wrap).
    pub first_frame: u32,
    /// Largest frame sent; a larger one is refused here (and a keyframe asked for)
    /// rather than sent to a receiver that would refuse it after it crossed the link.
    /// Keep it at the receiver's `max_frame_bytes`.
    pub max_frame_bytes: usize,
    /// A keyframe asked of the encoder that has not arrived after this long is asked
    /// for again (the command may have been dropped on a full control queue, or
    /// ignored by a source that cannot force one).
    pub keyframe_timeout: Duration,
    /// Congestion control, deadline dropping and pacing; `None` turns all three off
    /// (the unguarded baseline).
    pub jam_guard: Option<JamGuardConfig>,
    /// Maps `now` to this host's wall clock (for send times and pongs).
    pub clock: WallClock,
    /// Loss repair (parity and retransmission); `None` turns it off. Datagram links
    /// only: a byte stream never loses a packet.
    pub repair: Option<RepairConfig>,
    /// The paired key: every packet is sealed and only the receiver holding the same
    /// key is heard. `None` (`--insecure`) sends in the clear.
    pub secure: Option<Psk>,
}

impl Default for SenderConfig {
    fn default() -> Self {
        Self {
            max_packet: 1400,
            queue_frames: 2,
            first_frame: 0,
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            keyframe_timeout: Duration::from_millis(300),
            jam_guard: None,
            clock: WallClock::system(),
            repair: None,
            secure: None,
        }
    }
}

/// The jam guard's knobs.
#[derive(Clone, Debug)]
pub struct JamGuardConfig {
    /// Bitrate and frame-rate control.
    pub congestion: CongestionConfig,
    /// A frame still unsent this long after it arrived is dropped.
    pub max_queue_delay: Duration,
}

impl JamGuardConfig {
    /// Defaults for a stream whose ceiling is `max_bitrate` at `fps`.
    pub fn for_stream(max_bitrate: u32, fps: u32) -> Self {
        Self {
            congestion: CongestionConfig::for_stream(max_bitrate, fps),
            max_queue_delay: Duration::from_millis(100),
        }
    }
}

/// What the sender needs its surroundings to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SenderEvent {
    /// Ask the encoder for a keyframe (IDR with parameter sets) as the next frame.
    ForceKeyframe,
    /// Set the encoder's target bitrate, bits/s.
    SetBitrate(u32),
    /// Set the source's frame rate (skip frames before the encoder).
    SetFps(u32),
    /// A receiver said it is leaving.
    ReceiverLeft,
}

/// A frame from the source, with how many frames the source had to drop just before it
/// (its queue to the sender was full). Those frames still consume frame numbers, so the
/// receiver sees the gap and waits for a keyframe instead of decoding a picture that
/// references one it never got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceFrame {
    /// The access unit.
    pub frame: EncodedFrame,
    /// Frames dropped at the source since the previous `SourceFrame`.
    pub skipped_before: u32,
}

impl From<EncodedFrame> for SourceFrame {
    fn from(frame: EncodedFrame) -> Self {
        Self {
            frame,
            skipped_before: 0,
        }
    }
}

/// What goes into a [`Sender`](super::Sender).
#[derive(Debug)]
pub enum SenderInput<'a> {
    /// An encoded frame from the source.
    Frame(SourceFrame),
    /// A packet from the receiver (feedback).
    Packet(&'a [u8]),
    /// The instant of the last [`Output::Timeout`](crate::Output::Timeout) has come.
    Timeout,
    /// A (TCP) receiver connected: it needs a keyframe to start.
    NewReceiver,
    /// Nobody is connected (TCP, between connections): queued frames have nowhere to
    /// go and are dropped, counted.
    Disconnected,
}

/// Control packets waiting at once; more are dropped (a pong is only a sample).
pub(super) const MAX_CONTROL: usize = 16;
/// Loss up to this fraction is left to repair rather than read as congestion (its
/// parity is capped at half a P-frame's packets, so it carries about this much).
pub(super) const REPAIRABLE_LOSS: f64 = 0.2;
