//! Sealed packets: ChaCha20-Poly1305 over the whole inner packet, with the outer header
//! as associated data.
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | common header: magic, version 2, kind 10 (sealed), session id |
//! | 8 | 1 | key epoch (which handshake's keys) |
//! | 9 | 8 | nonce: the sender's packet counter for this key, from 0 |
//! | 17 | n | the inner packet (a fragment, report, nack, ...), encrypted |
//! | 17+n | 16 | Poly1305 tag over the outer header and the ciphertext |
//!
//! The AEAD nonce is four zero bytes then the counter; each direction has its own key,
//! so a counter never repeats under one key.

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce, Tag};

use super::replay::ReplayWindow;
use super::KIND_SEALED;
use crate::wire::{COMMON_HEADER, MAGIC, VERSION};

/// Bytes of a sealed packet's outer header.
pub(crate) const SEAL_HEADER: usize = COMMON_HEADER + 9;
const TAG: usize = 16;
/// Bytes sealing adds to a packet.
pub const SEAL_OVERHEAD: usize = SEAL_HEADER + TAG;

/// The outer header fields of a sealed packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SealedHeader {
    pub session: u32,
    pub epoch: u8,
    pub nonce: u64,
}

/// Reads a sealed packet's outer header, if it is one and long enough to hold a tag.
pub(crate) fn sealed_header(packet: &[u8]) -> Option<SealedHeader> {
    if packet.len() < SEAL_OVERHEAD
        || u16::from_be_bytes([packet[0], packet[1]]) != MAGIC
        || packet[2] != VERSION
        || packet[3] != KIND_SEALED
    {
        return None;
    }
    Some(SealedHeader {
        session: u32::from_be_bytes(packet[4..8].try_into().ok()?),
        epoch: packet[8],
        nonce: u64::from_be_bytes(packet[9..17].try_into().ok()?),
    })
}

fn nonce(counter: u64) -> Nonce {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&counter.to_be_bytes());
    Nonce::from(n)
}

/// Seals packets in one direction.
pub(crate) struct Sealer {
    cipher: ChaCha20Poly1305,
    session: u32,
    epoch: u8,
    next: u64,
    scratch: Vec<u8>,
}

impl Sealer {
    pub fn new(key: [u8; 32], session: u32, epoch: u8) -> Self {
        Self {
            cipher: ChaCha20Poly1305::new(Key::from_slice(&key)),
            session,
            epoch,
            next: 0,
            scratch: Vec::with_capacity(2048),
        }
    }

    /// Replaces the inner packet in `buf` by its sealed form.
    pub fn seal(&mut self, buf: &mut Vec<u8>) {
        let counter = self.next;
        // 2^64 packets never happen; wrapping would repeat a nonce, so stop short.
        self.next = self.next.checked_add(1).expect("nonce counter exhausted");
        let s = &mut self.scratch;
        s.clear();
        s.extend_from_slice(&MAGIC.to_be_bytes());
        s.push(VERSION);
        s.push(KIND_SEALED);
        s.extend_from_slice(&self.session.to_be_bytes());
        s.push(self.epoch);
        s.extend_from_slice(&counter.to_be_bytes());
        s.extend_from_slice(buf);
        let (header, body) = s.split_at_mut(SEAL_HEADER);
        let tag = self
            .cipher
            .encrypt_in_place_detached(&nonce(counter), header, body)
            .expect("ChaCha20-Poly1305 seals any length a packet can have");
        s.extend_from_slice(&tag);
        std::mem::swap(buf, s);
    }
}

/// Opens packets from one direction, each nonce once.
pub(crate) struct Opener {
    cipher: ChaCha20Poly1305,
    window: ReplayWindow,
}

/// Why a sealed packet was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OpenError {
    /// Its nonce was seen already, or is older than the window.
    Replayed,
    /// The tag does not verify: forged, modified, or sealed with another key.
    Forged,
}

impl Opener {
    pub fn new(key: [u8; 32]) -> Self {
        Self {
            cipher: ChaCha20Poly1305::new(Key::from_slice(&key)),
            window: ReplayWindow::default(),
        }
    }

    /// Authenticates and decrypts a sealed packet (its header already read as
    /// `header`), returning the inner packet.
    pub fn open(&mut self, header: SealedHeader, packet: &[u8]) -> Result<Vec<u8>, OpenError> {
        if !self.window.check(header.nonce) {
            return Err(OpenError::Replayed);
        }
        let (outer, rest) = packet.split_at(SEAL_HEADER);
        let (body, tag) = rest.split_at(rest.len() - TAG);
        let mut plain = body.to_vec();
        self.cipher
            .decrypt_in_place_detached(
                &nonce(header.nonce),
                outer,
                &mut plain,
                Tag::from_slice(tag),
            )
            .map_err(|_| OpenError::Forged)?;
        self.window.accept(header.nonce);
        Ok(plain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_what_it_sealed_once_and_nothing_modified() {
        let key = [7u8; 32];
        let mut sealer = Sealer::new(key, 0xABCD, 3);
        let mut opener = Opener::new(key);
        let inner = b"an inner picam packet".to_vec();
        let mut buf = inner.clone();
        sealer.seal(&mut buf);
        assert_eq!(buf.len(), inner.len() + SEAL_OVERHEAD);
        assert!(
            !buf.windows(inner.len()).any(|w| w == inner),
            "plaintext visible"
        );
        let header = sealed_header(&buf).unwrap();
        assert_eq!((header.session, header.epoch, header.nonce), (0xABCD, 3, 0));
        // Every single-byte change is refused (or not a sealed packet at all).
        for i in 0..buf.len() {
            let mut bad = buf.clone();
            bad[i] ^= 0x01;
            if let Some(h) = sealed_header(&bad) {
                let mut fresh = Opener::new(key);
                assert!(
                    fresh.open(h, &bad).is_err(),
                    "byte {i} modified, still opened"
                );
            }
        }
        assert_eq!(opener.open(header, &buf).unwrap(), inner);
        assert_eq!(opener.open(header, &buf), Err(OpenError::Replayed));
        let mut other = Opener::new([8u8; 32]);
        let mut next = inner.clone();
        sealer.seal(&mut next);
        assert_eq!(
            other.open(sealed_header(&next).unwrap(), &next),
            Err(OpenError::Forged)
        );
        assert!(sealed_header(&next[..SEAL_OVERHEAD - 1]).is_none());
    }
}
