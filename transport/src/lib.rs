//! picam's transport stage: carries encoded frames from sender to receiver over UDP or
//! TCP and carries feedback (keyframe requests) back.
//!
//! The protocol logic is sans-IO ([`Sender`], [`Receiver`]): deterministic state
//! machines that take `now` and bytes in and hand datagrams, frames, events and the next
//! timeout out. They never read a clock or touch a socket, so loss, reordering and
//! deadlines are tested on simulated time. [`udp`] and [`tcp`] are thin tokio drivers
//! around them; they are the only modules here that do I/O.
//!
//! The wire format is in [`wire`] and documented in the project's `ARCHITECTURE.md`.

pub mod clock;
pub mod congestion;
mod driver;
mod error;
mod feedback;
mod framing;
mod pacing;
mod reassembly;
mod receiver;
mod send_log;
mod sender;
pub mod seq;
mod sockopt;
mod stats;
pub mod tcp;
pub mod udp;
pub mod wire;

pub use driver::{ReceiverCommand, ReceiverHooks, SenderHooks};
pub use error::TransportError;
pub use feedback::FeedbackConfig;
pub use framing::LengthPrefixed;
pub use receiver::Transmit;
pub use receiver::{ReceivedFrame, Receiver, ReceiverConfig};
pub use sender::{JamGuardConfig, Sender, SenderConfig, SenderEvent};
pub use stats::{ReceiverDrops, ReceiverStats, SenderStats};

/// Which socket type carries the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// Datagrams: one fragment each; loss is recovered by keyframe requests.
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
