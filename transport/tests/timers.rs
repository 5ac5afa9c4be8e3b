//! Scenario tests of the receiver's and sender's timers on simulated time: keyframe
//! requests (rate-limited, stopped for a quiet sender), timeouts that never lie in the
//! past or spin, memory bounded under a flood of incomplete frames, and the regressions
//! fuzzing found. Every run is seeded and deterministic; nothing sleeps.

mod common;

use std::time::Duration;

use common::{addr, fragments, ms, Rx, MS};
use transport::wire::{self, Packet, FRAGMENT_HEADER};
use transport::ReceiverConfig;

#[test]
fn keyframe_requests_are_rate_limited_and_stop_when_the_sender_goes_quiet() {
    let config = ReceiverConfig::default();
    let (retry, idle) = (config.keyframe_retry, config.session_idle);
    let mut rx = Rx::new(config);
    // Joined mid-stream: single-fragment P-frames every 5 ms for a second.
    for i in 0..200u32 {
        rx.advance(ms(5) * u32::from(i > 0));
        rx.feed(addr(1, 5000), &fragments(1, 100 + i, false, b"p", 64)[0]);
    }
    let last_heard = rx.now;
    rx.advance(ms(3000));
    let times: Vec<Duration> = rx
        .keyframe_requests()
        .iter()
        .map(|(t, _)| *t - rx.start)
        .collect();
    assert_eq!(times[0], Duration::ZERO, "the first P-frame asks at once");
    for pair in times.windows(2) {
        assert!(pair[1] - pair[0] >= retry, "requests too close: {times:?}");
    }
    let last = *times.last().unwrap();
    assert!(
        last < last_heard - rx.start + idle,
        "asked a quiet sender: {times:?}"
    );
    // 0, 100, .., 900 ms while heard, then 1000..1400 ms on the retry timer.
    assert_eq!(times.len(), 15, "{times:?}");
    assert_eq!(rx.timeout, None);
    assert_eq!(rx.rx.stats().keyframe_requests, 15);
    assert!(rx.frames.is_empty());
}

/// While a keyframe is arriving the receiver does not repeat its request, and its
/// timer must not fire in a loop meanwhile (regression: the timeout named the retry
/// time although a timeout input would not act on it, so drivers spun).
#[test]
fn no_retry_and_no_busy_timer_while_a_keyframe_is_in_progress() {
    // Feedback timers off, so the only timer is the frame's deadline.
    let config = ReceiverConfig {
        feedback: common::quiet_feedback(),
        ..Default::default()
    };
    let deadline = config.frame_deadline;
    let mut rx = Rx::new(config);
    let from = addr(1, 5000);
    rx.feed(from, &fragments(1, 100, false, b"p", 64)[0]);
    rx.advance(ms(10));
    let key = fragments(1, 101, true, &[7; 100], FRAGMENT_HEADER + 60);
    rx.feed(from, &key[0]);
    rx.advance(ms(150)); // `Rx::advance` asserts each timer moves past now
    assert_eq!(rx.keyframe_requests().len(), 1);
    rx.advance(ms(100));
    // The keyframe never completed: given up at its deadline, asked for again.
    let requests = rx.keyframe_requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(requests[1].0, rx.start + ms(10) + deadline);
    assert_eq!(rx.rx.stats().dropped.incomplete, 1);
}

#[test]
fn memory_stays_bounded_under_a_flood_of_incomplete_frames() {
    for (keyframes, shuffled) in [(true, false), (false, false), (true, true)] {
        let config = ReceiverConfig::default();
        let mut rx = Rx::new(config);
        let from = addr(1, 5000);
        for p in fragments(1, 0, true, b"key", 64) {
            rx.feed(from, &p);
        }
        let mut numbers: Vec<u32> = (1..=5000).collect();
        if shuffled {
            common::Rng::new(5).shuffle(&mut numbers);
        }
        for &n in &numbers {
            // Fragment 0 of 2; fragment 1 never comes.
            let p = &fragments(1, n, keyframes, &[1; 80], 66)[0];
            rx.feed(from, p); // check_invariants: at most max_in_flight held
            rx.advance(MS);
        }
        rx.advance(ms(1000));
        assert_eq!(rx.numbers(), vec![0]);
        let s = rx.rx.stats();
        let d = s.dropped;
        if shuffled {
            // Late numbers are stale or too old for a slot; nothing is lost twice.
            assert!(d.stale + d.evicted > 1000, "{d:?}");
            assert!(d.frames() <= 5000 + d.evicted, "{d:?}");
        } else {
            assert_eq!(d.frames(), 5000, "every frame counted once: {d:?}");
            assert_eq!(d.lost, 0);
            if keyframes {
                assert_eq!(d.evicted + d.incomplete, 5000, "{d:?}");
                assert!(d.evicted > 4000);
            } else {
                assert!(d.undecodable > 4000, "{d:?}");
            }
        }
        // At most one request per `keyframe_retry` over the 6 s of the run.
        let requests = rx.keyframe_requests().len();
        assert!(requests > 1 && requests <= 6000 / 100 + 1, "{requests}");
    }
}

