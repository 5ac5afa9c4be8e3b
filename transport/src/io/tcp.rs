//! TCP carriers: the only code here that touches a stream socket. [`StreamCarrier`]
//! is one stream with its framing (picam's length prefix, RFC 4571, raw H.264),
//! dialled or accepted; the native receiver's listening side admits several candidate
//! connections until one authenticates.
//!
//! The sender connects to the receiver (as with UDP, the sender knows the viewer's
//! address), reconnecting with backoff whenever the connection is lost; the receiver
//! listens and replaces its connection when a newer one arrives (a restarted sender).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Buf;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::driver::{drive, Arrival, Carrier};
use super::{ReceiverHooks, SenderHooks};
use crate::machine::{Transmit, Via};
use crate::wire::{self, framing::LengthPrefixed};
use crate::{ReceivedFrame, Receiver, Sender, SenderEvent, TransportError};

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

/// How messages are delimited on a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// picam's own: a 32-bit length, then the message; messages read are at most this
    /// long.
    LengthPrefixed(usize),
    /// RFC 4571: a 16-bit length, then the RTP or RTCP packet.
    Rfc4571,
    /// None: a raw Annex B byte stream (whatever one read gives is one packet).
    Raw,
}

/// Where a stream carrier's connection comes from.
enum Role {
    /// Connect to the peer, reconnecting with backoff.
    Dial {
        remote: SocketAddr,
        backoff: Backoff,
        /// No attempt before this.
        pause_until: Option<Instant>,
        /// The attempt in flight (kept across `ready` calls: cancel-safe).
        attempt: Option<ConnectAttempt>,
    },
    /// Accept connections; the newest one wins.
    Listen(TcpListener),
}

type ConnectAttempt = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<TcpStream, Option<std::io::Error>>> + Send>,
>;

/// The reading half's message splitter.
enum Deframer {
    LengthPrefixed(LengthPrefixed),
    Rfc4571(crate::rtp::Rfc4571),
    Raw(Option<usize>),
}

/// One connection and what it has not yet written.
struct Stream {
    stream: TcpStream,
    peer: SocketAddr,
    since: Instant,
}

/// What woke `ready`.
enum Woke {
    Connected(TcpStream, SocketAddr),
    ConnectFailed(Option<std::io::Error>),
    PauseOver,
    Readable,
    Writable,
    Stalled,
    Failed,
}

/// One TCP stream (dialled or accepted) with its framing: connection management,
/// non-blocking writes and a small kernel queue, so a full stream holds packets in the
/// machine (which drops stale frames) instead of in the network.
pub struct StreamCarrier {
    role: Role,
    framing: Framing,
    conn: Option<Stream>,
    /// Connection changes not yet handed to the machine (true: connected).
    changes: std::collections::VecDeque<bool>,
    /// Kernel send queue and not-sent low-water mark, when kept small.
    small_queue: Option<(usize, u32)>,
    inbuf: Vec<u8>,
    deframer: Deframer,
    /// The last message taken from a length-prefixed stream (handed out by reference).
    message: bytes::Bytes,
    pending: Vec<u8>,
    written: usize,
    last_progress: Instant,
    name: &'static str,
}

impl StreamCarrier {
    fn new(role: Role, framing: Framing, name: &'static str) -> Self {
        Self {
            role,
            framing,
            conn: None,
            changes: Default::default(),
            small_queue: None,
            inbuf: vec![0; 256 * 1024],
            deframer: Self::deframer(framing),
            message: bytes::Bytes::new(),
            pending: Vec::new(),
            written: 0,
            last_progress: Instant::now(),
            name,
        }
    }

    /// Connects to `remote`, reconnecting with backoff whenever the connection is lost.
    pub fn dial(remote: SocketAddr, framing: Framing, name: &'static str) -> Self {
        let role = Role::Dial {
            remote,
            backoff: Backoff::new(),
            pause_until: None,
            attempt: None,
        };
        Self::new(role, framing, name)
    }

    /// Serves the newest client to connect to `listener`.
    pub fn listen(listener: TcpListener, framing: Framing, name: &'static str) -> Self {
        Self::new(Role::Listen(listener), framing, name)
    }

