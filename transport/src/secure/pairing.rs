//! Pairing with a short code: SPAKE2 (RustCrypto's `spake2`, Ed25519 group) turns a
//! code both people can read into a shared key that someone who overheard the code
//! exchange, or guesses it offline, does not get: each guess costs one live attempt,
//! and the receiver rations attempts (below).
//!
//! Three packets over the stream's own port (common header with a random pairing id in
//! the session field, then):
//! - PAIR1 (kind 11, sender to receiver): the sender's SPAKE2 message (33 bytes), then
//!   zeros up to [`PAIR1_LEN`], so that the answer is never larger than the question
//!   (the receiver cannot be used to amplify a flood towards a spoofed address);
//! - PAIR2 (kind 12, receiver to sender): the receiver's SPAKE2 message and its
//!   confirmation (HMAC-SHA256 under a key derived from the exchange, 32 bytes);
//! - PAIR3 (kind 13, sender to receiver): the sender's confirmation.
//!
//! Both confirmations cover both SPAKE2 messages, so each side knows the other used the
//! same code before it keeps the key. The paired key is HKDF-SHA256 of the exchange's
//! key; it is then used for every session's handshake ([`super::Initiator`]).
//!
//! Guessing. The receiver shows one code for its whole pairing window ([`WINDOW`], then
//! it gives up); a failed attempt never makes a new code, so nobody on the network can
//! keep the code changing under the person typing it. One exchange runs at a time and
//! is never replaced by another PAIR1 until it is confirmed or [`EXCHANGE_TIMEOUT`]
//! passes (that counts as a failed attempt). After [`FREE_FAILURES`] failures each
//! further one makes the receiver wait longer before the next (1 s doubling to 60 s),
//! and after [`MAX_FAILURES`] it answers nothing for the rest of the window: a person
//! has to start `picam recv` again. Against an attacker who cannot see the code that is
//! at most 10 guesses of 10^8 codes per window; the arithmetic is in ARCHITECTURE.md.
//!
//! Loss. The sender repeats PAIR1 after 30 ms, doubling to 500 ms; the receiver answers
//! the exact same PAIR1 from the same address with the same PAIR2 again (at most
//! [`RESENDS`] times), so a lost PAIR1 or PAIR2 costs about a round trip. The sender
//! sends PAIR3 three times, 30 ms apart. A PAIR2 that does not check out is ignored (it
//! may be forged); only if no good one follows within [`WRONG_CODE_GRACE`] does the
//! sender conclude that the codes differ.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hkdf::Hkdf;
use rand_core::{CryptoRng, RngCore};
use sha2::Sha256;
use spake2::{Ed25519Group, Identity, Password, Spake2};

use super::{Psk, KIND_PAIR};
use crate::machine::{Machine, Output, Transmit};
use crate::wire::{COMMON_HEADER, MAGIC, VERSION};

/// How long the receiver waits for a sender to pair, with one code.
pub const WINDOW: Duration = Duration::from_secs(5 * 60);
/// Failed attempts after which the receiver answers nothing more in this window.
pub const MAX_FAILURES: u32 = 10;
/// Failed attempts that cost no wait (a person mistyping the code once or twice).
pub const FREE_FAILURES: u32 = 3;
/// How long an answered PAIR1 holds the receiver, waiting for its PAIR3.
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(3);
/// How often the receiver answers a repeated PAIR1 (its PAIR2 was lost) again.
pub const RESENDS: u8 = 4;
/// How long the sender waits, after a PAIR2 that does not check out, for one that does
/// (shorter than [`EXCHANGE_TIMEOUT`], so the sender's repeats of PAIR1 never start a
/// second attempt at the receiver).
pub const WRONG_CODE_GRACE: Duration = Duration::from_secs(2);
/// The wait after each failure beyond [`FREE_FAILURES`]: doubles from here...
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
/// ...up to this.
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// The sender's first repeat of PAIR1, then doubling up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(30);
const RETRY_MAX: Duration = Duration::from_millis(500);
/// PAIR3 copies and their spacing: the receiver keeps no key without one.
const PAIR3_COPIES: u8 = 3;
const PAIR3_SPACING: Duration = Duration::from_millis(30);

const SPAKE_MSG: usize = 33;
const MAC: usize = 32;
/// PAIR2's length: the receiver's message and its confirmation.
pub const PAIR2_LEN: usize = COMMON_HEADER + SPAKE_MSG + MAC;
/// PAIR1's length, padded to PAIR2's so no answer is larger than its question.
pub const PAIR1_LEN: usize = PAIR2_LEN;
/// PAIR3's length.
pub const PAIR3_LEN: usize = COMMON_HEADER + MAC;
// No answer larger than a question, held at compile time.
const _: () = assert!(PAIR2_LEN <= PAIR1_LEN);
const ID_SENDER: &[u8] = b"picam sender";
const ID_RECEIVER: &[u8] = b"picam receiver";

