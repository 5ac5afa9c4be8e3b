//! Scenario tests of the sans-IO transport core on simulated time: fragmentation, loss,
//! reordering, duplication, the sequence wrap and deadlines (keyframe requests, timers,
//! bounded memory and the fuzz-found regressions are in `timers.rs`; sessions and long
//! lossy runs in `sessions.rs`). Every run is seeded and deterministic; nothing sleeps.

mod common;

use std::time::Duration;

use common::{
    addr, fragments, frame_bytes, ms, LinkConfig, Pair, PairConfig, Rx, SourceConfig, MS,
};
use media::EncodedFrame;
use transport::wire::{self, Packet, FRAGMENT_HEADER};
use transport::{Machine, ReceiverConfig, Sender, SenderConfig, SenderEvent, SenderInput};

/// A payload size giving exactly `n` fragments at the default `max_packet`.
fn sized_for(n: usize) -> usize {
    let payload = SenderConfig::default().max_packet - FRAGMENT_HEADER;
    n * payload - 10
}

#[test]
fn fragmentation_round_trips_at_every_size() {
    let mut total_cases = 0;
    for max_packet in [
        FRAGMENT_HEADER + 2,
        FRAGMENT_HEADER + 3,
        FRAGMENT_HEADER + 7,
        64,
        1400,
        1472,
        9000,
    ] {
        // Payloads are even (Reed-Solomon shards are whole 16-bit words).
        let p = (max_packet - FRAGMENT_HEADER) & !1;
        let mut sizes = vec![
            0,
            1,
            p.saturating_sub(1),
            p,
            p + 1,
            2 * p,
            3 * p,
            7 * p - 1,
            500_000,
        ];
        // The largest frame the wire can carry, and one byte more, where that is cheap.
        if p <= 2 {
            sizes.extend([p * u16::MAX as usize, p * u16::MAX as usize + 1]);
        }
        let mut sender = Sender::new(
            SenderConfig {
                max_packet,
                ..SenderConfig::default()
            },
            7,
        );
        let mut rx = Rx::new(ReceiverConfig::default());
        let from = addr(1, 5000);
        let (mut bytes_sent, mut bytes_delivered) = (0, 0);
        for (i, &size) in sizes.iter().enumerate() {
            total_cases += 1;
            let data = frame_bytes(i as u64, size);
            let fits = size.div_ceil(p).max(1) <= u16::MAX as usize;
            assert_eq!(size <= sender.max_frame_bytes(), fits);
            let frame = EncodedFrame {
                data: data.clone(),
                capture_us: 42 + i as u64,
                keyframe: true,
            };
            let refused_before = sender.stats().frames_too_large;
            sender.handle_input(rx.now, SenderInput::Frame(frame.into()));
            let out = transport::drain(&mut sender, rx.now);
            let accepted = sender.stats().frames_too_large == refused_before;
            assert_eq!(accepted, fits, "max_packet {max_packet} size {size}");
            if !accepted {
                assert_eq!(out.events, vec![SenderEvent::ForceKeyframe]);
                assert!(out.transmits.is_empty());
                continue;
            }
            let mut count = 0;
            for (_, packet) in out.transmits {
                assert!(packet.len() <= max_packet, "packet over max_packet");
                count += 1;
                rx.feed(from, &packet);
            }
            sender.check_invariants();
            assert_eq!(count, size.div_ceil(p).max(1), "fragments of {size}");
            // A refused frame before this one leaves a gap: the keyframe waits out the
            // reorder grace, then leaves.
            rx.advance(ms(20));
            let (_, got) = rx.frames.pop().expect("frame emitted");
            assert_eq!(got.frame.data, data, "max_packet {max_packet} size {size}");
            assert_eq!(got.frame.capture_us, 42 + i as u64);
            assert!(rx.frames.is_empty(), "one frame in, one frame out");
            bytes_sent += size;
            bytes_delivered += got.frame.data.len();
        }
        assert_eq!(bytes_sent, bytes_delivered);
        let stats = rx.rx.stats();
        assert_eq!(stats.dropped.malformed + stats.dropped.duplicate, 0);
    }
    assert!(total_cases > 60);
}