    /// Keeps the kernel's send queue at `buffer` bytes with `not_sent_low_water`
    /// unsent bytes at most (see `sockopt`).
    pub fn small_send_queue(mut self, buffer: usize, not_sent_low_water: u32) -> Self {
        self.small_queue = Some((buffer, not_sent_low_water));
        self
    }

    fn deframer(framing: Framing) -> Deframer {
        match framing {
            Framing::LengthPrefixed(max) => Deframer::LengthPrefixed(LengthPrefixed::new(max)),
            Framing::Rfc4571 => Deframer::Rfc4571(Default::default()),
            Framing::Raw => Deframer::Raw(None),
        }
    }

    fn connected_to(&mut self, stream: TcpStream, peer: SocketAddr) {
        if let Err(e) = stream.set_nodelay(true) {
            tracing::warn!(error = %e, "could not set TCP_NODELAY");
        }
        if let Some((buffer, low_water)) = self.small_queue {
            super::sockopt::keep_tcp_send_queue_small(&stream, buffer, low_water);
        }
        tracing::info!(%peer, "{}: connected", self.name);
        self.conn = Some(Stream {
            stream,
            peer,
            since: Instant::now(),
        });
        self.deframer = Self::deframer(self.framing);
        self.pending.clear();
        self.written = 0;
        self.last_progress = Instant::now();
        self.changes.push_back(true);
    }

    fn lost(&mut self, why: &str) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        tracing::warn!(peer = %conn.peer, "{}: {why}", self.name);
        self.pending.clear();
        self.written = 0;
        if let Role::Dial {
            backoff,
            pause_until,
            ..
        } = &mut self.role
        {
            *pause_until = Some(Instant::now() + backoff.after(Some(conn.since.elapsed())));
        }
        self.changes.push_back(false);
    }

    fn read(&mut self) {
        let Some(conn) = &self.conn else { return };
        match conn.stream.try_read(&mut self.inbuf) {
            Ok(0) => self.lost("peer closed the connection"),
            Ok(n) => match &mut self.deframer {
                Deframer::LengthPrefixed(d) => d.push(&self.inbuf[..n]),
                Deframer::Rfc4571(d) => d.push(&self.inbuf[..n]),
                Deframer::Raw(got) => *got = Some(n),
            },
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => self.lost("read failed"),
        }
    }
}

impl<M: ?Sized> Carrier<M> for StreamCarrier {
    async fn ready(&mut self) {
        if !self.changes.is_empty() {
            return;
        }
        let unsent = self.written < self.pending.len();
        let stall_at = self.last_progress + STALL_LIMIT;
        let woke = {
            let conn = self.conn.as_ref();
            let get_conn = async {
                match &mut self.role {
                    // The newest client wins: accepting goes on while one is served.
                    Role::Listen(listener) => match listener.accept().await {
                        Ok((stream, peer)) => Woke::Connected(stream, peer),
                        Err(e) => {
                            tracing::warn!(error = %e, "accept failed");
                            // Out of descriptors or similar: wait a little, never spin.
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            Woke::PauseOver
                        }
                    },
                    Role::Dial { .. } if conn.is_some() => std::future::pending().await,
                    Role::Dial {
                        remote,
                        pause_until,
                        attempt,
                        ..
                    } => {
                        if let Some(at) = pause_until.take() {
                            *pause_until = Some(at);
                            tokio::time::sleep_until(at.into()).await;
                            *pause_until = None;
                            return Woke::PauseOver;
                        }
                        let remote = *remote;
                        let fut =
                            attempt.get_or_insert_with(|| Box::pin(connect_staggered(remote)));
                        let result = fut.as_mut().await;
                        *attempt = None;
                        match result {
                            Ok(stream) => Woke::Connected(stream, remote),
                            Err(e) => Woke::ConnectFailed(e),
                        }
                    }
                }
            };
            let io = async {
                let Some(conn) = conn else {
                    return std::future::pending().await;
                };
                tokio::select! {
                    r = conn.stream.readable() => if r.is_ok() { Woke::Readable } else { Woke::Failed },
                    r = conn.stream.writable(), if unsent => if r.is_ok() { Woke::Writable } else { Woke::Failed },
                    () = tokio::time::sleep_until(stall_at.into()), if unsent => Woke::Stalled,
                }
            };
            tokio::select! {
                w = get_conn => w,
                w = io => w,
            }
        };
        match woke {
            Woke::Connected(stream, peer) => {
                if let Some(old) = self.conn.take() {
                    tracing::info!(peer = %old.peer, "{}: replaced by a newer connection", self.name);
                    self.changes.push_back(false);
                }
                self.connected_to(stream, peer);
            }
            Woke::ConnectFailed(e) => {
                if let Role::Dial {
                    remote,
                    backoff,
                    pause_until,
                    ..
                } = &mut self.role
                {
                    match e {
                        Some(e) => tracing::debug!(%remote, error = %e, "connect failed"),
                        None => {
                            tracing::debug!(%remote, timeout = ?CONNECT_TIMEOUT, "connect timed out")
                        }
                    }
                    *pause_until = Some(Instant::now() + backoff.after(None));
                }
            }
            Woke::PauseOver | Woke::Writable => {}
            Woke::Readable => self.read(),
            Woke::Stalled => self.lost("peer accepts nothing: treating it as gone"),
            Woke::Failed => self.lost("connection failed"),
        }
    }

