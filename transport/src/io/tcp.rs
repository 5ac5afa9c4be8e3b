//! TCP driver: the only code here that touches a stream socket.
//!
//! The sender connects to the receiver (as with UDP, the sender knows the viewer's
//! address), reconnecting with backoff whenever the connection is lost; the receiver
//! listens and replaces its connection when a newer one arrives (a restarted sender).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Buf;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{sleep_until, ReceiverHooks, SenderHooks};
use crate::machine::{Machine, Output};
use crate::wire::{self, framing::LengthPrefixed};
use crate::{
    ReceivedFrame, Receiver, ReceiverInput, Sender, SenderEvent, SenderInput, SourceFrame,
    TransportError,
};

const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// A connect attempt that has not completed in this long is abandoned: a blackholed
/// receiver would otherwise cost minutes of SYN retries before the next attempt.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// A connection shorter than this counts as a failed attempt: the backoff keeps
/// growing, so a receiver that accepts and closes at once is not hammered.
const HEALTHY_CONNECTION: Duration = Duration::from_secs(2);
/// A peer that takes longer than this to accept one message is treated as gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// Feedback messages are tiny; anything bigger on the sender's read side is an error.
const MAX_FEEDBACK: usize = 1024;

async fn write_message(stream: &mut TcpStream, message: &[u8]) -> std::io::Result<()> {
    let prefix = (message.len() as u32).to_be_bytes();
    let mut both = Buf::chain(&prefix[..], message);
    match tokio::time::timeout(WRITE_TIMEOUT, stream.write_all_buf(&mut both)).await {
        Ok(result) => result,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "peer stopped reading",
        )),
    }
}

/// Why a connected session ended.
enum Ended {
    Shutdown,
    Disconnected,
}

/// The backoff between connection attempts.
#[derive(Debug)]
struct Backoff {
    next: Duration,
}

impl Backoff {
    fn new() -> Self {
        Self {
            next: BACKOFF_START,
        }
    }

    /// The pause before the next attempt, given how long the last connection lived
    /// (`None`: it never connected).
    fn after(&mut self, lived: Option<Duration>) -> Duration {
        if lived.is_some_and(|d| d >= HEALTHY_CONNECTION) {
            self.next = BACKOFF_START;
        }
        let pause = self.next;
        self.next = (self.next * 2).min(BACKOFF_MAX);
        pause
    }
}

/// Streams frames to `remote`, reconnecting with backoff, until the frame channel
/// closes or shutdown is signalled. While disconnected, frames are dropped (counted).
pub async fn run_sender<E: FnMut(SenderEvent)>(
    remote: SocketAddr,
    mut sender: Sender,
    mut hooks: SenderHooks<E>,
) -> Result<(), TransportError> {
    tracing::info!(%remote, session = format_args!("{:08x}", sender.session()), "sending over TCP");
    let mut backoff = Backoff::new();
    let mut link = SenderLink::default();
    loop {
        let connect = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(remote));
        tokio::pin!(connect);
        let attempt = loop {
            tokio::select! {
                result = &mut connect => break result,
                frame = hooks.frames.recv() => match frame {
                    Some(frame) => link.take_offline(&mut sender, &mut hooks, frame),
                    None => return Ok(()),
                },
                _ = hooks.shutdown.changed() => return Ok(()),
            }
        };
        let lived = match attempt {
            Ok(Ok(stream)) => {
                if let Err(e) = stream.set_nodelay(true) {
                    tracing::warn!(error = %e, "could not set TCP_NODELAY");
                }
                tracing::info!(%remote, "connected");
                let since = Instant::now();
                match send_on(stream, &mut sender, &mut hooks, &mut link).await {
                    Ended::Shutdown => return Ok(()),
                    Ended::Disconnected => {
                        tracing::warn!(%remote, "receiver disconnected; reconnecting")
                    }
                }
                Some(since.elapsed())
            }
            Ok(Err(e)) => {
                tracing::debug!(%remote, error = %e, "connect failed");
                None
            }
            Err(_) => {
                tracing::debug!(%remote, timeout = ?CONNECT_TIMEOUT, "connect timed out");
                None
            }
        };
        let pause = tokio::time::sleep(backoff.after(lived));
        tokio::pin!(pause);
        // Keep taking frames during the pause so capture never blocks.
        loop {
            tokio::select! {
                _ = &mut pause => break,
                frame = hooks.frames.recv() => match frame {
                    Some(frame) => link.take_offline(&mut sender, &mut hooks, frame),
                    None => return Ok(()),
                },
                _ = hooks.shutdown.changed() => return Ok(()),
            }
        }
    }
}

/// Kernel send buffer with the jam guard: bounds what one connection keeps queued in
/// the network (Linux doubles the value given).
const GUARDED_SEND_BUFFER: usize = 32 * 1024;
/// Unsent bytes the kernel may hold before the socket stops being writable.
const GUARDED_NOT_SENT_LOW_WATER: u32 = 16 * 1024;
/// A connection that accepts nothing for this long while we have data is dead.
const STALL_LIMIT: Duration = Duration::from_secs(5);
/// How long queued frames may take to leave once the source has ended.
const FLUSH_LIMIT: Duration = Duration::from_millis(500);

