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
//! Layout: [`plan`] decides (sans-IO: which file a frame goes to, what is dropped, when
//! a keyframe is wanted), `naming` picks file names and the ring's victims, `mux` is the
//! only code touching libavformat (and the only `unsafe`), `writer` is the thread that
//! carries the plan's decisions out.
//!
//! Naming (recordings are never overwritten):
//! - without segments the file is the path given; a picture of another size goes to a
//!   sibling named after the size (`out.640x480.mkv`); a name in use gets the next free
//!   `out-1.mkv`, `out-2.mkv`, ... (logged);
//! - with segments, `STEM-YYYYmmdd-HHMMSS.EXT` beside the path, in UTC, from the capture
//!   time of the segment's first frame (a clash in the same second gets `-1`, ...).
//!
//! The ring (`keep`, `max_bytes`, both needing `segment`): after each new segment
//! opens, the oldest segment files of the name's pattern in that directory, earlier
//! runs' included (an unattended camera restarts), are deleted down to the limits;
//! the file being written never is. On a full disk (ENOSPC) the ring deletes its oldest
//! segments, at least one segment's worth, retries at the next keyframe, and from then
//! on keeps the segments below what fitted (so the disk does not fill again). Without a
//! ring a failed file is abandoned and a keyframe at least a second later opens a new
//! one (a new name), until the disk takes it again.
//!
//! Errors are said once per episode (`tracing::error!`, naming the file and the cause)
//! and kept in [`RecordStats::error`] until a frame is written again (`info!`).

#![deny(unsafe_code)]

mod error;
mod mux;
mod naming;
pub mod plan;
mod writer;

pub use error::RecordError;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use media::EncodedFrame;

use plan::{Gate, Limiter};
use writer::{Shared, Writer};

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
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("mkv") => Ok(Container::Matroska),
            Some("ts") => Ok(Container::MpegTs),
            Some("mp4") => Ok(Container::FragmentedMp4),
            _ => Err(RecordError::Extension {
                path: path.to_path_buf(),
            }),
        }
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
pub struct RecordTap {
    tx: SyncSender<EncodedFrame>,
    gate: Gate,
    shared: Arc<Shared>,
}

