//! The writer thread: takes frames off the queue, asks the [`Plan`] what to do with
//! each, and does it (files, the muxer, the ring, the log).

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use media::EncodedFrame;

use crate::mux::{self, Muxer};
use crate::naming;
use crate::plan::{FrameMeta, Limiter, Open, OpenReason, Plan, RETRY};
use crate::{Container, RecordConfig, RecordError, RecordStats, RECORD_QUEUE};

/// How often the writer looks at the closing flag when no frame comes.
const POLL: Duration = Duration::from_millis(50);

/// What the tap, the writer and the [`crate::Recorder`] share.
pub(crate) struct Shared {
    /// The writer's figures (the tap's drops are counted apart, without a lock).
    pub stats: Mutex<RecordStats>,
    /// Frames the tap dropped (full queue, or waiting for a keyframe after one).
    pub tap_dropped: AtomicU64,
    /// Set by `finish`: write what is queued, close, end.
    pub closing: AtomicBool,
    pub limiter: Limiter,
    pub request: Box<dyn Fn() + Send + Sync>,
}

impl Shared {
    /// Asks the sender for a keyframe unless one was asked for less than a second ago
    /// (by either thread).
    pub fn request_keyframe(&self, now: Instant) {
        if self.limiter.try_take(now) {
            tracing::debug!("recording asks for a keyframe");
            (self.request)();
        }
    }

    pub fn stats(&self) -> MutexGuard<'_, RecordStats> {
        // A poisoned lock means the writer panicked mid-update: the figures are still
        // the best there are.
        self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub(crate) struct Writer {
    config: RecordConfig,
    container: Container,
    shared: Arc<Shared>,
    plan: Plan,
    mux: Option<Muxer>,
    /// The first file's picture size: files of other sizes get a sibling name.
    first_size: Option<(u32, u32)>,
    /// In a failure episode (logged once, until a frame is written again).
    failing: bool,
    /// An unreadable SPS was reported (once: it comes with every keyframe).
    bad_sps_said: bool,
    file_frames: u64,
    file_bytes: u64,
    /// The open file's first frame's length: an abandoned file shorter than that holds
    /// no picture and is deleted.
    file_first: u64,
    /// Learnt from a full disk: the segments may hold at most this many bytes (the
    /// ring keeps below it from then on, instead of filling the disk again).
    disk_limit: Option<u64>,
}

impl Writer {
    pub fn new(config: RecordConfig, container: Container, shared: Arc<Shared>) -> Writer {
        Writer {
            plan: Plan::new(config.segment),
            config,
            container,
            shared,
            mux: None,
            first_size: None,
            failing: false,
            bad_sps_said: false,
            file_frames: 0,
            file_bytes: 0,
            file_first: 0,
            disk_limit: None,
        }
    }