/// A new pairing code: eight random digits, shown as `1234-5678`.
pub fn new_code() -> Result<String, super::KeyError> {
    let mut bytes = [0u8; 8];
    getrandom::getrandom(&mut bytes).map_err(|e| super::KeyError::Random(e.to_string()))?;
    let n = u64::from_le_bytes(bytes) % 100_000_000;
    Ok(format!("{:04}-{:04}", n / 10_000, n % 10_000))
}

/// The code's digits only, so `1234-5678`, `1234 5678` and `12345678` pair alike.
fn normalise(code: &str) -> Vec<u8> {
    code.bytes().filter(u8::is_ascii_digit).collect()
}

/// Whether a typed code has the form of one (eight digits, separators aside).
pub fn is_code(code: &str) -> bool {
    normalise(code).len() == 8
        && code
            .chars()
            .all(|c| c.is_ascii_digit() || c == '-' || c == ' ')
}

/// Keys derived from the SPAKE2 result: the two confirmation keys and the paired key.
struct Derived {
    confirm_receiver: [u8; 32],
    confirm_sender: [u8; 32],
    psk: [u8; 32],
}

fn derive(shared: &[u8], transcript: &[u8]) -> Derived {
    let hk = Hkdf::<Sha256>::new(Some(transcript), shared);
    let mut out = Derived {
        confirm_receiver: [0; 32],
        confirm_sender: [0; 32],
        psk: [0; 32],
    };
    // Lengths are fixed and far below HKDF's limit.
    let _ = hk.expand(
        b"picam pairing: receiver confirms",
        &mut out.confirm_receiver,
    );
    let _ = hk.expand(b"picam pairing: sender confirms", &mut out.confirm_sender);
    let _ = hk.expand(b"picam pairing: paired key", &mut out.psk);
    out
}

fn mac(key: &[u8; 32], transcript: &[u8]) -> [u8; 32] {
    use hkdf::hmac::{Hmac, Mac};
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(transcript);
    m.finalize().into_bytes().into()
}

fn verify(key: &[u8; 32], transcript: &[u8], tag: &[u8]) -> bool {
    use hkdf::hmac::{Hmac, Mac};
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(transcript);
    m.verify_slice(tag).is_ok()
}

fn header(out: &mut Vec<u8>, kind: u8, pairing: u32) {
    out.clear();
    out.extend_from_slice(&MAGIC.to_be_bytes());
    out.push(VERSION);
    out.push(kind);
    out.extend_from_slice(&pairing.to_be_bytes());
}

/// `(kind, pairing id)` of a pairing packet.
fn pair_header(packet: &[u8]) -> Option<(u8, u32)> {
    (packet.len() >= COMMON_HEADER
        && u16::from_be_bytes([packet[0], packet[1]]) == MAGIC
        && packet[2] == VERSION
        && KIND_PAIR.contains(&packet[3]))
    .then(|| {
        (
            packet[3],
            u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]),
        )
    })
}

/// A deterministic random stream from a secret seed: SPAKE2's state cannot be copied,
/// so the sender keeps the seed of its secret scalar instead and starts the same
/// exchange again for each PAIR2 it checks (a forged one must not use it up).
struct SeededRng {
    seed: [u8; 32],
    block: u64,
}

impl RngCore for SeededRng {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }
    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        // HKDF-Expand gives up to 8160 bytes per label; SPAKE2 asks for 64.
        for chunk in dest.chunks_mut(8160) {
            let hk = Hkdf::<Sha256>::new(None, &self.seed);
            let label = [
                b"picam pairing scalar".as_slice(),
                &self.block.to_be_bytes(),
            ]
            .concat();
            let _ = hk.expand(&label, chunk);
            self.block += 1;
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for SeededRng {}

/// How a pairing ended, when it has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PairOutcome {
    /// Both sides used the same code: the paired key.
    Paired(Psk),
    /// Answers came, none checked out within [`WRONG_CODE_GRACE`]: the other side
    /// used another code (or is not a picam receiver in pairing mode).
    WrongCode,
}

/// The sender's side of pairing. Sans-IO: feed it received packets with
/// [`handle`](Self::handle), then drain [`poll_transmit`](Self::poll_transmit) (which
/// also runs its timers) until it returns false, and call it again at
/// [`next_timeout`](Self::next_timeout). Done when [`is_finished`](Self::is_finished).
pub struct PairInitiator {
    pairing: u32,
    password: Password,
    seed: [u8; 32],
    msg_a: Vec<u8>,
    /// PAIR1 exactly as sent every time (the receiver recognises a repeat by its bytes).
    pair1: Vec<u8>,
    pair1_sent: u32,
    next_send: Option<Instant>,
    /// When the first PAIR2 that did not check out came.
    bad_answer_at: Option<Instant>,
    confirm: Vec<u8>,
    confirm_left: u8,
    next_confirm: Option<Instant>,
    outcome: Option<PairOutcome>,
    /// [`PairEvent::Finished`] was handed out (the [`Machine`] shape).
    finish_told: bool,
}

