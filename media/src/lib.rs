//! picam's shared media vocabulary: the types that cross stage boundaries.
//!
//! Stage crates (capture, transport, decode, display) do not depend on each other; the
//! few types that two stages must agree on live here so that neither owns the other:
//! an encoded access unit ([`EncodedFrame`]), a decoded I420 picture ([`Picture`]), the
//! latency stamp painted into pixels ([`stamp`]), the synthetic test pattern
//! ([`pattern`]) and the YUV4MPEG2 header ([`y4m`]).
#![forbid(unsafe_code)]

mod error;
mod frame;
pub mod pattern;
mod picture;
pub mod stamp;
pub mod y4m;

pub use error::MediaError;
pub use frame::EncodedFrame;
pub use picture::Picture;

/// Microseconds since the Unix epoch on this machine's wall clock.
///
/// The latency stamp and the wire's capture timestamp use this clock, because it is the
/// only one two processes (or two machines, after offset estimation) can compare.
pub fn wallclock_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}
