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
    /// An H.264 byte stream that cannot be split into pictures.
    #[error("{origin}: bad H.264 stream: {what}")]
    Bitstream {
        /// File, device or program the stream came from.
        origin: String,
        /// What is wrong with it.
        what: String,
    },
    /// A child process (rpicam-vid) could not be started.
    #[error("cannot start {program}: {source}")]
    Spawn {
        /// The program and its arguments.
        program: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A V4L2 device refused an operation.
    #[error("{device}: {action}: {source}")]
    Device {
        /// Device path, e.g. `/dev/video0`.
        device: String,
        /// What was being done (the ioctl or step).
        action: String,
        /// The kernel's error.
        source: std::io::Error,
    },
    /// A device cannot deliver what was asked.
    #[error("{device} cannot {asked}; it supports: {supports}")]
    Unsupported {
        /// Device path.
        device: String,
        /// What was asked, e.g. `capture 1920x1080 at 30 fps`.
        asked: String,
        /// What it offers instead.
        supports: String,
    },
    /// A camera frame that cannot be turned into a picture.
    #[error("{device}: frame {frame}: {what}")]
    BadFrame {
        /// Device path.
        device: String,
        /// Frame sequence number.
        frame: u32,
        /// What is wrong with it.
        what: String,
    },
    /// A raw frame layout (size and row stride) that cannot be read.
    #[error("raw I420 frames {width}x{height} with {stride}-byte rows: {what}")]
    RawLayout {
        /// Picture width, pixels.
        width: u32,
        /// Picture height, pixels.
        height: u32,
        /// Bytes per luma row.
        stride: u32,
        /// What is wrong.
        what: &'static str,
    },
    /// No usable camera was found (`--source auto`).
    #[error("no camera found: {0}")]
    NoCamera(String),
}

impl From<media::MediaError> for CaptureError {
    /// The splitter's refusal keeps its own variant (it names the stream's origin).
    fn from(e: media::MediaError) -> Self {
        match e {
            media::MediaError::Bitstream { origin, what } => {
                CaptureError::Bitstream { origin, what }
            }
            other => CaptureError::Media {
                path: String::new(),
                source: other,
            },
        }
    }
}