impl PairInitiator {
    /// Starts pairing with `code`.
    pub fn new(code: &str) -> Result<Self, super::KeyError> {
        let random = |buf: &mut [u8]| {
            getrandom::getrandom(buf).map_err(|e| super::KeyError::Random(e.to_string()))
        };
        let mut id = [0u8; 4];
        random(&mut id)?;
        let mut seed = [0u8; 32];
        random(&mut seed)?;
        let pairing = u32::from_be_bytes(id);
        let password = Password::new(normalise(code));
        let (_, msg_a) = Self::start(&password, seed);
        let mut pair1 = Vec::with_capacity(PAIR1_LEN);
        header(&mut pair1, KIND_PAIR[0], pairing);
        pair1.extend_from_slice(&msg_a);
        pair1.resize(PAIR1_LEN, 0);
        Ok(Self {
            pairing,
            password,
            seed,
            msg_a,
            pair1,
            pair1_sent: 0,
            next_send: None,
            bad_answer_at: None,
            confirm: Vec::new(),
            confirm_left: 0,
            next_confirm: None,
            outcome: None,
            finish_told: false,
        })
    }

    fn start(password: &Password, seed: [u8; 32]) -> (Spake2<Ed25519Group>, Vec<u8>) {
        Spake2::<Ed25519Group>::start_a_with_rng(
            password,
            &Identity::new(ID_SENDER),
            &Identity::new(ID_RECEIVER),
            SeededRng { seed, block: 0 },
        )
    }

    /// The next packet to send, if one is due: PAIR1 until a good PAIR2 came (30 ms
    /// after the first, doubling to 500 ms), then PAIR3 `PAIR3_COPIES` times.
    /// Also ends a pairing whose answers never checked out.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> bool {
        if self.confirm_left > 0 && self.next_confirm.is_none_or(|t| now >= t) {
            buf.clone_from(&self.confirm);
            self.confirm_left -= 1;
            self.next_confirm = Some(now + PAIR3_SPACING);
            return true;
        }
        if self.outcome.is_some() {
            return false;
        }
        if self
            .bad_answer_at
            .is_some_and(|t| now >= t + WRONG_CODE_GRACE)
        {
            self.outcome = Some(PairOutcome::WrongCode);
            return false;
        }
        if self.next_send.is_some_and(|t| now < t) {
            return false;
        }
        buf.clone_from(&self.pair1);
        let backoff = RETRY_FIRST.saturating_mul(1 << self.pair1_sent.min(5));
        self.pair1_sent = self.pair1_sent.saturating_add(1);
        self.next_send = Some(now + backoff.min(RETRY_MAX));
        true
    }

    /// When `poll_transmit` next has something to do.
    pub fn next_timeout(&self) -> Option<Instant> {
        if self.confirm_left > 0 {
            return self.next_confirm;
        }
        if self.outcome.is_some() {
            return None;
        }
        let give_up = self.bad_answer_at.map(|t| t + WRONG_CODE_GRACE);
        match (self.next_send, give_up) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Takes a packet from the receiver's address. Anything but a PAIR2 for this
    /// pairing is ignored; so is a PAIR2 that does not check out (it may be forged: the
    /// real answer can still come).
    pub fn handle(&mut self, now: Instant, packet: &[u8]) {
        if self.outcome.is_some()
            || packet.len() != PAIR2_LEN
            || pair_header(packet) != Some((KIND_PAIR[1], self.pairing))
        {
            return;
        }
        let msg_b = &packet[COMMON_HEADER..COMMON_HEADER + SPAKE_MSG];
        let tag = &packet[COMMON_HEADER + SPAKE_MSG..];
        let (spake, _) = Self::start(&self.password, self.seed);
        let checked = spake.finish(msg_b).ok().and_then(|shared| {
            let transcript = [self.msg_a.as_slice(), msg_b].concat();
            let keys = derive(&shared, &transcript);
            verify(&keys.confirm_receiver, &transcript, tag).then_some((keys, transcript))
        });
        let Some((keys, transcript)) = checked else {
            self.bad_answer_at.get_or_insert(now);
            return;
        };
        header(&mut self.confirm, KIND_PAIR[2], self.pairing);
        self.confirm
            .extend_from_slice(&mac(&keys.confirm_sender, &transcript));
        self.confirm_left = PAIR3_COPIES;
        self.next_confirm = None;
        self.outcome = Some(PairOutcome::Paired(Psk(keys.psk)));
    }

    /// How it ended, once it has.
    pub fn outcome(&self) -> Option<&PairOutcome> {
        self.outcome.as_ref()
    }

    /// Ended, and every PAIR3 copy sent.
    pub fn is_finished(&self) -> bool {
        self.outcome.is_some() && self.confirm_left == 0
    }

    /// Panics if the state is inconsistent (for tests and fuzzing).
    pub fn check_invariants(&self) {
        assert_eq!(self.pair1.len(), PAIR1_LEN);
        assert!(self.confirm_left <= PAIR3_COPIES);
        if self.confirm_left > 0 {
            assert!(matches!(self.outcome, Some(PairOutcome::Paired(_))));
            assert_eq!(self.confirm.len(), PAIR3_LEN);
        }
        if self.outcome.is_none() {
            assert!(self.next_timeout().is_some() || self.pair1_sent == 0);
        }
    }
}