    /// The thread's body: until the tap is gone or `finish` sets the closing flag.
    pub fn run(mut self, rx: Receiver<EncodedFrame>) {
        loop {
            if self.shared.closing.load(Ordering::Acquire) {
                // What is queued now is written; a tap still offering cannot keep the
                // writer alive past one queue's worth.
                for _ in 0..RECORD_QUEUE {
                    match rx.try_recv() {
                        Ok(frame) => self.handle(&frame),
                        Err(_) => break,
                    }
                }
                break;
            }
            match rx.recv_timeout(POLL) {
                Ok(frame) => self.handle(&frame),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        self.close_file();
    }

    fn handle(&mut self, frame: &EncodedFrame) {
        let now = Instant::now();
        let size = if frame.keyframe {
            match mux::sps_size(&frame.data) {
                Some(Ok(size)) => Some(size),
                Some(Err(e)) => {
                    if !self.bad_sps_said {
                        self.bad_sps_said = true;
                        tracing::warn!(
                            "recording: {}; such keyframes cannot start a file",
                            RecordError::from(e)
                        );
                    }
                    None
                }
                None => None,
            }
        } else {
            None
        };
        let d = self.plan.handle_frame(
            now,
            FrameMeta {
                keyframe: frame.keyframe,
                capture_us: frame.capture_us,
                size,
                len: frame.data.len(),
            },
        );
        if d.close {
            self.close_file();
        }
        let mut written = false;
        if let Some(open) = d.open {
            if let Err(e) = self.open_file(open, frame) {
                self.fail(now, e);
            }
        }
        if d.fate.is_ok() {
            if let Some(m) = &mut self.mux {
                match m.write(&frame.data, frame.capture_us, frame.keyframe) {
                    Ok(()) => written = true,
                    Err(e) => self.fail(now, e),
                }
            }
        }
        {
            let mut s = self.shared.stats();
            if written {
                s.frames += 1;
                s.bytes += frame.data.len() as u64;
            } else {
                s.dropped += 1;
            }
        }
        if written {
            self.file_frames += 1;
            self.file_bytes += frame.data.len() as u64;
            if self.failing {
                self.failing = false;
                self.shared.stats().error = None;
                if let Some(m) = &self.mux {
                    tracing::info!("recording resumed: writing to {}", m.path().display());
                }
            }
        }
        if d.request_keyframe {
            self.shared.request_keyframe(now);
        }
    }

    fn open_file(&mut self, open: Open, frame: &EncodedFrame) -> Result<(), RecordError> {
        let path = &self.config.path;
        let wanted = if self.config.segment.is_some() {
            naming::segment(path, open.start_us)
        } else {
            let first = *self.first_size.get_or_insert(open.size);
            if open.size == first {
                path.clone()
            } else {
                naming::sized(path, open.size)
            }
        };
        let first = if self.config.segment.is_some() {
            naming::first_segment_number(path, &wanted)
        } else {
            0
        };
        let actual = naming::create_free(&wanted, first).map_err(|source| RecordError::Io {
            action: "creating",
            path: wanted.clone(),
            source,
        })?;
        if actual != wanted {
            tracing::info!(
                "{} exists already: recording to {} instead",
                wanted.display(),
                actual.display()
            );
        }
        let muxer = match Muxer::open(
            &actual,
            self.container,
            open.size,
            &frame.data,
            open.start_us,
        ) {
            Ok(m) => m,
            Err(e) => {
                // The empty file only claimed the name.
                let _ = std::fs::remove_file(&actual);
                return Err(e);
            }
        };
        let (w, h) = open.size;
        match open.reason {
            OpenReason::SizeChange { from, to } => tracing::info!(
                "picture size changed from {}x{} to {}x{}: recording to {}",
                from.0,
                from.1,
                to.0,
                to.1,
                actual.display()
            ),
            OpenReason::ClockBackwards => tracing::info!(
                "the sender's capture clock went backwards (a restart?): recording to {} ({w}x{h})",
                actual.display()
            ),
            OpenReason::Start | OpenReason::Segment | OpenReason::Retry => {
                tracing::info!("recording to {} ({w}x{h})", actual.display())
            }
        }
        {
            let mut s = self.shared.stats();
            s.files += 1;
            s.file = Some(actual.clone());
        }
        self.mux = Some(muxer);
        self.file_frames = 0;
        self.file_bytes = 0;
        self.file_first = frame.data.len() as u64;
        if self.config.segment.is_some() {
            self.prune(Some(&actual));
        }
        Ok(())
    }

    fn close_file(&mut self) {
        let Some(m) = self.mux.take() else { return };
        let path = m.path().to_path_buf();
        self.shared.stats().file = None;
        match m.finish() {
            Ok(()) => tracing::info!(
                "closed {}: {} frames, {} bytes of H.264",
                path.display(),
                self.file_frames,
                self.file_bytes
            ),
            Err(e) => tracing::warn!("recording: {e}"),
        }
    }

    /// An open or a write failed: abandon the file, make room if the disk is full and a
    /// ring may delete, say so once per episode.
    fn fail(&mut self, now: Instant, e: RecordError) {
        let abandoned = self.mux.take().map(|m| {
            let path = m.path().to_path_buf();
            // Try to close it properly; on a full disk the trailer fails too, and the
            // file still plays up to its last flushed cluster or fragment.
            let _ = m.finish();
            path
        });
        if let Some(path) = &abandoned {
            // A file cut off before its first picture reached the disk (a header, part
            // of a cluster) plays nothing: it would only be litter, and a ring's victim.
            let len = std::fs::metadata(path).map_or(0, |m| m.len());
            if len < self.file_first {
                let _ = std::fs::remove_file(path);
                tracing::info!("deleted {}: no picture reached it", path.display());
            }
        }
        self.shared.stats().file = None;
        let ring = self.config.keep.is_some() || self.config.max_bytes.is_some();
        let mut retry_after = RETRY;
        if ring
            && e.errno() == Some(ffmpeg_next::error::ENOSPC)
            && self.make_room(abandoned.as_deref())
        {
            retry_after = Duration::ZERO;
        }
        self.plan.handle_failure(now, retry_after);
        if !self.failing {
            self.failing = true;
            tracing::error!("recording failed: {e}; frames are dropped until it can write again");
        }
        self.shared.stats().error = Some(e.to_string());
    }

    /// The disk is full: deletes the oldest segments, at least one and at least a
    /// segment's worth of bytes, and from then on keeps the segments below what fitted.
    /// Whether anything was deleted.
    fn make_room(&mut self, failed: Option<&Path>) -> bool {
        let segments = match naming::list_segments(&self.config.path) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("recording: listing old segments to make room: {e}");
                return false;
            }
        };
        // A segment's worth: the largest one (the one that failed may be cut short).
        let need = segments.iter().map(|s| s.bytes).max().unwrap_or(0).max(1);
        let held: u64 = segments.iter().map(|s| s.bytes).sum();
        let (victims, _) = naming::make_room(segments, failed, need);
        if victims.is_empty() {
            return false;
        }
        for v in &victims {
            delete(v);
        }
        // The disk was full with `held` bytes of segments. Keeping them below that minus
        // two segments leaves room for the one being written and some slack (other
        // files, file-system overhead); on a real card two segments are a small share.
        let limit = held.saturating_sub(2 * need).max(1);
        if self.disk_limit.is_none_or(|l| limit < l) {
            tracing::info!("the disk is full: segments are kept below {limit} bytes from now on");
            self.disk_limit = Some(limit);
        }
        true
    }

    /// Deletes the oldest segments beyond `keep` / `max_bytes` (and the limit a full disk
    /// taught), never `current`.
    fn prune(&self, current: Option<&Path>) {
        let max_bytes = match (self.config.max_bytes, self.disk_limit) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if self.config.keep.is_none() && max_bytes.is_none() {
            return;
        }
        let segments = match naming::list_segments(&self.config.path) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(
                    "recording: listing {} for old segments: {e}",
                    naming::parent(&self.config.path).display()
                );
                return;
            }
        };
        for v in naming::ring_victims(segments, current, self.config.keep, max_bytes) {
            delete(&v);
        }
    }
}

fn delete(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => tracing::info!("deleted the old segment {}", path.display()),
        Err(e) => tracing::warn!(
            "recording: deleting the old segment {}: {e}",
            path.display()
        ),
    }
}
