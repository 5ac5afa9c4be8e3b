/// Everything the capture stage can report.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// FFmpeg has no libx264 encoder.
    #[error("FFmpeg was built without libx264 (install libavcodec with x264 support)")]
    NoX264,
    /// The encoder refused its settings or a frame.
    #[error("H.264 encoder ({what}): {source}")]
    Encoder {
        /// What was being done.
        what: &'static str,
        /// FFmpeg's error.
        source: ffmpeg_next::Error,
    },
    /// Encoder settings outside what picam supports.
    #[error("encoder setting `{key}` = {value} is out of range ({allowed})")]
    Setting {
        /// The setting's name.
        key: &'static str,
        /// The value given.
        value: u64,
        /// The allowed range.
        allowed: &'static str,
    },
    /// The encoder took a picture and gave nothing back.
    #[error("the encoder produced no output for frame {frame}")]
    NoOutput {
        /// Source frame number.
        frame: u32,
    },
    /// A file or stream could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// File path, or `-` for stdin.
        path: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// Media data that cannot be used.
    #[error("{path}: {source}")]
    Media {
        /// File path, or `-` for stdin.
        path: String,
        /// What is wrong with it.
        source: media::MediaError,
    },
}