    fn next_arrival(&mut self) -> Option<Arrival<'_>> {
        if let Some(up) = self.changes.pop_front() {
            return Some(if up {
                Arrival::Connected
            } else {
                Arrival::Disconnected
            });
        }
        let packet = |data| Arrival::Packet {
            from: None,
            to: None,
            via: Via::Media,
            data,
        };
        if let Deframer::LengthPrefixed(d) = &mut self.deframer {
            match d.pull() {
                Ok(Some(message)) => self.message = message,
                Ok(None) => return None,
                Err(e) => {
                    self.lost(&format!("bad framing: {e}"));
                    return self.changes.pop_front().map(|_| Arrival::Disconnected);
                }
            }
            return Some(packet(&self.message[..]));
        }
        match &mut self.deframer {
            Deframer::LengthPrefixed(_) => None,
            Deframer::Rfc4571(d) => d.pull().map(packet),
            Deframer::Raw(got) => got.take().map(|n| packet(&self.inbuf[..n])),
        }
    }

    async fn send(&mut self, _transmit: Transmit, packet: &[u8]) {
        if self.conn.is_none() {
            // Nobody to send to (between connections).
            return;
        }
        self.pending.clear();
        self.written = 0;
        // A stall is counted from when a message could not all be written.
        self.last_progress = Instant::now();
        match self.framing {
            Framing::LengthPrefixed(_) => self
                .pending
                .extend_from_slice(&(packet.len() as u32).to_be_bytes()),
            Framing::Rfc4571 => {
                let Ok(len) = u16::try_from(packet.len()) else {
                    // Cannot be framed; packets are sized for UDP and never reach this.
                    return;
                };
                self.pending.extend_from_slice(&len.to_be_bytes());
            }
            Framing::Raw => {}
        }
        self.pending.extend_from_slice(packet);
    }

    fn blocked(&mut self) -> bool {
        while self.written < self.pending.len() {
            let Some(conn) = &self.conn else {
                self.pending.clear();
                self.written = 0;
                return false;
            };
            match conn.stream.try_write(&self.pending[self.written..]) {
                Ok(n) => {
                    self.written += n;
                    self.last_progress = Instant::now();
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
                Err(_) => {
                    self.lost("write failed");
                    return false;
                }
            }
        }
        false
    }

    fn connected(&self) -> bool {
        self.conn.is_some()
    }
}

