//! picam's decode stage: H.264 access units in, I420 pictures out, with FFmpeg set up
//! for latency.
//!
//! - `LOW_DELAY` and no frame threading (frame threads delay output by N-1 frames);
//!   slice threads only, so one access unit in gives its picture out at once.
//! - Corrupt output is refused: `OUTPUT_CORRUPT` off, and any picture FFmpeg marks
//!   corrupt or decoded with errors is dropped and reported, never shown.

// `unsafe` only for `Send` on the decoder that owns FFmpeg's context.
#![deny(unsafe_code)]

#[allow(unsafe_code)]
mod decoder;
mod error;

pub use decoder::{Decoded, Decoder, MAX_SIDE};
pub use error::DecodeError;
