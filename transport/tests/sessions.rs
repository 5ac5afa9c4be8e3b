//! Sessions and long runs of the sans-IO transport core on simulated time: a second
//! sender, a restarted sender, a receiver joining mid-stream, lossy links checked
//! against the decodability rule, and frames the sender refuses. Seeded; nothing sleeps.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{
    addr, fragments, frame_bytes, ms, LinkConfig, Pair, PairConfig, Rx, SourceConfig, MS,
};
use media::EncodedFrame;
use transport::wire::{self, Packet, FRAGMENT_HEADER};
use transport::{
    drain, Machine, Receiver, ReceiverConfig, ReceiverEvent, ReceiverInput, Sender, SenderConfig,
    SenderEvent, SenderInput,
};

#[test]
fn a_second_sender_is_refused_while_the_first_is_active() {
    let config = ReceiverConfig::default();
    let idle = config.session_idle;
    let mut rx = Rx::new(config);
    let (a, b) = (addr(1, 5000), addr(2, 5000));
    let (sa, sb) = (0xAAAA, 0xBBBB);
    let frame =
        |s: u32, f: u32, key: bool| fragments(s, f, key, &frame_bytes(u64::from(f), 150), 126);
    for f in 0..6 {
        for p in frame(sa, f, f == 0) {
            rx.feed(a, &p);
        }
        for p in frame(sb, 1000 + f, true) {
            rx.feed(b, &p);
        }
        rx.advance(ms(33));
    }
    assert_eq!(rx.numbers(), (0..6).collect::<Vec<_>>());
    assert!(rx.frames.iter().all(|(_, f)| f.session == sa));
    assert_eq!(rx.rx.stats().dropped.other_sender, 12);
    assert_eq!(rx.rx.peer(), Some((sa, Some(a))));

    // A falls silent; B is refused until A has been idle for `session_idle`.
    let quiet_since = rx.now - ms(33);
    rx.advance(quiet_since + idle - MS - rx.now);
    rx.feed(b, &frame(sb, 2000, true)[0]);
    assert_eq!(rx.rx.stats().dropped.other_sender, 13);
    rx.advance(MS);
    for p in frame(sb, 2001, true) {
        rx.feed(b, &p);
    }
    assert_eq!(rx.rx.peer(), Some((sb, Some(b))));
    assert_eq!(rx.rx.stats().sessions, 2);
    let (_, last) = rx.frames.last().unwrap();
    assert_eq!((last.number, last.session), (2001, sb));
}

#[test]
fn a_restarted_sender_is_adopted_at_once() {
    for starts_with_keyframe in [true, false] {
        let mut rx = Rx::new(ReceiverConfig::default());
        let (old, new) = (addr(1, 5000), addr(1, 5001));
        let (so, sn) = (0x01D, 0x0E3);
        let frame =
            |s: u32, f: u32, key: bool| fragments(s, f, key, &frame_bytes(u64::from(f), 150), 126);
        for f in 0..10 {
            for p in frame(so, f, f == 0) {
                rx.feed(old, &p);
            }
            rx.advance(ms(33));
        }
        // Restart: new session id, same host, numbering from 0 again.
        let mut expect: Vec<u32> = (0..10).collect();
        if !starts_with_keyframe {
            for p in frame(sn, 0, false) {
                rx.feed(new, &p);
            }
            let t = rx
                .transmits
                .iter()
                .rev()
                .find(|t| {
                    matches!(
                        wire::parse(&t.1.payload),
                        Ok(Packet::KeyframeRequest { .. })
                    )
                })
                .expect("asked the new sender for a keyframe");
            assert_eq!(t.1.to, Some(new));
            assert!(matches!(
                wire::parse(&t.1.payload),
                Ok(Packet::KeyframeRequest { session, highest_seen: Some(0) }) if session == sn
            ));
        }
        for f in 1..4 {
            for p in frame(sn, f, f == 1) {
                rx.feed(new, &p);
            }
            expect.push(f);
        }
        // Late packets of the old session are refused, not flapped back to.
        rx.feed(old, &frame(so, 10, false)[0]);
        assert_eq!(rx.numbers(), expect);
        assert!(rx.frames[10..].iter().all(|(_, f)| f.session == sn));
        let s = rx.rx.stats();
        assert_eq!((s.sessions, s.dropped.other_sender), (2, 1));
        assert_eq!(rx.rx.peer(), Some((sn, Some(new))));
    }
}

#[test]
fn a_receiver_joining_mid_stream_gets_a_picture_within_a_round_trip_and_a_frame() {
    for join_ms in [1010, 1500, 1950] {
        let mut pair = Pair::new(
            PairConfig {
                source: SourceConfig {
                    gop: 60,
                    ..SourceConfig::default()
                },
                ..PairConfig::default()
            },
            6,
        );
        let join = pair.start + ms(join_ms);
        pair.forward.filter = Some(Box::new(move |now, _| now >= join));
        pair.drive_for(ms(2500));
        let (first_arrival, first_frame) = pair.arrivals[0];
        assert!(!pair.sent[pair.index_of(first_frame) as usize].keyframe);
        let requests = pair.keyframe_requests();
        assert_eq!(
            requests[0],
            (first_arrival, Some(first_frame)),
            "asks at once"
        );
        assert_eq!(requests.len(), 1);
        let (shown, first) = &pair.emitted[0];
        assert!(first.frame.keyframe);
        let rtt = ms(20);
        let interval = SourceConfig::default().interval;
        assert!(
            *shown - first_arrival <= rtt + interval,
            "join at {join_ms}: picture after {:?}",
            *shown - first_arrival
        );
        assert_eq!(pair.check_decodable(), 0);
        // From then on every frame arrives.
        let last = pair.index_of(pair.emitted.last().unwrap().1.number);
        assert_eq!(
            pair.emitted.len() as u64,
            last - pair.index_of(first.number) + 1
        );
    }
}

