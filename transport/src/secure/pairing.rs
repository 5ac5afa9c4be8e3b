//! Pairing with a short code: SPAKE2 (RustCrypto's `spake2`, Ed25519 group) turns a
//! code both people can read into a shared key that someone who overheard the code
//! exchange, or guesses it offline, does not get: each guess costs one live attempt,
//! and the receiver allows [`ATTEMPTS`] per code.
//!
//! Three packets over the stream's own port (common header with a random pairing id in
//! the session field, then):
//! - PAIR1 (kind 11, sender to receiver): the sender's SPAKE2 message (33 bytes);
//! - PAIR2 (kind 12, receiver to sender): the receiver's SPAKE2 message and its
//!   confirmation (HMAC-SHA256 under a key derived from the exchange, 32 bytes);
//! - PAIR3 (kind 13, sender to receiver): the sender's confirmation.
//!
//! Both confirmations cover both SPAKE2 messages, so each side knows the other used the
//! same code before it keeps the key. The paired key is HKDF-SHA256 of the exchange's
//! key; it is then used for every session's handshake ([`super::Initiator`]).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hkdf::Hkdf;
use sha2::Sha256;
use spake2::{Ed25519Group, Identity, Password, Spake2};

use super::{Psk, KIND_PAIR};
use crate::wire::{COMMON_HEADER, MAGIC, VERSION};

/// Pairing attempts the receiver allows per code; then a new code is needed.
pub const ATTEMPTS: u32 = 5;
const SPAKE_MSG: usize = 33;
const MAC: usize = 32;
const PAIR1_LEN: usize = COMMON_HEADER + SPAKE_MSG;
const PAIR2_LEN: usize = COMMON_HEADER + SPAKE_MSG + MAC;
const PAIR3_LEN: usize = COMMON_HEADER + MAC;
/// The sender repeats PAIR1 (a lost datagram) this often.
const RETRY: Duration = Duration::from_millis(500);
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

/// How a pairing ended, when it has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PairOutcome {
    /// Both sides used the same code: the paired key.
    Paired(Psk),
    /// The other side used another code (or is not a picam receiver in pairing mode).
    WrongCode,
}

/// The sender's side of pairing.
pub struct PairInitiator {
    pairing: u32,
    spake: Option<Spake2<Ed25519Group>>,
    msg_a: Vec<u8>,
    next_send: Option<Instant>,
    confirm: Option<Vec<u8>>,
    outcome: Option<PairOutcome>,
}

impl PairInitiator {
    /// Starts pairing with `code`.
    pub fn new(code: &str) -> Result<Self, super::KeyError> {
        let mut id = [0u8; 4];
        getrandom::getrandom(&mut id).map_err(|e| super::KeyError::Random(e.to_string()))?;
        let (spake, msg_a) = Spake2::<Ed25519Group>::start_a(
            &Password::new(normalise(code)),
            &Identity::new(ID_SENDER),
            &Identity::new(ID_RECEIVER),
        );
        Ok(Self {
            pairing: u32::from_be_bytes(id),
            spake: Some(spake),
            msg_a,
            next_send: None,
            confirm: None,
            outcome: None,
        })
    }

    /// The next packet to send, if one is due (PAIR1 repeated until answered, then
    /// PAIR3 once per answer).
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> bool {
        if let Some(confirm) = self.confirm.take() {
            *buf = confirm;
            return true;
        }
        if self.spake.is_none() || self.next_send.is_some_and(|t| now < t) {
            return false;
        }
        header(buf, KIND_PAIR[0], self.pairing);
        buf.extend_from_slice(&self.msg_a);
        self.next_send = Some(now + RETRY);
        true
    }

    /// When `poll_transmit` next has something.
    pub fn next_timeout(&self) -> Option<Instant> {
        self.spake.as_ref().and(self.next_send)
    }

    /// Takes a packet from the receiver; anything not a matching PAIR2 is ignored.
    pub fn handle(&mut self, packet: &[u8]) {
        if packet.len() != PAIR2_LEN || pair_header(packet) != Some((KIND_PAIR[1], self.pairing)) {
            return;
        }
        let Some(spake) = self.spake.take() else {
            return;
        };
        let msg_b = &packet[COMMON_HEADER..COMMON_HEADER + SPAKE_MSG];
        let tag = &packet[COMMON_HEADER + SPAKE_MSG..];
        let Ok(shared) = spake.finish(msg_b) else {
            self.outcome = Some(PairOutcome::WrongCode);
            return;
        };
        let transcript = [self.msg_a.as_slice(), msg_b].concat();
        let keys = derive(&shared, &transcript);
        if !verify(&keys.confirm_receiver, &transcript, tag) {
            self.outcome = Some(PairOutcome::WrongCode);
            return;
        }
        let mut confirm = Vec::with_capacity(PAIR3_LEN);
        header(&mut confirm, KIND_PAIR[2], self.pairing);
        confirm.extend_from_slice(&mac(&keys.confirm_sender, &transcript));
        self.confirm = Some(confirm);
        self.outcome = Some(PairOutcome::Paired(Psk(keys.psk)));
    }

