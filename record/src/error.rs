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
}
