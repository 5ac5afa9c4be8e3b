/// Everything the display stage can report.
#[derive(Debug, thiserror::Error)]
pub enum DisplayError {
    /// Writing pictures out failed.
    #[error("writing pictures to {path}: {source}")]
    Write {
        /// Where they were going (`-` for stdout).
        path: String,
        /// The operating system's error.
        source: std::io::Error,
    },
}
