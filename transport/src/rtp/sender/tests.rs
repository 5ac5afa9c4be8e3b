//! The RTP sender's unit tests.

use super::*;
use crate::rtp::{RtpReceiver, RtpReceiverConfig};
use crate::{drain, ReceiverEvent, ReceiverInput, SourceFrame};
use bytes::Bytes;
use media::EncodedFrame;

fn frame(keyframe: bool, len: usize, us: u64) -> SourceFrame {
    let mut data = Vec::new();
    if keyframe {
        data.extend_from_slice(&[
            0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1f, 0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80,
        ]);
    }
    data.extend_from_slice(&[0, 0, 0, 1, if keyframe { 0x65 } else { 0x41 }, 0x88]);
    data.extend((0..len).map(|i| (i % 251) as u8 | 1));
    SourceFrame {
        frame: EncodedFrame {
            data: Bytes::from(data),
            capture_us: us,
            keyframe,
        },
        skipped_before: 0,
    }
}

#[test]
fn frames_cross_a_lossless_link_and_a_pli_forces_a_keyframe() {
    let t0 = Instant::now();
    let mut tx = RtpSender::new(RtpSenderConfig {
        initial_seq: 65_500,
        ..Default::default()
    });
    let mut rx = RtpReceiver::new(RtpReceiverConfig {
        rtcp_mux: true,
        ..Default::default()
    });
    let peer = Some("127.0.0.1:5000".parse().unwrap());
    let mut got = Vec::new();
    for i in 0..40u64 {
        let now = t0 + Duration::from_millis(33 * i);
        tx.handle_input(
            now,
            SenderInput::Frame(frame(i % 10 == 0, 5000, 1_000_000 + i * 33_333)),
        );
        let d = drain(&mut tx, now);
        for (_, p) in &d.transmits {
            rx.handle_input(
                now,
                ReceiverInput::Packet {
                    from: peer,
                    data: p,
                },
            );
            for e in drain(&mut rx, now).events {
                let ReceiverEvent::Frame(f) = e;
                got.push(f.frame.keyframe);
            }
        }
        tx.check_invariants();
        rx.check_invariants();
    }
    assert_eq!(got.len(), 40);
    // A PLI from the receiver reaches the encoder as ForceKeyframe.
    rx.handle_input(t0, ReceiverInput::RequestKeyframe);
    let d = drain(&mut rx, t0);
    assert_eq!(d.transmits.len(), 1, "one PLI");
    tx.handle_input(
        t0 + Duration::from_secs(5),
        SenderInput::Packet(&d.transmits[0].1),
    );
    let events = drain(&mut tx, t0 + Duration::from_secs(5)).events;
    assert!(events.contains(&SenderEvent::ForceKeyframe), "{events:?}");
}

#[test]
fn nacked_packets_are_resent_from_history_and_unknown_ones_refused() {
    let t0 = Instant::now();
    let mut tx = RtpSender::new(RtpSenderConfig {
        initial_seq: 10,
        rtcp: false,
        ..Default::default()
    });
    tx.handle_input(t0, SenderInput::Frame(frame(true, 5000, 0)));
    let sent = drain(&mut tx, t0).transmits;
    let mut nack = Vec::new();
    rtcp::nack(&mut nack, 1, tx.ssrc(), &[11, 12, 9000]);
    tx.handle_input(t0, SenderInput::Packet(&nack));
    let again = drain(&mut tx, t0).transmits;
    assert_eq!(again.len(), 2);
    assert_eq!(again[0].1, sent[1].1);
    assert_eq!(again[1].1, sent[2].1);
    assert_eq!(tx.stats().nack_unknown, 1);
}

