//! Malformed-input injection. Policy (as in str0m): **a panic means a bug, never bad
//! input.** Every truncation, random and mutated packet, absurd field and oversized
//! frame is fed to `Receiver::handle_packet` and `Sender::handle_packet`; neither may
//! panic, both keep their invariants, and every refused packet is counted.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{addr, fragments, Rng};
use transport::wire::{self, FragmentHeader, Packet, FRAGMENT_HEADER, KEYFRAME_REQUEST_LEN};
use transport::{
    LengthPrefixed, Machine, Receiver, ReceiverConfig, ReceiverInput, ReceiverStats, Sender,
    SenderConfig, SenderInput, TransportError,
};

const SESSION: u32 = 0x1234_5678;

fn header(frame: u32, index: u16, count: u16, keyframe: bool) -> FragmentHeader {
    FragmentHeader {
        session: SESSION,
        seq: frame.wrapping_mul(8).wrapping_add(u32::from(index)),
        frame,
        index,
        count,
        keyframe,
        frame_len: 100,
        capture_us: 99,
        ..FragmentHeader::default()
    }
}

fn fragment(h: FragmentHeader, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    h.write(&mut out);
    out.extend_from_slice(payload);
    out
}

fn keyframe_request(session: u32, highest: Option<u32>) -> Vec<u8> {
    let mut out = Vec::new();
    wire::write_keyframe_request(&mut out, session, highest);
    out
}

fn bye(session: u32) -> Vec<u8> {
    let mut out = Vec::new();
    wire::write_bye(&mut out, session);
    out
}

/// A receiver fed one packet at a time, checking after each that the packet was
/// accounted for: one datagram more, and a packet that does not parse as a fragment
/// counted as malformed and nothing else.
struct Fed {
    rx: Receiver,
    now: Instant,
    from: SocketAddr,
    emitted: usize,
}

impl Fed {
    fn new(config: ReceiverConfig) -> Self {
        Self {
            rx: Receiver::new(config),
            now: common::base(),
            from: addr(1, 5000),
            emitted: 0,
        }
    }

    fn feed(&mut self, packet: &[u8]) -> ReceiverStats {
        let before = self.rx.stats();
        self.rx.handle_input(
            self.now,
            ReceiverInput::Packet {
                from: Some(self.from),
                data: packet,
            },
        );
        self.emitted += transport::drain(&mut self.rx, self.now).events.len();
        self.rx.check_invariants();
        let after = self.rx.stats();
        assert_eq!(after.datagrams, before.datagrams + 1);
        assert_eq!(after.bytes, before.bytes + packet.len() as u64);
        let parsed = wire::parse(packet);
        if !matches!(parsed, Ok(Packet::Fragment(..))) {
            let mut expect = before;
            expect.datagrams += 1;
            expect.bytes += packet.len() as u64;
            // Another wire version has a counter of its own (and a warning).
            if matches!(
                parsed,
                Err(TransportError::OlderVersion(_) | TransportError::UnsupportedVersion(_))
            ) {
                expect.dropped.wrong_version += 1;
            } else {
                expect.dropped.malformed += 1;
            }
            assert_eq!(after, expect, "unparseable packet {packet:02x?}");
        }
        after
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.rx.handle_input(self.now, ReceiverInput::Timeout);
        self.emitted += transport::drain(&mut self.rx, self.now).events.len();
        self.rx.check_invariants();
    }
}

/// A sender fed feedback; only a whole keyframe request for its session counts.
fn sender_feed(sender: &mut Sender, now: Instant, packet: &[u8]) {
    let before = sender.stats();
    sender.handle_input(now, SenderInput::Packet(packet));
    transport::drain(sender, now);
    sender.check_invariants();
    let counted = sender.stats().keyframe_requests - before.keyframe_requests;
    let valid = matches!(
        wire::parse(packet),
        Ok(Packet::KeyframeRequest { session, .. }) if session == sender.session()
    );
    assert_eq!(counted, u64::from(valid), "packet {packet:02x?}");
}