/// Where the receiver's pairing stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairState {
    /// Waiting for a sender (maybe in an exchange, maybe waiting out a failure).
    Waiting,
    /// A sender confirmed the code: [`PairResponder::outcome`] holds the key.
    Paired,
    /// [`MAX_FAILURES`] attempts failed: nothing is answered until the window ends.
    LockedOut,
    /// The window ended without a pairing.
    Expired,
}

/// The exchange in progress: the one PAIR1 answered and waiting for its PAIR3.
struct Exchange {
    pairing: u32,
    from: Option<SocketAddr>,
    pair1: Vec<u8>,
    pair2: Vec<u8>,
    transcript: Vec<u8>,
    keys: Derived,
    started: Instant,
    resends_left: u8,
}

/// The receiver's side of pairing: answers one PAIR1 at a time with the code, rations
/// attempts (see the module's doc), and keeps the key once a PAIR3 confirms it.
/// Sans-IO: [`handle`](Self::handle) each packet and send what it returns to the
/// packet's source; call [`handle_timeout`](Self::handle_timeout) at
/// [`next_timeout`](Self::next_timeout); [`state`](Self::state) says when it is over.
pub struct PairResponder {
    code: Vec<u8>,
    window_end: Instant,
    failures: u32,
    answered: u32,
    /// No new exchange before this (the wait after a failure).
    next_exchange: Instant,
    exchange: Option<Exchange>,
    outcome: Option<Psk>,
    older_sender_seen: bool,
    /// Answers not yet handed out (the [`Machine`] shape): one per packet taken, and
    /// drained after each, so never more than a few.
    replies: VecDeque<(Option<SocketAddr>, Vec<u8>)>,
    /// Events already handed out: older sender, locked out, finished.
    told: [bool; 3],
}

/// What goes into either side of pairing run as a [`Machine`] (by the one driver loop).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairInput<'a> {
    /// A datagram from `from`.
    Packet {
        /// Who sent it.
        from: Option<SocketAddr>,
        /// Its bytes.
        data: &'a [u8],
    },
    /// The instant of the last timeout has come.
    Timeout,
}

/// What either side of pairing reports, each at most once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairEvent {
    /// Over: the outcome (or its absence: the receiver's window expired) is final, and
    /// every packet it owed is handed out.
    Finished,
    /// The receiver stopped answering after [`MAX_FAILURES`] failed attempts.
    LockedOut,
    /// An older picam tried to pair with this receiver (see
    /// [`PairResponder::older_sender_seen`]).
    OlderSender,
}

/// The sender's side as a [`Machine`]: PAIR1 and PAIR3 go to the one peer.
impl Machine for PairInitiator {
    type Input<'a> = PairInput<'a>;
    type Event = PairEvent;

    fn handle_input(&mut self, now: Instant, input: PairInput<'_>) {
        if let PairInput::Packet { data, .. } = input {
            self.handle(now, data);
        }
    }

    fn poll_output(&mut self, now: Instant, buf: &mut Vec<u8>) -> Output<PairEvent> {
        if self.poll_transmit(now, buf) {
            return Output::Transmit(Transmit::media(None));
        }
        if self.is_finished() && !self.finish_told {
            self.finish_told = true;
            return Output::Event(PairEvent::Finished);
        }
        Output::Timeout(self.next_timeout())
    }
}

/// The receiver's side as a [`Machine`]: each answer goes back to its packet's source.
impl Machine for PairResponder {
    type Input<'a> = PairInput<'a>;
    type Event = PairEvent;

    fn handle_input(&mut self, now: Instant, input: PairInput<'_>) {
        match input {
            PairInput::Packet { from, data } => {
                if let Some(reply) = self.handle(now, from, data) {
                    self.replies.push_back((from, reply));
                }
            }
            PairInput::Timeout => self.handle_timeout(now),
        }
    }

    fn poll_output(&mut self, now: Instant, buf: &mut Vec<u8>) -> Output<PairEvent> {
        if let Some((to, reply)) = self.replies.pop_front() {
            *buf = reply;
            return Output::Transmit(Transmit::media(to));
        }
        self.handle_timeout(now);
        fn once(told: &mut bool, event: PairEvent) -> Option<Output<PairEvent>> {
            (!std::mem::replace(told, true)).then_some(Output::Event(event))
        }
        if self.older_sender_seen {
            if let Some(out) = once(&mut self.told[0], PairEvent::OlderSender) {
                return out;
            }
        }
        let event = match self.state(now) {
            PairState::Waiting => None,
            PairState::LockedOut => once(&mut self.told[1], PairEvent::LockedOut),
            PairState::Paired | PairState::Expired => once(&mut self.told[2], PairEvent::Finished),
        };
        if let Some(out) = event {
            return out;
        }
        Output::Timeout(self.next_timeout())
    }
}

