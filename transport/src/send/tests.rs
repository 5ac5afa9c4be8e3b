//! Unit tests of `send/mod.rs`.

use super::*;
use crate::congestion::{Controller, Signal};
use crate::wire::{self, Packet};
use media::EncodedFrame;

fn frame(keyframe: bool, len: usize) -> EncodedFrame {
    EncodedFrame {
        data: Bytes::from(vec![0x42; len]),
        capture_us: 1,
        keyframe,
    }
}

fn events(sender: &mut Sender) -> Vec<SenderEvent> {
    sender.events.drain(..).collect()
}

#[test]
fn queue_stays_bounded_under_a_flood_of_frames() {
    let now = Instant::now();
    let mut sender = Sender::new(SenderConfig::default(), 1);
    let mut buf = Vec::new();
    sender.on_frame(now, frame(true, 5000).into());
    // Start the first frame: a partly sent frame is finished, never dropped.
    assert!(sender.poll_transmit(now, &mut buf));
    for _ in 0..10_000 {
        sender.on_frame(now, frame(false, 3000).into());
        sender.check_invariants();
    }
    assert!(sender.queued_frames() <= SenderConfig::default().queue_frames + 1);
    // One keyframe asked for, however many frames were dropped.
    assert_eq!(events(&mut sender), vec![SenderEvent::ForceKeyframe]);
    let stats = sender.stats();
    assert_eq!(stats.frames_in, 10_001);
    assert_eq!(stats.frames_dropped, 10_001 - sender.queued_frames() as u64);
    let mut first = Vec::new();
    while sender.poll_transmit(now, &mut buf) {
        let Ok(Packet::Fragment(h, _)) = wire::parse(&buf) else {
            panic!("not a fragment")
        };
        first.push((h.frame, h.index));
    }
    assert_eq!(first[0], (0, 1), "the started keyframe is finished first");
    assert_eq!(sender.queued_frames(), 0);
}

#[test]
fn keyframe_requests_already_answered_are_ignored() {
    let cases: [(Option<u32>, Option<u32>, bool); 6] = [
        (None, Some(5), true),
        (None, None, true),
        (Some(10), Some(5), false),
        (Some(10), Some(10), true),
        (Some(10), None, true),
        (Some(2), Some(u32::MAX - 1), false),
    ];
    for (keyframe_at, seen, forces) in cases {
        let now = Instant::now();
        let first_frame = keyframe_at.unwrap_or(0);
        let mut sender = Sender::new(
            SenderConfig {
                first_frame,
                ..SenderConfig::default()
            },
            9,
        );
        if keyframe_at.is_some() {
            sender.on_frame(now, frame(true, 10).into());
        }
        let mut request = Vec::new();
        wire::write_keyframe_request(&mut request, 9, seen);
        sender.on_packet(now, &request);
        let want = if forces {
            vec![SenderEvent::ForceKeyframe]
        } else {
            vec![]
        };
        assert_eq!(events(&mut sender), want, "{keyframe_at:?} {seen:?}");
        // A second request before the keyframe arrives asks nothing more.
        sender.on_packet(now, &request);
        assert!(events(&mut sender).is_empty());
        assert_eq!(sender.stats().keyframe_requests, 2);
    }
}

#[test]
fn a_new_keyframe_rearms_the_request() {
    let now = Instant::now();
    let mut sender = Sender::new(SenderConfig::default(), 9);
    let mut request = Vec::new();
    wire::write_keyframe_request(&mut request, 9, None);
    sender.on_packet(now, &request);
    sender.on_frame(now, frame(true, 10).into());
    sender.on_packet(now, &request);
    assert_eq!(events(&mut sender), vec![SenderEvent::ForceKeyframe; 2]);
    assert_eq!(sender.stats().keyframes_forced, 2);
    let mut bye = Vec::new();
    wire::write_bye(&mut bye, 9);
    sender.on_packet(now, &bye);
    wire::write_bye(&mut bye, 10); // another session's: ignored
    sender.on_packet(now, &bye[wire::COMMON_HEADER..]);
    assert_eq!(events(&mut sender), vec![SenderEvent::ReceiverLeft]);
}