fn valid_packets() -> Vec<Vec<u8>> {
    vec![
        fragment(header(5, 0, 1, true), b"whole frame"),
        fragment(header(6, 1, 3, false), &[0xAB; 40]),
        fragment(header(u32::MAX, 2, 3, false), b"last"),
        fragment(header(7, 0, 2, true), &[]),
        fragment(
            FragmentHeader {
                is_parity: true,
                parity: 2,
                ..header(8, 1, 2, true)
            },
            &[0x5A; 50],
        ),
        wire::write_nacks(SESSION, Some(3), &[1, 2, 5, 40])[0].clone(),
        keyframe_request(SESSION, Some(17)),
        keyframe_request(SESSION, None),
        bye(SESSION),
    ]
}

#[test]
fn every_truncation_of_every_valid_packet() {
    let mut sender = Sender::new(SenderConfig::default(), SESSION);
    for packet in valid_packets() {
        let mut fed = Fed::new(ReceiverConfig::default());
        for len in 0..=packet.len() {
            let cut = &packet[..len];
            fed.feed(cut); // counts an unparseable packet as malformed, and nothing else
            sender_feed(&mut sender, fed.now, cut);
            let is_fragment = packet[3] == 1;
            if len < packet.len() && !(is_fragment && len >= FRAGMENT_HEADER) {
                // (A fragment cut inside its payload is still a fragment.)
                assert!(
                    wire::parse(cut).is_err(),
                    "{packet:02x?} cut to {len} parsed"
                );
            }
        }
        let refused = if packet[3] == 1 {
            FRAGMENT_HEADER
        } else {
            packet.len() + 1 // feedback is never for a receiver
        };
        assert_eq!(fed.rx.stats().dropped.malformed, refused as u64);
    }
    // Feedback truncated short of its length is not a request.
    let request = keyframe_request(SESSION, Some(3));
    assert_eq!(request.len(), KEYFRAME_REQUEST_LEN);
    let before = sender.stats().keyframe_requests;
    for len in 0..KEYFRAME_REQUEST_LEN {
        sender.handle_input(common::base(), SenderInput::Packet(&request[..len]));
    }
    assert_eq!(sender.stats().keyframe_requests, before);
}

#[test]
fn random_bytes() {
    let mut rng = Rng::new(0xBAD_5EED);
    let mut fed = Fed::new(ReceiverConfig {
        max_frame_bytes: 64 << 10,
        ..ReceiverConfig::default()
    });
    let mut sender = Sender::new(SenderConfig::default(), SESSION);
    let valid_header = valid_packets();
    for i in 0..100_000u32 {
        let len = match rng.below(10) {
            0 => rng.below(2000) as usize,
            _ => rng.below(64) as usize,
        };
        let mut packet = rng.bytes(len);
        // Most of them get a plausible start so they reach the deeper checks.
        let keep = match rng.below(4) {
            0 => 0,
            1 => 4,
            2 => 8,
            _ => 8 + rng.below(18) as usize,
        };
        let template = &valid_header[rng.below(valid_header.len() as u64) as usize];
        for (d, s) in packet.iter_mut().zip(template.iter().take(keep)) {
            *d = *s;
        }
        fed.feed(&packet);
        sender_feed(&mut sender, fed.now, &packet);
        if i % 64 == 0 {
            fed.advance(Duration::from_millis(1 + rng.below(50)));
        }
    }
    let s = fed.rx.stats();
    assert_eq!(s.datagrams, 100_000);
    assert!(s.dropped.malformed > 50_000, "{s:?}");
}

#[test]
fn every_byte_of_valid_packets_flipped() {
    let mut sender = Sender::new(SenderConfig::default(), SESSION);
    for packet in valid_packets() {
        for at in 0..packet.len() {
            for mask in [0x01, 0x80, 0xFF, 0x55] {
                let mut fed = Fed::new(ReceiverConfig::default());
                // A complete keyframe first, so mutated fragments meet live state.
                for p in fragments(SESSION, 4, true, b"key", 64) {
                    fed.feed(&p);
                }
                let mut m = packet.clone();
                m[at] ^= mask;
                fed.feed(&m);
                fed.feed(&packet);
                fed.advance(Duration::from_millis(300));
                sender_feed(&mut sender, fed.now, &m);
            }
        }
    }
}

