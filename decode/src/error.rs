/// Everything the decode stage can report.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// FFmpeg has no H.264 decoder.
    #[error("FFmpeg was built without an H.264 decoder")]
    NoDecoder,
    /// The decoder could not be set up.
    #[error("opening the H.264 decoder: {0}")]
    Open(ffmpeg_next::Error),
    /// A frame failed to decode (its picture, if any, is dropped).
    #[error("decoding frame of {bytes} bytes: {source}")]
    Frame {
        /// Size of the access unit.
        bytes: usize,
        /// FFmpeg's error.
        source: ffmpeg_next::Error,
    },
    /// FFmpeg produced a picture flagged as corrupt (concealed errors).
    #[error("decoder flagged the picture as corrupt")]
    Corrupt,
    /// A picture larger than the decoder accepts.
    #[error("picture {width}x{height} is larger than the {max_width}x{max_height} accepted")]
    TooLarge {
        /// Its width.
        width: u32,
        /// Its height.
        height: u32,
        /// The widest accepted.
        max_width: u32,
        /// The tallest accepted.
        max_height: u32,
    },
    /// A pixel format picam cannot show.
    #[error("unsupported decoded pixel format {0:?} (expected 8-bit 4:2:0)")]
    PixelFormat(ffmpeg_next::format::Pixel),
}
