//! The RTP receiver against picam's RTP sender over a simulated link: NACK repair,
//! senders that ignore NACKs, receiver reports.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use bytes::Bytes;
use media::EncodedFrame;

use super::*;
use crate::rtp::{RtpSender, RtpSenderConfig};
use crate::{drain, SenderEvent, SenderInput, SourceFrame};

/// An access unit the depacketizer accepts: SPS and PPS before an IDR slice, or a P
/// slice; `len` bytes of slice data, the first three of which carry `n` (high bits set,
/// so no start code can appear).
fn access_unit(keyframe: bool, len: usize, n: u64) -> SourceFrame {
    let mut data = Vec::new();
    if keyframe {
        data.extend_from_slice(&[
            0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1f, 0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80,
        ]);
    }
    data.extend_from_slice(&[0, 0, 0, 1, if keyframe { 0x65 } else { 0x41 }, 0x88]);
    data.extend_from_slice(&[
        0x80 | (n >> 14 & 0x7f) as u8,
        0x80 | (n >> 7 & 0x7f) as u8,
        0x80 | (n & 0x7f) as u8,
    ]);
    data.extend((0..len).map(|i| ((i as u64 + n) % 251) as u8 | 1));
    SourceFrame {
        frame: EncodedFrame {
            data: Bytes::from(data),
            capture_us: 1_000_000 + n * 33_333,
            keyframe,
        },
        skipped_before: 0,
    }
}

/// The frame number `access_unit` put in.
fn frame_number(data: &[u8]) -> u64 {
    let at = data
        .windows(6)
        .position(|w| w[..4] == [0, 0, 0, 1] && (w[4] == 0x65 || w[4] == 0x41) && w[5] == 0x88)
        .expect("a slice");
    let b = &data[at + 6..at + 9];
    u64::from(b[0] & 0x7f) << 14 | u64::from(b[1] & 0x7f) << 7 | u64::from(b[2] & 0x7f)
}

/// A deterministic coin: true with probability `p`.
struct Coin(u64);
impl Coin {
    fn flip(&mut self, p: f64) -> bool {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 11) as f64 / (1u64 << 53) as f64) < p
    }
}

/// What a run shows.
#[derive(Debug)]
struct Run {
    frames_shown: usize,
    /// From a frame reaching the sender to it leaving the receiver: the worst seen.
    worst_delay: Duration,
    rx: ReceiverStats,
    tx: crate::SenderStats,
}

