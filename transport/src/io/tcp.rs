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

use super::{sleep_until, ReceiverHooks, SenderHooks, Throttle};
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
/// While a connect attempt has had no answer for this long, another one starts beside
/// it (the earlier ones keep going; the first to complete wins): a lost SYN or SYN-ACK
/// costs this, not the kernel's 1 s (then 3 s, 7 s) retransmission timeout.
const CONNECT_STAGGER: Duration = Duration::from_millis(100);
/// Connect attempts in flight at once, at most.
const CONNECT_ATTEMPTS: usize = 8;
/// A connection shorter than this counts as a failed attempt: the backoff keeps
/// growing, so a receiver that accepts and closes at once is not hammered.
const HEALTHY_CONNECTION: Duration = Duration::from_secs(2);
/// A peer that takes longer than this to accept one message is treated as gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// Feedback messages are small (a nack of 64 entries, sealed, is under 500 bytes);
/// anything bigger on the sender's read side is an error.
const MAX_FEEDBACK: usize = 2048;

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

/// Connects to `remote`, starting another attempt every [`CONNECT_STAGGER`] while none
/// has completed, for at most [`CONNECT_TIMEOUT`]. An attempt that fails outright (the
/// receiver refused: the path works, nobody listens) ends the round when no other is
/// in flight, so a receiver that is down gets the usual backoff, not a connect every
/// 100 ms. `Err(None)`: timed out.
async fn connect_staggered(remote: SocketAddr) -> Result<TcpStream, Option<std::io::Error>> {
    let deadline = tokio::time::Instant::now() + CONNECT_TIMEOUT;
    let mut attempts = tokio::task::JoinSet::new();
    let mut next = tokio::time::Instant::now();
    let mut started = 0;
    let mut last_error = None;
    loop {
        if started < CONNECT_ATTEMPTS && tokio::time::Instant::now() >= next {
            attempts.spawn(TcpStream::connect(remote));
            started += 1;
            next += CONNECT_STAGGER;
        }
        tokio::select! {
            Some(done) = attempts.join_next() => match done {
                // Dropping the set aborts the other attempts.
                Ok(Ok(stream)) => return Ok(stream),
                Ok(Err(e)) => {
                    last_error = Some(e);
                    if attempts.is_empty() {
                        return Err(last_error);
                    }
                }
                Err(_) => {}
            },
            _ = tokio::time::sleep_until(next), if started < CONNECT_ATTEMPTS => {}
            _ = tokio::time::sleep_until(deadline) => return Err(last_error),
        }
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
        let connect = connect_staggered(remote);
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
            Ok(stream) => {
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
            Err(Some(e)) => {
                tracing::debug!(%remote, error = %e, "connect failed");
                None
            }
            Err(None) => {
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

/// Connections waiting to prove they are the paired sender, at most, from all hosts.
const MAX_CANDIDATES: usize = 64;
/// ... and from one host (IP address). A host flooding connections pushes out its own
/// oldest, never another host's, and never one that has sent an authentic HELLO: so
/// the camera's connection is not pushed out by a stranger's, however fast it connects.
const MAX_CANDIDATES_PER_HOST: usize = 8;
/// A connection that has not authenticated within this long is closed.
const AUTH_TIMEOUT: Duration = Duration::from_secs(3);
/// Messages read from all connections, waiting for the receiver.
const READ_QUEUE: usize = 64;

/// One sender connection: its write half here, its read half in a task of its own.
struct Connection {
    id: u64,
    peer: SocketAddr,
    writer: tokio::net::tcp::OwnedWriteHalf,
    since: Instant,
    reader: tokio::task::JoinHandle<()>,
    /// It sent an authentic HELLO (its handshake is in progress): never pushed out by
    /// newer connections, only closed by `AUTH_TIMEOUT` or replaced once another
    /// sender authenticates.
    proven: bool,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// What a reader task hands the receiver loop: a message, or the end of its connection.
type Read = (u64, Option<Vec<u8>>);

/// Reads length-prefixed messages from one connection into `out`; ends with `None`.
async fn read_messages(
    id: u64,
    peer: SocketAddr,
    mut stream: tokio::net::tcp::OwnedReadHalf,
    max_message: usize,
    out: tokio::sync::mpsc::Sender<Read>,
) {
    let mut splitter = LengthPrefixed::new(max_message);
    let mut inbuf = vec![0u8; 64 * 1024];
    loop {
        match stream.read(&mut inbuf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                splitter.push(&inbuf[..n]);
                loop {
                    match splitter.pull() {
                        Ok(Some(message)) => {
                            if out.send((id, Some(message.to_vec()))).await.is_err() {
                                return;
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            tracing::warn!(%peer, error = %e, "dropping connection");
                            let _ = out.send((id, None)).await;
                            return;
                        }
                    }
                }
            }
        }
    }
    let _ = out.send((id, None)).await;
}

/// Listens on `bind`, receiving from the sender until shutdown. Without encryption the
/// newest connection wins (a restarted sender). With it, a new connection is a
/// candidate until its handshake proves it holds the paired key; only then does it
/// replace the one in use, and one that does not prove it within `AUTH_TIMEOUT` (3 s) is
/// closed: a stranger's connection never disturbs the stream.
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
    let max_message = max_frame_bytes + wire::FRAGMENT_HEADER + crate::secure::SEAL_OVERHEAD;
    let (read_tx, mut read_rx) = tokio::sync::mpsc::channel::<Read>(READ_QUEUE);
    let mut conns = Connections::default();
    let mut next_id = 0u64;
    let mut out = Vec::with_capacity(1500);
    let mut throttle = Throttle::default();
    loop {
        let wake = drain_receiver(
            &mut conns,
            &mut receiver,
            &mut hooks,
            &mut out,
            &mut throttle,
        )
        .await;
        conns.settle(&receiver);
        let wake = [wake, conns.next_deadline()].into_iter().flatten().min();
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    // Debug, not info: a flood of connections must not flood the log;
                    // "sender authenticated" says when the real one is in.
                    tracing::debug!(%peer, "sender connected");
                    if conns.admits(peer) {
                        let _ = stream.set_nodelay(true);
                        let (read, writer) = stream.into_split();
                        next_id += 1;
                        let reader = tokio::spawn(read_messages(next_id, peer, read, max_message, read_tx.clone()));
                        conns.add(Connection { id: next_id, peer, writer, since: Instant::now(), reader, proven: false });
                    }
                }
                Err(e) => tracing::warn!(error = %e, "accept failed"),
            },
            Some((id, message)) = read_rx.recv() => match message {
                Some(message) => {
                    if let Some(peer) = conns.peer_of(id) {
                        receiver.handle_input(Instant::now(), ReceiverInput::Packet { from: Some(peer), data: &message });
                    }
                }
                None => conns.remove(id, "sender disconnected"),
            },
            Some(command) = hooks.commands.recv() => hooks.on_command(&mut receiver, command),
            _ = sleep_until(wake) => receiver.handle_input(Instant::now(), ReceiverInput::Timeout),
            _ = hooks.shutdown.changed() => break,
        }
    }
    receiver.handle_input(Instant::now(), ReceiverInput::Close);
    throttle.force = true;
    drain_receiver(
        &mut conns,
        &mut receiver,
        &mut hooks,
        &mut out,
        &mut throttle,
    )
    .await;
    Ok(())
}

/// What admission needs to know of a candidate connection.
#[derive(Clone, Copy, Debug)]
struct Candidate {
    host: std::net::IpAddr,
    since: Instant,
    proven: bool,
}

/// Where a new connection goes.
#[derive(Debug, PartialEq, Eq)]
enum Room {
    /// There is room.
    Free,
    /// Close candidate `i` (the oldest unproven one of the crowded host) first.
    Evict(usize),
    /// Every candidate in the way has sent an authentic HELLO: refuse the newcomer.
    Refuse,
}

/// Makes room for a connection from `host`: when the host has its share
/// ([`MAX_CANDIDATES_PER_HOST`]) its own oldest unproven candidate goes; when all
/// hosts together are at [`MAX_CANDIDATES`], the oldest unproven one of the host with
/// the most. A flood of connections from one host only ever pushes out its own.
fn make_room(candidates: &[Candidate], host: std::net::IpAddr) -> Room {
    let count = |h: std::net::IpAddr| candidates.iter().filter(|c| c.host == h).count();
    let crowded = if count(host) >= MAX_CANDIDATES_PER_HOST {
        host
    } else if candidates.len() >= MAX_CANDIDATES {
        match candidates.iter().map(|c| c.host).max_by_key(|&h| count(h)) {
            Some(h) => h,
            None => return Room::Free,
        }
    } else {
        return Room::Free;
    };
    candidates
        .iter()
        .enumerate()
        .filter(|(_, c)| c.host == crowded && !c.proven)
        .min_by_key(|(_, c)| c.since)
        .map_or(Room::Refuse, |(i, _)| Room::Evict(i))
}

/// The receiver's connections: the one in use and the candidates.
#[derive(Default)]
struct Connections {
    active: Option<Connection>,
    candidates: Vec<Connection>,
    /// Without encryption there is nothing to prove: the newest connection wins.
    insecure: Option<bool>,
}

impl Connections {
    /// Whether a new connection from `peer` may be taken, making room for it (see
    /// [`make_room`]).
    fn admits(&mut self, peer: SocketAddr) -> bool {
        if self.insecure == Some(true) {
            return true;
        }
        let seen: Vec<Candidate> = self
            .candidates
            .iter()
            .map(|c| Candidate {
                host: c.peer.ip(),
                since: c.since,
                proven: c.proven,
            })
            .collect();
        match make_room(&seen, peer.ip()) {
            Room::Free => true,
            Room::Evict(i) => {
                let old = self.candidates.remove(i);
                tracing::debug!(peer = %old.peer, "closing an unauthenticated connection (too many from its host)");
                true
            }
            Room::Refuse => {
                tracing::debug!(%peer, "refusing a connection: its host's candidates are all handshaking");
                false
            }
        }
    }

    fn add(&mut self, conn: Connection) {
        if self.insecure == Some(true) {
            self.active = Some(conn);
            self.candidates.clear();
            return;
        }
        self.candidates.push(conn);
    }

    fn peer_of(&self, id: u64) -> Option<SocketAddr> {
        self.active
            .iter()
            .chain(&self.candidates)
            .find(|c| c.id == id)
            .map(|c| c.peer)
    }

    fn remove(&mut self, id: u64, why: &str) {
        if self.active.as_ref().is_some_and(|c| c.id == id) {
            if let Some(c) = self.active.take() {
                tracing::info!(peer = %c.peer, "{why}");
            }
        }
        self.candidates.retain(|c| c.id != id);
    }

    /// Promotes the candidate the receiver authenticated; closes candidates out of time.
    fn settle(&mut self, receiver: &Receiver) {
        let insecure = *self.insecure.get_or_insert(!receiver.encrypted());
        if insecure {
            if let Some(newest) = self.candidates.pop() {
                self.active = Some(newest);
                self.candidates.clear();
            }
            return;
        }
        if let Some(peer) = receiver.authenticated_peer() {
            if let Some(pos) = self.candidates.iter().position(|c| c.peer == peer) {
                let conn = self.candidates.remove(pos);
                tracing::info!(peer = %conn.peer, "sender authenticated");
                self.active = Some(conn);
            }
        }
        let handshaking = receiver.handshaking_peers();
        for c in &mut self.candidates {
            c.proven = c.proven || handshaking.contains(&c.peer);
        }
        let now = Instant::now();
        self.candidates.retain(|c| {
            let keep = now < c.since + AUTH_TIMEOUT;
            if !keep {
                tracing::warn!(peer = %c.peer, "closing a connection that did not authenticate in time");
            }
            keep
        });
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.candidates.iter().map(|c| c.since + AUTH_TIMEOUT).min()
    }

    /// The connection a packet for `to` goes on: the one with that peer, else the one
    /// in use.
    fn for_peer(&mut self, to: Option<SocketAddr>) -> Option<&mut Connection> {
        match to {
            Some(peer) if self.candidates.iter().any(|c| c.peer == peer) => {
                self.candidates.iter_mut().find(|c| c.peer == peer)
            }
            _ => self.active.as_mut(),
        }
    }
}

async fn write_to(conn: &mut Connection, message: &[u8]) -> std::io::Result<()> {
    let prefix = (message.len() as u32).to_be_bytes();
    let mut both = Buf::chain(&prefix[..], message);
    match tokio::time::timeout(WRITE_TIMEOUT, conn.writer.write_all_buf(&mut both)).await {
        Ok(result) => result,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "peer stopped reading",
        )),
    }
}

