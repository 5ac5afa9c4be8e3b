//! picam's capture stage: where encoded H.264 frames come from.
//!
//! Every source yields [`media::EncodedFrame`]s (Annex B, one picture each, SPS/PPS in
//! front of every keyframe) through the blocking [`Source`] trait, and takes
//! [`Control`] commands between frames: force a keyframe, change the bitrate, change the
//! frame rate. Sources run on their own thread; `bin` moves their frames into the
//! transport through a bounded channel.

mod control;
pub mod encoder;
mod error;
mod pacer;
mod raw_encode;
mod source;
mod test_pattern;
mod y4m_source;

pub use control::Control;
pub use encoder::{EncoderSettings, X264Encoder};
pub use error::CaptureError;
pub use pacer::Pacer;
pub use raw_encode::RawEncoder;
pub use source::Source;
pub use test_pattern::TestPatternSource;
pub use y4m_source::Y4mSource;
