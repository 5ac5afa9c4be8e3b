//! picam's capture stage: where encoded H.264 frames come from.
//!
//! Every source yields [`media::EncodedFrame`]s (Annex B, one picture each, SPS/PPS in
//! front of every keyframe) through the blocking [`Source`] trait, and takes
//! [`Control`] commands between frames: force a keyframe, change the bitrate, change the
//! frame rate. Sources run on their own thread; `bin` moves their frames into the
//! transport through a bounded channel.

// `unsafe` only where FFmpeg or V4L2 need it: the x264 encoder's FFI, and in `v4l2/`
// the ioctl layer and the MJPEG decoder (each module allows it by name).
#![deny(unsafe_code)]

pub mod annexb;
mod control;
mod decimate;
pub mod encoder;
mod error;
mod file_source;
mod pacer;
mod pipe;
mod raw_encode;
pub mod retry;
pub mod rpicam;
mod source;
pub mod stop;
mod test_pattern;
#[cfg(target_os = "linux")]
pub mod v4l2;
mod y4m_source;

pub use control::Control;
pub use decimate::Decimator;
pub use encoder::{EncoderSettings, StridedI420, X264Encoder};
pub use error::CaptureError;
pub use file_source::{H264FileSource, StreamOptions};
pub use pacer::Pacer;
pub use raw_encode::RawEncoder;
pub use rpicam::{rpicam_args, RpicamRawSource, RpicamSource};
pub use source::Source;
pub use stop::Stop;
pub use test_pattern::TestPatternSource;
pub use y4m_source::Y4mSource;