#[test]
fn frames_skipped_at_the_source_leave_a_gap_on_the_wire() {
    let now = Instant::now();
    let mut sender = Sender::new(SenderConfig::default(), 9);
    let mut buf = Vec::new();
    let mut numbers = Vec::new();
    for (skipped_before, keyframe) in [(0, true), (0, false), (2, false), (0, false)] {
        sender.on_frame(
            now,
            SourceFrame {
                frame: frame(keyframe, 10),
                skipped_before,
            },
        );
        while sender.poll_transmit(now, &mut buf) {
            let Ok(Packet::Fragment(h, _)) = wire::parse(&buf) else {
                panic!("not a fragment")
            };
            numbers.push(h.frame);
        }
    }
    // Before the fix the source's drops took no number: 0, 1, 2, 3, and the
    // receiver decoded frame 2 against a reference it never got.
    assert_eq!(numbers, vec![0, 1, 4, 5]);
    assert_eq!(sender.stats().frames_skipped_at_source, 2);
    // A P-frame after the skip cannot be decoded: ask for a keyframe.
    assert_eq!(events(&mut sender), vec![SenderEvent::ForceKeyframe]);
}

#[test]
fn an_unanswered_keyframe_command_is_reissued_after_its_timeout() {
    let start = Instant::now();
    let config = SenderConfig::default();
    let timeout = config.keyframe_timeout;
    let mut sender = Sender::new(config, 9);
    let mut request = Vec::new();
    wire::write_keyframe_request(&mut request, 9, None);
    sender.on_packet(start, &request);
    assert_eq!(events(&mut sender), vec![SenderEvent::ForceKeyframe]);
    // The command was lost (full control queue) or ignored: no keyframe comes.
    sender.on_frame(start, frame(false, 10).into());
    sender.on_packet(start + timeout / 2, &request);
    assert!(events(&mut sender).is_empty(), "repeat within the timeout");
    // Before the fix every later request was swallowed until a keyframe arrived.
    sender.on_packet(start + timeout, &request);
    assert_eq!(events(&mut sender), vec![SenderEvent::ForceKeyframe]);
    assert_eq!(sender.stats().keyframes_forced, 2);
}

#[test]
fn a_frame_larger_than_the_receiver_accepts_is_refused_at_the_sender() {
    let now = Instant::now();
    let config = SenderConfig {
        max_packet: 9000,
        max_frame_bytes: 100_000,
        ..SenderConfig::default()
    };
    let mut sender = Sender::new(config, 9);
    assert_eq!(sender.max_frame_bytes(), 100_000);
    let mut buf = Vec::new();
    // Fits the wire's u16 fragment count (9000-byte packets), not the receiver.
    sender.on_frame(now, frame(true, 100_001).into());
    assert!(!sender.poll_transmit(now, &mut buf), "nothing sent");
    sender.on_frame(now, frame(true, 100_000).into());
    assert!(sender.poll_transmit(now, &mut buf));
    let s = sender.stats();
    assert_eq!(
        (s.frames_too_large, s.frames_dropped, s.frames_in),
        (1, 1, 2)
    );
    assert_eq!(events(&mut sender), vec![SenderEvent::ForceKeyframe]);
}

