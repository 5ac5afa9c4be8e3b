use media::EncodedFrame;

use crate::{CaptureError, Control, Stop};

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

    /// Hands the source the flag its owner fires to stop it. Once it fires,
    /// `next_frame` returns `Ok(None)` within about [`crate::stop::POLL`], wherever it
    /// was waiting. The default suits sources that never block longer than a frame
    /// interval (the test pattern, a file); sources that wait on a device, a child or a
    /// pipe override it.
    fn set_stop(&mut self, stop: Stop) {
        let _ = stop;
    }
}
