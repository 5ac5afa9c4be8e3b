//! The two ends of a secure channel: the sender's [`Initiator`] and the receiver's
//! [`Responder`]. They sit inside the `Sender` and `Receiver` machines: every packet in
//! goes through `open`, every packet out through `seal`, and the handshake packets they
//! make leave through the machines' `poll_output`.
//!
//! Handshake packets (outer header, then Noise):
//! - HELLO (kind 8, sender to receiver): common header with the sender's session id,
//!   key epoch (u8), Noise message 1 (56 bytes: ephemeral key, encrypted send time, tag).
//! - WELCOME (kind 9, receiver to sender): common header, the same epoch, Noise
//!   message 2 (48 bytes).
//!
//! Getting through a lossy start and an attacker (the rules, and why):
//! - **Fast retries, several in progress.** The sender retries an unanswered HELLO
//!   after 20 ms, three times, then backs off to [`HELLO_RETRY_MAX`]; a lost HELLO or
//!   WELCOME costs about a round trip plus 20 ms. A retry does not throw away the answer
//!   on its way: the sender keeps its last [`HELLOS_IN_PROGRESS`] HELLOs and takes an
//!   authentic WELCOME for any of them, the receiver keeps up to
//!   [`HANDSHAKES_IN_PROGRESS`] answered handshakes keyed by (session, epoch) and
//!   promotes whichever the first sealed packet proves. So it completes whatever the
//!   round trip is against the retry interval.
//! - **Check first, then spend.** A HELLO of the wrong length or header costs nothing.
//!   Reading an `NNpsk0` HELLO needs no Diffie-Hellman (see `handshake::CheckedHello`),
//!   so every HELLO is authenticated before it spends any budget: a flood of forged
//!   HELLOs (random bytes, no key) costs a hash and a failed decrypt each and never
//!   reaches a budget. The expensive part, a fresh ephemeral key, the `ee` exchange and
//!   the WELCOME, is limited per source address ([`HELLO_RATE_PER_SOURCE`]) and in
//!   total ([`HELLO_RATE`]). Only authentic HELLOs can spend those, i.e. replays: a
//!   HELLO newer (by its sender's clock) than every HELLO answered so far spends
//!   neither, since a replay is never newer than the real sender's latest.
//! - **Replays across sessions.** A HELLO no newer than the newest answered for its
//!   session is refused (a table of [`SESSIONS_REMEMBERED`] sessions). A replay from an
//!   earlier session is fresh to a restarted receiver and gets answered (the WELCOME is
//!   useless without the sender's ephemeral key), but it only adds a handshake in
//!   progress; when they are all taken, the one whose sender time is oldest goes,
//!   so replays of earlier sessions go before the real one. Times are only compared
//!   with other times from senders, never with the receiver's clock (a Pi without a
//!   real-time clock may be far off); a sender whose clock went back since an earlier
//!   session that is being replayed against it still completes, only later.
//! - **Forged WELCOMEs.** The sender keeps its handshakes until a WELCOME that
//!   authenticates arrives; others are counted and ignored.
//!
//! Keys of a new handshake stay *pending*: the session in use is replaced only when the
//! first packet sealed with the new keys arrives. So a replayed or forged HELLO can
//! neither take the viewer over nor stop the running stream.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::handshake::{self, Hello, HELLO_NOISE, WELCOME_NOISE};
use super::seal::{sealed_header, OpenError, Opener, Sealer};
use super::{Psk, KIND_HELLO, KIND_SEALED, KIND_WELCOME};
use crate::wire::{COMMON_HEADER, MAGIC, VERSION};