/// Streams `frames` frames at 30 fps (a keyframe first, then only on request) across a
/// link of `one_way` delay that loses packets either way with probability `loss`;
/// `answer_nacks` false makes the sender ignore NACKs, as senders without
/// retransmission do.
fn run(
    frames: u64,
    loss: f64,
    one_way: Duration,
    config: RtpReceiverConfig,
    answer_nacks: bool,
) -> Run {
    let t0 = Instant::now();
    let mut tx = RtpSender::new(RtpSenderConfig {
        initial_seq: 65_000,
        report_interval: Duration::from_millis(200),
        ..Default::default()
    });
    let mut rx = RtpReceiver::new(RtpReceiverConfig {
        rtcp_mux: true,
        ..config
    });
    let peer: Option<SocketAddr> = Some("127.0.0.1:5004".parse().unwrap());
    let mut coin = Coin(7);
    // In flight, by arrival (and a counter for a stable order): to the receiver?, bytes.
    let mut link: BTreeMap<(Instant, u64), (bool, Vec<u8>)> = BTreeMap::new();
    let mut order = 0u64;
    let mut want_keyframe = true;
    let mut made_at: Vec<Instant> = Vec::new();
    let mut shown = 0;
    let mut worst = Duration::ZERO;
    let end = t0 + Duration::from_millis(frames * 33 + 500);
    let mut now = t0;
    while now < end {
        let n = made_at.len() as u64;
        if n < frames && now >= t0 + Duration::from_millis(n * 33) {
            tx.handle_input(now, SenderInput::Frame(access_unit(want_keyframe, 4000, n)));
            want_keyframe = false;
            made_at.push(now);
        }
        let d = drain(&mut tx, now);
        want_keyframe |= d.events.contains(&SenderEvent::ForceKeyframe);
        for (_, p) in d.transmits {
            if !coin.flip(loss) {
                order += 1;
                link.insert((now + one_way, order), (true, p));
            }
        }
        while let Some(entry) = link.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let (to_rx, p) = entry.remove();
            if to_rx {
                rx.handle_input(
                    now,
                    ReceiverInput::Packet {
                        from: peer,
                        data: &p,
                    },
                );
            } else if answer_nacks || rtcp::parse(&p).is_some_and(|f| f.nacks.is_empty()) {
                tx.handle_input(now, SenderInput::Packet(&p));
            }
        }
        rx.handle_input(now, ReceiverInput::Timeout);
        let d = drain(&mut rx, now);
        for e in d.events {
            let ReceiverEvent::Frame(f) = e;
            shown += 1;
            let n = frame_number(&f.frame.data) as usize;
            worst = worst.max(now.saturating_duration_since(made_at[n]));
        }
        for (_, p) in d.transmits {
            if !coin.flip(loss) {
                order += 1;
                link.insert((now + one_way, order), (false, p));
            }
        }
        rx.check_invariants();
        tx.check_invariants();
        now += Duration::from_millis(1);
    }
    Run {
        frames_shown: shown,
        worst_delay: worst,
        rx: rx.stats(),
        tx: tx.stats(),
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn nacks_repair_random_loss_within_the_wait() {
    let frames = 300;
    let with = run(frames, 0.02, ms(2), RtpReceiverConfig::default(), true);
    let without = run(
        frames,
        0.02,
        ms(2),
        RtpReceiverConfig {
            nack: false,
            ..Default::default()
        },
        true,
    );
    assert!(
        with.frames_shown as u64 >= frames * 97 / 100,
        "with NACKs: {with:?}"
    );
    // Without NACKs each loss costs the frames until a requested keyframe arrives.
    let missed = |r: &Run| frames as usize - r.frames_shown;
    assert!(
        missed(&with) * 4 <= missed(&without) && missed(&without) > 0,
        "without NACKs {without:?} vs with {with:?}"
    );
    assert!(with.rx.repair.nacks_sent > 0 && with.tx.packets_retransmitted > 0);
    assert!(with.rx.repair.packets_retransmitted > 0, "{with:?}");
    // Nothing is held past the repair wait: link, wait and a few 1 ms steps.
    let bound = ms(2) + RtpReceiverConfig::default().repair_wait + ms(10);
    assert!(
        with.worst_delay <= bound,
        "{:?} > {bound:?}",
        with.worst_delay
    );
}

#[test]
fn a_sender_that_ignores_nacks_is_noticed_and_gaps_are_no_longer_waited_for() {
    let ignored = run(300, 0.03, ms(2), RtpReceiverConfig::default(), false);
    assert!(ignored.rx.repair.nacks_sent > 0);
    assert_eq!(ignored.rx.repair.packets_retransmitted, 0);
    // Requests stop once the sender is judged not to answer (a few NACK rounds each
    // carrying a few packets), not one per loss for the whole run.
    assert!(
        ignored.rx.repair.packets_requested <= UNANSWERED_NACKS * 2,
        "{ignored:?}"
    );
    // Keyframe requests still bring the picture back.
    assert!(
        ignored.rx.keyframe_requests > 0 && ignored.frames_shown > 30,
        "{ignored:?}"
    );
}

#[test]
fn a_clean_link_sends_no_nacks_and_shows_every_frame_at_once() {
    let clean = run(100, 0.0, ms(1), RtpReceiverConfig::default(), true);
    assert_eq!(clean.frames_shown, 100);
    assert_eq!(clean.rx.repair.nacks_sent, 0);
    assert!(clean.worst_delay <= ms(3), "{:?}", clean.worst_delay);
    // Reports flow both ways: the sender hears the receiver's.
    assert!(clean.tx.reports > 0, "{clean:?}");
}

/// A frame the decoder's queue refused leaves a hole in its references: the frames
/// queued behind it never reach the decoder, nothing does until a keyframe, and the
/// keyframe resyncs. Regression: frames already queued to leave still left, and the
/// decoder concealed the hole with the previous picture.
#[test]
fn frames_queued_behind_one_the_decoder_refused_wait_for_a_keyframe() {
    let now = Instant::now();
    let mut tx = RtpSender::new(RtpSenderConfig::default());
    let mut rx = RtpReceiver::new(RtpReceiverConfig {
        rtcp_mux: true,
        ..Default::default()
    });
    let peer: Option<SocketAddr> = Some("127.0.0.1:5004".parse().unwrap());
    // Each frame's packets (a keyframe's parameter sets, and a sender report, travel
    // beside it).
    let mut packets: Vec<Vec<Vec<u8>>> = Vec::new();
    for n in 0..6u64 {
        tx.handle_input(
            now,
            SenderInput::Frame(access_unit(n == 0 || n == 5, 100, n)),
        );
        let sent = drain(&mut tx, now).transmits;
        packets.push(sent.into_iter().map(|(_, p)| p).collect());
    }
    let feed = |rx: &mut RtpReceiver, n: usize| {
        for data in &packets[n] {
            rx.handle_input(now, ReceiverInput::Packet { from: peer, data })
        }
    };
    let numbers = |rx: &mut RtpReceiver| -> Vec<u64> {
        drain(rx, now)
            .events
            .into_iter()
            .map(|ReceiverEvent::Frame(f)| frame_number(&f.frame.data))
            .collect()
    };
    feed(&mut rx, 0);
    assert_eq!(numbers(&mut rx), vec![0]);
    // 2 and 3 wait behind the gap at 1; 1 releases all three together.
    for n in [2, 3, 1] {
        feed(&mut rx, n);
    }
    let mut handed_out = Vec::new();
    let mut buf = Vec::new();
    for _ in 0..100 {
        match rx.poll_output(now, &mut buf) {
            Output::Event(ReceiverEvent::Frame(f)) => {
                let n = frame_number(&f.frame.data);
                handed_out.push(n);
                if n == 1 {
                    rx.handle_input(now, ReceiverInput::DownstreamFull);
                }
            }
            Output::Transmit(_) => {}
            Output::Timeout(_) => break,
        }
    }
    assert_eq!(handed_out, vec![1], "frames behind the refused one left");
    feed(&mut rx, 4);
    feed(&mut rx, 5);
    assert_eq!(numbers(&mut rx), vec![5]);
    rx.check_invariants();
    assert_eq!(rx.stats().dropped.queue_full, 1);
}
