use media::EncodedFrame;

use crate::{CaptureError, Control};

/// A blocking producer of encoded frames.
pub trait Source: Send {
    /// Blocks until the next frame is ready. `Ok(None)` means the source has ended
    /// (end of file); errors are reported with the device or file they concern.
    fn next_frame(&mut self) -> Result<Option<EncodedFrame>, CaptureError>;

    /// Applies a control command before the next frame. Commands a source cannot honour
    /// are logged once and ignored.
    fn control(&mut self, command: Control);

    /// One line saying what this source is, for logs and stats.
    fn describe(&self) -> String;
}
