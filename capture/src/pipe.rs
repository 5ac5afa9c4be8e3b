//! Reading a live byte stream (stdin, a child's stdout) on a helper thread, so the
//! capture thread can wait for bytes with a timeout: when the producer goes quiet, the
//! access unit it just finished is handed out at once instead of a frame later.

use std::io::Read;
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::Stop;

/// Chunks in flight between the reader thread and the capture thread. Small: when the
/// consumer falls behind, the pipe fills and the producer blocks (or drops frames, as a
/// camera does) instead of a queue growing here.
pub const CHUNK_QUEUE: usize = 8;
/// Largest read.
const CHUNK: usize = 256 * 1024;

/// What waiting on the stream gave.
#[derive(Debug)]
pub enum Chunk {
    /// Bytes read.
    Data(Vec<u8>),
    /// Nothing arrived within the timeout.
    Idle,
    /// The stream ended (the producer closed it or exited).
    End,
    /// Reading failed.
    Failed(std::io::Error),
    /// The owner's stop flag fired while waiting.
    Stopped,
}

/// A byte stream read on its own thread.
pub struct ChunkReader {
    rx: Receiver<Result<Vec<u8>, std::io::Error>>,
    thread: Option<JoinHandle<()>>,
}

impl ChunkReader {
    /// Starts reading `reader` on a thread named after `name`.
    pub fn spawn(name: &str, mut reader: impl Read + Send + 'static) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel(CHUNK_QUEUE);
        let thread = std::thread::Builder::new()
            .name(format!("read {name}"))
            .spawn(move || {
                let mut buf = vec![0u8; CHUNK];
                loop {
                    match reader.read(&mut buf) {
                        Ok(0) => return,
                        Ok(n) => {
                            if tx.send(Ok(buf[..n].to_vec())).is_err() {
                                return;
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                    }
                }
            })?;
        Ok(Self {
            rx,
            thread: Some(thread),
        })
    }

    /// Waits up to `timeout` for bytes (`None`: without limit).
    pub fn next(&self, timeout: Option<Duration>) -> Chunk {
        let got = match timeout {
            Some(t) => self.rx.recv_timeout(t),
            None => self.rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match got {
            Ok(Ok(data)) => Chunk::Data(data),
            Ok(Err(e)) => Chunk::Failed(e),
            Err(RecvTimeoutError::Timeout) => Chunk::Idle,
            Err(RecvTimeoutError::Disconnected) => Chunk::End,
        }
    }

    /// As [`ChunkReader::next`], but looks at `stop` at least every
    /// [`crate::stop::POLL`] and gives [`Chunk::Stopped`] once it has fired: a quiet
    /// producer cannot hold a shutdown up.
    pub fn next_unless(&self, timeout: Option<Duration>, stop: &Stop) -> Chunk {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            if stop.is_fired() {
                return Chunk::Stopped;
            }
            let left = deadline.map_or(crate::stop::POLL, |d| {
                d.saturating_duration_since(Instant::now())
            });
            match self.next(Some(Stop::slice(left))) {
                Chunk::Idle if deadline.is_none_or(|d| Instant::now() < d) => {}
                other => return other,
            }
        }
    }
}

impl Drop for ChunkReader {
    fn drop(&mut self) {
        // The thread ends when its stream ends (the owner closes or kills the producer);
        // it is not joined here because a blocked read on stdin would hang the drop.
        drop(self.thread.take());
    }
}
