//! The session handshake: Noise `NNpsk0` keyed by the paired key, through `snow`.
//!
//! Two messages. The sender's HELLO carries its ephemeral key and, encrypted under the
//! paired key, its wall-clock time (newer HELLOs replace older ones; a replayed one is
//! refused). The receiver's WELCOME carries its ephemeral key. Both then hold two fresh
//! keys, one per direction, that depend on the ephemeral exchange: forward secret.
//! The prologue binds the session id and key epoch of the outer headers to the result.

use super::Psk;

const PATTERN: &str = "Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s";
/// Bytes of a HELLO's Noise message: ephemeral key, 8-byte payload, tag.
pub(crate) const HELLO_NOISE: usize = 32 + 8 + 16;
/// Bytes of a WELCOME's Noise message: ephemeral key, empty payload, tag.
pub(crate) const WELCOME_NOISE: usize = 32 + 16;

/// One session's keys.
pub(crate) struct Keys {
    /// Seals what this side sends.
    pub send: [u8; 32],
    /// Opens what the other side sends.
    pub recv: [u8; 32],
}

fn prologue(session: u32, epoch: u8) -> Vec<u8> {
    let mut p = b"picam wire 2 session".to_vec();
    p.extend_from_slice(&session.to_be_bytes());
    p.push(epoch);
    p
}

fn builder<'a>(psk: &'a Psk, prologue: &'a [u8]) -> Option<snow::Builder<'a>> {
    let params = PATTERN.parse().ok()?;
    Some(snow::Builder::new(params).psk(0, &psk.0).prologue(prologue))
}

/// The sender's half-done handshake.
pub(crate) struct Hello {
    state: snow::HandshakeState,
}

impl std::fmt::Debug for Hello {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hello")
    }
}

/// Starts a handshake: the HELLO's Noise message carrying `time_us`.
pub(crate) fn hello(psk: &Psk, session: u32, epoch: u8, time_us: u64) -> Option<(Hello, Vec<u8>)> {
    let prologue = prologue(session, epoch);
    let mut state = builder(psk, &prologue)?.build_initiator().ok()?;
    let mut msg = vec![0u8; HELLO_NOISE];
    let n = state.write_message(&time_us.to_be_bytes(), &mut msg).ok()?;
    msg.truncate(n);
    Some((Hello { state }, msg))
}

impl Hello {
    /// Completes the handshake with the WELCOME's Noise message. A WELCOME that does
    /// not authenticate leaves the handshake as it was (snow restores its symmetric
    /// state on a failed read, and the next read overwrites the peer's ephemeral key),
    /// so a forged answer cannot cancel the real one still on its way.
    pub fn finish(&mut self, welcome: &[u8]) -> Option<Keys> {
        if self.state.is_handshake_finished() {
            return None;
        }
        let mut payload = [0u8; 64];
        self.state.read_message(welcome, &mut payload).ok()?;
        if !self.state.is_handshake_finished() {
            return None;
        }
        let (to_receiver, to_sender) = self.state.dangerously_get_raw_split();
        Some(Keys {
            send: to_receiver,
            recv: to_sender,
        })
    }
}

/// A HELLO that authenticated under the paired key, not answered yet.
///
/// Reading an `NNpsk0` first message takes no Diffie-Hellman: the tokens are `psk, e`,
/// so the payload's key comes from the paired key and the sender's ephemeral key by
/// hashing alone. A forged HELLO is therefore refused for the cost of a BLAKE2s chain
/// and one ChaCha20-Poly1305 open; only the answer ([`CheckedHello::answer`]: a fresh
/// ephemeral key and the `ee` exchange) costs X25519 operations, and that is what the
/// receiver rate-limits. Measured on the project's x86 machine (release): 7 us to
/// refuse a forged HELLO, 94 us to check and answer an authentic one (5,000 forged
/// HELLOs a second: 3.5 % of a core).
pub(crate) struct CheckedHello {
    state: snow::HandshakeState,
    /// The sender's wall clock when it made the HELLO (its clock, not ours).
    pub time_us: u64,
}