#[test]
fn absurd_report_times_are_counted_and_overflow_nothing() {
    let now = Instant::now();
    let mut sender = Sender::new(
        SenderConfig {
            jam_guard: Some(JamGuardConfig::for_stream(4_000_000, 30)),
            ..SenderConfig::default()
        },
        9,
    );
    let mut buf = Vec::new();
    for i in 0..5u32 {
        sender.on_frame(now, frame(i == 0, 3000).into());
        while sender.poll_transmit(now, &mut buf) {}
    }
    let arrivals = |at_us: u64| {
        (0..5u32)
            .map(|f| wire::Arrival {
                frame: f,
                index: 0,
                at_us,
            })
            .collect::<Vec<_>>()
    };
    for report_us in [u64::MAX, 1 << 63, (1 << 63) - 1, 5, 0, u64::MAX / 2] {
        let mut report = Vec::new();
        wire::write_report(
            &mut report,
            9,
            Some(4),
            None,
            report_us,
            &arrivals(report_us),
        );
        sender.on_packet(now, &report);
        sender.check_invariants();
    }
    let s = sender.stats();
    assert_eq!(s.reports, 6);
    // Back from u64::MAX to 2^63, back to 5, and a zero time: refused (2^63 - 1
    // after 2^63 is within a second; u64::MAX / 2 after zero moves forward).
    assert_eq!(s.reports_implausible, 3, "{s:?}");
    assert!(s.target_bitrate > 0);
}

/// Feeds `cc` reports of a path at `capacity` bits/s with no queue every 30 ms for
/// `seconds` (it ramps up), from `t0`; returns the sender-clock µs reached.
fn clear_path(cc: &mut Controller, t0: Instant, seconds: u32, capacity: f64) -> u64 {
    let mut sent_us = 1_000_000u64;
    for i in 0..seconds * 1000 / 30 {
        let now = t0 + Duration::from_millis(30 * u64::from(i));
        for _ in 0..6 {
            sent_us += 5_000;
            let bytes = (capacity * 0.005 / 8.0) as usize;
            cc.on_signal(
                now,
                Signal::Delivered {
                    sent_us,
                    arrival_us: sent_us + 2_000,
                    bytes,
                },
            );
        }
        cc.on_signal(now, Signal::Report { loss: 0.0 });
    }
    sent_us
}

#[test]
fn a_frame_made_for_the_rate_before_a_brake_is_dropped_and_a_keyframe_asked() {
    let t0 = Instant::now();
    let mut sender = Sender::new(
        SenderConfig {
            jam_guard: Some(JamGuardConfig::for_stream(8_000_000, 30)),
            ..SenderConfig::default()
        },
        9,
    );
    let cc = sender.feedback.controller_mut().expect("jam guard on");
    let mut sent_us = clear_path(cc, t0, 12, 8e6);
    assert!(cc.target_bitrate() > 6_000_000, "{}", cc.target_bitrate());
    // The capacity drops to 2 Mbit/s: the newest deliveries all queue.
    let now = t0 + Duration::from_secs(12);
    for queue_ms in [6, 9, 12, 15, 18, 21] {
        sent_us += 5_000;
        cc.on_signal(
            now,
            Signal::Delivered {
                sent_us,
                arrival_us: sent_us + 2_000 + queue_ms * 1_000,
                bytes: 1_250,
            },
        );
    }
    cc.on_signal(now, Signal::Report { loss: 0.0 });
    assert!(cc.braked_within(now, Duration::ZERO));
    let budget = cc.frame_budget();
    events(&mut sender);
    // The encoder's frame in progress, made at 7 Mbit/s: 4x the new budget.
    sender.on_frame(
        now + Duration::from_millis(20),
        frame(false, 4 * budget).into(),
    );
    assert_eq!(sender.queued_frames(), 0, "dropped unsent");
    assert_eq!(sender.stats().frames_late, 1);
    assert_eq!(events(&mut sender), vec![SenderEvent::ForceKeyframe]);
    // A keyframe made at the new rate goes, and so does a large frame long after the
    // brake (an encoder that overshoots is the controller's business, not a drop's).
    sender.on_frame(
        now + Duration::from_millis(50),
        frame(true, 2 * budget).into(),
    );
    sender.on_frame(
        now + Duration::from_millis(300),
        frame(false, 4 * budget).into(),
    );
    assert_eq!(sender.queued_frames(), 2);
    assert_eq!(sender.stats().frames_late, 1);
}