/// Losing any one fragment of a P-frame loses that frame and every P-frame up to the
/// next keyframe, which the receiver asks for exactly once; after it the stream
/// resumes. Run at the start of the number space and across the wrap.
#[test]
fn loss_of_any_fragment_recovers_through_one_keyframe() {
    const TARGET: u32 = 3;
    for first_frame in [0, u32::MAX - 2] {
        for lost_index in 0..5u16 {
            let config = PairConfig {
                sender: SenderConfig {
                    first_frame,
                    ..SenderConfig::default()
                },
                source: SourceConfig {
                    gop: 0,
                    key_size: sized_for(5),
                    p_size: sized_for(5),
                    limit: Some(45),
                    ..SourceConfig::default()
                },
                ..PairConfig::default()
            };
            let mut pair = Pair::new(config, 1);
            let target = first_frame.wrapping_add(TARGET);
            pair.forward.filter = Some(Box::new(
                move |_, p| !matches!(wire::parse(p), Ok(Packet::Fragment(h, _)) if h.frame == target && h.index == lost_index),
            ));
            pair.drive_for(ms(2000));
            let case = format!("first_frame {first_frame} lost index {lost_index}");

            assert_eq!(pair.forward.stats.filtered, 1, "{case}");
            pair.check_decodable();
            let got: Vec<u64> = pair
                .emitted_numbers()
                .iter()
                .map(|&n| pair.index_of(n))
                .collect();
            assert_eq!(&got[..3], &[0, 1, 2], "{case}");
            let resumed = got[3];
            assert!(resumed > u64::from(TARGET), "{case}: {got:?}");
            assert!(pair.sent[resumed as usize].keyframe, "{case}");
            assert!(pair.sent[resumed as usize - 1].keyframe.eq(&false));
            // From the forced keyframe on nothing is lost.
            let expect: Vec<u64> = (resumed..45).collect();
            assert_eq!(&got[3..], &expect[..], "{case}");

            let stats = pair.receiver.stats();
            assert_eq!(stats.dropped.incomplete, 1, "{case}: {stats:?}");
            assert_eq!(stats.dropped.lost, 0, "{case}");
            assert_eq!(
                stats.dropped.frames() + stats.frames_emitted,
                45,
                "{case}: every frame counted once: {stats:?}"
            );
            let requests = pair.keyframe_requests();
            assert_eq!(requests.len(), 1, "{case}: {requests:?}");
            assert_eq!(
                pair.events
                    .iter()
                    .filter(|(_, e)| *e == SenderEvent::ForceKeyframe)
                    .count(),
                1,
                "{case}"
            );
            // The request goes out when the frame is given up, and the picture is back
            // within a round trip plus one frame interval.
            let (asked, _) = requests[0];
            let first_fragment = pair.arrivals.iter().find(|(_, f)| *f == target).unwrap().0;
            assert_eq!(
                asked,
                first_fragment + ReceiverConfig::default().frame_deadline
            );
            let (shown, _) = pair.emitted[3];
            assert!(
                shown - asked <= ms(20) + Duration::from_micros(33_334),
                "{case}"
            );
        }
    }
}

/// A hand-written delivery schedule: (ms after start, frame, fragment index).
struct ReorderCase {
    name: &'static str,
    schedule: Vec<(u64, u32, u16)>,
    emitted: Vec<u32>,
    lost: u64,
    undecodable: u64,
    stale: u64,
}

fn in_order(frames: std::ops::Range<u32>, per_frame: u16) -> Vec<(u64, u32, u16)> {
    frames
        .flat_map(|f| (0..per_frame).map(move |i| (u64::from(f) * 33, f, i)))
        .collect()
}

