//! The record stage: keeps the H.264 stream as it is (never re-encoded), muxed with
//! libavformat into the container the file's extension names (`.mkv`, `.ts`, `.mp4`
//! fragmented), so that a file cut short by a crash or a power cut still plays.
//!
//! A [`Recorder`] runs the writer on its own thread behind a bounded queue: the
//! producer (the receiver's transport task, or the sender's capture thread) offers each
//! frame through a [`RecordTap`] and never waits. A full queue, a slow or a full disk
//! drop frames up to the next keyframe, counted; the picture the viewer sees is never
//! held up.
//!
//! SKELETON: the API below is the contract between `bin` and this crate; the bodies
//! are being written.

mod error;

pub use error::RecordError;

use std::path::{Path, PathBuf};
use std::time::Duration;

use media::EncodedFrame;

/// Frames waiting for the writer. 64 frames is two seconds at 30 fps: a disk that
/// stalls longer than that loses frames (up to the next keyframe), never the viewer's
/// picture.
pub const RECORD_QUEUE: usize = 64;

/// The container a file's extension names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Container {
    /// `.mkv`: Matroska.
    Matroska,
    /// `.ts`: MPEG transport stream.
    MpegTs,
    /// `.mp4`: fragmented MP4 (plays after a crash, unlike a plain MP4 whose index is
    /// written last).
    FragmentedMp4,
}

impl Container {
    /// The container for `path`'s extension (case-insensitive). An error names the
    /// extension and the ones allowed.
    pub fn for_path(path: &Path) -> Result<Container, RecordError> {
        let _ = path;
        todo!()
    }
}

/// What to record and how to cut it (`--record`, `--record-segment`, `--record-keep`,
/// `--record-max-bytes`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordConfig {
    /// The file the user named; its extension picks the container. Without segments
    /// this is the file written (never overwriting one that exists: see the crate's
    /// naming rules); with segments its stem and extension name them.
    pub path: PathBuf,
    /// A new file every this long, each starting on a keyframe.
    pub segment: Option<Duration>,
    /// Keep at most this many segment files (the oldest are deleted). Needs `segment`.
    pub keep: Option<u32>,
    /// Keep the segment files' total size at most this many bytes (the oldest are
    /// deleted). Needs `segment`.
    pub max_bytes: Option<u64>,
}

/// A recording's figures, for the stats line, JSON and the overlay.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordStats {
    /// The file being written now (`None` between files, e.g. after a write error).
    pub file: Option<PathBuf>,
    /// Files started so far.
    pub files: u32,
    /// Bytes of H.264 written (all files).
    pub bytes: u64,
    /// Frames written (all files).
    pub frames: u64,
    /// Frames offered but not written: a full queue, waiting for a keyframe (at the
    /// start and after any drop), a write error.
    pub dropped: u64,
    /// The last error (file and cause), until recording resumes.
    pub error: Option<String>,
}

/// The producer's end: offers frames to the writer and never waits.
pub struct RecordTap {}

impl RecordTap {
    /// Offers a frame. Never blocks: a full queue drops it (and every frame up to the
    /// next keyframe) and asks for a keyframe.
    pub fn offer(&mut self, frame: &EncodedFrame) {
        let _ = frame;
        todo!()
    }
}

/// The writer thread and its figures.
pub struct Recorder {}

impl Recorder {
    /// Checks `config` (container, directory, the ring's options), starts the writer
    /// thread and returns the tap for the producer. `request_keyframe` is called (from
    /// the writer thread or the tap, at most about once a second) whenever the recording
    /// needs a keyframe: at the start, at a segment boundary, after a drop.
    pub fn start(
        config: RecordConfig,
        request_keyframe: Box<dyn Fn() + Send + Sync>,
    ) -> Result<(Recorder, RecordTap), RecordError> {
        let _ = (config, request_keyframe);
        todo!()
    }

    /// The figures now.
    pub fn stats(&self) -> RecordStats {
        todo!()
    }

    /// Writes what is queued, closes the file (its trailer or last fragment) and joins
    /// the writer. Returns the final figures.
    pub fn finish(self) -> RecordStats {
        todo!()
    }
}