/// Handshakes the receiver answers per second at most, from all sources together (each
/// answer costs an ephemeral key and an X25519 exchange, ~90 us on an x86 core).
pub const HELLO_RATE: f64 = 50.0;
const HELLO_BURST: f64 = 25.0;
/// Handshakes answered per second for one source address. The burst covers a sender's
/// fast retries over a long round trip (eight HELLOs in the first 660 ms).
pub const HELLO_RATE_PER_SOURCE: f64 = 5.0;
const HELLO_BURST_PER_SOURCE: f64 = 10.0;
/// Source addresses whose budget is remembered; when full, the one idle longest goes.
const SOURCES_REMEMBERED: usize = 256;
/// Sessions whose newest HELLO time is remembered (replays within a session).
pub const SESSIONS_REMEMBERED: usize = 64;
/// Answered handshakes the receiver keeps waiting for their first sealed packet.
pub const HANDSHAKES_IN_PROGRESS: usize = 8;
/// An answered handshake not proven by a sealed packet within this long is given up
/// (a real one is proven a round trip after its WELCOME): replays that filled the
/// table cannot hold it against a sender whose clock is behind theirs.
const HANDSHAKE_PROOF_WITHIN: Duration = Duration::from_secs(5);
/// HELLOs the sender keeps in progress: a WELCOME for any of them completes.
pub const HELLOS_IN_PROGRESS: usize = 8;
const HELLO_LEN: usize = COMMON_HEADER + 1 + HELLO_NOISE;
const WELCOME_LEN: usize = COMMON_HEADER + 1 + WELCOME_NOISE;
/// Gaps before the first HELLO retries: a HELLO is under 70 bytes, and a lost one must
/// cost about a round trip, not a retry interval of hundreds of milliseconds.
const HELLO_RETRIES: [Duration; 7] = [
    Duration::from_millis(20),
    Duration::from_millis(20),
    Duration::from_millis(20),
    Duration::from_millis(40),
    Duration::from_millis(80),
    Duration::from_millis(160),
    Duration::from_millis(320),
];
/// The gap between HELLO retries after [`HELLO_RETRIES`].
pub const HELLO_RETRY_MAX: Duration = Duration::from_millis(500);
/// Unanswered for this long, the sender says why the screen may stay black.
const WARN_UNANSWERED_AFTER: Duration = Duration::from_secs(2);
/// With keys in use and nothing authenticated from the receiver for this long (it
/// reports every 30 ms), the sender handshakes again: the receiver may have restarted.
const REHANDSHAKE_AFTER: Duration = Duration::from_secs(2);

/// What became of a packet taken in.
#[derive(Debug, PartialEq, Eq)]
pub enum Opened {
    /// It authenticated: the inner packet, for the machine's own parser.
    Inner(Vec<u8>),
    /// A handshake packet, handled here.
    Handshake,
    /// The handshake completed: a new receiver (the sender starts from a keyframe).
    Established,
    /// Refused and counted; nothing reaches a parser, nothing is answered.
    Dropped,
}

/// What the secure layer did, for stats.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SecureStats {
    /// Handshakes completed.
    pub handshakes: u64,
    /// HELLOs sent (sender) or answered (receiver).
    pub hellos: u64,
    /// Packets that did not authenticate (forged, modified, another key, a HELLO
    /// under another key, or over the HELLO rate).
    pub unauthenticated: u64,
    /// Authentic packets seen before (replays).
    pub replayed: u64,
    /// Unencrypted picam packets refused (the peer runs with `--insecure`).
    pub plaintext: u64,
    /// Packets not sent because no keys were agreed yet.
    pub unsent: u64,
}

fn common(out: &mut Vec<u8>, kind: u8, session: u32) {
    out.clear();
    out.extend_from_slice(&MAGIC.to_be_bytes());
    out.push(VERSION);
    out.push(kind);
    out.extend_from_slice(&session.to_be_bytes());
}

/// `(kind, session, epoch)` of a packet with the secure wire's header, if it is one.
fn outer(packet: &[u8]) -> Option<(u8, u32, u8)> {
    if packet.len() < COMMON_HEADER + 1
        || u16::from_be_bytes([packet[0], packet[1]]) != MAGIC
        || packet[2] != VERSION
    {
        return None;
    }
    let session = u32::from_be_bytes(packet[4..8].try_into().ok()?);
    Some((packet[3], session, packet[8]))
}

/// Whether a packet is one of picam's own plaintext kinds (a peer without encryption).
fn is_plaintext_picam(packet: &[u8]) -> bool {
    packet.len() >= COMMON_HEADER
        && u16::from_be_bytes([packet[0], packet[1]]) == MAGIC
        && packet[2] == VERSION
        && (1..=7).contains(&packet[3])
}