impl std::fmt::Debug for CheckedHello {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckedHello")
            .field("time_us", &self.time_us)
            .finish()
    }
}

/// Reads a HELLO's Noise message: `None` if it does not authenticate under `psk` for
/// this session id and epoch.
pub(crate) fn check_hello(
    psk: &Psk,
    session: u32,
    epoch: u8,
    hello: &[u8],
) -> Option<CheckedHello> {
    if hello.len() != HELLO_NOISE {
        return None;
    }
    let prologue = prologue(session, epoch);
    let mut state = builder(psk, &prologue)?.build_responder().ok()?;
    let mut payload = [0u8; 64];
    let n = state.read_message(hello, &mut payload).ok()?;
    let time_us = u64::from_be_bytes(payload.get(..n)?.try_into().ok()?);
    Some(CheckedHello { state, time_us })
}

impl CheckedHello {
    /// The expensive half: the keys and the WELCOME's Noise message.
    pub fn answer(mut self) -> Option<(Keys, Vec<u8>)> {
        let mut msg = vec![0u8; WELCOME_NOISE];
        let n = self.state.write_message(&[], &mut msg).ok()?;
        msg.truncate(n);
        if !self.state.is_handshake_finished() {
            return None;
        }
        let (to_receiver, to_sender) = self.state.dangerously_get_raw_split();
        Some((
            Keys {
                send: to_sender,
                recv: to_receiver,
            },
            msg,
        ))
    }
}

/// Answers a HELLO: the keys, the WELCOME's Noise message and the sender's time, or
/// `None` if the HELLO does not authenticate under `psk`.
#[cfg(test)]
pub(crate) fn welcome(
    psk: &Psk,
    session: u32,
    epoch: u8,
    hello: &[u8],
) -> Option<(Keys, Vec<u8>, u64)> {
    let checked = check_hello(psk, session, epoch, hello)?;
    let time_us = checked.time_us;
    let (keys, msg) = checked.answer()?;
    Some((keys, msg, time_us))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sides_agree_and_a_wrong_key_or_binding_fails() {
        let psk = Psk::from_bytes([1; 32]);
        let (h, m1) = hello(&psk, 9, 1, 1234).unwrap();
        assert_eq!(m1.len(), HELLO_NOISE);
        let (rk, m2, t) = welcome(&psk, 9, 1, &m1).unwrap();
        assert_eq!((m2.len(), t), (WELCOME_NOISE, 1234));
        let mut h = h;
        let sk = h.finish(&m2).unwrap();
        assert_eq!((sk.send, sk.recv), (rk.recv, rk.send));
        assert_ne!(sk.send, sk.recv);
        // Another key, another session id or epoch: the HELLO does not authenticate.
        assert!(welcome(&Psk::from_bytes([2; 32]), 9, 1, &m1).is_none());
        assert!(welcome(&psk, 10, 1, &m1).is_none());
        assert!(welcome(&psk, 9, 2, &m1).is_none());
        for i in 0..m1.len() {
            let mut bad = m1.clone();
            bad[i] ^= 0x40;
            assert!(welcome(&psk, 9, 1, &bad).is_none(), "byte {i}");
        }
        // Fresh keys each session.
        let (h2, m1b) = hello(&psk, 9, 1, 1235).unwrap();
        let (rk2, m2b, _) = welcome(&psk, 9, 1, &m1b).unwrap();
        assert_ne!(rk2.send, rk.send);
        let mut h2 = h2;
        assert!(h2.finish(&m2).is_none(), "another handshake's answer");
        // ... and the forged answer did not spoil it: the real one still completes.
        let sk2 = h2.finish(&m2b).expect("the real answer after a forged one");
        assert_eq!(sk2.send, rk2.recv);
    }
}
