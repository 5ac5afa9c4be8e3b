//! picam's transport stage: carries encoded frames from sender to receiver over UDP or
//! TCP and carries feedback (keyframe requests) back.
//!
//! The protocol logic is sans-IO ([`Sender`], [`Receiver`]): deterministic state
//! machines with one shape ([`Machine`]: `handle_input(now, input)`, then
//! `poll_output(now, buf)` until [`Output::Timeout`]). They never read a clock or touch
//! a socket, so loss, reordering and deadlines are tested on simulated time. One tokio
//! driver (`io/driver.rs`) runs every machine, picam's own, the interop wires'
//! ([`rtp`]), pairing's and the browser viewer's ([`web`]), over a carrier that owns
//! the sockets: UDP ([`udp`]) or a TCP stream ([`tcp`]); `io/` and
//! `rtp/interop_io.rs` are the only modules here that do I/O.
//!
//! Folders by concern: `wire/` (picam's native packet format and TCP framing),
//! `send/` (the sender, `config.rs` its settings and vocabulary, its log of sent frames, loss measurement, pacing,
//! its receiver reports), `congestion/` (the one rate controller every wire's feedback feeds), `recv/` (the receiver, reassembly, reports and clock pings), `io/` (the
//! socket drivers). Loss repair has `repair/`; the browser viewer (WHEP signalling,
//! WebRTC through str0m, the fan-out) `web/`; the interop wires (RTP and raw
//! Annex B, beside picam's own) are in [`rtp`].
//!
//! The wire format is in [`wire`] and documented in the project's `ARCHITECTURE.md`.

#![forbid(unsafe_code)]

pub mod clock;
pub mod congestion;
mod error;
mod io;
mod machine;
mod recv;
mod repair;
pub mod rtp;
pub mod secure;
mod send;
pub mod seq;
mod stats;
pub mod web;
pub mod wire;

pub use error::TransportError;
pub use io::driver;
pub use io::web as web_io;
pub use io::{tcp, udp, ReceiverCommand, ReceiverHooks, SenderHooks};
pub use machine::{drain, Drained, Machine, Output, Transmit, Via};
pub use recv::{
    FeedbackConfig, ReceivedFrame, Receiver, ReceiverConfig, ReceiverEvent, ReceiverInput,
    ReceiverRepairConfig,
};
pub use send::{
    JamGuardConfig, RepairConfig, Sender, SenderConfig, SenderEvent, SenderInput, SourceFrame,
    DEFAULT_MAX_FRAME_BYTES,
};
pub use stats::{ReceiverDrops, ReceiverRepairStats, ReceiverStats, SenderStats};
pub use wire::framing::LengthPrefixed;

/// Which socket type carries the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// Datagrams: one fragment each; loss is repaired by parity and resends within a
    /// frame's deadline, and only what they cannot mend costs a keyframe request.
    Udp,
    /// A byte stream: each frame one length-prefixed message; the sender reconnects.
    Tcp,
}

/// A session id that differs between runs, so a restarted sender is recognised.
///
/// Uses the standard library's per-process random hash keys: no extra dependency, and
/// uniqueness (not secrecy) is all a session id needs.
pub fn random_session_id() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    h.finish() as u32
}