/// Keys in use with one peer.
struct Peer {
    session: u32,
    epoch: u8,
    addr: Option<SocketAddr>,
    sealer: Sealer,
    opener: Opener,
}

/// The sender's end: handshakes with the receiver, seals what it sends, opens feedback.
pub struct Initiator {
    psk: Psk,
    session: u32,
    next_epoch: u8,
    /// HELLOs sent and not answered yet, oldest first, with their epochs.
    pending: VecDeque<(Hello, u8)>,
    next_hello: Option<Instant>,
    /// HELLOs sent since the last handshake completed (indexes [`HELLO_RETRIES`]).
    tries: usize,
    /// When the first of the unanswered HELLOs went out.
    unanswered_since: Option<Instant>,
    warned_unanswered: bool,
    current: Option<Peer>,
    last_heard: Option<Instant>,
    warned_plaintext: bool,
    stats: SecureStats,
}

impl std::fmt::Debug for Initiator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Initiator")
            .field("key", &self.psk)
            .field("established", &self.current.is_some())
            .field("stats", &self.stats)
            .finish()
    }
}

impl Initiator {
    /// The sender's end for media session `session`; the first HELLO goes out at once.
    pub fn new(psk: Psk, session: u32) -> Self {
        Self {
            psk,
            session,
            next_epoch: 0,
            pending: VecDeque::new(),
            next_hello: None,
            tries: 0,
            unanswered_since: None,
            warned_unanswered: false,
            current: None,
            last_heard: None,
            warned_plaintext: false,
            stats: SecureStats::default(),
        }
    }

    /// A new connection (TCP): whoever is at the other end now, keys are agreed anew.
    pub fn restart(&mut self) {
        self.current = None;
        self.pending.clear();
        self.next_hello = None;
        self.last_heard = None;
        self.tries = 0;
        self.unanswered_since = None;
    }

    /// Keys are agreed: media may flow.
    pub fn established(&self) -> bool {
        self.current.is_some()
    }

    /// Counters.
    pub fn stats(&self) -> SecureStats {
        self.stats
    }

    fn hello_due(&self, now: Instant) -> Option<Instant> {
        if let Some(at) = self.next_hello {
            return Some(at);
        }
        match self.last_heard {
            // Nothing started yet: at once.
            None if self.current.is_none() => Some(now),
            Some(heard) if self.current.is_some() => Some(heard + REHANDSHAKE_AFTER),
            _ => None,
        }
    }

    /// Writes a HELLO into `buf` when one is due; `time_us` is the sender's wall clock.
    pub fn poll_handshake(&mut self, now: Instant, time_us: u64, buf: &mut Vec<u8>) -> bool {
        if self.hello_due(now).is_none_or(|at| now < at) {
            return false;
        }
        let since = *self.unanswered_since.get_or_insert(now);
        if !self.warned_unanswered && now.saturating_duration_since(since) >= WARN_UNANSWERED_AFTER
        {
            self.warned_unanswered = true;
            tracing::warn!(
                tries = self.tries,
                "no answer to the encrypted handshake: is picam recv running there, paired with this key (same key file), and not --insecure?"
            );
        }
        let epoch = self.next_epoch;
        self.next_epoch = self.next_epoch.wrapping_add(1);
        let Some((hello, noise)) = handshake::hello(&self.psk, self.session, epoch, time_us) else {
            return false;
        };
        common(buf, KIND_HELLO, self.session);
        buf.push(epoch);
        buf.extend_from_slice(&noise);
        if self.pending.len() == HELLOS_IN_PROGRESS {
            self.pending.pop_front();
        }
        self.pending.push_back((hello, epoch));
        let gap = HELLO_RETRIES
            .get(self.tries)
            .copied()
            .unwrap_or(HELLO_RETRY_MAX);
        self.tries += 1;
        self.next_hello = Some(now + gap);
        self.stats.hellos += 1;
        true
    }