#[test]
fn reordered_fragments_and_frames() {
    let mut cases = vec![
        ReorderCase {
            name: "fragments reversed within each frame",
            schedule: (0..7u32)
                .flat_map(|f| (0..3u16).rev().map(move |i| (u64::from(f) * 33, f, i)))
                .collect(),
            emitted: (0..7).collect(),
            lost: 0,
            undecodable: 0,
            stale: 0,
        },
        ReorderCase {
            name: "fragments of two frames interleaved",
            schedule: {
                let mut s = in_order(0..1, 3);
                for i in 0..3 {
                    s.push((33, 1, i));
                    s.push((33, 2, i));
                }
                s.extend(in_order(3..7, 3));
                s
            },
            emitted: (0..7).collect(),
            lost: 0,
            undecodable: 0,
            stale: 0,
        },
        ReorderCase {
            name: "frame 2 before frame 1, within the reorder grace",
            schedule: {
                let mut s = in_order(0..1, 3);
                s.extend((0..3).map(|i| (66, 2, i)));
                s.extend((0..3).map(|i| (66 + 14, 1, i)));
                s.extend(in_order(3..7, 3));
                s
            },
            emitted: (0..7).collect(),
            lost: 0,
            undecodable: 0,
            stale: 0,
        },
        ReorderCase {
            name: "frame 1 later than the reorder grace: skipped, stale when it comes",
            schedule: {
                let mut s = in_order(0..1, 3);
                s.extend((0..3).map(|i| (66, 2, i)));
                s.extend((0..3).map(|i| (66 + 16, 1, i)));
                s.extend(in_order(3..7, 3));
                s.extend((0..3).map(|i| (7 * 33, 7, i))); // keyframe
                s.extend((0..3).map(|i| (8 * 33, 8, i)));
                s
            },
            emitted: vec![0, 7, 8],
            lost: 1,
            undecodable: 5,
            // Frame 1 whole, then fragments 1 and 2 of each of P-frames 3..6: the first
            // fragment of each is given up at once as undecodable.
            stale: 3 + 2 * 4,
        },
        ReorderCase {
            name: "last fragment of frame 1 arrives after all of frame 2",
            schedule: {
                let mut s = in_order(0..1, 3);
                s.extend([
                    (33, 1, 0),
                    (33, 1, 1),
                    (40, 2, 0),
                    (40, 2, 1),
                    (40, 2, 2),
                    (45, 1, 2),
                ]);
                s.extend(in_order(3..7, 3));
                s
            },
            emitted: (0..7).collect(),
            lost: 0,
            undecodable: 0,
            stale: 0,
        },
    ];
    for case in &mut cases {
        let max_packet = FRAGMENT_HEADER + 100;
        let session = 0x5E55;
        let packets = |f: u32| {
            fragments(
                session,
                f,
                f % 7 == 0,
                &frame_bytes(u64::from(f), 250),
                max_packet,
            )
        };
        case.schedule.sort_by_key(|&(t, _, _)| t); // stable: keeps the listed order
        let mut rx = Rx::new(ReceiverConfig::default());
        for &(t, f, i) in &case.schedule {
            let at = rx.start + ms(t);
            rx.advance(at - rx.now);
            rx.feed(addr(1, 5000), &packets(f)[i as usize]);
        }
        rx.advance(ms(1000));
        assert_eq!(rx.numbers(), case.emitted, "{}", case.name);
        for (_, f) in &rx.frames {
            assert_eq!(
                f.frame.data,
                frame_bytes(u64::from(f.number), 250),
                "{}",
                case.name
            );
        }
        let d = rx.rx.stats().dropped;
        assert_eq!(
            (d.lost, d.undecodable, d.stale),
            (case.lost, case.undecodable, case.stale),
            "{}: {d:?}",
            case.name
        );
        assert_eq!(
            d.duplicate + d.malformed + d.incomplete + d.evicted,
            0,
            "{}",
            case.name
        );
    }
}