/// Streams frames to `remote`, reconnecting with backoff, until the frame channel
/// closes or shutdown is signalled, then flushes. While disconnected, frames are
/// dropped (counted).
pub async fn run_sender<E: FnMut(SenderEvent)>(
    remote: SocketAddr,
    mut sender: Sender,
    mut hooks: SenderHooks<E>,
) -> Result<(), TransportError> {
    tracing::info!(%remote, session = format_args!("{:08x}", sender.session()), "sending over TCP");
    let mut carrier =
        StreamCarrier::dial(remote, Framing::LengthPrefixed(MAX_FEEDBACK), "receiver");
    if sender.jam_guard() {
        carrier = carrier.small_send_queue(GUARDED_SEND_BUFFER, GUARDED_NOT_SENT_LOW_WATER);
    }
    drive(&mut sender, &mut carrier, &mut hooks).await;
    Ok(())
}

/// Kernel send buffer with the jam guard: bounds what one connection keeps queued in
/// the network (Linux doubles the value given).
const GUARDED_SEND_BUFFER: usize = 32 * 1024;
/// Unsent bytes the kernel may hold before the socket stops being writable.
const GUARDED_NOT_SENT_LOW_WATER: u32 = 16 * 1024;
/// A connection that accepts nothing for this long while we have data is dead.
const STALL_LIMIT: Duration = Duration::from_secs(5);
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

/// The receiver's listening side: the connection in use and the candidates proving
/// they hold the paired key (see [`Connections`]), each read by a task of its own.
struct ListenCarrier {
    listener: TcpListener,
    conns: Connections,
    max_message: usize,
    next_id: u64,
    read_tx: tokio::sync::mpsc::Sender<Read>,
    read_rx: tokio::sync::mpsc::Receiver<Read>,
    /// A message read and not yet taken, with its sender.
    message: Option<(SocketAddr, Vec<u8>)>,
    taken: Vec<u8>,
}

impl Carrier<Receiver> for ListenCarrier {
    async fn ready(&mut self) {
        if self.message.is_some() {
            return;
        }
        tokio::select! {
            accepted = self.listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    // Debug, not info: a flood of connections must not flood the log;
                    // "sender authenticated" says when the real one is in.
                    tracing::debug!(%peer, "sender connected");
                    if self.conns.admits(peer) {
                        let _ = stream.set_nodelay(true);
                        let (read, writer) = stream.into_split();
                        self.next_id += 1;
                        let reader = tokio::spawn(read_messages(self.next_id, peer, read, self.max_message, self.read_tx.clone()));
                        self.conns.add(Connection { id: self.next_id, peer, writer, since: Instant::now(), reader, proven: false });
                    }
                }
                Err(e) => tracing::warn!(error = %e, "accept failed"),
            },
            Some((id, message)) = self.read_rx.recv() => match message {
                Some(message) => {
                    if let Some(peer) = self.conns.peer_of(id) {
                        self.message = Some((peer, message));
                    }
                }
                None => self.conns.remove(id, "sender disconnected"),
            },
        }
    }

    fn next_arrival(&mut self) -> Option<Arrival<'_>> {
        let (peer, message) = self.message.take()?;
        self.taken = message;
        Some(Arrival::Packet {
            from: Some(peer),
            to: None,
            via: Via::Media,
            data: &self.taken,
        })
    }

    async fn send(&mut self, transmit: Transmit, packet: &[u8]) {
        // Feedback and handshake answers go on the connection they are for; one that
        // stops reading is dropped.
        if let Some(conn) = self.conns.for_peer(transmit.to) {
            if write_to(conn, packet).await.is_err() {
                let (id, peer) = (conn.id, conn.peer);
                tracing::warn!(%peer, "sender connection lost while sending feedback");
                self.conns.remove(id, "sender connection lost");
            }
        }
    }

    fn settle(&mut self, receiver: &Receiver) {
        self.conns.settle(receiver);
    }

    fn deadline(&self) -> Option<Instant> {
        self.conns.next_deadline()
    }
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
    let (read_tx, read_rx) = tokio::sync::mpsc::channel::<Read>(READ_QUEUE);
    let mut carrier = ListenCarrier {
        listener,
        conns: Connections::default(),
        max_message: max_frame_bytes + wire::FRAGMENT_HEADER + crate::secure::SEAL_OVERHEAD,
        next_id: 0,
        read_tx,
        read_rx,
        message: None,
        taken: Vec::new(),
    };
    drive(&mut receiver, &mut carrier, &mut hooks).await;
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