    /// Asserts the bounds of its state; for tests and fuzzers.
    pub fn check_invariants(&self) {
        assert!(self.pending.len() <= HELLOS_IN_PROGRESS);
    }

    /// When a timeout input is wanted.
    pub fn next_timeout(&self, now: Instant) -> Option<Instant> {
        self.hello_due(now)
    }

    /// Takes a packet from the receiver.
    pub fn open(&mut self, now: Instant, packet: &[u8]) -> Opened {
        match outer(packet) {
            Some((KIND_WELCOME, session, epoch)) if session == self.session => {
                // An answer to a HELLO no longer in progress (the handshake completed
                // meanwhile, or it is older than the last HELLOS_IN_PROGRESS): stale.
                let Some(hello) = self
                    .pending
                    .iter_mut()
                    .find_map(|(hello, e)| (*e == epoch).then_some(hello))
                else {
                    return Opened::Dropped;
                };
                // One that does not authenticate (forged, damaged) is ignored: the
                // handshake stays in progress for the real answer.
                let keys = (packet.len() == WELCOME_LEN)
                    .then(|| hello.finish(&packet[COMMON_HEADER + 1..]))
                    .flatten();
                let Some(keys) = keys else {
                    self.stats.unauthenticated += 1;
                    return Opened::Dropped;
                };
                self.pending.clear();
                self.current = Some(Peer {
                    session,
                    epoch,
                    addr: None,
                    sealer: Sealer::new(keys.send, session, epoch),
                    opener: Opener::new(keys.recv),
                });
                self.last_heard = Some(now);
                self.next_hello = None;
                self.tries = 0;
                self.unanswered_since = None;
                self.warned_unanswered = false;
                self.stats.handshakes += 1;
                tracing::info!(epoch, "encrypted session established");
                Opened::Established
            }
            Some((KIND_SEALED, _, _)) => {
                let (Some(peer), Some(header)) = (self.current.as_mut(), sealed_header(packet))
                else {
                    self.stats.unauthenticated += 1;
                    return Opened::Dropped;
                };
                if header.session != peer.session || header.epoch != peer.epoch {
                    self.stats.unauthenticated += 1;
                    return Opened::Dropped;
                }
                match peer.opener.open(header, packet) {
                    Ok(inner) => {
                        self.last_heard = Some(now);
                        Opened::Inner(inner)
                    }
                    Err(OpenError::Replayed) => {
                        self.stats.replayed += 1;
                        Opened::Dropped
                    }
                    Err(OpenError::Forged) => {
                        self.stats.unauthenticated += 1;
                        Opened::Dropped
                    }
                }
            }
            _ => {
                if is_plaintext_picam(packet) {
                    self.stats.plaintext += 1;
                    if !self.warned_plaintext {
                        self.warned_plaintext = true;
                        tracing::warn!("the receiver sends unencrypted feedback (it runs with --insecure): use --insecure on both sides, or the same key on both");
                    }
                } else {
                    self.stats.unauthenticated += 1;
                }
                Opened::Dropped
            }
        }
    }

    /// Seals the packet in `buf`; returns false (and leaves `buf` alone) before keys
    /// are agreed, when the packet must not be sent.
    pub fn seal(&mut self, buf: &mut Vec<u8>) -> bool {
        match self.current.as_mut() {
            Some(peer) => {
                peer.sealer.seal(buf);
                true
            }
            None => {
                self.stats.unsent += 1;
                false
            }
        }
    }
}

/// A token bucket: `rate` a second, up to `burst` saved.
#[derive(Clone, Copy, Debug)]
struct Budget {
    tokens: f64,
    refilled: Instant,
}

impl Budget {
    fn new(now: Instant, burst: f64) -> Self {
        Self {
            tokens: burst,
            refilled: now,
        }
    }

    fn refill(&mut self, now: Instant, rate: f64, burst: f64) {
        let dt = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.refilled = now;
        self.tokens = (self.tokens + dt * rate).min(burst);
    }

    /// Takes one token if there is one.
    fn take(&mut self, now: Instant, rate: f64, burst: f64) -> bool {
        self.refill(now, rate, burst);
        if self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        true
    }
}