/// A driver that wakes long after the sender went quiet (a stalled or suspended
/// process) must get a timeout in the future, not the missed report time again: found
/// by fuzzing, where each late timeout named the same past instant and a driver would
/// spin until the next packet.
#[test]
fn a_late_wake_after_the_sender_went_quiet_does_not_spin() {
    for repair in [false, true] {
        let mut rx = Rx::new(ReceiverConfig {
            repair: repair.then(transport::ReceiverRepairConfig::default),
            ..Default::default()
        });
        rx.feed(addr(1, 5000), &fragments(1, 7, false, b"p", 64)[0]);
        assert!(rx.timeout.is_some());
        rx.now += Duration::from_secs(255);
        rx.input(transport::ReceiverInput::Timeout);
        assert!(
            rx.timeout.is_none_or(|t| t > rx.now),
            "repair {repair}: timeout {:?} not after now",
            rx.timeout.map(|t| t - rx.now)
        );
        // Heard again: feedback resumes.
        rx.feed(addr(1, 5000), &fragments(1, 8, false, b"p", 64)[0]);
        rx.advance(ms(100));
        assert!(rx
            .transmits
            .iter()
            .any(|(t, p)| *t > rx.start + Duration::from_secs(255)
                && matches!(wire::parse(&p.payload), Ok(Packet::Report(_)))));
    }
}

/// A frame half the number space past the last frame shown, though just after the
/// last frame given up, is refused: emitted frames stay in order (found by fuzzing:
/// 4294967168 shown, 4294967177 given up, then 2147483528 was shown).
#[test]
fn a_jump_of_half_the_number_space_past_the_last_shown_frame_is_refused() {
    let mut rx = Rx::new(ReceiverConfig::default());
    let from = addr(1, 5000);
    let max_packet = FRAGMENT_HEADER + 64;
    let shown = u32::MAX - 127;
    let held = shown + 9;
    rx.feed(from, &fragments(1, held, true, &[1; 100], max_packet)[1]);
    for p in fragments(1, shown, true, b"key", max_packet) {
        rx.feed(from, &p);
    }
    assert_eq!(rx.numbers(), vec![shown]);
    // The held frame is given up at its deadline.
    rx.advance(Duration::from_secs(2));
    assert_eq!(rx.rx.stats().dropped.incomplete, 1);
    let far = shown.wrapping_add((1 << 31) + 8);
    assert!(wire_after(far, held) && !wire_after(far, shown));
    for p in fragments(1, far, true, b"key", max_packet) {
        rx.feed(from, &p);
    }
    rx.advance(ms(50));
    assert_eq!(
        rx.numbers(),
        vec![shown],
        "a frame before the last shown was emitted"
    );
    assert_eq!(rx.rx.stats().dropped.stale, 1);
}

fn wire_after(a: u32, b: u32) -> bool {
    transport::seq::after(a, b)
}