#[test]
fn a_nack_flood_stays_bounded() {
    let t0 = Instant::now();
    let mut tx = RtpSender::new(RtpSenderConfig {
        rtcp: false,
        initial_seq: 0,
        ..Default::default()
    });
    for i in 0..20 {
        tx.handle_input(t0, SenderInput::Frame(frame(i == 0, 60_000, i)));
    }
    let _ = drain(&mut tx, t0);
    let seqs: Vec<u16> = (0..1024).collect();
    let mut nack = Vec::new();
    rtcp::nack(&mut nack, 1, tx.ssrc(), &seqs);
    for _ in 0..10 {
        tx.handle_input(t0, SenderInput::Packet(&nack));
        tx.check_invariants();
    }
    assert!(tx.queued_packets() <= 512);
}

#[test]
fn after_frames_skipped_at_the_source_only_a_keyframe_goes() {
    let t0 = Instant::now();
    let mut tx = RtpSender::new(RtpSenderConfig::default());
    tx.handle_input(t0, SenderInput::Frame(frame(true, 100, 0)));
    let _ = drain(&mut tx, t0);
    let mut f = frame(false, 100, 1);
    f.skipped_before = 1;
    tx.handle_input(t0, SenderInput::Frame(f));
    let d = drain(&mut tx, t0);
    assert!(d.events.contains(&SenderEvent::ForceKeyframe));
    assert!(d.transmits.iter().all(|(_, p)| rtcp::is_rtcp(p)));
    tx.handle_input(t0, SenderInput::Frame(frame(true, 100, 2)));
    assert!(!drain(&mut tx, t0).transmits.is_empty());
}

#[test]
fn keyframes_carry_parameter_sets_even_when_the_encoder_left_them_out() {
    let t0 = Instant::now();
    let mut tx = RtpSender::new(RtpSenderConfig {
        rtcp: false,
        ..Default::default()
    });
    tx.handle_input(t0, SenderInput::Frame(frame(true, 100, 0)));
    let _ = drain(&mut tx, t0);
    let mut bare = frame(false, 100, 1);
    bare.frame.keyframe = true;
    bare.frame.data = Bytes::from(vec![0, 0, 0, 1, 0x65, 0x88, 1, 2, 3]);
    tx.handle_input(t0, SenderInput::Frame(bare));
    let d = drain(&mut tx, t0);
    // STAP-A (SPS + PPS), then the IDR slice.
    assert_eq!(d.transmits.len(), 2);
    assert_eq!(d.transmits[0].1[RTP_HEADER] & 0x1f, h264::STAP_A);
}

fn guarded() -> RtpSenderConfig {
    RtpSenderConfig {
        initial_seq: 100,
        jam_guard: Some(JamGuardConfig::for_stream(4_000_000, 30)),
        ..Default::default()
    }
}

/// Hands out everything due up to `until`, stepping 1 ms; the RTP sequence numbers.
fn run_until(tx: &mut RtpSender, from: Instant, until: Instant) -> (Vec<u16>, Vec<SenderEvent>) {
    let (mut seqs, mut events) = (Vec::new(), Vec::new());
    let mut now = from;
    while now <= until {
        tx.handle_input(now, SenderInput::Timeout);
        let d = drain(tx, now);
        events.extend(d.events);
        seqs.extend(
            d.transmits
                .iter()
                .filter(|(_, p)| !rtcp::is_rtcp(p))
                .map(|(_, p)| u16::from_be_bytes([p[2], p[3]])),
        );
        tx.check_invariants();
        now += Duration::from_millis(1);
    }
    (seqs, events)
}

#[test]
fn frames_that_waited_past_the_budget_go_whole_and_leave_no_sequence_gap() {
    let t0 = Instant::now();
    let mut tx = RtpSender::new(guarded());
    // The first frame leaves.
    tx.handle_input(t0, SenderInput::Frame(frame(true, 3000, 0)));
    let (first, _) = run_until(&mut tx, t0, t0 + Duration::from_millis(30));
    // Then nobody polls for 150 ms (a blocked socket) while frames pile up.
    for i in 1..5u64 {
        let at = t0 + Duration::from_millis(30 + 10 * i);
        tx.handle_input(at, SenderInput::Frame(frame(false, 3000, i)));
    }
    let late = t0 + Duration::from_millis(200);
    let (after, events) = run_until(&mut tx, late, late);
    assert!(after.is_empty(), "stale frames must not leave: {after:?}");
    assert!(events.contains(&SenderEvent::ForceKeyframe), "{events:?}");
    assert_eq!(tx.stats().frames_late, 4);
    // A P-frame before the keyframe is refused; the keyframe leaves and continues the
    // sequence without a gap.
    tx.handle_input(late, SenderInput::Frame(frame(false, 3000, 5)));
    tx.handle_input(late, SenderInput::Frame(frame(true, 3000, 6)));
    let (next, _) = run_until(&mut tx, late, late + Duration::from_millis(30));
    assert_eq!(next.first(), Some(&first.last().unwrap().wrapping_add(1)));
    assert_eq!(tx.stats().frames_sent, 2);
}