#[test]
fn duplicates_are_counted_and_never_emitted_twice() {
    let mut rx = Rx::new(ReceiverConfig::default());
    let max_packet = FRAGMENT_HEADER + 100;
    for f in 0..6u32 {
        for p in fragments(9, f, f == 0, &frame_bytes(u64::from(f), 250), max_packet) {
            rx.feed(addr(1, 5000), &p);
            rx.feed(addr(1, 5000), &p);
        }
        rx.advance(ms(33));
    }
    assert_eq!(rx.numbers(), (0..6).collect::<Vec<_>>());
    let d = rx.rx.stats().dropped;
    // Copies of the first two fragments meet the partial frame; the copy of the last
    // comes after the frame has left, so it is stale.
    assert_eq!((d.duplicate, d.stale), (12, 6), "{d:?}");
    assert_eq!(rx.rx.stats().frames_complete, 6);

    // And on a link that duplicates (and reorders) a third of everything.
    let mut pair = Pair::new(
        PairConfig {
            forward: LinkConfig {
                duplicate: 0.3,
                reorder: 0.1,
                reorder_delay: ms(4),
                ..LinkConfig::ideal(ms(10))
            },
            source: SourceConfig {
                limit: Some(90),
                ..SourceConfig::default()
            },
            // No pings: their pongs would be duplicated too, but are not fragments.
            receiver: ReceiverConfig {
                feedback: common::quiet_feedback(),
                ..Default::default()
            },
            ..PairConfig::default()
        },
        3,
    );
    pair.drive_for(ms(3500));
    assert!(pair.forward.stats.duplicated > 50);
    assert_eq!(pair.check_decodable(), 0, "no gaps on a lossless link");
    assert_eq!(pair.emitted.len(), pair.sent.len());
    let d = pair.receiver.stats().dropped;
    assert_eq!(d.duplicate + d.stale, pair.forward.stats.duplicated);
}

#[test]
fn frame_numbers_wrap() {
    for first_frame in [u32::MAX - 30, u32::MAX, (1 << 31) - 5] {
        let mut pair = Pair::new(
            PairConfig {
                sender: SenderConfig {
                    first_frame,
                    ..SenderConfig::default()
                },
                forward: LinkConfig {
                    jitter: ms(8),
                    ..LinkConfig::ideal(ms(10))
                },
                ..PairConfig::default()
            },
            4,
        );
        pair.drive_for(ms(3000));
        assert_eq!(pair.check_decodable(), 0);
        let expect: Vec<u32> = (0..pair.sent.len() as u32 - 1)
            .map(|i| first_frame.wrapping_add(i))
            .collect();
        let got = pair.emitted_numbers();
        assert_eq!(
            &got[..expect.len()],
            &expect[..],
            "first_frame {first_frame}"
        );
        assert!(pair.keyframe_requests().is_empty());
    }
}

#[test]
fn incomplete_frame_is_given_up_at_its_deadline() {
    // Feedback timers off, so the only timer is the frame's deadline.
    let config = ReceiverConfig {
        feedback: common::quiet_feedback(),
        ..Default::default()
    };
    let deadline = config.frame_deadline;
    let mut rx = Rx::new(config);
    let from = addr(1, 5000);
    let max_packet = FRAGMENT_HEADER + 100;
    let frame =
        |f: u32, key: bool| fragments(1, f, key, &frame_bytes(u64::from(f), 150), max_packet);
    for p in frame(0, true) {
        rx.feed(from, &p);
    }
    rx.advance(ms(10));
    let started = rx.now;
    rx.feed(from, &frame(1, false)[0]);
    assert_eq!(rx.timeout, Some(started + deadline));
    rx.advance(deadline - MS);
    assert_eq!(rx.rx.stats().dropped.incomplete, 0);
    assert!(rx.keyframe_requests().is_empty());
    assert!(!rx.rx.waiting_for_keyframe());
    rx.advance(MS);
    assert_eq!(rx.rx.stats().dropped.incomplete, 1);
    assert!(rx.rx.waiting_for_keyframe());
    assert_eq!(rx.keyframe_requests(), vec![(started + deadline, Some(1))]);
    // Its missing half is now stale, a complete P-frame is undecodable, a keyframe ends
    // the wait.
    rx.feed(from, &frame(1, false)[1]);
    for p in frame(2, false) {
        rx.feed(from, &p);
    }
    for p in frame(3, true) {
        rx.feed(from, &p);
    }
    let d = rx.rx.stats().dropped;
    // (Frame 2 is undecodable from its first fragment on; its second is stale.)
    assert_eq!((d.stale, d.undecodable), (2, 1));
    assert_eq!(rx.numbers(), vec![0, 3]);
    assert!(!rx.rx.waiting_for_keyframe());
}