/// A complete frame waiting (with repair on) for an unseen earlier frame whose packets
/// are being asked for: when the receiver gives those packets up, the frame's wait
/// shortens, and the next timeout must still lie ahead (found by fuzzing: it named a
/// time already past, and a driver would spin).
#[test]
fn giving_up_on_missing_packets_never_leaves_a_timeout_in_the_past() {
    let mut rx = Rx::new(ReceiverConfig {
        repair: Some(transport::ReceiverRepairConfig::default()),
        frame_deadline: Duration::from_secs(1),
        ..Default::default()
    });
    let from = addr(1, 5000);
    let max_packet = FRAGMENT_HEADER + 64;
    let with_seq = |mut p: Vec<u8>, seq: u32| {
        p[8..12].copy_from_slice(&seq.to_be_bytes());
        p
    };
    let key = fragments(1, 0, true, b"key", max_packet);
    rx.feed(from, &with_seq(key[0].clone(), 0));
    assert_eq!(rx.numbers(), vec![0]);
    // Frame 1 never arrives (packets 1..=4); frame 2's halves come 220 ms apart.
    let two = fragments(1, 2, false, &[5; 100], max_packet);
    rx.feed(from, &with_seq(two[0].clone(), 5));
    rx.advance(ms(220));
    rx.feed(from, &with_seq(two[1].clone(), 6));
    // The holes are given up 250 ms after they were seen; Rx::advance checks after
    // every timeout that the next one lies ahead.
    rx.advance(ms(200));
    assert!(
        rx.rx.stats().repair.packets_lost >= 4,
        "{:?}",
        rx.rx.stats().repair
    );
}

/// A frame the decoder's queue refused leaves a hole in its references: the frames
/// queued behind it must not reach the decoder (which would conceal the hole with the
/// previous picture: a stale band), nothing may until the next keyframe, and the
/// dropped ones are counted. Regression: frames already queued to leave still left.
#[test]
fn frames_queued_behind_one_the_decoder_refused_wait_for_a_keyframe() {
    use transport::{Machine, Output, ReceiverEvent, ReceiverInput};
    let mut rx = Rx::new(ReceiverConfig::default());
    let from = addr(1, 5000);
    rx.feed(from, &fragments(7, 0, true, b"key", 64)[0]);
    assert_eq!(rx.numbers(), vec![0]);
    // 2 and 3 arrive before 1, so 1, 2 and 3 become ready to leave together.
    rx.advance(ms(1));
    for n in [2, 3, 1] {
        let packet = &fragments(7, n, false, b"p", 64)[0];
        rx.rx.handle_input(
            rx.now,
            ReceiverInput::Packet {
                from: Some(from),
                data: packet,
            },
        );
    }
    // The driver's loop: frame 1 is refused by a full decoder queue.
    let mut handed_out = Vec::new();
    let mut buf = Vec::new();
    for _ in 0..100 {
        match rx.rx.poll_output(rx.now, &mut buf) {
            Output::Event(ReceiverEvent::Frame(f)) => {
                handed_out.push(f.number);
                if f.number == 1 {
                    rx.rx.handle_input(rx.now, ReceiverInput::DownstreamFull);
                }
            }
            Output::Transmit(_) => {}
            Output::Timeout(_) => break,
        }
    }
    assert_eq!(handed_out, vec![1], "frames behind the refused one left");
    rx.rx.check_invariants();
    // A P-frame still waits; the keyframe resyncs.
    rx.advance(ms(33));
    rx.feed(from, &fragments(7, 4, false, b"p", 64)[0]);
    rx.feed(from, &fragments(7, 5, true, b"key", 64)[0]);
    assert_eq!(rx.numbers(), vec![0, 5]);
    let dropped = rx.rx.stats().dropped;
    assert_eq!(dropped.queue_full, 1);
    assert_eq!(dropped.undecodable, 3, "2, 3 and 4: {dropped:?}");
}

#[test]
fn a_complete_keyframe_does_not_wait_out_an_older_incomplete_frame() {
    let mut rx = Rx::new(ReceiverConfig::default());
    let from = addr(1, 5000);
    rx.feed(from, &fragments(7, 0, true, b"key", 64)[0]);
    assert_eq!(rx.numbers(), vec![0]);
    // Frame 1 stops after its first fragment (the rest lost, their resends stuck
    // behind a router's backlog); keyframe 2 comes whole just after.
    rx.advance(ms(33));
    rx.feed(from, &fragments(7, 1, false, &[1u8; 300], 64)[0]);
    rx.advance(ms(1));
    for packet in fragments(7, 2, true, &[2u8; 100], 64) {
        rx.feed(from, &packet);
    }
    // It waits a grace for frame 1, as any frame would ...
    rx.advance(ms(10));
    assert_eq!(rx.numbers(), vec![0]);
    // ... but not frame 1's whole fragment deadline (200 ms): frame 1 would be shown
    // late and replaced at once.
    rx.advance(ms(50));
    assert_eq!(rx.numbers(), vec![0, 2]);
    let dropped = rx.rx.stats().dropped;
    assert_eq!(dropped.incomplete, 1, "{dropped:?}");
    rx.rx.check_invariants();
}