#[test]
fn a_keyframe_is_paced_over_part_of_a_frame_interval_not_burst() {
    let t0 = Instant::now();
    let mut tx = RtpSender::new(guarded());
    tx.handle_input(t0, SenderInput::Frame(frame(true, 60_000, 0)));
    let at_once = drain(&mut tx, t0).transmits.len();
    let (rest, _) = run_until(&mut tx, t0, t0 + Duration::from_millis(33));
    let total = at_once + rest.len();
    assert!(
        total >= 44,
        "all {total} packets leave within the frame interval"
    );
    // An average frame's worth at the start bitrate (1.5 Mbit/s at 30 fps: 6.25 kB, 5
    // packets) goes at once; the rest of the keyframe is spread.
    assert!(
        (4..=8).contains(&at_once),
        "{at_once} of {total} packets went at once"
    );
}

#[test]
fn receiver_reports_echoing_a_growing_round_trip_cut_the_bitrate() {
    let t0 = Instant::now();
    let mut tx = RtpSender::new(guarded());
    let mut now = t0;
    let mut bitrates = Vec::new();
    for i in 0..40u64 {
        tx.handle_input(now, SenderInput::Frame(frame(i == 0, 2000, i)));
        let d = drain(&mut tx, now);
        let sr = d
            .transmits
            .iter()
            .find_map(|(_, p)| rtcp::parse(p).and_then(|f| f.sender_report));
        // The queue grows by 10 ms a report after the first few.
        let rtt = Duration::from_millis(2 + 10 * i.saturating_sub(5));
        if let Some((ssrc, ntp)) = sr {
            let mut rr = Vec::new();
            let block = rtcp::ReportBlockFields {
                media_ssrc: ssrc,
                lsr: rtcp::ntp_middle(ntp),
                ..Default::default()
            };
            rtcp::receiver_report(&mut rr, 9, Some(block), None);
            let back = now + rtt;
            tx.handle_input(back, SenderInput::Packet(&rr));
            for e in drain(&mut tx, back).events {
                if let SenderEvent::SetBitrate(b) = e {
                    bitrates.push(b);
                }
            }
        }
        now += Duration::from_millis(200);
    }
    assert!(tx.stats().reports >= 30, "{:?}", tx.stats());
    let last = *bitrates.last().expect("the bitrate changed");
    assert!(last < 4_000_000 / 2, "{bitrates:?}");
}