#[test]
fn absurd_and_contradictory_fragments() {
    let config = ReceiverConfig {
        max_frame_bytes: 10_000,
        ..ReceiverConfig::default()
    };
    let mut fed = Fed::new(config);
    let key = |f: u32| fragments(SESSION, f, true, b"key", 64);
    for p in key(0) {
        fed.feed(&p);
    }
    assert_eq!(fed.emitted, 1);
    let mut malformed = fed.rx.stats().dropped.malformed;
    let mut expect_malformed = |fed: &mut Fed, packet: &[u8], why: &str| {
        let s = fed.feed(packet);
        malformed += 1;
        assert_eq!(s.dropped.malformed, malformed, "{why}");
    };

    // Index at or past the count, and a zero count: refused by the parser.
    for (index, count) in [(3, 3), (u16::MAX, 1), (0, 0), (u16::MAX, u16::MAX)] {
        let mut p = fragment(header(1, 0, 1, false), b"x");
        p[16..18].copy_from_slice(&index.to_be_bytes());
        p[18..20].copy_from_slice(&count.to_be_bytes());
        expect_malformed(&mut fed, &p, "index >= count");
    }
    // A count that implies a frame over max_frame_bytes.
    expect_malformed(
        &mut fed,
        &fragment(header(1, 0, u16::MAX, false), &[0; 1000]),
        "count x payload over the limit",
    );
    expect_malformed(
        &mut fed,
        &fragment(header(1, 0, 12, false), &[0; 1000]),
        "12 fragments of 1000 over 10 000",
    );
    // One fragment larger than the limit on its own.
    expect_malformed(
        &mut fed,
        &fragment(header(2, 0, 1, true), &[0; 10_001]),
        "single fragment over the limit",
    );
    // Fragments adding up past the limit: the last is refused.
    fed.feed(&fragment(header(3, 0, 2, true), &[0; 6000]));
    expect_malformed(
        &mut fed,
        &fragment(header(3, 1, 2, true), &[0; 6000]),
        "sum over the limit",
    );
    // Fragments of one frame that disagree with the first seen.
    fed.feed(&fragment(header(4, 0, 3, true), b"aaa"));
    expect_malformed(
        &mut fed,
        &fragment(header(4, 1, 4, true), b"bbb"),
        "count changed",
    );
    expect_malformed(
        &mut fed,
        &fragment(header(4, 1, 3, false), b"bbb"),
        "keyframe flag changed",
    );
    let mut other_time = header(4, 1, 3, true);
    other_time.capture_us += 1;
    expect_malformed(
        &mut fed,
        &fragment(other_time, b"bbb"),
        "capture time changed",
    );
    // Reserved flag bits and the authentication bit.
    for flags in [0x03, 0x40, 0x80, 0xFF] {
        let mut p = fragment(header(4, 1, 3, true), b"bbb");
        p[wire::FRAGMENT_FLAGS_OFFSET] = flags;
        expect_malformed(&mut fed, &p, "unknown flags");
    }
    // Feedback kinds sent to a receiver.
    expect_malformed(&mut fed, &keyframe_request(SESSION, Some(1)), "request");
    expect_malformed(&mut fed, &bye(SESSION), "bye");

    // Nothing refused above reached a frame; frame 4 still completes correctly, and
    // leaves once frame 3 (never completed) is given up at its deadline. The oversized
    // fragment of frame 2 was refused before it could hold a slot, so frame 2 counts as
    // never seen rather than incomplete.
    assert_eq!(fed.emitted, 1);
    fed.feed(&fragment(header(4, 1, 3, true), b"bbb"));
    fed.feed(&fragment(header(4, 2, 3, true), b"c"));
    fed.advance(Duration::from_secs(1));
    assert_eq!(fed.emitted, 2);
    let d = fed.rx.stats().dropped;
    assert_eq!((d.incomplete, d.undecodable), (1, 0), "{d:?}");
}

#[test]
fn huge_fragment_counts_stay_bounded() {
    // Each such fragment makes the receiver hold a 65 535-slot frame; at most
    // max_in_flight of them may exist at once.
    let mut fed = Fed::new(ReceiverConfig::default());
    for f in 0..200u32 {
        fed.feed(&fragment(header(f, 7, u16::MAX, true), b"y"));
        fed.feed(&fragment(header(f, u16::MAX - 1, u16::MAX, true), b"last"));
    }
    fed.advance(Duration::from_secs(1));
    let d = fed.rx.stats().dropped;
    assert_eq!(d.evicted + d.incomplete, 200, "{d:?}");
}

