//! picam's shared media vocabulary: the types that cross stage boundaries.
//!
//! Stage crates (capture, transport, decode, display) do not depend on each other; the
//! few types that two stages must agree on live here so that neither owns the other:
//! an encoded access unit ([`EncodedFrame`]), a decoded I420 picture ([`Picture`]), the
//! latency stamp painted into pixels ([`stamp`]), the synthetic test pattern
//! ([`pattern`]), the YUV4MPEG2 header ([`y4m`]) and the H.264 Annex B splitter
//! ([`annexb`]), which capture (files, pipes) and transport (the raw `h264` wire) share,
//! and the H.264 SPS reader and "no reordering" rewriter ([`h264_sps`]) the web viewer
//! needs.
#![forbid(unsafe_code)]

pub mod annexb;
pub mod clock;
mod error;
mod frame;
pub mod h264_sps;
pub mod pattern;
mod picture;
pub mod stamp;
pub mod y4m;

pub use error::MediaError;
pub use frame::EncodedFrame;
pub use picture::Picture;

/// Microseconds since the Unix epoch on this process's wall clock ([`clock::process`]:
/// system time read once, then carried by the monotonic clock).
///
/// The latency stamp, the wire's capture timestamp, the receiver's "now" and the
/// transport's clock-offset exchanges all use it, because it is a wall clock two
/// processes (or two machines, after offset estimation) can compare, and one an NTP step
/// after start cannot move under some of them only.
pub fn wallclock_us() -> u64 {
    clock::process().us_at(std::time::Instant::now())
}
