//! Whole raw frames from a pipe, read on a helper thread so the capture thread can wait
//! with a timeout (and a stop flag) rather than block in `read`.
//!
//! Each frame is read straight from the pipe into a buffer of exactly one frame's bytes
//! (the one copy out of the kernel); buffers go back to the reader to be filled again,
//! so a steady stream allocates nothing. The capture time is the moment the last byte
//! of a frame was read.

use std::io::Read;
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::time::{Duration, Instant};

use media::wallclock_us;

use crate::Stop;

/// Frames read ahead of the capture thread. One: when the encoder is slower than the
/// camera, the pipe fills and the camera drops frames instead of a queue growing here.
const FRAMES_AHEAD: usize = 1;
/// Buffers kept for reuse.
const SPARE_BUFFERS: usize = 3;

/// One frame as read.
#[derive(Debug)]
pub struct RawFrame {
    /// Exactly one frame's bytes, padding included.
    pub data: Vec<u8>,
    /// Wall clock when its last byte was read, µs.
    pub read_at_us: u64,
}

/// What waiting on the pipe gave.
#[derive(Debug)]
pub enum FrameRead {
    /// The newest whole frame; `skipped` older ones were waiting and are dropped.
    Frame {
        /// The frame.
        frame: RawFrame,
        /// Older frames dropped unencoded to catch up.
        skipped: u32,
    },
    /// No whole frame within the timeout.
    Idle,
    /// The stream ended (a partial last frame is dropped).
    End,
    /// Reading failed.
    Failed(std::io::Error),
    /// The owner's stop flag fired while waiting.
    Stopped,
}

/// A pipe read a frame at a time on its own thread.
pub struct FrameReader {
    rx: Receiver<std::io::Result<RawFrame>>,
    spare: SyncSender<Vec<u8>>,
}

