//! The one shape both protocol state machines have, in the manner of str0m: one
//! `handle_input(now, input)` and one `poll_output(now, buf) -> Output`.
//!
//! **Call-order rule.** After every `handle_input`, call `poll_output` until it returns
//! [`Output::Timeout`], acting on each [`Output::Transmit`] and [`Output::Event`] in
//! turn; then wait for the next input or until the instant the timeout names, whichever
//! comes first, and feed that in. A driver blocked on a full socket (TCP backpressure)
//! may pause draining: the machine keeps what it has not handed out and drops stale
//! frames itself, so the pause never grows latency.
//!
//! Why one input and one output type rather than quinn's family of methods: the drivers,
//! the simulated-link test pair and the fuzz targets each need exactly one drain loop,
//! and new kinds of packet, timer and event (loss repair, encryption, RTP) become new
//! enum variants instead of new methods that every caller must remember to drain.
//! Transmits are written into a caller-owned buffer (as quinn's `poll_transmit` does),
//! so the send path allocates nothing per packet.

use std::net::SocketAddr;
use std::time::Instant;

/// Which of a wire's sockets or streams a packet travels on. The machine says so, so the
/// driver never guesses from a packet's contents.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Via {
    /// The media socket: picam's own wire (media, feedback and handshake alike), RTP,
    /// raw H.264, WebRTC.
    #[default]
    Media,
    /// The control socket: RTCP, on port + 1 when the wire is not muxed (on the media
    /// socket when it is, or on a stream).
    Control,
}

/// A packet the machine wrote into the caller's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Where to send it: `None` means the one peer of a connected socket (TCP, or the
    /// sender's fixed remote).
    pub to: Option<SocketAddr>,
    /// On which socket or stream.
    pub via: Via,
}

impl Transmit {
    /// A packet for the media socket or stream.
    pub const fn media(to: Option<SocketAddr>) -> Self {
        Self {
            to,
            via: Via::Media,
        }
    }

    /// A packet for the control socket (RTCP).
    pub const fn control(to: Option<SocketAddr>) -> Self {
        Self {
            to,
            via: Via::Control,
        }
    }
}

/// What a machine hands out, one at a time.
#[derive(Debug, PartialEq)]
pub enum Output<E> {
    /// The buffer passed to `poll_output` holds a packet (and nothing else): send it.
    Transmit(Transmit),
    /// Something the neighbouring stages must act on.
    Event(E),
    /// Nothing more until the next input, or until this instant (`None`: no timer
    /// is running), when `handle_input` wants a timeout input.
    Timeout(Option<Instant>),
}

/// A sans-IO state machine with picam's output shape.
pub trait Machine {
    /// What goes in.
    type Input<'a>;
    /// What comes out besides packets and timeouts.
    type Event;

    /// Feeds one input at `now`. Drain [`Machine::poll_output`] afterwards.
    fn handle_input(&mut self, now: Instant, input: Self::Input<'_>);

    /// The next output. `buf` is cleared and filled when a packet is returned.
    fn poll_output(&mut self, now: Instant, buf: &mut Vec<u8>) -> Output<Self::Event>;
}

/// Everything one drain handed out, collected: for tests, fuzzers and benches. Drivers
/// act on each output as it comes instead (a refused frame is an input at once).
#[derive(Debug)]
pub struct Drained<E> {
    /// Packets in order, with their destination.
    pub transmits: Vec<(Option<SocketAddr>, Vec<u8>)>,
    /// Events in order.
    pub events: Vec<E>,
    /// When the machine next wants a timeout input.
    pub timeout: Option<Instant>,
}

/// Most outputs one drain may produce before it is taken for a busy loop: far above
/// what any input can cause (a 4 MiB frame is about 3,000 packets).
const DRAIN_LIMIT: usize = 1 << 20;

/// Drains `machine` at `now` until it returns its timeout, collecting the outputs.
/// Panics if it never does (a broken invariant: every output consumes queued work).
pub fn drain<M: Machine>(machine: &mut M, now: Instant) -> Drained<M::Event> {
    let mut out = Drained {
        transmits: Vec::new(),
        events: Vec::new(),
        timeout: None,
    };
    let mut buf = Vec::new();
    for _ in 0..DRAIN_LIMIT {
        match machine.poll_output(now, &mut buf) {
            Output::Transmit(t) => out.transmits.push((t.to, buf.clone())),
            Output::Event(e) => out.events.push(e),
            Output::Timeout(at) => {
                out.timeout = at;
                return out;
            }
        }
    }
    panic!("poll_output did not reach its timeout in {DRAIN_LIMIT} outputs");
}