/// Frame numbers from all over the number space, with no frame emitted yet to anchor
/// wrapping order. Regression: fragments of frames 2^31 apart made the held frames
/// unordered (`check_invariants` failed, and a frame could leave after one it does not
/// follow).
#[test]
fn frame_numbers_across_the_whole_range() {
    // The smallest case: two frames exactly half the range apart.
    let mut fed = Fed::new(ReceiverConfig::default());
    fed.feed(&fragment(header(0, 0, 2, true), b"a"));
    fed.feed(&fragment(header(1 << 31, 0, 2, true), b"b"));
    fed.feed(&fragment(header(1 << 31, 1, 2, true), b"b"));
    fed.feed(&fragment(header(0, 1, 2, true), b"a"));
    assert!(
        fed.emitted <= 1,
        "frames 0 and 2^31 both emitted: neither follows the other"
    );

    // Three frames spread around the circle, the oldest given up first.
    let mut fed = Fed::new(ReceiverConfig::default());
    fed.feed(&fragment(header(0, 0, 2, true), b"a"));
    fed.advance(Duration::from_millis(100));
    fed.feed(&fragment(header(0x7000_0000, 0, 2, true), b"b"));
    fed.feed(&fragment(header(0xE000_0000, 0, 2, true), b"c"));
    fed.advance(Duration::from_millis(150));

    // And a random flood.
    let mut rng = Rng::new(31);
    let mut fed = Fed::new(ReceiverConfig::default());
    for i in 0..20_000u32 {
        let frame = rng.next_u32();
        let count = 1 + rng.below(3) as u16;
        let index = rng.below(u64::from(count)) as u16;
        fed.feed(&fragment(
            header(frame, index, count, rng.chance(0.5)),
            b"z",
        ));
        if i % 16 == 0 {
            fed.advance(Duration::from_millis(rng.below(120)));
        }
    }
}

#[test]
fn foreign_and_unknown_feedback_is_ignored_by_the_sender() {
    let now = common::base();
    let mut sender = Sender::new(SenderConfig::default(), SESSION);
    for packet in [
        keyframe_request(SESSION + 1, Some(1)),
        bye(SESSION + 1),
        fragment(header(1, 0, 1, true), b"a fragment"),
        vec![],
        vec![0x50, 0x43, 1, 9, 0, 0, 0, 0],
    ] {
        sender_feed(&mut sender, now, &packet);
    }
    assert!(transport::drain(&mut sender, now).events.is_empty());
    sender_feed(&mut sender, now, &keyframe_request(SESSION, None));
    assert_eq!(sender.stats().keyframes_forced, 1);
}

fn message(out: &mut Vec<u8>, body: &[u8]) {
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
}

#[test]
fn length_prefixed_random_chunking_recovers_every_message() {
    let mut rng = Rng::new(77);
    for round in 0..50 {
        let max = 1 + rng.below(5000) as usize;
        let mut stream = Vec::new();
        let mut sent = Vec::new();
        for _ in 0..40 {
            let len = rng.below(max as u64 + 1) as usize;
            let body = rng.bytes(len);
            message(&mut stream, &body);
            sent.push(body);
        }
        let mut splitter = LengthPrefixed::new(max);
        let mut got = Vec::new();
        let mut at = 0;
        while at < stream.len() {
            let n = (1 + rng.below(3 * max as u64) as usize).min(stream.len() - at);
            splitter.push(&stream[at..at + n]);
            at += n;
            while let Some(m) = splitter.pull().expect("valid stream") {
                got.push(m.to_vec());
            }
            assert!(
                splitter.buffered()
                    <= stream.len() - got.iter().map(|m| m.len() + 4).sum::<usize>()
            );
        }
        assert_eq!(got, sent, "round {round}");
        assert_eq!(splitter.buffered(), 0);
    }
}