impl FrameReader {
    /// Starts reading frames of `frame_bytes` from `reader` on a thread named after
    /// `name`.
    pub fn spawn(
        name: &str,
        mut reader: impl Read + Send + 'static,
        frame_bytes: usize,
    ) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel(FRAMES_AHEAD);
        let (spare, spares) = sync_channel::<Vec<u8>>(SPARE_BUFFERS);
        std::thread::Builder::new()
            .name(format!("frames {name}"))
            .spawn(move || loop {
                let mut data = spares.try_recv().unwrap_or_default();
                data.resize(frame_bytes, 0);
                match read_whole(&mut reader, &mut data) {
                    Ok(true) => {
                        let frame = RawFrame {
                            data,
                            read_at_us: wallclock_us(),
                        };
                        if tx.send(Ok(frame)).is_err() {
                            return;
                        }
                    }
                    Ok(false) => return,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                }
            })?;
        Ok(Self { rx, spare })
    }

    /// Gives a frame's buffer back for reuse.
    pub fn recycle(&self, data: Vec<u8>) {
        let _ = self.spare.try_send(data);
    }

    /// Waits up to `timeout` for a whole frame, looking at `stop` at least every
    /// [`crate::stop::POLL`]. Frames already waiting behind the newest are dropped:
    /// an encoder that fell behind catches up instead of sending stale pictures.
    pub fn next_unless(&self, timeout: Duration, stop: &Stop) -> FrameRead {
        let deadline = Instant::now() + timeout;
        let first = loop {
            if stop.is_fired() {
                return FrameRead::Stopped;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(Stop::slice(left)) {
                Ok(got) => break got,
                Err(RecvTimeoutError::Timeout) if Instant::now() < deadline => {}
                Err(RecvTimeoutError::Timeout) => return FrameRead::Idle,
                Err(RecvTimeoutError::Disconnected) => return FrameRead::End,
            }
        };
        let mut frame = match first {
            Ok(frame) => frame,
            Err(e) => return FrameRead::Failed(e),
        };
        let mut skipped = 0;
        loop {
            match self.rx.try_recv() {
                Ok(Ok(newer)) => {
                    self.recycle(std::mem::replace(&mut frame, newer).data);
                    skipped += 1;
                }
                // An error or the end after a whole frame: that frame still counts; the
                // next call reports what followed.
                Ok(Err(e)) => {
                    tracing::debug!("after a whole frame: {e}");
                    break;
                }
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        FrameRead::Frame { frame, skipped }
    }
}

/// Fills `buf` from `reader`: true when full, false at the end of the stream (a partial
/// frame is dropped: a producer killed mid-frame).
fn read_whole(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => {
                if filled > 0 {
                    tracing::debug!("stream ended {filled} bytes into a frame");
                }
                return Ok(false);
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpicam::layout::{I420Layout, Isp};

    /// A pipe that hands out at most `piece` bytes per read, as a real one does.
    struct Trickle {
        data: Vec<u8>,
        at: usize,
        piece: usize,
    }

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(self.piece).min(self.data.len() - self.at);
            buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    fn next(reader: &FrameReader) -> FrameRead {
        reader.next_unless(Duration::from_secs(10), &Stop::new())
    }

    #[test]
    fn odd_stride_frames_come_out_whole_and_in_order_then_the_end() {
        // 650 pixels wide: 704-byte rows on a Pi 4, not a multiple of the read size.
        let layout = I420Layout::for_isp(Isp::Vc4, 650, 10).unwrap();
        let mut stream = Vec::new();
        let mut frame = Vec::new();
        for n in 0..3u8 {
            let mut picture = media::Picture::new(650, 10);
            picture.y.fill(10 + n);
            picture.u.fill(100 + n);
            picture.v.fill(200 + n);
            layout.pad_into(&picture, &mut frame);
            stream.extend_from_slice(&frame);
        }
        // Half a frame more: a producer killed mid-frame.
        stream.extend_from_slice(&frame[..frame.len() / 2]);
        let pipe = Trickle {
            data: stream,
            at: 0,
            piece: 4093,
        };
        let reader = FrameReader::spawn("test", pipe, layout.frame_bytes()).unwrap();
        let mut seen = Vec::new();
        for _ in 0..10 {
            match next(&reader) {
                FrameRead::Frame { frame, .. } => {
                    let view = layout.view(&frame.data).expect("a whole frame");
                    // Every row of every plane is this frame's, padding skipped.
                    for row in 0..10 {
                        assert!(view.y[row * view.y_stride..][..650]
                            .iter()
                            .all(|&b| b == view.y[0]));
                    }
                    assert_eq!(view.u[view.c_stride * 4 + 324], view.y[0] + 90);
                    assert_eq!(view.v[0], view.y[0] + 190);
                    seen.push(view.y[0]);
                    reader.recycle(frame.data);
                }
                FrameRead::End => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        // The reader may run ahead by a frame and the newest wins, so one frame can be
        // skipped; the partial fourth never comes out.
        assert!(
            !seen.is_empty() && seen.windows(2).all(|w| w[1] > w[0]),
            "{seen:?}"
        );
        assert_eq!(seen.last(), Some(&12), "{seen:?}");
    }

    #[cfg(unix)]
    #[test]
    fn a_quiet_pipe_is_idle_and_the_stop_flag_ends_the_wait() {
        let (_keep_open, pipe) = std::os::unix::net::UnixStream::pair().unwrap();
        let reader = FrameReader::spawn("quiet", pipe, 1000).unwrap();
        let begun = Instant::now();
        assert!(matches!(
            reader.next_unless(Duration::from_millis(150), &Stop::new()),
            FrameRead::Idle
        ));
        assert!(begun.elapsed() >= Duration::from_millis(150));
        let stop = Stop::new();
        stop.fire();
        assert!(matches!(
            reader.next_unless(Duration::from_secs(30), &stop),
            FrameRead::Stopped
        ));
    }
}
