//! The secure layer's parsers fed arbitrary packets: the receiver's `Responder` (HELLOs,
//! sealed packets), the sender's `Initiator` (WELCOMEs, sealed feedback), and both
//! sides of pairing. A panic is a bug, never bad input; nothing that does not
//! authenticate may come out as an inner packet.
//!
//! Pairing runs on a clock of its own that jumps up to 3.4 s a step, so exchanges time
//! out, attempts fail and the receiver locks; the sender's own packets reach the
//! receiver too, so real exchanges run between the forged ones. Both machines'
//! `check_invariants` run after every step, and no answer may be longer than its packet.
//!
//! Layout: records of `len: u8`, `target: u8` and `len` bytes.
#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use transport::secure::pairing::{PairInitiator, PairResponder};
use transport::secure::{Initiator, Opened, Psk, Responder};

/// The Noise pair, handshaken: built on the first record that needs it, since the
/// handshake (four X25519 operations) costs more than everything else a run does.
struct Link {
    responder: Responder,
    initiator: Initiator,
}

impl Link {
    fn new(now: Instant, from: Option<SocketAddr>, buf: &mut Vec<u8>) -> Self {
        let key = Psk::from_bytes([7; 32]);
        let mut responder = Responder::new(key.clone());
        let mut initiator = Initiator::new(key, 1);
        if initiator.poll_handshake(now, 1, buf) {
            let _ = responder.open(now, from, buf);
            if responder.poll_handshake(buf).is_some() {
                let _ = initiator.open(now, buf);
            }
        }
        Self {
            responder,
            initiator,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut now = Instant::now();
    let from = Some(SocketAddr::from(([10, 0, 0, 1], 5000)));
    let mut link: Option<Link> = None;
    let mut pair_now = now;
    let mut pair_rx = PairResponder::new("1234-5678", pair_now);
    // Built on the first record that drives it, for the same reason (a SPAKE2 start).
    let mut pair_tx: Option<PairInitiator> = None;
    let mut buf = Vec::new();
    let mut rest = data;
    while let [len, target, tail @ ..] = rest {
        let (packet, tail) = tail.split_at((*len as usize).min(tail.len()));
        rest = tail;
        now += Duration::from_millis(u64::from(*target >> 4));
        match target % 4 {
            0 => {
                let Link { responder, .. } =
                    link.get_or_insert_with(|| Link::new(now, from, &mut buf));
                let opened = responder.open(now, from, packet);
                assert!(!matches!(opened, Opened::Inner(_)), "forged packet opened");
                while responder.poll_handshake(&mut buf).is_some() {}
            }
            1 => {
                let Link { initiator, .. } =
                    link.get_or_insert_with(|| Link::new(now, from, &mut buf));
                let opened = initiator.open(now, packet);
                assert!(
                    !matches!(opened, Opened::Inner(_)),
                    "forged feedback opened"
                );
                let _ = initiator.poll_handshake(now, 2, &mut buf);
            }
            2 => {
                pair_now += Duration::from_millis(u64::from(*target >> 4).pow(3));
                if let Some(reply) = pair_rx.handle(pair_now, from, packet) {
                    assert!(reply.len() <= packet.len(), "answer larger than its packet");
                }
                pair_rx.handle_timeout(pair_now);
                pair_rx.check_invariants();
            }
            _ => {
                pair_now += Duration::from_millis(u64::from(*target >> 4).pow(3));
                if pair_tx.is_none() {
                    pair_tx = PairInitiator::new("1234-5678").ok();
                }
                let Some(pair_tx) = pair_tx.as_mut() else {
                    continue;
                };
                pair_tx.handle(pair_now, packet);
                // What the sender sends now reaches the receiver, and its answer the sender.
                while pair_tx.poll_transmit(pair_now, &mut buf) {
                    if let Some(reply) = pair_rx.handle(pair_now, from, &buf) {
                        assert!(reply.len() <= buf.len(), "answer larger than its packet");
                        pair_tx.handle(pair_now, &reply);
                    }
                }
                pair_tx.check_invariants();
                pair_rx.check_invariants();
            }
        }
    }
});
