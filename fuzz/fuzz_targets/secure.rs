//! The secure layer's parsers fed arbitrary packets: the receiver's `Responder` (HELLOs,
//! sealed packets), the sender's `Initiator` (WELCOMEs, sealed feedback), and both
//! sides of pairing. A panic is a bug, never bad input; nothing that does not
//! authenticate may come out as an inner packet.
//!
//! Layout: records of `len: u8`, `target: u8` and `len` bytes.
#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use transport::secure::pairing::{PairInitiator, PairResponder};
use transport::secure::{Initiator, Opened, Psk, Responder};

fuzz_target!(|data: &[u8]| {
    let key = Psk::from_bytes([7; 32]);
    let mut now = Instant::now();
    let from = Some(SocketAddr::from(([10, 0, 0, 1], 5000)));
    let mut responder = Responder::new(key.clone());
    let mut initiator = Initiator::new(key, 1);
    let mut pair_rx = PairResponder::new("1234-5678");
    let Ok(mut pair_tx) = PairInitiator::new("1234-5678") else {
        return;
    };
    let mut buf = Vec::new();
    // A real handshake first, so sealed packets meet real keys.
    if initiator.poll_handshake(now, 1, &mut buf) {
        let _ = responder.open(now, from, &buf);
        if responder.poll_handshake(&mut buf).is_some() {
            let _ = initiator.open(now, &buf);
        }
    }
    let mut rest = data;
    while let [len, target, tail @ ..] = rest {
        let (packet, tail) = tail.split_at((*len as usize).min(tail.len()));
        rest = tail;
        now += Duration::from_millis(u64::from(*target >> 4));
        match target % 4 {
            0 => {
                let opened = responder.open(now, from, packet);
                assert!(!matches!(opened, Opened::Inner(_)), "forged packet opened");
                while responder.poll_handshake(&mut buf).is_some() {}
            }
            1 => {
                let opened = initiator.open(now, packet);
                assert!(
                    !matches!(opened, Opened::Inner(_)),
                    "forged feedback opened"
                );
                let _ = initiator.poll_handshake(now, 2, &mut buf);
            }
            2 => {
                let _ = pair_rx.handle(from, packet);
            }
            _ => {
                pair_tx.handle(packet);
                let _ = pair_tx.poll_transmit(now, &mut buf);
            }
        }
    }
});
