//! Software H.264 encoding for sources that deliver raw pictures.

mod x264;

pub use x264::X264Encoder;

/// What an encoder is asked to produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncoderSettings {
    /// Picture width (even).
    pub width: u32,
    /// Picture height (even).
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// Target and ceiling bitrate, bits per second.
    pub bitrate: u32,
    /// Keyframe interval in frames.
    pub intra: u32,
}

impl EncoderSettings {
    /// Lowest bitrate accepted, bits/s.
    pub const MIN_BITRATE: u32 = 100_000;
    /// Highest bitrate accepted, bits/s (H.264 level 5.1 High).
    pub const MAX_BITRATE: u32 = 50_000_000;
}