    /// How it ended, once it has (send the pending PAIR3 first).
    pub fn outcome(&self) -> Option<&PairOutcome> {
        self.outcome.as_ref()
    }
}

/// The receiver's side of pairing: answers PAIR1s with the code, at most [`ATTEMPTS`]
/// times, and keeps the key once a PAIR3 confirms it.
pub struct PairResponder {
    code: Vec<u8>,
    attempts: u32,
    /// The answered attempt waiting for its confirmation.
    pending: Option<(u32, Option<SocketAddr>, Vec<u8>, Derived)>,
    outcome: Option<Psk>,
}

impl PairResponder {
    /// Waits for a sender with `code`.
    pub fn new(code: &str) -> Self {
        Self {
            code: normalise(code),
            attempts: ATTEMPTS,
            pending: None,
            outcome: None,
        }
    }

    /// Attempts left for this code.
    pub fn attempts_left(&self) -> u32 {
        self.attempts
    }

    /// Takes a packet from `from`; returns the answer to send back to it, if any.
    pub fn handle(&mut self, from: Option<SocketAddr>, packet: &[u8]) -> Option<Vec<u8>> {
        let (kind, pairing) = pair_header(packet)?;
        if kind == KIND_PAIR[0] && packet.len() == PAIR1_LEN {
            if let Some((id, to, reply, _)) = &self.pending {
                if *id == pairing && *to == from {
                    // A repeated PAIR1 (our answer was lost): the same answer again.
                    return Some(reply.clone());
                }
            }
            if self.attempts == 0 || self.outcome.is_some() {
                return None;
            }
            let (spake, msg_b) = Spake2::<Ed25519Group>::start_b(
                &Password::new(&self.code),
                &Identity::new(ID_SENDER),
                &Identity::new(ID_RECEIVER),
            );
            let msg_a = &packet[COMMON_HEADER..];
            // Garbage costs no attempt; every well-formed guess does.
            let shared = spake.finish(msg_a).ok()?;
            self.attempts -= 1;
            let transcript = [msg_a, msg_b.as_slice()].concat();
            let keys = derive(&shared, &transcript);
            let mut reply = Vec::with_capacity(PAIR2_LEN);
            header(&mut reply, KIND_PAIR[1], pairing);
            reply.extend_from_slice(&msg_b);
            reply.extend_from_slice(&mac(&keys.confirm_receiver, &transcript));
            self.pending = Some((pairing, from, transcript, keys));
            return Some(reply);
        }
        if kind == KIND_PAIR[2] && packet.len() == PAIR3_LEN {
            let (id, to, transcript, keys) = self.pending.as_ref()?;
            if *id == pairing
                && *to == from
                && verify(&keys.confirm_sender, transcript, &packet[COMMON_HEADER..])
            {
                self.outcome = Some(Psk(keys.psk));
            }
        }
        None
    }

    /// The paired key, once a sender confirmed the code.
    pub fn outcome(&self) -> Option<&Psk> {
        self.outcome.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(sender_code: &str, receiver: &mut PairResponder) -> Option<PairOutcome> {
        let now = Instant::now();
        let from = Some(SocketAddr::from(([10, 0, 0, 1], 4000)));
        let mut a = PairInitiator::new(sender_code).unwrap();
        let mut buf = Vec::new();
        for _ in 0..4 {
            if a.poll_transmit(now, &mut buf) {
                if let Some(reply) = receiver.handle(from, &buf) {
                    a.handle(&reply);
                }
            }
        }
        a.outcome().cloned()
    }

    #[test]
    fn the_same_code_pairs_and_both_sides_hold_the_same_key() {
        let code = new_code().unwrap();
        assert!(is_code(&code), "{code}");
        let mut b = PairResponder::new(&code);
        let typed = code.replace('-', " ");
        let Some(PairOutcome::Paired(key)) = run(&typed, &mut b) else {
            panic!("did not pair")
        };
        assert_eq!(b.outcome(), Some(&key));
    }

    #[test]
    fn a_wrong_code_gives_no_key_and_attempts_run_out() {
        let mut b = PairResponder::new("1234-5678");
        for left in (0..ATTEMPTS).rev() {
            assert_eq!(run("1234-5679", &mut b), Some(PairOutcome::WrongCode));
            assert_eq!(b.attempts_left(), left);
            assert!(b.outcome().is_none());
        }
        // Out of attempts: even the right code gets no answer now.
        assert_eq!(run("1234-5678", &mut b), None);
        assert!(b.outcome().is_none());
        assert!(!is_code("1234-567") && !is_code("abcd-efgh"));
    }

    #[test]
    fn malformed_pairing_packets_are_ignored() {
        let mut b = PairResponder::new("1234-5678");
        let mut a = PairInitiator::new("1234-5678").unwrap();
        let mut buf = Vec::new();
        a.poll_transmit(Instant::now(), &mut buf);
        for len in 0..buf.len() {
            assert!(b.handle(None, &buf[..len]).is_none());
        }
        assert_eq!(b.attempts_left(), ATTEMPTS, "truncations cost no attempt");
        a.handle(&[0x50, 0x43, 2, 12, 0, 0, 0, 0]);
        assert!(a.outcome().is_none());
    }
}
