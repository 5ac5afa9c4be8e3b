//! The handshake on simulated time: a lost HELLO or WELCOME costs about a round trip
//! plus the first retry gap (20 ms), whatever the round trip is against the retry
//! interval (5, 50 and 300 ms here), because neither side throws away a handshake in
//! progress when a retry goes out.

mod common;

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use common::{LinkConfig, Pair, PairConfig, SourceConfig};
use transport::secure::{Psk, KIND_HELLO, KIND_WELCOME};
use transport::{ReceiverConfig, SenderConfig};

/// When the sender's HELLOs go out, from its start (its retry schedule).
const HELLO_AT_MS: [u64; 9] = [0, 20, 40, 60, 100, 180, 340, 660, 1160];

/// Drops the first `count` packets of `kind`; counts what it dropped.
fn drop_first(kind: u8, count: u32, dropped: Rc<Cell<u32>>) -> common::Filter {
    Box::new(move |_: Instant, packet: &[u8]| {
        if packet.len() > 3 && packet[3] == kind && dropped.get() < count {
            dropped.set(dropped.get() + 1);
            return false;
        }
        true
    })
}

struct Start {
    /// The sender had keys (it got an authentic WELCOME).
    established: Duration,
    /// The receiver showed its first picture.
    first_picture: Duration,
}

fn start_with(rtt_ms: u64, hellos_lost: u32, welcomes_lost: u32) -> Start {
    let key = Psk::from_bytes([7; 32]);
    let one_way = Duration::from_micros(rtt_ms * 500);
    let mut pair = Pair::new(
        PairConfig {
            sender: SenderConfig {
                secure: Some(key.clone()),
                ..Default::default()
            },
            receiver: ReceiverConfig {
                secure: Some(key),
                ..Default::default()
            },
            forward: LinkConfig::ideal(one_way),
            backward: LinkConfig::ideal(one_way),
            source: SourceConfig {
                limit: Some(120),
                ..SourceConfig::default()
            },
            ..PairConfig::default()
        },
        11,
    );
    let hellos = Rc::new(Cell::new(0));
    let welcomes = Rc::new(Cell::new(0));
    pair.forward.filter = Some(drop_first(KIND_HELLO, hellos_lost, hellos.clone()));
    pair.backward.filter = Some(drop_first(KIND_WELCOME, welcomes_lost, welcomes.clone()));
    let mut established = None;
    // Bounded: 4 s of simulated time in steps of 1 ms.
    for _ in 0..4000 {
        pair.drive_for(Duration::from_millis(1));
        if established.is_none() && pair.sender.stats().secure.handshakes > 0 {
            established = Some(pair.now - pair.start);
        }
        if !pair.emitted.is_empty() {
            break;
        }
    }
    assert_eq!(
        (hellos.get(), welcomes.get()),
        (hellos_lost, welcomes_lost),
        "the link dropped what it was told to"
    );
    let first_picture = pair
        .emitted
        .first()
        .map(|(at, _)| *at - pair.start)
        .unwrap_or_else(|| panic!("no picture in 4 s (RTT {rtt_ms} ms)"));
    Start {
        established: established.expect("a picture without keys"),
        first_picture,
    }
}

#[test]
fn a_lost_hello_or_welcome_costs_about_a_round_trip_whatever_the_round_trip() {
    for rtt_ms in [5, 50, 300] {
        let rtt = Duration::from_millis(rtt_ms);
        for (hellos_lost, welcomes_lost) in [(0, 0), (1, 0), (0, 1), (3, 0), (5, 0), (2, 3)] {
            let s = start_with(rtt_ms, hellos_lost, welcomes_lost);
            // The first HELLO whose WELCOME gets through is number `lost`; its answer
            // completes the handshake a round trip after it left, however many
            // retries went out meanwhile.
            let lost = (hellos_lost + welcomes_lost) as usize;
            let expected = Duration::from_millis(HELLO_AT_MS[lost]) + rtt;
            eprintln!(
                "RTT {rtt_ms} ms, {hellos_lost} HELLOs and {welcomes_lost} WELCOMEs lost: keys at {:?} (expected {expected:?}), first picture at {:?}",
                s.established, s.first_picture
            );
            assert!(
                s.established <= expected + Duration::from_millis(1),
                "RTT {rtt_ms} ms, {hellos_lost}+{welcomes_lost} lost: keys at {:?}, expected by {expected:?}",
                s.established
            );
            // The first picture follows the keys by a one-way trip plus the frame's
            // own transmission (a keyframe that waited for the keys).
            assert!(
                s.first_picture <= s.established + rtt / 2 + Duration::from_millis(40),
                "RTT {rtt_ms} ms: picture at {:?}, keys at {:?}",
                s.first_picture,
                s.established
            );
        }
    }
}

#[test]
fn with_the_first_five_packets_lost_the_first_picture_comes_within_half_a_second() {
    // The router drops the first 5 packets through it: the first 5 HELLOs.
    let s = start_with(5, 5, 0);
    assert!(
        s.first_picture <= Duration::from_millis(250),
        "first picture at {:?}",
        s.first_picture
    );
}
