//! Encryption on simulated time: the stream flows sealed between paired peers, and
//! nothing unauthenticated reaches the receiver's parser or gets a reply: another
//! key, replays, a forged flood, a second sender, a restart of either side, and a
//! mismatch of modes.

mod common;

use std::time::Duration;

use common::{ms, LinkConfig, Pair, PairConfig, SourceConfig};
use transport::secure::{Psk, KIND_HELLO, KIND_SEALED};
use transport::{Machine, Receiver, ReceiverConfig, ReceiverInput, SenderConfig, SenderInput};

fn key(n: u8) -> Psk {
    Psk::from_bytes([n; 32])
}

fn config(sender_key: Option<Psk>, receiver_key: Option<Psk>) -> PairConfig {
    PairConfig {
        sender: SenderConfig {
            secure: sender_key,
            ..Default::default()
        },
        receiver: ReceiverConfig {
            secure: receiver_key,
            ..Default::default()
        },
        source: SourceConfig {
            limit: Some(90),
            ..SourceConfig::default()
        },
        ..PairConfig::default()
    }
}

#[test]
fn paired_peers_stream_sealed_and_nothing_readable_crosses() {
    let mut pair = Pair::new(config(Some(key(1)), Some(key(1))), 1);
    // Record what crosses the forward link.
    let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::<Vec<u8>>::new()));
    let tap = seen.clone();
    pair.forward.filter = Some(Box::new(move |_, p: &[u8]| {
        tap.borrow_mut().push(p.to_vec());
        true
    }));
    pair.drive_for(Duration::from_secs(4));
    let restarts = pair.check_decodable();
    assert!(restarts <= 1);
    assert!(
        pair.emitted.len() >= 85,
        "{} of 90 shown",
        pair.emitted.len()
    );
    let sent = seen.borrow();
    assert!(sent
        .iter()
        .all(|p| p[3] == KIND_SEALED || p[3] == KIND_HELLO));
    // No frame's bytes appear in the clear (the source writes its index at the start
    // of every frame, then seeded bytes: look for a 32-byte run of the first frame).
    let needle = &pair.sent[1].data[8..40];
    assert!(
        !sent
            .iter()
            .any(|p| p.windows(needle.len()).any(|w| w == needle)),
        "frame bytes visible on the wire"
    );
    assert_eq!(pair.receiver.stats().secure.handshakes, 1);
}

#[test]
fn another_key_gets_no_picture_and_no_reply() {
    let mut pair = Pair::new(config(Some(key(1)), Some(key(2))), 2);
    pair.drive_for(Duration::from_secs(3));
    assert!(pair.emitted.is_empty());
    assert!(
        pair.feedback.is_empty(),
        "the receiver answered an unauthenticated sender"
    );
    let s = pair.receiver.stats();
    assert!(s.secure.unauthenticated > 0, "{s:?}");
    assert_eq!((s.datagrams > 0, s.sessions), (true, 0));
}

#[test]
fn mismatched_modes_fail_visibly_not_silently() {
    // Encrypting sender, --insecure receiver: refused as encrypted, counted.
    let mut pair = Pair::new(config(Some(key(1)), None), 3);
    pair.drive_for(Duration::from_secs(2));
    assert!(pair.emitted.is_empty());
    assert!(pair.receiver.stats().dropped.encrypted > 0);
    // --insecure sender, encrypting receiver: refused as plaintext, counted.
    let mut pair = Pair::new(config(None, Some(key(1))), 4);
    pair.drive_for(Duration::from_secs(2));
    assert!(pair.emitted.is_empty());
    assert!(pair.feedback.is_empty());
    assert!(pair.receiver.stats().secure.plaintext > 0);
}

#[test]
fn replayed_and_duplicated_packets_are_refused_and_the_stream_is_intact() {
    let link = LinkConfig {
        duplicate: 0.3,
        ..LinkConfig::ideal(ms(5))
    };
    let mut pair = Pair::new(
        PairConfig {
            forward: link,
            ..config(Some(key(1)), Some(key(1)))
        },
        5,
    );
    pair.drive_for(Duration::from_secs(4));
    pair.check_decodable();
    assert!(pair.emitted.len() >= 85);
    let s = pair.receiver.stats();
    assert!(s.secure.replayed > 50, "{s:?}");
    assert_eq!(s.dropped.duplicate, 0, "replays never reached the parser");
}

#[test]
fn a_forged_flood_and_a_second_sender_leave_the_paired_stream_alone() {
    let mut pair = Pair::new(config(Some(key(1)), Some(key(1))), 6);
    pair.drive_for(Duration::from_secs(1));
    let shown_before = pair.emitted.len();
    // Garbage shaped like sealed packets, HELLOs under another key, and a whole second
    // sender with its own key, all from the paired sender's address.
    let mut intruder = transport::Sender::new(
        SenderConfig {
            secure: Some(key(9)),
            ..Default::default()
        },
        0xBAD,
    );
    let from = Some(pair.sender_addr);
    for i in 0..20_000u32 {
        let mut forged = vec![0x50, 0x43, 2, KIND_SEALED];
        forged.extend_from_slice(&pair.sender.session().to_be_bytes());
        forged.extend((0..1200).map(|b| (b as u32 ^ i) as u8));
        pair.receiver_input(ReceiverInput::Packet {
            from,
            data: &forged,
        });
        if i % 100 == 0 {
            intruder.handle_input(pair.now, SenderInput::Timeout);
            for (_, p) in transport::drain(&mut intruder, pair.now).transmits {
                pair.receiver_input(ReceiverInput::Packet { from, data: &p });
            }
        }
    }
    pair.drive_for(Duration::from_secs(2));
    pair.check_decodable();
    let s = pair.receiver.stats();
    assert!(s.secure.unauthenticated >= 20_000, "{s:?}");
    assert_eq!(s.sessions, 1, "the intruder was never adopted");
    assert!(
        pair.emitted.len() >= shown_before + 55,
        "the stream went on"
    );
}

#[test]
fn either_side_restarting_resyncs_by_itself() {
    let mut pair = Pair::new(
        PairConfig {
            source: SourceConfig {
                limit: Some(300),
                ..SourceConfig::default()
            },
            ..config(Some(key(1)), Some(key(1)))
        },
        7,
    );
    pair.drive_for(Duration::from_secs(2));
    let before = pair.emitted.len();
    assert!(before >= 55);
    // The receiver restarts: it has no keys; the sender hears no feedback and
    // handshakes again within a few seconds.
    pair.receiver = Receiver::new(ReceiverConfig {
        secure: Some(key(1)),
        ..Default::default()
    });
    pair.drive_for(Duration::from_secs(5));
    let after = pair.emitted.len();
    assert!(
        after > before + 30,
        "no pictures after the receiver restarted"
    );
    assert!(pair.sender.stats().secure.handshakes >= 2);
}

#[test]
fn the_first_keyframe_waits_for_the_keys_instead_of_being_dropped() {
    // A source that cannot make keyframes on request (a file): only its first frame
    // and every 60th are keyframes. The first must survive the handshake.
    let mut pair = Pair::new(config(Some(key(1)), Some(key(1))), 8);
    pair.drive_for(Duration::from_secs(3));
    let first = pair.emitted.first().map(|(_, f)| f.number);
    assert_eq!(
        first,
        Some(0),
        "the stream did not start at its first keyframe"
    );
    assert!(pair.emitted.len() >= 85, "{}", pair.emitted.len());
}
