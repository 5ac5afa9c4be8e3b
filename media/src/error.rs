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
    /// An H.264 sequence parameter set that cannot be read: a field is missing (the
    /// NAL unit ends first) or out of range.
    #[error("bad H.264 SPS: {field}: {what}")]
    Sps {
        /// The syntax element's name in the standard (7.3.2.1.1, E.1.1).
        field: &'static str,
        /// What is wrong with it.
        what: String,
    },
    /// A NAL unit handed over as an SPS that is another kind.
    #[error("not an H.264 SPS: NAL unit type {nal_type}")]
    NotSps {
        /// Its `nal_unit_type`.
        nal_type: u8,
    },
}
