//! picam's display stage: where decoded pictures go.
//!
//! [`Y4mWriter`] records exactly what a viewer was shown (`--frames-out`), so any tool
//! can inspect or time it.

mod error;
mod y4m_writer;

pub use error::DisplayError;
pub use y4m_writer::Y4mWriter;