#[test]
fn length_prefixed_random_garbage() {
    let mut rng = Rng::new(78);
    let mut refused = 0;
    for _ in 0..2000 {
        let max = rng.below(300) as usize;
        let mut splitter = LengthPrefixed::new(max);
        for _ in 0..20 {
            let len = rng.below(64) as usize;
            let mut chunk = rng.bytes(len);
            // Small lengths now and then, so some messages do come out.
            if len >= 4 && rng.chance(0.5) {
                chunk[..4].copy_from_slice(&(rng.below(max as u64 + 8) as u32).to_be_bytes());
            }
            splitter.push(&chunk);
            match splitter.pull() {
                Ok(Some(m)) => assert!(m.len() <= max),
                Ok(None) => {}
                Err(TransportError::TooLarge { size, max: m, .. }) => {
                    assert!(size > m);
                    refused += 1;
                    break; // the stream is unusable from here
                }
                Err(e) => panic!("unexpected error {e}"),
            }
        }
    }
    assert!(refused > 100);
}

#[test]
fn parity_with_impossible_geometry_is_dropped_and_counted() {
    let config = ReceiverConfig {
        repair: Some(transport::ReceiverRepairConfig::default()),
        ..ReceiverConfig::default()
    };
    let mut fed = Fed::new(config);
    let parity = |count: u16, parity: u16, frame_len: u32| FragmentHeader {
        is_parity: true,
        parity,
        frame_len,
        ..header(3, 0, count, false)
    };
    // (count, parity, frame_len, shard bytes): odd shard, a frame longer than the
    // shards can hold, one far shorter, more parity than the cap, a frame over the
    // receiver's limit.
    let cases: [(u16, u16, u32, usize); 5] = [
        (4, 2, 400, 99),
        (4, 2, 10_000, 100),
        (4, 2, 10, 100),
        (4, 2000, 400, 100),
        (4, 2, u32::MAX, 100),
    ];
    for (i, (count, parity_count, frame_len, shard)) in cases.into_iter().enumerate() {
        let mut h = parity(count, parity_count, frame_len);
        h.frame = 10 + i as u32;
        h.seq = 1000 + i as u32;
        let before = fed.rx.stats().dropped.malformed;
        fed.feed(&fragment(h, &vec![7; shard]));
        assert_eq!(
            fed.rx.stats().dropped.malformed,
            before + 1,
            "case {i}: {count} data, {parity_count} parity, {frame_len} bytes, shard {shard}"
        );
    }
    assert_eq!(fed.rx.stats().repair.packets_rebuilt, 0);
}

#[test]
fn a_nack_flood_stays_within_the_history_and_the_budget() {
    use transport::{Machine, RepairConfig};
    let repair = RepairConfig::for_bitrate(4_000_000);
    let mut sender = Sender::new(
        SenderConfig {
            repair: Some(repair.clone()),
            ..SenderConfig::default()
        },
        SESSION,
    );
    let now = common::base();
    // Two seconds of 4 Mbit/s frames sent, then 100 nacks each asking for every packet
    // ever sent and more, at once.
    let mut sent_bytes = 0;
    for i in 0..60u32 {
        let frame = media::EncodedFrame {
            data: bytes::Bytes::from(vec![i as u8; 16_000]),
            capture_us: u64::from(i),
            keyframe: i == 0,
        };
        sender.handle_input(now, SenderInput::Frame(frame.into()));
        sent_bytes += transport::drain(&mut sender, now)
            .transmits
            .iter()
            .map(|(_, p)| p.len())
            .sum::<usize>();
    }
    let all: Vec<u32> = (0..2000).collect();
    let mut resent = 0;
    for _ in 0..100 {
        for nack in wire::write_nacks(SESSION, None, &all) {
            sender_feed(&mut sender, now, &nack);
        }
        resent += transport::drain(&mut sender, now)
            .transmits
            .iter()
            .map(|(_, p)| p.len())
            .sum::<usize>();
        sender.check_invariants();
    }
    let s = sender.stats();
    assert!(sent_bytes > 900_000, "{sent_bytes}");
    // No time passed: only the burst allowance may go, however much is asked.
    assert!(resent <= repair.retransmit_burst, "{resent} bytes resent");
    assert!(s.nack_over_budget > 0 && s.nack_unknown > 0, "{s:?}");
    assert_eq!(
        s.nack_requests,
        s.packets_retransmitted + s.nack_unknown + s.nack_useless + s.nack_over_budget,
        "every request counted once: {s:?}"
    );
}
