/// What can go wrong with media data itself.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// A YUV4MPEG2 stream header that cannot be used.
    #[error("bad YUV4MPEG2 header: {0}")]
    Y4mHeader(String),
    /// Picture dimensions that picam cannot carry.
    #[error("unsupported picture size {width}x{height}: {why}")]
    PictureSize {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// Which rule the size breaks.
        why: &'static str,
    },
    /// An H.264 byte stream that cannot be split into pictures.
    #[error("{origin}: bad H.264 stream: {what}")]
    Bitstream {
        /// File, device, program or peer the stream came from.
        origin: String,
        /// What is wrong with it.
        what: String,
    },
}