/// The PAIR1 of picam before PAIR1 was padded: an older sender, which this receiver
/// cannot pair with (its PAIR2 would be larger than the request).
const UNPADDED_PAIR1_LEN: usize = COMMON_HEADER + SPAKE_MSG;

impl PairResponder {
    /// Waits for a sender with `code`, for [`WINDOW`] from `now`.
    pub fn new(code: &str, now: Instant) -> Self {
        Self {
            code: normalise(code),
            window_end: now + WINDOW,
            failures: 0,
            answered: 0,
            next_exchange: now,
            exchange: None,
            outcome: None,
            older_sender_seen: false,
            replies: VecDeque::new(),
            told: [false; 3],
        }
    }

    /// Whether an unpadded PAIR1 came: a sender running an older picam, to be told to
    /// update (it is ignored, never answered).
    pub fn older_sender_seen(&self) -> bool {
        self.older_sender_seen
    }

    /// Attempts that failed so far (an exchange with no good PAIR3 in time).
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Exchanges started so far (first answers, not resends).
    pub fn answered(&self) -> u32 {
        self.answered
    }

    /// Where it stands at `now`.
    pub fn state(&self, now: Instant) -> PairState {
        if self.outcome.is_some() {
            PairState::Paired
        } else if now >= self.window_end {
            PairState::Expired
        } else if self.failures >= MAX_FAILURES {
            PairState::LockedOut
        } else {
            PairState::Waiting
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) next has something to do: the
    /// exchange in progress timing out, or the window's end.
    pub fn next_timeout(&self) -> Option<Instant> {
        if self.outcome.is_some() {
            return None;
        }
        let exchange_end = self.exchange.as_ref().map(|e| e.started + EXCHANGE_TIMEOUT);
        Some(exchange_end.map_or(self.window_end, |t| t.min(self.window_end)))
    }

    /// Ends an exchange whose PAIR3 did not come in time: a failed attempt.
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some(exchange) = &self.exchange else {
            return;
        };
        let ended = exchange.started + EXCHANGE_TIMEOUT;
        if now < ended {
            return;
        }
        self.exchange = None;
        self.failures += 1;
        self.next_exchange = ended + backoff(self.failures);
    }

    /// Takes a packet from `from`; returns the answer to send back to it, if any (never
    /// longer than the packet).
    pub fn handle(
        &mut self,
        now: Instant,
        from: Option<SocketAddr>,
        packet: &[u8],
    ) -> Option<Vec<u8>> {
        self.handle_timeout(now);
        if self.state(now) != PairState::Waiting {
            return None;
        }
        let (kind, pairing) = pair_header(packet)?;
        let reply = match kind {
            k if k == KIND_PAIR[0] => self.on_pair1(now, from, pairing, packet),
            k if k == KIND_PAIR[2] => {
                self.on_pair3(from, pairing, packet);
                None
            }
            _ => None,
        };
        // The rule that makes the receiver useless as a reflector, checked on every
        // answer rather than trusted to the lengths above.
        reply.filter(|r| r.len() <= packet.len())
    }

    fn on_pair1(
        &mut self,
        now: Instant,
        from: Option<SocketAddr>,
        pairing: u32,
        packet: &[u8],
    ) -> Option<Vec<u8>> {
        if packet.len() == UNPADDED_PAIR1_LEN {
            self.older_sender_seen = true;
            return None;
        }
        if packet.len() != PAIR1_LEN || packet[COMMON_HEADER + SPAKE_MSG..].iter().any(|&b| b != 0)
        {
            return None;
        }
        if let Some(exchange) = &mut self.exchange {
            // The exchange in progress is never replaced: only the very same PAIR1 from
            // the same address (its answer was lost) gets the same answer again.
            let repeat =
                exchange.pairing == pairing && exchange.from == from && exchange.pair1 == packet;
            if repeat && exchange.resends_left > 0 {
                exchange.resends_left -= 1;
                return Some(exchange.pair2.clone());
            }
            return None;
        }
        if now < self.next_exchange {
            return None;
        }
        let (spake, msg_b) = Spake2::<Ed25519Group>::start_b(
            &Password::new(&self.code),
            &Identity::new(ID_SENDER),
            &Identity::new(ID_RECEIVER),
        );
        let msg_a = &packet[COMMON_HEADER..COMMON_HEADER + SPAKE_MSG];
        // Garbage costs no attempt; every well-formed guess does.
        let shared = spake.finish(msg_a).ok()?;
        let transcript = [msg_a, msg_b.as_slice()].concat();
        let keys = derive(&shared, &transcript);
        let mut pair2 = Vec::with_capacity(PAIR2_LEN);
        header(&mut pair2, KIND_PAIR[1], pairing);
        pair2.extend_from_slice(&msg_b);
        pair2.extend_from_slice(&mac(&keys.confirm_receiver, &transcript));
        self.answered += 1;
        self.exchange = Some(Exchange {
            pairing,
            from,
            pair1: packet.to_vec(),
            pair2: pair2.clone(),
            transcript,
            keys,
            started: now,
            resends_left: RESENDS,
        });
        Some(pair2)
    }