struct LossyCase {
    name: &'static str,
    forward: LinkConfig,
    backward: LinkConfig,
    /// Fewest frames that must be shown out of the 900 sent.
    min_shown: usize,
}

/// 30 simulated seconds over impaired links, several seeds each: every emitted frame
/// is newer than the one before, carries the bytes sent, and has its whole reference
/// chain emitted before it; the drop counters account for every frame.
#[test]
fn lossy_links_keep_the_decodability_rule() {
    let base = LinkConfig {
        jitter: ms(10),
        ..LinkConfig::ideal(ms(20))
    };
    let cases = [
        LossyCase {
            name: "5% loss with jitter",
            forward: LinkConfig {
                loss: 0.05,
                ..base.clone()
            },
            backward: LinkConfig {
                loss: 0.05,
                ..base.clone()
            },
            min_shown: 250,
        },
        LossyCase {
            name: "burst loss",
            forward: LinkConfig {
                loss: 0.01,
                burst: 0.7,
                ..base.clone()
            },
            backward: base.clone(),
            min_shown: 550,
        },
        LossyCase {
            name: "reordering and duplication",
            forward: LinkConfig {
                loss: 0.01,
                reorder: 0.05,
                reorder_delay: ms(8),
                duplicate: 0.05,
                ..base.clone()
            },
            backward: LinkConfig {
                loss: 0.1,
                ..base.clone()
            },
            min_shown: 550,
        },
        LossyCase {
            name: "bottleneck with a tail-drop queue",
            forward: LinkConfig {
                rate: Some(150_000),
                max_queue: 20_000,
                ..base.clone()
            },
            backward: base.clone(),
            min_shown: 450,
        },
    ];
    for case in &cases {
        for seed in 1..=3u64 {
            let mut pair = Pair::new(
                PairConfig {
                    forward: case.forward.clone(),
                    backward: case.backward.clone(),
                    source: SourceConfig {
                        size_spread: 0.5,
                        limit: Some(900),
                        ..SourceConfig::default()
                    },
                    ..PairConfig::default()
                },
                seed,
            );
            pair.drive_for(Duration::from_secs(31));
            let what = format!("{} seed {seed}", case.name);
            let restarts = pair.check_decodable();
            let shown = pair.emitted.len();
            let link = pair.forward.stats;
            assert!(
                shown >= case.min_shown,
                "{what}: {shown} shown, link {link:?}"
            );
            assert!(shown < 900, "{what}: the impairment did nothing");
            assert!(restarts > 0, "{what}: no recovery was exercised");
            let s = pair.receiver.stats();
            assert_eq!(s.frames_emitted as usize, shown);
            let first = pair.index_of(pair.arrivals[0].1);
            let last = pair.index_of(pair.emitted.last().unwrap().1.number);
            let counted = s.frames_emitted + s.dropped.frames();
            assert!(counted <= 900, "{what}: frames counted twice: {s:?}");
            assert!(counted > last - first, "{what}: frames not counted: {s:?}");
            assert_eq!(pair.sender.stats().frames_in, 900);
        }
    }
}

#[test]
fn refused_frames_leave_a_gap_the_receiver_repairs() {
    // A frame too large for the wire is refused; its number is still consumed, so
    // the receiver does not decode the next P-frame against a missing picture.
    let max_packet = FRAGMENT_HEADER + 2;
    let mut sender = Sender::new(
        SenderConfig {
            max_packet,
            ..SenderConfig::default()
        },
        3,
    );
    let mut receiver = Receiver::new(ReceiverConfig::default());
    let now = common::base();
    let mut events = Vec::new();
    let mut emitted = Vec::new();
    for (i, (len, key)) in [(10, true), (140_000, false), (10, false), (10, true)]
        .into_iter()
        .enumerate()
    {
        let at = now + ms(33) * i as u32;
        let frame = EncodedFrame {
            data: Bytes::from(vec![i as u8; len]),
            capture_us: i as u64,
            keyframe: key,
        };
        sender.handle_input(at, SenderInput::Frame(frame.into()));
        let out = transport::drain(&mut sender, at);
        events.extend(out.events);
        let frames = |receiver: &mut Receiver| {
            let ReceiverEvent::Frame(f) = drain(receiver, at).events.pop()?;
            Some(f.number)
        };
        for (_, packet) in out.transmits {
            receiver.handle_input(
                at,
                ReceiverInput::Packet {
                    from: None,
                    data: &packet,
                },
            );
            emitted.extend(frames(&mut receiver));
        }
        receiver.handle_input(at, ReceiverInput::Timeout);
        emitted.extend(frames(&mut receiver));
        receiver.check_invariants();
    }
    assert_eq!(emitted, vec![0, 3]);
    assert_eq!(sender.stats().frames_dropped, 1);
    assert_eq!(events, vec![SenderEvent::ForceKeyframe]);
    assert_eq!(receiver.stats().dropped.undecodable, 1);
    assert_eq!(receiver.stats().dropped.lost, 1);
}
