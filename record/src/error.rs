use std::path::PathBuf;

/// Everything the record stage can report.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The file's extension names no container picam writes.
    #[error("invalid `record` = \"{path}\": the extension must be .mkv, .ts or .mp4")]
    Extension {
        /// The path given.
        path: PathBuf,
    },
    /// The path is not valid UTF-8 (libavformat takes file names as C strings of text).
    #[error("invalid `record` = {path:?}: the file name must be valid UTF-8")]
    NotUtf8 {
        /// The path given.
        path: PathBuf,
    },
    /// An option that only makes sense with segments was given without `segment`.
    #[error("`{option}` needs `record-segment`: only segment files are ever deleted")]
    NeedsSegment {
        /// The option's name as the user writes it (`record-keep`, `record-max-bytes`).
        option: &'static str,
    },
    /// An option's value is out of range.
    #[error("invalid `{option}`: {reason}")]
    Invalid {
        /// The option's name as the user writes it.
        option: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The directory the recording goes to is missing, not a directory or not writable.
    #[error("cannot record into {dir}: {source}")]
    Directory {
        /// The directory.
        dir: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A file could not be created, written, listed or deleted.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done ("creating", "deleting").
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// libavformat refused to open, write or close a file.
    #[error("{action} {path}: {source}")]
    Mux {
        /// What was being done ("opening", "writing a frame to", "closing").
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// libavformat's error.
        #[source]
        source: ffmpeg_next::Error,
    },
    /// A keyframe's SPS could not be read, so the picture size is unknown.
    #[error("the keyframe's SPS is unreadable: {0}")]
    Sps(#[from] media::MediaError),
    /// The writer thread could not be started.
    #[error("starting the record thread: {0}")]
    Thread(#[source] std::io::Error),
}

impl RecordError {
    /// The OS error number behind this error, if there is one (ENOSPC matters: a ring
    /// makes room by deleting its oldest segment).
    pub fn errno(&self) -> Option<i32> {
        match self {
            RecordError::Io { source, .. } | RecordError::Directory { source, .. } => {
                source.raw_os_error()
            }
            RecordError::Mux {
                source: ffmpeg_next::Error::Other { errno },
                ..
            } => Some(*errno),
            _ => None,
        }
    }
}
