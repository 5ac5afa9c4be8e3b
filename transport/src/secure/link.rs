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
//! The receiver answers a HELLO only if it authenticates under the paired key, at most
//! [`HELLO_RATE`] a second, and keeps the new keys *pending*: the session in use is
//! replaced only when the first packet sealed with the new keys arrives. So a replayed or
//! forged HELLO can neither take the viewer over nor stop the running stream.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::handshake::{self, Hello, HELLO_NOISE, WELCOME_NOISE};
use super::seal::{sealed_header, OpenError, Opener, Sealer};
use super::{Psk, KIND_HELLO, KIND_SEALED, KIND_WELCOME};
use crate::wire::{COMMON_HEADER, MAGIC, VERSION};

/// HELLOs the receiver answers per second at most (each costs two X25519 operations).
pub const HELLO_RATE: f64 = 20.0;
const HELLO_BURST: f64 = 10.0;
const HELLO_LEN: usize = COMMON_HEADER + 1 + HELLO_NOISE;
const WELCOME_LEN: usize = COMMON_HEADER + 1 + WELCOME_NOISE;
/// First HELLO retry; doubles up to [`HELLO_RETRY_MAX`]. A HELLO is under 70 bytes,
/// and a viewer that starts late must not wait long for its first picture.
const HELLO_RETRY: Duration = Duration::from_millis(250);
const HELLO_RETRY_MAX: Duration = Duration::from_millis(500);
/// Unanswered HELLOs before the sender says why the screen may stay black.
const HELLOS_BEFORE_WARNING: u32 = 4;
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
    pending: Option<(Hello, u8)>,
    next_hello: Option<Instant>,
    retry: Duration,
    unanswered: u32,
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
            pending: None,
            next_hello: None,
            retry: HELLO_RETRY,
            unanswered: 0,
            current: None,
            last_heard: None,
            warned_plaintext: false,
            stats: SecureStats::default(),
        }
    }

    /// A new connection (TCP): whoever is at the other end now, keys are agreed anew.
    pub fn restart(&mut self) {
        self.current = None;
        self.pending = None;
        self.next_hello = None;
        self.last_heard = None;
        self.retry = HELLO_RETRY;
        self.unanswered = 0;
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
        if self.hello_due(now).map_or(true, |at| now < at) {
            return false;
        }
        if self.pending.is_some() {
            self.unanswered += 1;
            if self.unanswered == HELLOS_BEFORE_WARNING {
                tracing::warn!(
                    tries = self.unanswered,
                    "no answer to the encrypted handshake: is picam recv running there, paired with this key (same key file), and not --insecure?"
                );
            }
        }
        let epoch = self.next_epoch;
        self.next_epoch = self.next_epoch.wrapping_add(1);
        let Some((hello, noise)) = handshake::hello(&self.psk, self.session, epoch, time_us) else {
            return false;
        };
        common(buf, KIND_HELLO, self.session);
        buf.push(epoch);
        buf.extend_from_slice(&noise);
        self.pending = Some((hello, epoch));
        self.next_hello = Some(now + self.retry);
        self.retry = (self.retry * 2).min(HELLO_RETRY_MAX);
        self.stats.hellos += 1;
        true
    }

    /// When a timeout input is wanted.
    pub fn next_timeout(&self, now: Instant) -> Option<Instant> {
        self.hello_due(now)
    }

    /// Takes a packet from the receiver.
    pub fn open(&mut self, now: Instant, packet: &[u8]) -> Opened {
        match outer(packet) {
            Some((KIND_WELCOME, session, epoch)) if session == self.session => {
                // A late answer to a HELLO since superseded by a retry: not forged,
                // just stale.
                if self.pending.as_ref().map_or(true, |(_, e)| *e != epoch) {
                    return Opened::Dropped;
                }
                let Some((hello, pending_epoch)) = self.pending.take() else {
                    return Opened::Dropped;
                };
                let keys = (epoch == pending_epoch && packet.len() == WELCOME_LEN)
                    .then(|| hello.finish(&packet[COMMON_HEADER + 1..]))
                    .flatten();
                let Some(keys) = keys else {
                    self.stats.unauthenticated += 1;
                    return Opened::Dropped;
                };
                self.current = Some(Peer {
                    session,
                    epoch,
                    addr: None,
                    sealer: Sealer::new(keys.send, session, epoch),
                    opener: Opener::new(keys.recv),
                });
                self.last_heard = Some(now);
                self.next_hello = None;
                self.retry = HELLO_RETRY;
                self.unanswered = 0;
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

/// The receiver's end: answers authentic HELLOs, opens what the paired sender sends,
/// seals feedback to it.
pub struct Responder {
    psk: Psk,
    active: Option<Peer>,
    pending: Option<Peer>,
    /// The newest HELLO accepted: (session, sender time); older ones of the same
    /// session are replays.
    newest_hello: Option<(u32, u64)>,
    tokens: f64,
    refilled: Option<Instant>,
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
            pending: None,
            newest_hello: None,
            tokens: HELLO_BURST,
            refilled: None,
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

    fn on_hello(
        &mut self,
        now: Instant,
        from: Option<SocketAddr>,
        session: u32,
        epoch: u8,
        packet: &[u8],
    ) -> Opened {
        let dt = self
            .refilled
            .map_or(0.0, |t| now.saturating_duration_since(t).as_secs_f64());
        self.refilled = Some(now);
        self.tokens = (self.tokens + dt * HELLO_RATE).min(HELLO_BURST);
        if self.tokens < 1.0 || packet.len() != HELLO_LEN {
            self.stats.unauthenticated += 1;
            return Opened::Dropped;
        }
        self.tokens -= 1.0;
        let Some((keys, noise, time_us)) =
            handshake::welcome(&self.psk, session, epoch, &packet[COMMON_HEADER + 1..])
        else {
            self.stats.unauthenticated += 1;
            if !self.warned_key {
                self.warned_key = true;
                tracing::warn!(peer = ?from, "a sender's handshake does not authenticate: it has another key (pair again, or give both sides the same --key file)");
            }
            return Opened::Dropped;
        };
        if self
            .newest_hello
            .is_some_and(|(s, t)| s == session && time_us <= t)
        {
            self.stats.replayed += 1;
            return Opened::Dropped;
        }
        self.newest_hello = Some((session, time_us));
        self.pending = Some(Peer {
            session,
            epoch,
            addr: from,
            sealer: Sealer::new(keys.send, session, epoch),
            opener: Opener::new(keys.recv),
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

    fn on_sealed(&mut self, from: Option<SocketAddr>, packet: &[u8]) -> Opened {
        let Some(header) = sealed_header(packet) else {
            self.stats.unauthenticated += 1;
            return Opened::Dropped;
        };
        let matches = |p: &Option<Peer>| {
            p.as_ref()
                .is_some_and(|p| p.session == header.session && p.epoch == header.epoch)
        };
        let promote = if matches(&self.active) {
            false
        } else if matches(&self.pending) {
            true
        } else {
            self.stats.unauthenticated += 1;
            return Opened::Dropped;
        };
        let slot = if promote {
            &mut self.pending
        } else {
            &mut self.active
        };
        let peer = slot.as_mut().expect("matched above");
        match peer.opener.open(header, packet) {
            Ok(inner) => {
                // The sender's address may change (DHCP, a roaming Wi-Fi client): the
                // newest authentic packet says where it is.
                if from.is_some() {
                    peer.addr = from;
                }
                if promote {
                    self.active = self.pending.take();
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