/// The receiver's one drain loop: hands frames on, sends feedback and handshake
/// answers on the connection they are for (dropping a connection that stops reading),
/// publishes the counters and returns when the machine next wants a timeout.
async fn drain_receiver<F: FnMut(ReceivedFrame) -> bool>(
    conns: &mut Connections,
    receiver: &mut Receiver,
    hooks: &mut ReceiverHooks<F>,
    out: &mut Vec<u8>,
    throttle: &mut Throttle,
) -> Option<Instant> {
    loop {
        match receiver.poll_output(Instant::now(), out) {
            Output::Event(event) => hooks.on_event(receiver, event),
            Output::Transmit(t) => {
                if let Some(conn) = conns.for_peer(t.to) {
                    if write_to(conn, out).await.is_err() {
                        let (id, peer) = (conn.id, conn.peer);
                        tracing::warn!(%peer, "sender connection lost while sending feedback");
                        conns.remove(id, "sender connection lost");
                    }
                }
            }
            Output::Timeout(at) => {
                hooks.publish(receiver, throttle);
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

    #[test]
    fn connecting_reaches_a_listener_and_a_refusal_ends_the_round_at_once() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            assert!(connect_staggered(addr).await.is_ok());
            drop(listener);
            // Nobody listens: refused, and no more attempts every CONNECT_STAGGER for
            // CONNECT_TIMEOUT (the backoff between rounds applies instead).
            let started = Instant::now();
            assert!(matches!(connect_staggered(addr).await, Err(Some(_))));
            assert!(started.elapsed() < CONNECT_STAGGER);
        });
    }

    #[test]
    fn a_flooding_host_pushes_out_only_its_own_unproven_connections() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let camera: std::net::IpAddr = [10, 0, 0, 2].into();
        let flooder: std::net::IpAddr = [10, 0, 0, 66].into();
        let mut cands = vec![Candidate {
            host: camera,
            since: at(0),
            proven: false,
        }];
        // 3,000 connections from the flooder: each one past its host's share pushes
        // out the flooder's oldest, never the camera's.
        for n in 0..3000u64 {
            match make_room(&cands, flooder) {
                Room::Free => {}
                Room::Evict(i) => {
                    assert_eq!(cands[i].host, flooder, "evicted another host's");
                    cands.remove(i);
                }
                Room::Refuse => panic!("refused with unproven candidates of its own"),
            }
            cands.push(Candidate {
                host: flooder,
                since: at(1 + n),
                proven: false,
            });
            assert!(cands.len() <= MAX_CANDIDATES_PER_HOST + 1);
        }
        assert!(cands.iter().any(|c| c.host == camera));
        // Many hosts up to the total bound: the host with the most gives way.
        let mut many: Vec<Candidate> = (0..MAX_CANDIDATES)
            .map(|n| Candidate {
                host: [10, 1, (n % 16) as u8, 0].into(),
                since: at(n as u64),
                proven: false,
            })
            .collect();
        many[0].host = camera;
        assert!(matches!(make_room(&many, flooder), Room::Evict(i) if many[i].host != camera));
        // A host whose candidates all sent an authentic HELLO: the newcomer is refused,
        // the handshaking ones stay.
        let proven: Vec<Candidate> = (0..MAX_CANDIDATES_PER_HOST)
            .map(|n| Candidate {
                host: camera,
                since: at(n as u64),
                proven: true,
            })
            .collect();
        assert_eq!(make_room(&proven, camera), Room::Refuse);
        let mut one_unproven = proven.clone();
        one_unproven[5].proven = false;
        assert_eq!(make_room(&one_unproven, camera), Room::Evict(5));
        assert_eq!(make_room(&proven, flooder), Room::Free);
    }
}