    fn on_pair3(&mut self, from: Option<SocketAddr>, pairing: u32, packet: &[u8]) {
        let Some(exchange) = &self.exchange else {
            return;
        };
        // A PAIR3 that does not check out is ignored: it may be forged, and the real
        // one can still come before the exchange times out.
        if packet.len() == PAIR3_LEN
            && exchange.pairing == pairing
            && exchange.from == from
            && verify(
                &exchange.keys.confirm_sender,
                &exchange.transcript,
                &packet[COMMON_HEADER..],
            )
        {
            self.outcome = Some(Psk(exchange.keys.psk));
            self.exchange = None;
        }
    }

    /// The paired key, once a sender confirmed the code.
    pub fn outcome(&self) -> Option<&Psk> {
        self.outcome.as_ref()
    }

    /// Panics if the state is inconsistent (for tests and fuzzing).
    pub fn check_invariants(&self) {
        assert!(self.failures <= MAX_FAILURES, "{} failures", self.failures);
        assert!(self.failures <= self.answered);
        if self.outcome.is_some() {
            assert!(self.exchange.is_none());
        }
        if let Some(e) = &self.exchange {
            assert!(e.resends_left <= RESENDS);
            assert!(
                e.pair2.len() <= e.pair1.len(),
                "an answer larger than its question"
            );
            assert_eq!(e.pair1.len(), PAIR1_LEN);
        }
    }
}