/// The message being written (length prefix and packet) and how much of it has gone.
#[derive(Default)]
struct SenderLink {
    packet: Vec<u8>,
    pending: Vec<u8>,
    written: usize,
}

/// Where the sender's drain stopped.
enum Drained {
    /// Everything handed out; the machine next wants a timeout at this instant.
    Idle(Option<Instant>),
    /// The kernel's small queue is full: the rest waits in the sender.
    Blocked,
    /// The connection failed.
    Failed,
}

impl SenderLink {
    /// A frame while no receiver is connected: taken so capture never blocks, and
    /// dropped at once (counted), with the events it causes handed on.
    fn take_offline<E: FnMut(SenderEvent)>(
        &mut self,
        sender: &mut Sender,
        hooks: &mut SenderHooks<E>,
        frame: SourceFrame,
    ) {
        let now = Instant::now();
        sender.handle_input(now, SenderInput::Frame(frame));
        sender.handle_input(now, SenderInput::Disconnected);
        self.pending.clear();
        self.written = 0;
        self.drain(None, sender, hooks);
    }

    /// The sender's one drain loop. Writes without blocking: when the kernel's small
    /// queue is full, frames wait in the sender, which drops the stale ones. With no
    /// stream, packets are discarded (there is nobody to send them to).
    fn drain<E: FnMut(SenderEvent)>(
        &mut self,
        stream: Option<&TcpStream>,
        sender: &mut Sender,
        hooks: &mut SenderHooks<E>,
    ) -> Drained {
        loop {
            if self.written < self.pending.len() {
                let Some(stream) = stream else {
                    self.pending.clear();
                    self.written = 0;
                    continue;
                };
                match stream.try_write(&self.pending[self.written..]) {
                    Ok(n) => {
                        self.written += n;
                        continue;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        hooks.publish(sender);
                        return Drained::Blocked;
                    }
                    Err(_) => return Drained::Failed,
                }
            }
            match sender.poll_output(Instant::now(), &mut self.packet) {
                Output::Transmit(_) => {
                    self.pending.clear();
                    self.pending
                        .extend_from_slice(&(self.packet.len() as u32).to_be_bytes());
                    self.pending.extend_from_slice(&self.packet);
                    self.written = 0;
                }
                Output::Event(event) => (hooks.on_event)(event),
                Output::Timeout(at) => {
                    hooks.publish(sender);
                    return Drained::Idle(at);
                }
            }
        }
    }
}