/// An answered handshake waiting for its first sealed packet.
struct Handshaking {
    peer: Peer,
    /// The sender's clock in its HELLO.
    time_us: u64,
    /// When we answered it (our clock).
    answered_at: Instant,
}

/// The receiver's end: answers authentic HELLOs, opens what the paired sender sends,
/// seals feedback to it.
pub struct Responder {
    psk: Psk,
    active: Option<Peer>,
    /// Answered handshakes, at most [`HANDSHAKES_IN_PROGRESS`], distinct (session, epoch).
    pending: Vec<Handshaking>,
    /// The newest HELLO time answered per session, at most [`SESSIONS_REMEMBERED`]:
    /// one no newer in the same session is a replay.
    newest_per_session: Vec<(u32, u64)>,
    /// The newest HELLO time answered from any session.
    newest_hello: Option<u64>,
    total_budget: Option<Budget>,
    /// Budgets by source address, at most [`SOURCES_REMEMBERED`].
    source_budgets: Vec<(Option<SocketAddr>, Budget)>,
    outbox: VecDeque<(Option<SocketAddr>, Vec<u8>)>,
    warned_plaintext: bool,
    warned_key: bool,
    stats: SecureStats,
}

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Responder")
            .field("key", &self.psk)
            .field(
                "active",
                &self.active.as_ref().map(|p| (p.session, p.epoch)),
            )
            .field("handshaking", &self.pending.len())
            .field("stats", &self.stats)
            .finish()
    }
}

/// WELCOMEs waiting to be sent at once; more are dropped (the sender retries).
const MAX_OUTBOX: usize = 4;

impl Responder {
    /// The receiver's end, with no sender yet.
    pub fn new(psk: Psk) -> Self {
        Self {
            psk,
            active: None,
            pending: Vec::new(),
            newest_per_session: Vec::new(),
            newest_hello: None,
            total_budget: None,
            source_budgets: Vec::new(),
            outbox: VecDeque::new(),
            warned_plaintext: false,
            warned_key: false,
            stats: SecureStats::default(),
        }
    }

    /// Counters.
    pub fn stats(&self) -> SecureStats {
        self.stats
    }

    /// The address of the sender whose keys are in use.
    pub fn authenticated_peer(&self) -> Option<SocketAddr> {
        self.active.as_ref().and_then(|p| p.addr)
    }

    /// Addresses that sent an authentic HELLO whose handshake is still in progress
    /// (for TCP: such a connection is not pushed out by newer ones).
    pub fn handshaking_peers(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.pending.iter().filter_map(|h| h.peer.addr)
    }

    /// Asserts the bounds of every table; for tests and fuzzers.
    pub fn check_invariants(&self) {
        assert!(self.pending.len() <= HANDSHAKES_IN_PROGRESS);
        assert!(self.newest_per_session.len() <= SESSIONS_REMEMBERED);
        assert!(self.source_budgets.len() <= SOURCES_REMEMBERED);
        assert!(self.outbox.len() <= MAX_OUTBOX);
        for (i, a) in self.pending.iter().enumerate() {
            assert!(
                self.pending[i + 1..]
                    .iter()
                    .all(|b| (a.peer.session, a.peer.epoch) != (b.peer.session, b.peer.epoch)),
                "two handshakes in progress for one (session, epoch)"
            );
        }
    }

    /// Takes a packet from `from`.
    pub fn open(&mut self, now: Instant, from: Option<SocketAddr>, packet: &[u8]) -> Opened {
        match outer(packet) {
            Some((KIND_HELLO, session, epoch)) => self.on_hello(now, from, session, epoch, packet),
            Some((KIND_SEALED, _, _)) => self.on_sealed(from, packet),
            _ => {
                if is_plaintext_picam(packet) {
                    self.stats.plaintext += 1;
                    if !self.warned_plaintext {
                        self.warned_plaintext = true;
                        tracing::warn!(peer = ?from, "a sender sends unencrypted packets (it runs with --insecure): this receiver needs encryption; use --insecure on both sides, or the same key on both");
                    }
                } else {
                    self.stats.unauthenticated += 1;
                }
                Opened::Dropped
            }
        }
    }

