//! Encryption and authentication of every packet (picam's native wire, UDP and TCP).
//!
//! Sans-IO, like the rest of the transport: the sender holds an [`Initiator`], the
//! receiver a [`Responder`]; they take packets and `now` in and hand sealed packets,
//! handshake packets and timeouts out through the machines' one output shape.
//!
//! - **Keys.** A 32-byte pre-shared key ([`Psk`]) from pairing or a key file. Each
//!   session derives fresh keys from a Noise `NNpsk0` handshake (X25519, ChaCha20-Poly1305,
//!   BLAKE2s, via `snow`) keyed with it: a recorded session does not decrypt another, and
//!   knowing the key later does not decrypt a recording (the ephemeral keys are gone).
//! - **Sealing.** Every packet after the handshake is sealed with ChaCha20-Poly1305 (fast
//!   without AES instructions, which a Raspberry Pi 4 lacks), its outer header as
//!   associated data, a 64-bit counter as nonce, and a replay window on the way in.
//!   What does not authenticate is dropped and counted before any parser sees it.
//! - **Pairing.** SPAKE2 with a short code turns the code into a key
//!   ([`pairing`]); an overheard or guessed code gives nothing offline.
//!
//! The packet layouts are in `ARCHITECTURE.md` ("Secure wire").

mod handshake;
pub mod key;
mod link;
pub mod pairing;
mod replay;
mod seal;

pub use key::{KeyError, Psk};
pub use link::{Initiator, Opened, Responder, SecureStats};
pub use seal::SEAL_OVERHEAD;

/// Kind byte of a handshake's first message (sender to receiver).
pub const KIND_HELLO: u8 = 8;
/// Kind byte of a handshake's answer (receiver to sender).
pub const KIND_WELCOME: u8 = 9;
/// Kind byte of a sealed packet.
pub const KIND_SEALED: u8 = 10;
/// Kind bytes of the pairing exchange.
pub const KIND_PAIR: [u8; 3] = [11, 12, 13];

/// Whether `packet` is one of the secure wire's packets (handshake, sealed or
/// pairing), judged from its common header only: for telling a peer's mode apart.
pub fn is_secure_packet(packet: &[u8]) -> bool {
    packet.len() >= crate::wire::COMMON_HEADER
        && u16::from_be_bytes([packet[0], packet[1]]) == crate::wire::MAGIC
        && packet[2] == crate::wire::VERSION
        && matches!(packet[3], KIND_HELLO | KIND_WELCOME | KIND_SEALED | 11..=13)
}