async fn send_on<E: FnMut(SenderEvent)>(
    stream: TcpStream,
    sender: &mut Sender,
    hooks: &mut SenderHooks<E>,
    link: &mut SenderLink,
) -> Ended {
    if sender.jam_guard() {
        super::sockopt::keep_tcp_send_queue_small(
            &stream,
            GUARDED_SEND_BUFFER,
            GUARDED_NOT_SENT_LOW_WATER,
        );
    }
    link.pending.clear();
    link.written = 0;
    sender.handle_input(Instant::now(), SenderInput::NewReceiver);
    let mut last_progress = Instant::now();
    let mut inbuf = vec![0u8; 4096];
    let mut feedback = LengthPrefixed::new(MAX_FEEDBACK);
    // Once the source has ended or we are stopping: what was captured still goes out,
    // within a bound.
    let mut stopping: Option<Instant> = None;
    loop {
        let before = (link.written, link.pending.len());
        let drained = link.drain(Some(&stream), sender, hooks);
        if (link.written, link.pending.len()) != before {
            last_progress = Instant::now();
        }
        let (timeout, blocked) = match drained {
            Drained::Idle(at) => (at, false),
            Drained::Blocked => (None, true),
            Drained::Failed => return Ended::Disconnected,
        };
        if let Some(deadline) = stopping {
            if (!blocked && sender.queued_frames() == 0) || Instant::now() >= deadline {
                return Ended::Shutdown;
            }
        }
        if blocked && last_progress.elapsed() > STALL_LIMIT {
            return Ended::Disconnected;
        }
        // While blocked, also wake to notice a stall and to let pacing and deadline
        // drops run.
        let wake = if blocked {
            Some(Instant::now() + Duration::from_millis(20))
        } else {
            timeout
        };
        let wake = match (wake, stopping) {
            (Some(w), Some(d)) => Some(w.min(d)),
            (w, d) => w.or(d),
        };
        tokio::select! {
            frame = hooks.frames.recv(), if stopping.is_none() => match frame {
                Some(frame) => sender.handle_input(Instant::now(), SenderInput::Frame(frame)),
                None => stopping = Some(Instant::now() + FLUSH_LIMIT),
            },
            ready = stream.writable(), if blocked => {
                if ready.is_err() {
                    return Ended::Disconnected;
                }
            }
            ready = stream.readable() => {
                if ready.is_err() {
                    return Ended::Disconnected;
                }
                match stream.try_read(&mut inbuf) {
                    Ok(0) => return Ended::Disconnected,
                    Ok(n) => {
                        feedback.push(&inbuf[..n]);
                        loop {
                            match feedback.pull() {
                                Ok(Some(message)) => sender.handle_input(Instant::now(), SenderInput::Packet(&message)),
                                Ok(None) => break,
                                Err(_) => return Ended::Disconnected,
                            }
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => return Ended::Disconnected,
                }
            }
            _ = sleep_until(wake) => sender.handle_input(Instant::now(), SenderInput::Timeout),
            _ = hooks.shutdown.changed(), if stopping.is_none() => {
                while let Ok(frame) = hooks.frames.try_recv() {
                    sender.handle_input(Instant::now(), SenderInput::Frame(frame));
                }
                stopping = Some(Instant::now() + FLUSH_LIMIT);
            }
        }
    }
}

/// Listens on `bind`, receiving from the newest connected sender, until shutdown.
pub async fn run_receiver<F: FnMut(ReceivedFrame) -> bool>(
    bind_addr: SocketAddr,
    max_frame_bytes: usize,
    mut receiver: Receiver,
    mut hooks: ReceiverHooks<F>,
) -> Result<(), TransportError> {
    let listener = TcpListener::bind(bind_addr)
        .await
        .map_err(|source| TransportError::Io {
            context: "listening on TCP",
            addr: bind_addr,
            source,
        })?;
    tracing::info!(local = %bind_addr, "receiving over TCP");
    let max_message = max_frame_bytes + wire::FRAGMENT_HEADER;
    let mut conn: Option<Connection> = None;
    let mut inbuf = vec![0u8; 256 * 1024];
    let mut out = Vec::with_capacity(1500);
    loop {
        let wake = drain_receiver(&mut conn, &mut receiver, &mut hooks, &mut out).await;
        let read = async {
            match conn.as_mut() {
                Some(c) => c.stream.read(&mut inbuf).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    tracing::info!(%peer, "sender connected");
                    conn = Some(Connection { stream, peer, splitter: LengthPrefixed::new(max_message) });
                }
                Err(e) => tracing::warn!(error = %e, "accept failed"),
            },
            read = read => {
                let Some(c) = conn.as_mut() else { continue };
                let peer = c.peer;
                match read {
                    Ok(0) | Err(_) => {
                        tracing::info!(%peer, "sender disconnected");
                        conn = None;
                    }
                    Ok(n) => {
                        c.splitter.push(&inbuf[..n]);
                        loop {
                            match c.splitter.pull() {
                                Ok(Some(message)) => receiver.handle_input(Instant::now(), ReceiverInput::Packet { from: Some(peer), data: &message }),
                                Ok(None) => break,
                                Err(e) => {
                                    tracing::warn!(%peer, error = %e, "dropping connection");
                                    conn = None;
                                    break;
                                }
                            }
                        }
                    }
                }
            },
            Some(command) = hooks.commands.recv() => hooks.on_command(&mut receiver, command),
            _ = sleep_until(wake) => receiver.handle_input(Instant::now(), ReceiverInput::Timeout),
            _ = hooks.shutdown.changed() => break,
        }
    }
    receiver.handle_input(Instant::now(), ReceiverInput::Close);
    drain_receiver(&mut conn, &mut receiver, &mut hooks, &mut out).await;
    Ok(())
}

/// The receiver's connection to the current sender.
struct Connection {
    stream: TcpStream,
    peer: SocketAddr,
    splitter: LengthPrefixed,
}

/// The receiver's one drain loop: hands frames on, sends feedback to the connected
/// sender (dropping the connection if it stops reading), publishes the counters and
/// returns when the machine next wants a timeout.
async fn drain_receiver<F: FnMut(ReceivedFrame) -> bool>(
    conn: &mut Option<Connection>,
    receiver: &mut Receiver,
    hooks: &mut ReceiverHooks<F>,
    out: &mut Vec<u8>,
) -> Option<Instant> {
    loop {
        match receiver.poll_output(Instant::now(), out) {
            Output::Event(event) => hooks.on_event(receiver, event),
            Output::Transmit(_) => {
                if let Some(c) = conn.as_mut() {
                    if write_message(&mut c.stream, out).await.is_err() {
                        tracing::warn!(peer = %c.peer, "sender connection lost while sending feedback");
                        *conn = None;
                    }
                }
            }
            Output::Timeout(at) => {
                hooks.publish(receiver);
                return at;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_across_short_connections_and_resets_after_a_healthy_one() {
        let mut b = Backoff::new();
        let short = Some(Duration::from_millis(50));
        let pauses: Vec<_> = [None, short, short, short, short, short]
            .into_iter()
            .map(|lived| b.after(lived).as_millis())
            .collect();
        // A connection that lived a moment does not reset the backoff: no reconnect
        // storm against a receiver that accepts and closes at once.
        assert_eq!(pauses, [100, 200, 400, 800, 1600, 2000]);
        assert_eq!(b.after(Some(HEALTHY_CONNECTION)).as_millis(), 100);
    }
}