    /// A HELLO: checked cheaply, then authenticated (no Diffie-Hellman), then checked
    /// for freshness, and only then charged to the budgets and answered.
    fn on_hello(
        &mut self,
        now: Instant,
        from: Option<SocketAddr>,
        session: u32,
        epoch: u8,
        packet: &[u8],
    ) -> Opened {
        if packet.len() != HELLO_LEN {
            self.stats.unauthenticated += 1;
            return Opened::Dropped;
        }
        let Some(hello) =
            handshake::check_hello(&self.psk, session, epoch, &packet[COMMON_HEADER + 1..])
        else {
            self.stats.unauthenticated += 1;
            if !self.warned_key {
                self.warned_key = true;
                tracing::warn!(peer = ?from, "a sender's handshake does not authenticate: it has another key (pair again, or give both sides the same --key file)");
            }
            return Opened::Dropped;
        };
        let time_us = hello.time_us;
        self.pending
            .retain(|h| now.saturating_duration_since(h.answered_at) < HANDSHAKE_PROOF_WITHIN);
        if self
            .newest_per_session
            .iter()
            .any(|&(s, t)| s == session && time_us <= t)
        {
            self.stats.replayed += 1;
            return Opened::Dropped;
        }
        // All handshakes in progress are newer: this one would be the first to go.
        let same = |h: &Handshaking| (h.peer.session, h.peer.epoch) == (session, epoch);
        if self.pending.len() == HANDSHAKES_IN_PROGRESS
            && !self.pending.iter().any(same)
            && self.pending.iter().all(|h| h.time_us > time_us)
        {
            self.stats.replayed += 1;
            return Opened::Dropped;
        }
        if !self.spend_budget(now, from, time_us) {
            self.stats.unauthenticated += 1;
            return Opened::Dropped;
        }
        let Some((keys, noise)) = hello.answer() else {
            self.stats.unauthenticated += 1;
            return Opened::Dropped;
        };
        self.remember_newest(session, time_us);
        self.pending.retain(|h| !same(h));
        if self.pending.len() == HANDSHAKES_IN_PROGRESS {
            if let Some(oldest) = (0..self.pending.len()).min_by_key(|&i| self.pending[i].time_us) {
                self.pending.swap_remove(oldest);
            }
        }
        self.pending.push(Handshaking {
            peer: Peer {
                session,
                epoch,
                addr: from,
                sealer: Sealer::new(keys.send, session, epoch),
                opener: Opener::new(keys.recv),
            },
            time_us,
            answered_at: now,
        });
        if self.outbox.len() < MAX_OUTBOX {
            let mut out = Vec::with_capacity(WELCOME_LEN);
            common(&mut out, KIND_WELCOME, session);
            out.push(epoch);
            out.extend_from_slice(&noise);
            self.outbox.push_back((from, out));
        }
        self.stats.hellos += 1;
        Opened::Handshake
    }

    /// Charges an authentic, fresh HELLO to its source's budget, then to the total one.
    /// Per source first: one address replaying old HELLOs cannot spend the total.
    ///
    /// A HELLO newer (by its sender's clock) than every one answered so far is answered
    /// without spending either: the real sender's next HELLO is always newer than any
    /// replay of an earlier session's, so replays, even spoofed from the sender's own
    /// address to drain its budget, cannot delay it. What this lets through unlimited is
    /// bounded: each captured HELLO can be newest at most once (replayed in increasing
    /// order before the real sender's), and inventing new ones takes the key. A sender
    /// whose clock is behind the captured HELLOs' (a Pi without a real-time clock) falls
    /// under the budgets like a replay and may wait while replays spend its source's.
    fn spend_budget(&mut self, now: Instant, from: Option<SocketAddr>, time_us: u64) -> bool {
        if self.newest_hello.is_none_or(|t| time_us > t) {
            return true;
        }
        let source = match self.source_budgets.iter().position(|(a, _)| *a == from) {
            Some(i) => i,
            None => {
                if self.source_budgets.len() == SOURCES_REMEMBERED {
                    // The one idle longest has (nearly) refilled: forgetting it costs
                    // it little.
                    if let Some(idle) = (0..self.source_budgets.len())
                        .min_by_key(|&i| self.source_budgets[i].1.refilled)
                    {
                        self.source_budgets.swap_remove(idle);
                    }
                }
                self.source_budgets
                    .push((from, Budget::new(now, HELLO_BURST_PER_SOURCE)));
                self.source_budgets.len() - 1
            }
        };
        if !self.source_budgets[source]
            .1
            .take(now, HELLO_RATE_PER_SOURCE, HELLO_BURST_PER_SOURCE)
        {
            return false;
        }
        self.total_budget
            .get_or_insert_with(|| Budget::new(now, HELLO_BURST))
            .take(now, HELLO_RATE, HELLO_BURST)
    }