/// Frame latencies (ms, by the time the frame left the sender's input) of RTP through a
/// bottleneck of 8 Mbit/s that drops to 2 at 3 s, with or without the receiver's
/// transport-wide feedback, and the sender's reports taken.
fn through_a_step(transport_cc: bool) -> (Vec<(f64, f64)>, SenderStats) {
    let t0 = Instant::now();
    let asked = 8_000_000u32;
    let mut tx = RtpSender::new(RtpSenderConfig {
        initial_seq: 100,
        jam_guard: Some(JamGuardConfig::for_stream(asked, 30)),
        ..Default::default()
    });
    let mut rx = RtpReceiver::new(RtpReceiverConfig {
        rtcp_mux: true,
        transport_cc_interval: transport_cc.then_some(Duration::from_millis(15)),
        ..Default::default()
    });
    let peer: Option<std::net::SocketAddr> = Some("127.0.0.1:5004".parse().unwrap());
    // The bottleneck: a FIFO draining at the capacity, then 1 ms of path.
    let mut free_at = t0;
    let mut to_rx: VecDeque<(Instant, Vec<u8>)> = VecDeque::new();
    let mut to_tx: VecDeque<(Instant, Vec<u8>)> = VecDeque::new();
    let mut bitrate = asked;
    // The encoder makes each frame for the bitrate of two frames before (one being
    // encoded, one waiting in the capture queue when the new rate comes).
    let mut made_for: VecDeque<u32> = VecDeque::from([asked, asked]);
    let mut made: Vec<Instant> = Vec::new();
    let mut latencies = Vec::new();
    let path = Duration::from_millis(1);
    for tick in 0..5_000u64 {
        let now = t0 + Duration::from_millis(tick);
        let capacity_bps = if tick < 3_000 {
            8_000_000.0
        } else {
            2_000_000.0
        };
        if tick % 33 == 0 {
            let n = made.len() as u64;
            made_for.push_back(bitrate);
            let bytes = (made_for.pop_front().unwrap_or(bitrate) / 8 / 30) as usize;
            let mut f = frame(n % 60 == 0, bytes, n);
            // The frame's number in its last bytes, as nibbles (no zero byte can make
            // a start code).
            let mut data = f.frame.data.to_vec();
            let len = data.len();
            for (k, byte) in data[len - 8..].iter_mut().enumerate() {
                *byte = 0x10 | ((n >> (4 * k)) & 0xf) as u8;
            }
            f.frame.data = Bytes::from(data);
            tx.handle_input(now, SenderInput::Frame(f));
            made.push(now);
        }
        tx.handle_input(now, SenderInput::Timeout);
        let d = drain(&mut tx, now);
        for e in d.events {
            if let SenderEvent::SetBitrate(b) = e {
                bitrate = b;
            }
        }
        for (_, p) in d.transmits {
            let start = free_at.max(now);
            free_at = start + Duration::from_secs_f64(p.len() as f64 * 8.0 / capacity_bps);
            to_rx.push_back((free_at + path, p));
        }
        while to_rx.front().is_some_and(|(at, _)| *at <= now) {
            let (_, p) = to_rx.pop_front().unwrap();
            rx.handle_input(
                now,
                ReceiverInput::Packet {
                    from: peer,
                    data: &p,
                },
            );
        }
        rx.handle_input(now, ReceiverInput::Timeout);
        let d = drain(&mut rx, now);
        for (_, p) in d.transmits {
            to_tx.push_back((now + path, p));
        }
        for ReceiverEvent::Frame(f) in d.events {
            let tail = &f.frame.data[f.frame.data.len() - 8..];
            let i = tail
                .iter()
                .enumerate()
                .fold(0usize, |n, (k, b)| n | (usize::from(b & 0xf) << (4 * k)));
            latencies.push((tick as f64 / 1e3, (now - made[i]).as_secs_f64() * 1e3));
        }
        while to_tx.front().is_some_and(|(at, _)| *at <= now) {
            let (_, p) = to_tx.pop_front().unwrap();
            tx.handle_input(now, SenderInput::Packet(&p));
        }
        tx.check_invariants();
        rx.check_invariants();
    }
    (latencies, tx.stats())
}