/// The wait before the next exchange after `failures` failed ones.
fn backoff(failures: u32) -> Duration {
    if failures < FREE_FAILURES {
        return Duration::ZERO;
    }
    let doubled = BACKOFF_FIRST.saturating_mul(1 << (failures - FREE_FAILURES).min(16));
    doubled.min(BACKOFF_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> Option<SocketAddr> {
        Some(SocketAddr::from(([10, 0, 0, 1], port)))
    }

    /// A sender and a receiver on simulated time through a link that delivers after
    /// `one_way` and drops what `drop(to_receiver, packet)` says; every timer honoured,
    /// no sleeping. Returns when the sender is finished (or after 60 simulated s).
    fn drive(
        a: &mut PairInitiator,
        b: &mut PairResponder,
        start: Instant,
        one_way: Duration,
        mut drop: impl FnMut(bool, &[u8]) -> bool,
    ) -> Instant {
        let from = addr(4000);
        let mut now = start;
        let mut in_flight: Vec<(Instant, bool, Vec<u8>)> = Vec::new();
        let mut buf = Vec::new();
        for _ in 0..10_000 {
            while a.poll_transmit(now, &mut buf) {
                if !drop(true, &buf) {
                    in_flight.push((now + one_way, true, buf.clone()));
                }
            }
            a.check_invariants();
            b.check_invariants();
            if a.is_finished() {
                break;
            }
            let next = in_flight
                .iter()
                .map(|p| p.0)
                .chain(a.next_timeout())
                .chain(b.next_timeout())
                .min();
            let Some(next) = next else { break };
            now = now.max(next);
            if now > start + Duration::from_secs(60) {
                break;
            }
            b.handle_timeout(now);
            let (due, later): (Vec<_>, Vec<_>) = in_flight.drain(..).partition(|p| p.0 <= now);
            in_flight = later;
            for (_, to_receiver, packet) in due {
                if to_receiver {
                    if let Some(reply) = b.handle(now, from, &packet) {
                        assert!(reply.len() <= packet.len(), "answer larger than question");
                        if !drop(false, &reply) {
                            in_flight.push((now + one_way, false, reply));
                        }
                    }
                } else {
                    a.handle(now, &packet);
                }
            }
        }
        now
    }

    fn pair1_of(code: &str) -> Vec<u8> {
        let mut buf = Vec::new();
        assert!(PairInitiator::new(code)
            .unwrap()
            .poll_transmit(Instant::now(), &mut buf));
        buf
    }

    const RTT_HALF: Duration = Duration::from_millis(2);

    #[test]
    fn the_same_code_pairs_and_both_sides_hold_the_same_key() {
        let code = new_code().unwrap();
        assert!(is_code(&code), "{code}");
        let start = Instant::now();
        let mut b = PairResponder::new(&code, start);
        let mut a = PairInitiator::new(&code.replace('-', " ")).unwrap();
        let done = drive(&mut a, &mut b, start, RTT_HALF, |_, _| false);
        let Some(PairOutcome::Paired(key)) = a.outcome() else {
            panic!("did not pair: {:?}", a.outcome())
        };
        assert_eq!(b.outcome(), Some(key));
        assert_eq!(b.state(done), PairState::Paired);
        assert!(
            done - start < Duration::from_millis(100),
            "{:?}",
            done - start
        );
    }

    #[test]
    fn a_wrong_code_fails_once_and_the_code_stays_the_same() {
        let start = Instant::now();
        let mut b = PairResponder::new("1234-5678", start);
        let mut a = PairInitiator::new("1234-5679").unwrap();
        let mut now = drive(&mut a, &mut b, start, RTT_HALF, |_, _| false);
        assert_eq!(a.outcome(), Some(&PairOutcome::WrongCode));
        assert!(now - start >= WRONG_CODE_GRACE && now - start < EXCHANGE_TIMEOUT);
        // The sender's repeats during its grace were resends, not new attempts.
        assert_eq!(b.answered(), 1);
        assert!(b.outcome().is_none());
        now = start + EXCHANGE_TIMEOUT + Duration::from_millis(10);
        b.handle_timeout(now);
        assert_eq!(b.failures(), 1);
        // No new code: the person retypes the one shown, and it pairs.
        let mut a = PairInitiator::new("12345678").unwrap();
        drive(&mut a, &mut b, now, RTT_HALF, |_, _| false);
        assert!(matches!(a.outcome(), Some(PairOutcome::Paired(_))));
        assert!(!is_code("1234-567") && !is_code("abcd-efgh"));
    }

    #[test]
    fn a_pair1_flood_gets_few_answers_then_a_lockout_until_the_window_ends() {
        let start = Instant::now();
        let mut b = PairResponder::new("1234-5678", start);
        let mut answers_in_10s = 0;
        let mut now = start;
        let mut locked_at = None;
        // 200 distinct guesses a second, each from another port, for the whole window.
        let step = Duration::from_millis(5);
        let mut n = 0u32;
        while now < start + WINDOW + Duration::from_secs(1) {
            let guess = pair1_of(&format!("{:08}", n % 100_000_000));
            n += 1;
            if let Some(reply) = b.handle(now, addr(1 + (n % 60_000) as u16), &guess) {
                assert!(reply.len() <= guess.len());
                if now < start + Duration::from_secs(10) {
                    answers_in_10s += 1;
                }
            }
            b.check_invariants();
            if locked_at.is_none() && b.state(now) == PairState::LockedOut {
                locked_at = Some(now);
            }
            now += step;
            // Time for the guesses' SPAKE2 only when it matters: skip ahead while the
            // receiver would not answer anyway.
            if b.state(now) == PairState::LockedOut {
                now = now.max(start + WINDOW);
            } else if b.exchange.is_none() && now < b.next_exchange {
                now = b.next_exchange;
            } else if let Some(e) = &b.exchange {
                now = now.max(e.started + EXCHANGE_TIMEOUT);
            }
        }
        assert!(answers_in_10s <= 20, "{answers_in_10s} answers in 10 s");
        // Exchanges at 0, 3 and 6 s; after the third failure a 1 s wait: the 4th at 10 s.
        assert_eq!(answers_in_10s, 3, "one exchange per {EXCHANGE_TIMEOUT:?}");
        assert_eq!(b.answered(), MAX_FAILURES);
        let locked_at = locked_at.expect("never locked") - start;
        // 10 exchanges of 3 s, and waits of 1+2+4+8+16+32+60 s after failures 3..9.
        assert_eq!(locked_at.as_secs(), 30 + 123, "{locked_at:?}");
        assert_eq!(b.state(now), PairState::Expired);
        // Locked or expired, even the right code gets nothing.
        assert!(b.handle(now, addr(9), &pair1_of("1234-5678")).is_none());
    }

    #[test]
    fn the_exchange_in_progress_is_not_replaced_by_an_injected_pair1() {
        let start = Instant::now();
        let mut b = PairResponder::new("1234-5678", start);
        let mut a = PairInitiator::new("1234-5678").unwrap();
        let forged = pair1_of("0000-0000");
        let mut attacker_answers = 0;
        let mut buf = Vec::new();
        a.poll_transmit(start, &mut buf);
        let real = b.handle(start, addr(4000), &buf).expect("answered");
        // Right after the real PAIR1, a forged one from the same address and another.
        for from in [addr(4000), addr(4001)] {
            attacker_answers += usize::from(b.handle(start, from, &forged).is_some());
        }
        a.handle(start, &real);
        drive(&mut a, &mut b, start, RTT_HALF, |_, _| false);
        assert_eq!(attacker_answers, 0);
        let Some(PairOutcome::Paired(key)) = a.outcome() else {
            panic!("{:?}", a.outcome())
        };
        assert_eq!(b.outcome(), Some(key));
    }

    #[test]
    fn a_lost_pair2_or_pair1_costs_about_a_round_trip() {
        for lose_pair2 in [true, false] {
            let start = Instant::now();
            let mut b = PairResponder::new("1234-5678", start);
            let mut a = PairInitiator::new("1234-5678").unwrap();
            let mut lost = false;
            let done = drive(&mut a, &mut b, start, RTT_HALF, |to_receiver, _| {
                let drop = !lost && to_receiver != lose_pair2;
                lost |= drop;
                drop
            });
            assert!(matches!(a.outcome(), Some(PairOutcome::Paired(_))));
            assert!(b.outcome().is_some());
            let took = done - start;
            // The first repeat after 30 ms, one round trip, three PAIR3 copies 30 ms apart.
            assert!(
                took <= RETRY_FIRST + 2 * RTT_HALF + 2 * PAIR3_SPACING,
                "{took:?}"
            );
        }
    }

    #[test]
    fn a_repeated_pair1_gets_the_same_answer_a_bounded_number_of_times() {
        let start = Instant::now();
        let mut b = PairResponder::new("1234-5678", start);
        let pair1 = pair1_of("1234-5678");
        let first = b.handle(start, addr(1), &pair1).unwrap();
        for _ in 0..RESENDS {
            assert_eq!(b.handle(start, addr(1), &pair1).as_ref(), Some(&first));
        }
        assert!(
            b.handle(start, addr(1), &pair1).is_none(),
            "resends unbounded"
        );
        // The same bytes from another address are not a repeat.
        let mut b = PairResponder::new("1234-5678", start);
        b.handle(start, addr(1), &pair1).unwrap();
        assert!(b.handle(start, addr(2), &pair1).is_none());
        assert_eq!(b.answered(), 1);
    }

    #[test]
    fn a_forged_pair2_does_not_stop_the_sender() {
        let start = Instant::now();
        let mut b = PairResponder::new("1234-5678", start);
        let mut a = PairInitiator::new("1234-5678").unwrap();
        let mut buf = Vec::new();
        a.poll_transmit(start, &mut buf);
        // An attacker who saw the PAIR1 answers first, with its own code.
        let mut forger = PairResponder::new("0000-0000", start);
        let forged = forger.handle(start, addr(4000), &buf).unwrap();
        a.handle(start, &forged);
        assert!(a.outcome().is_none(), "a forged PAIR2 ended the pairing");
        let real = b.handle(start, addr(4000), &buf).unwrap();
        a.handle(start, &real);
        drive(&mut a, &mut b, start, RTT_HALF, |_, _| false);
        let Some(PairOutcome::Paired(key)) = a.outcome() else {
            panic!("{:?}", a.outcome())
        };
        assert_eq!(b.outcome(), Some(key));
    }

    #[test]
    fn malformed_pairing_packets_are_ignored() {
        let start = Instant::now();
        let mut b = PairResponder::new("1234-5678", start);
        let mut a = PairInitiator::new("1234-5678").unwrap();
        let mut buf = Vec::new();
        a.poll_transmit(start, &mut buf);
        for len in 0..buf.len() {
            assert!(b.handle(start, None, &buf[..len]).is_none());
        }
        // Padding that is not zeros is not a PAIR1.
        let mut bad = buf.clone();
        *bad.last_mut().unwrap() = 1;
        assert!(b.handle(start, None, &bad).is_none());
        assert_eq!(b.answered(), 0, "malformed packets cost no attempt");
        a.handle(start, &[0x50, 0x43, 2, 12, 0, 0, 0, 0]);
        assert!(a.outcome().is_none());
        b.check_invariants();
        a.check_invariants();
    }

    /// picam before the padding sent PAIR1 without it: ignored (its PAIR2 would be
    /// larger than the request), costing no attempt, and reported so the receiver can
    /// say "update the camera's picam" instead of staying silent.
    #[test]
    fn an_unpadded_pair1_from_an_older_sender_is_ignored_and_reported() {
        let start = Instant::now();
        let mut b = PairResponder::new("1234-5678", start);
        let mut a = PairInitiator::new("1234-5678").unwrap();
        let mut buf = Vec::new();
        a.poll_transmit(start, &mut buf);
        assert!(!b.older_sender_seen());
        assert!(b
            .handle(start, addr(9), &buf[..UNPADDED_PAIR1_LEN])
            .is_none());
        assert!(b.older_sender_seen());
        assert_eq!(b.answered(), 0);
        assert_eq!(b.failures(), 0);
        // The padded PAIR1 of a current sender is answered as usual.
        assert!(b.handle(start, addr(10), &buf).is_some());
        b.check_invariants();
    }

    #[test]
    fn the_window_ends_after_five_minutes() {
        let start = Instant::now();
        let b = PairResponder::new("1234-5678", start);
        assert_eq!(
            b.state(start + WINDOW - Duration::from_millis(1)),
            PairState::Waiting
        );
        assert_eq!(b.state(start + WINDOW), PairState::Expired);
        assert_eq!(b.next_timeout(), Some(start + WINDOW));
        assert_eq!(
            (0..=MAX_FAILURES)
                .map(|f| backoff(f).as_secs())
                .collect::<Vec<_>>(),
            [0, 0, 0, 1, 2, 4, 8, 16, 32, 60, 60]
        );
    }
}