    fn remember_newest(&mut self, session: u32, time_us: u64) {
        self.newest_hello = Some(self.newest_hello.map_or(time_us, |t| t.max(time_us)));
        if let Some(entry) = self
            .newest_per_session
            .iter_mut()
            .find(|(s, _)| *s == session)
        {
            entry.1 = entry.1.max(time_us);
            return;
        }
        if self.newest_per_session.len() == SESSIONS_REMEMBERED {
            // The session with the oldest time goes: the running sender's is the newest.
            if let Some(oldest) =
                (0..self.newest_per_session.len()).min_by_key(|&i| self.newest_per_session[i].1)
            {
                self.newest_per_session.swap_remove(oldest);
            }
        }
        self.newest_per_session.push((session, time_us));
    }

    fn on_sealed(&mut self, from: Option<SocketAddr>, packet: &[u8]) -> Opened {
        let Some(header) = sealed_header(packet) else {
            self.stats.unauthenticated += 1;
            return Opened::Dropped;
        };
        let is_it = |p: &Peer| p.session == header.session && p.epoch == header.epoch;
        let promote = if self.active.as_ref().is_some_and(is_it) {
            None
        } else if let Some(i) = self.pending.iter().position(|h| is_it(&h.peer)) {
            Some(i)
        } else {
            self.stats.unauthenticated += 1;
            return Opened::Dropped;
        };
        let peer = match promote {
            Some(i) => &mut self.pending[i].peer,
            None => self.active.as_mut().expect("matched above"),
        };
        match peer.opener.open(header, packet) {
            Ok(inner) => {
                // The sender's address may change (DHCP, a roaming Wi-Fi client): the
                // newest authentic packet says where it is.
                if from.is_some() {
                    peer.addr = from;
                }
                if let Some(i) = promote {
                    let proven = self.pending.swap_remove(i).peer;
                    // The same sender's other handshakes (retries) are done with.
                    self.pending.retain(|h| h.peer.session != proven.session);
                    self.active = Some(proven);
                    self.stats.handshakes += 1;
                    tracing::info!(peer = ?from, "encrypted session established");
                }
                Opened::Inner(inner)
            }
            Err(OpenError::Replayed) => {
                self.stats.replayed += 1;
                Opened::Dropped
            }
            Err(OpenError::Forged) => {
                self.stats.unauthenticated += 1;
                Opened::Dropped
            }
        }
    }

    /// Writes the next handshake answer into `buf`; returns where it goes.
    pub fn poll_handshake(&mut self, buf: &mut Vec<u8>) -> Option<Option<SocketAddr>> {
        let (to, packet) = self.outbox.pop_front()?;
        buf.clear();
        buf.extend_from_slice(&packet);
        Some(to)
    }

    /// Seals the packet in `buf` for the authenticated sender; returns its address, or
    /// `None` (and leaves `buf` alone) when there is none: nothing goes to anyone else.
    pub fn seal(&mut self, buf: &mut Vec<u8>) -> Option<Option<SocketAddr>> {
        match self.active.as_mut() {
            Some(peer) => {
                peer.sealer.seal(buf);
                Some(peer.addr)
            }
            None => {
                self.stats.unsent += 1;
                None
            }
        }
    }
}

#[cfg(test)]
#[path = "link_tests.rs"]
mod tests;