/// With the receiver's transport-wide feedback, the RTP sender's controller gets a
/// one-way delay and a delivered rate every 15 ms, as on picam's wire: a step from 8 to
/// 2 Mbit/s is braked within a few frames, and the frames the encoder still made for
/// 8 Mbit/s after the brake are dropped unsent (without that: 301 ms). With receiver
/// reports alone (a round trip every 50 ms, no delivered rate) the same step costs far
/// more.
#[test]
fn transport_wide_feedback_brakes_a_capacity_step_within_a_few_frames() {
    let (with, stats) = through_a_step(true);
    let (without, _) = through_a_step(false);
    let worst = |l: &[(f64, f64)]| {
        l.iter()
            .filter(|(t, _)| (3.0..4.0).contains(t))
            .map(|&(_, ms)| ms)
            .fold(0.0, f64::max)
    };
    let settled = |l: &[(f64, f64)]| {
        let mut v: Vec<f64> = l
            .iter()
            .filter(|(t, _)| (4.0..5.0).contains(t))
            .map(|&(_, ms)| ms)
            .collect();
        v.sort_by(f64::total_cmp);
        v[v.len() * 95 / 100]
    };
    assert!(stats.reports > 200, "feedback every 15 ms: {stats:?}");
    let (w, wo) = (worst(&with), worst(&without));
    // The frames the encoder made for 8 Mbit/s after the brake were dropped unsent.
    assert!(stats.frames_late >= 1, "{stats:?}");
    assert!(w <= 200.0, "transient {w:.0} ms with, {wo:.0} ms without");
    assert!(w < wo, "transient {w:.0} ms with, {wo:.0} ms without");
    assert!(
        settled(&with) <= 60.0,
        "settled p95 {:.0} ms at 2 Mbit/s",
        settled(&with)
    );
}

/// Transport-wide feedback is network input: every truncation and every single-byte
/// change of a valid one, and of a numbered RTP packet at the receiver, is taken or
/// refused without a panic, and both machines keep their bounds.
#[test]
fn malformed_transport_feedback_and_extensions_are_survived() {
    let t0 = Instant::now();
    let mut tx = RtpSender::new(guarded());
    tx.handle_input(t0, SenderInput::Frame(frame(true, 20_000, 0)));
    let sent = drain(&mut tx, t0).transmits;
    let media: Vec<Vec<u8>> = sent
        .into_iter()
        .map(|(_, p)| p)
        .filter(|p| !rtcp::is_rtcp(p))
        .collect();
    assert!(media.len() > 5);
    // A valid feedback for them, from picam's own receiver half.
    let mut log = crate::rtp::twcc::ArrivalLog::new(t0);
    for (i, p) in media.iter().enumerate() {
        let packet = rtp_types::RtpPacket::parse(p).unwrap();
        let number = twcc::read_seq(&packet).expect("numbered");
        if i != 2 {
            log.on_packet(t0 + Duration::from_millis(i as u64), number);
        }
    }
    let feedback = log.take_feedback(t0).unwrap();
    let mut valid = Vec::new();
    rtcp::transport_cc(&mut valid, 9, tx.ssrc(), &feedback, 0);
    assert_eq!(
        rtcp::parse(&valid).and_then(|f| f.transport_cc),
        Some((tx.ssrc(), feedback))
    );
    let mut inputs = Vec::new();
    for cut in 0..valid.len() {
        inputs.push(valid[..cut].to_vec());
    }
    for i in 0..valid.len() {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut v = valid.clone();
            v[i] ^= flip;
            inputs.push(v);
        }
    }
    let mut now = t0;
    for input in &inputs {
        now += Duration::from_millis(1);
        tx.handle_input(now, SenderInput::Packet(input));
        drain(&mut tx, now);
        tx.check_invariants();
    }
    // At the receiver: the numbered packets with their header extension cut or changed.
    let mut rx = RtpReceiver::new(RtpReceiverConfig {
        rtcp_mux: true,
        ..Default::default()
    });
    let from: Option<std::net::SocketAddr> = Some("127.0.0.1:5004".parse().unwrap());
    let first = &media[0];
    for i in 12..(12 + twcc::EXTENSION_BYTES + 2) {
        for flip in [0x01u8, 0x10, 0xff] {
            let mut v = first.clone();
            v[i] ^= flip;
            now += Duration::from_millis(1);
            rx.handle_input(now, ReceiverInput::Packet { from, data: &v });
            drain(&mut rx, now);
            rx.check_invariants();
        }
    }
    for cut in 0..first.len() {
        rx.handle_input(
            now,
            ReceiverInput::Packet {
                from,
                data: &first[..cut],
            },
        );
        drain(&mut rx, now);
        rx.check_invariants();
    }
}