impl RecordTap {
    /// Offers a frame. Never blocks: a full queue drops it (and every frame up to the
    /// next keyframe) and asks for a keyframe.
    pub fn offer(&mut self, frame: &EncodedFrame) {
        if !self.gate.admit(frame.keyframe) {
            self.dropped();
            return;
        }
        // A clone of `Bytes` shares the frame's buffer: no copy of the picture.
        match self.tx.try_send(frame.clone()) {
            Ok(()) => self.gate.handle_sent(true),
            Err(TrySendError::Full(_)) => {
                if !self.gate.dropping() {
                    tracing::debug!("recording queue full: frames dropped up to a keyframe");
                }
                self.gate.handle_sent(false);
                self.dropped();
            }
            // The writer has ended (`finish`): nothing more is recorded.
            Err(TrySendError::Disconnected(_)) => {
                self.shared.tap_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn dropped(&self) {
        self.shared.tap_dropped.fetch_add(1, Ordering::Relaxed);
        self.shared.request_keyframe(Instant::now());
    }
}

/// The writer thread and its figures.
pub struct Recorder {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Recorder {
    /// Checks `config` (container, directory, the ring's options), starts the writer
    /// thread and returns the tap for the producer. `request_keyframe` is called (from
    /// the writer thread or the tap, at most about once a second) whenever the recording
    /// needs a keyframe: at the start, at a segment boundary, after a drop.
    pub fn start(
        config: RecordConfig,
        request_keyframe: Box<dyn Fn() + Send + Sync>,
    ) -> Result<(Recorder, RecordTap), RecordError> {
        let container = check(&config)?;
        let shared = Arc::new(Shared {
            stats: Mutex::new(RecordStats::default()),
            tap_dropped: AtomicU64::new(0),
            closing: AtomicBool::new(false),
            limiter: Limiter::new(Instant::now()),
            request: request_keyframe,
        });
        let (tx, rx) = sync_channel(RECORD_QUEUE);
        let writer = Writer::new(config, container, shared.clone());
        let thread = std::thread::Builder::new()
            .name("record".into())
            .spawn(move || writer.run(rx))
            .map_err(RecordError::Thread)?;
        // The recording starts at a keyframe: ask now rather than wait for the GOP.
        shared.request_keyframe(Instant::now());
        let tap = RecordTap {
            tx,
            gate: Gate::default(),
            shared: shared.clone(),
        };
        Ok((
            Recorder {
                shared,
                thread: Some(thread),
            },
            tap,
        ))
    }

    /// The figures now.
    pub fn stats(&self) -> RecordStats {
        let mut s = self.shared.stats().clone();
        s.dropped += self.shared.tap_dropped.load(Ordering::Relaxed);
        s
    }

    /// Writes what is queued, closes the file (its trailer or last fragment) and joins
    /// the writer. Returns the final figures.
    pub fn finish(mut self) -> RecordStats {
        self.close();
        self.stats()
    }

    fn close(&mut self) {
        self.shared.closing.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("the record thread panicked; the file may lack its trailer");
            }
        }
    }
}

impl Drop for Recorder {
    /// A recorder dropped without `finish` still closes its file properly.
    fn drop(&mut self) {
        self.close();
    }
}

/// Checks the configuration before any thread starts: the container, the ring's
/// options, and that the directory exists and takes a new file.
fn check(config: &RecordConfig) -> Result<Container, RecordError> {
    let path = &config.path;
    let container = Container::for_path(path)?;
    if path.to_str().is_none() {
        return Err(RecordError::NotUtf8 { path: path.clone() });
    }
    if config.segment.is_none() {
        if config.keep.is_some() {
            return Err(RecordError::NeedsSegment {
                option: "record-keep",
            });
        }
        if config.max_bytes.is_some() {
            return Err(RecordError::NeedsSegment {
                option: "record-max-bytes",
            });
        }
    }
    if config
        .segment
        .is_some_and(|s| s < Duration::from_millis(100))
    {
        return Err(RecordError::Invalid {
            option: "record-segment",
            reason: "a segment must last at least 0.1 s",
        });
    }
    if config.keep == Some(0) {
        return Err(RecordError::Invalid {
            option: "record-keep",
            reason: "at least 1 segment must be kept (the one being written)",
        });
    }
    if config.max_bytes == Some(0) {
        return Err(RecordError::Invalid {
            option: "record-max-bytes",
            reason: "must be more than 0",
        });
    }
    let dir = naming::parent(path);
    let probe = dir.join(format!(".picam-record-probe-{}", std::process::id()));
    let dir_err = |source| RecordError::Directory {
        dir: dir.to_path_buf(),
        source,
    };
    // Writing a file is the only sure test (permissions, a read-only mount, root).
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&probe)
        .map_err(dir_err)?;
    std::fs::remove_file(&probe).map_err(dir_err)?;
    Ok(container)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containers_by_extension() {
        assert_eq!(
            Container::for_path(Path::new("a/b.MKV")).unwrap(),
            Container::Matroska
        );
        assert_eq!(
            Container::for_path(Path::new("b.ts")).unwrap(),
            Container::MpegTs
        );
        assert_eq!(
            Container::for_path(Path::new("b.mp4")).unwrap(),
            Container::FragmentedMp4
        );
        for bad in ["b.avi", "b", "mkv", "b.mkv.tmp"] {
            let e = Container::for_path(Path::new(bad)).unwrap_err();
            assert!(e.to_string().contains(".mkv, .ts or .mp4"), "{e}");
        }
    }

    fn config(path: &str) -> RecordConfig {
        RecordConfig {
            path: PathBuf::from(path),
            segment: None,
            keep: None,
            max_bytes: None,
        }
    }

    #[test]
    fn the_tap_moves_to_other_threads() {
        fn send<T: Send>() {}
        send::<RecordTap>();
        send::<Recorder>();
    }

    #[test]
    fn the_ring_needs_segments() {
        let mut c = config("/tmp/x.mkv");
        c.keep = Some(3);
        let e = check(&c).unwrap_err().to_string();
        assert!(
            e.contains("record-keep") && e.contains("record-segment"),
            "{e}"
        );
        let mut c = config("/tmp/x.mkv");
        c.max_bytes = Some(3);
        let e = check(&c).unwrap_err().to_string();
        assert!(e.contains("record-max-bytes"), "{e}");
    }
}
