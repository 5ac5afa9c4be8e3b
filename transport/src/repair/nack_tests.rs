//! Unit tests of `repair/nack.rs`.

use super::*;

const MS: Duration = Duration::from_millis(1);
const RTT: Duration = Duration::from_millis(10);

/// Simulated time and a tracker, with the poll-after-every-input rule applied.
struct Sim {
    now: Instant,
    t: LossTracker,
    nacks: Vec<(Duration, u32)>,
    start: Instant,
    done: Option<u32>,
}

impl Sim {
    fn new() -> Sim {
        let now = Instant::now();
        Sim {
            now,
            start: now,
            t: LossTracker::new(LossConfig::default()),
            nacks: Vec::new(),
            done: None,
        }
    }
    fn packet(&mut self, seq: u32, frame: u32, retransmit: bool) -> Seen {
        let arrival = if retransmit {
            Arrival::Resend
        } else {
            Arrival::Original
        };
        let seen = self.t.on_packet(self.now, u64::from(seq), frame, arrival);
        self.poll();
        seen
    }
    fn poll(&mut self) {
        let at = self.now - self.start;
        for seq in self.t.poll_nacks(self.now, RTT, self.done) {
            self.nacks.push((at, seq as u32));
        }
        self.t.check_invariants();
        if let Some(timeout) = self.t.next_timeout() {
            assert!(timeout > self.now, "busy loop: timeout {timeout:?} <= now");
        }
    }
    /// Advances time to `to`, polling at every timeout on the way.
    fn advance(&mut self, by: Duration) {
        let to = self.now + by;
        while let Some(timeout) = self.t.next_timeout().filter(|&t| t <= to) {
            self.now = timeout;
            self.poll();
        }
        self.now = to;
        self.poll();
    }
}

#[test]
fn in_order_stream_never_nacks() {
    let mut s = Sim::new();
    for seq in 0..10_000u32 {
        assert_eq!(s.packet(seq, seq / 10, false), Seen::New);
        s.advance(MS / 10);
    }
    s.advance(Duration::from_secs(1));
    assert!(s.nacks.is_empty());
    let c = s.t.counters();
    assert_eq!(
        (c.originals_received, c.loss_events, c.lost),
        (10_000, 0, 0)
    );
    assert_eq!(s.t.highest(), Some(9999));
    assert_eq!(s.t.next_timeout(), None);
}

#[test]
fn single_hole_is_nacked_after_min_wait_then_every_rtt_at_most_max_nacks() {
    let mut s = Sim::new();
    s.packet(0, 0, false);
    s.packet(2, 0, false);
    assert_eq!(s.t.missing_len(), 1);
    s.advance(Duration::from_millis(300));
    let interval = RTT.mul_f64(1.25) + 2 * MS;
    let max = u32::from(LossConfig::default().max_nacks);
    let want: Vec<(Duration, u32)> = (0..max).map(|i| (MS + interval * i, 1)).collect();
    assert_eq!(s.nacks, want);
    let c = s.t.counters();
    assert_eq!(
        (c.nacks_sent, c.lost, c.loss_events),
        (u64::from(max), 1, 1)
    );
    assert_eq!(s.t.missing_len(), 0, "given up after 250 ms");
    assert_eq!(s.t.next_timeout(), None);
}

#[test]
fn retransmission_repairs_and_stops_nacks() {
    let mut s = Sim::new();
    s.packet(0, 0, false);
    s.packet(3, 1, false);
    s.advance(2 * MS);
    assert_eq!(s.nacks.iter().map(|n| n.1).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(s.packet(1, 0, true), Seen::Repaired);
    assert_eq!(s.packet(2, 1, true), Seen::Repaired);
    assert_eq!(s.packet(2, 1, true), Seen::Unrequested);
    assert_eq!(s.packet(2, 1, false), Seen::Duplicate);
    assert_eq!(s.packet(7, 1, true), Seen::Unrequested, "ahead of highest");
    s.advance(Duration::from_secs(1));
    let c = s.t.counters();
    assert_eq!(
        (
            c.repaired,
            c.lost,
            c.nacks_sent,
            c.unrequested,
            c.duplicates
        ),
        (2, 0, 2, 2, 1)
    );
    assert_eq!(c.originals_received, 2);
}

#[test]
fn reordering_path_stops_spurious_nacks() {
    let mut s = Sim::new();
    let mut seq = 0u32;
    // Every 10 ms, two packets swapped by 3 ms: 1000 reorders.
    for _ in 0..1000 {
        s.packet(seq, seq, false);
        s.advance(MS);
        s.packet(seq + 2, seq, false);
        s.advance(3 * MS);
        assert_eq!(s.packet(seq + 1, seq, false), Seen::Late);
        s.advance(6 * MS);
        seq += 3;
    }
    let c = s.t.counters();
    assert!(c.spurious <= 3, "spurious {}", c.spurious);
    assert!(!s.nacks.is_empty(), "the first reorder is NACKed");
    assert_eq!(c.spurious, c.nacks_sent);
    assert_eq!(c.lost, 0);
    assert_eq!(c.originals_received, 3000);
}

#[test]
fn reorder_estimate_decays() {
    let mut s = Sim::new();
    s.packet(0, 0, false);
    s.packet(2, 0, false);
    s.advance(10 * MS);
    s.packet(1, 0, false);
    assert_eq!(s.t.reorder_wait(s.now), 15 * MS);
    let later = s.now + Duration::from_secs(5);
    assert_eq!(
        s.t.reorder_wait(later),
        MS,
        "halved five times, clamped to min"
    );
}

#[test]
fn nacks_stop_when_the_frame_is_done() {
    let mut s = Sim::new();
    s.packet(0, 5, false);
    s.packet(2, 6, false);
    s.advance(2 * MS);
    assert_eq!(s.nacks.len(), 1);
    // Frame 5 done: the hole may still belong to frame 6.
    s.done = Some(5);
    s.advance(20 * MS);
    assert_eq!(s.nacks.len(), 2);
    // Frame 6 done: nothing to gain.
    s.done = Some(6);
    s.poll();
    assert_eq!(s.t.missing_len(), 0);
    assert_eq!(s.t.counters().lost, 1);
    s.advance(Duration::from_secs(1));
    assert_eq!(s.nacks.len(), 2);
    // A late original is then only a duplicate.
    assert_eq!(s.packet(1, 6, false), Seen::Duplicate);
}

#[test]
fn wraps_around_u32_max() {
    let mut s = Sim::new();
    let base = u32::MAX - 2;
    s.packet(base, 1, false);
    s.packet(base.wrapping_add(6), 2, false); // missing MAX-1, MAX, 0, 1, 2
    assert_eq!(s.t.missing_len(), 5);
    assert_eq!(s.t.oldest_missing(), Some((u32::MAX - 1, 1, 2)));
    s.advance(2 * MS);
    let mut got: Vec<u32> = s.nacks.iter().map(|n| n.1).collect();
    got.sort_unstable();
    assert_eq!(got, [0, 1, 2, u32::MAX - 1, u32::MAX]);
    assert_eq!(s.packet(u32::MAX, 2, true), Seen::Repaired);
    assert_eq!(s.packet(0, 2, false), Seen::Late);
    assert_eq!(s.t.missing_len(), 3);
    assert_eq!(s.t.highest(), Some(3));
}

#[test]
fn huge_jump_resets_without_nacks() {
    let mut s = Sim::new();
    s.packet(10, 0, false);
    s.packet(12, 0, false);
    assert_eq!(s.packet(10_000, 1, false), Seen::New);
    assert_eq!(s.t.missing_len(), 0);
    s.advance(Duration::from_secs(1));
    assert!(s.nacks.is_empty());
    let c = s.t.counters();
    assert_eq!((c.resets, c.loss_events, c.lost), (1, 2, 1));
    assert_eq!(s.t.highest(), Some(10_000));
    // A jump of exactly max_gap still opens a hole.
    s.packet(10_000 + 1024, 2, false);
    assert_eq!(s.t.missing_len(), 1023);
    s.t.reset();
    assert_eq!(s.t.highest(), None);
    assert_eq!(s.t.counters(), LossCounters::default());
    assert_eq!(s.t.next_timeout(), None);
}

#[test]
fn first_packet_retransmit_is_unrequested() {
    let mut s = Sim::new();
    assert_eq!(s.packet(5, 0, true), Seen::Unrequested);
    assert_eq!(s.t.highest(), None);
    assert_eq!(s.packet(5, 0, false), Seen::New);
    assert_eq!(s.packet(5, 0, false), Seen::Duplicate);
}

#[test]
fn missing_set_stays_bounded_under_a_flood_of_random_seqs() {
    let mut s = Sim::new();
    let mut x: u64 = 1;
    for i in 0..50_000u32 {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let r = (x >> 32) as u32;
        // Mostly forward jumps below max_gap, some anywhere.
        let seq = if i % 10 == 0 {
            r
        } else {
            s.t.highest().unwrap_or(0).wrapping_add(r % 1000)
        };
        s.packet(seq, r % 7, r % 3 == 0);
        assert!(s.t.missing_len() <= 2048);
        if i % 100 == 0 {
            s.now += MS;
        }
    }
    assert!(s.t.counters().overflowed > 0);
    s.advance(Duration::from_secs(1));
    assert_eq!(s.t.missing_len(), 0);
}

#[test]
fn next_timeout_is_after_now_after_any_poll() {
    // Sim::poll asserts it; here with zero RTT and a zero-wait config.
    let mut s = Sim::new();
    s.t = LossTracker::new(LossConfig {
        min_wait: Duration::ZERO,
        max_wait: Duration::ZERO,
        ..LossConfig::default()
    });
    s.packet(0, 0, false);
    s.packet(5, 1, false);
    for _ in 0..100 {
        let now = s.now;
        let _ = s.t.poll_nacks(now, Duration::ZERO, None);
        if let Some(t) = s.t.next_timeout() {
            assert!(t > now);
            s.now = t;
        }
    }
    // Four holes, each asked for as often as the config allows.
    assert_eq!(
        s.t.counters().nacks_sent,
        4 * u64::from(LossConfig::default().max_nacks)
    );
}

/// RTP's shape: 16-bit numbers and no resend flag.
fn rtp_tracker() -> LossTracker {
    LossTracker::new(LossConfig {
        seq_bits: 16,
        min_wait: 3 * MS,
        max_wait: 3 * MS,
        max_nacks: 4,
        ..LossConfig::default()
    })
}

#[test]
fn a_16_bit_wire_nacks_across_the_wrap_with_its_own_numbers() {
    let t0 = Instant::now();
    let mut t = rtp_tracker();
    for seq in [65_534u64, 65_535, 2] {
        assert_eq!(t.on_packet(t0, seq, 0, Arrival::Unknown), Seen::New);
    }
    assert_eq!(t.highest(), Some(2));
    let due: Vec<u16> = t
        .poll_nacks(t0 + 3 * MS, RTT, None)
        .into_iter()
        .map(|e| e as u16)
        .collect();
    assert_eq!(due, vec![0, 1]);
    t.check_invariants();
}

#[test]
fn unknown_arrivals_are_counted_by_what_can_be_told() {
    let t0 = Instant::now();
    let mut t = rtp_tracker();
    t.on_packet(t0, 10, 0, Arrival::Unknown);
    t.on_packet(t0, 13, 0, Arrival::Unknown);
    // 11 comes back before any NACK: a late original.
    assert_eq!(
        t.on_packet(t0 + MS, 11, 0, Arrival::Unknown),
        Seen::Filled { since_nack: None }
    );
    assert_eq!(t.poll_nacks(t0 + 3 * MS, RTT, None), vec![EXT_BASE + 12]);
    // 12 comes after its NACK: taken as the resend, with the time it took.
    assert_eq!(
        t.on_packet(t0 + 7 * MS, 12, 0, Arrival::Unknown),
        Seen::Filled {
            since_nack: Some(4 * MS)
        }
    );
    // A second copy is a duplicate: the wire cannot say it was an unasked resend.
    assert_eq!(
        t.on_packet(t0 + 8 * MS, 12, 0, Arrival::Unknown),
        Seen::Duplicate
    );
    let c = t.counters();
    assert_eq!(
        (c.repaired, c.duplicates, c.unrequested, c.spurious),
        (1, 1, 0, 0)
    );
    assert_eq!(
        c.originals_received, 3,
        "10, 13 and 11; 12 counts as repaired"
    );
    t.check_invariants();
}

#[test]
fn a_restart_gives_up_the_holes_and_moves_the_numbers_forward() {
    let t0 = Instant::now();
    let mut t = rtp_tracker();
    t.on_packet(t0, 40_000, 0, Arrival::Unknown);
    t.on_packet(t0, 40_005, 0, Arrival::Unknown);
    let before = t.extend(40_005);
    t.restart(7, 0);
    assert_eq!(t.missing_len(), 0);
    assert_eq!(t.counters().lost, 4);
    let after = t.extend(7);
    assert!(after > before + (1 << 16), "{before} -> {after}");
    assert_eq!(after as u16, 7);
    assert_eq!(t.on_packet(t0, 8, 0, Arrival::Unknown), Seen::New);
    t.check_invariants();
}

#[test]
fn expiring_without_nacks_gives_up_on_time_and_sends_nothing() {
    let t0 = Instant::now();
    let mut t = rtp_tracker();
    t.set_give_up_after(20 * MS);
    t.on_packet(t0, 1, 0, Arrival::Unknown);
    t.on_packet(t0, 3, 0, Arrival::Unknown);
    assert_eq!(t.next_give_up(), Some(t0 + 20 * MS));
    t.expire(t0 + 19 * MS, None);
    assert_eq!(t.missing_len(), 1);
    t.expire(t0 + 20 * MS, None);
    assert_eq!(t.missing_len(), 0);
    let c = t.counters();
    assert_eq!((c.nacks_sent, c.lost), (0, 1));
}

impl Sim {
    /// An original data packet `index` of a frame of `count` packets.
    fn fragment(&mut self, seq: u32, frame: u32, index: u16, count: u16) -> Seen {
        let seen = self
            .t
            .on_packet(self.now, u64::from(seq), frame, Arrival::Original);
        self.t
            .expect_tail(self.now, u64::from(seq), frame, count - index - 1);
        self.poll();
        seen
    }
}

#[test]
fn a_frame_whose_last_packets_never_come_is_nacked_before_the_next_frame() {
    let mut s = Sim::new();
    // Frame 0 (seqs 0-5) whole; frame 1 (seqs 6-11) stops after seq 9, 0.1 ms apart.
    for i in 0..6u16 {
        s.fragment(u32::from(i), 0, i, 6);
        s.advance(MS / 10);
    }
    for i in 0..4u16 {
        s.fragment(6 + u32::from(i), 1, i, 6);
        s.advance(MS / 10);
    }
    s.advance(2 * MS);
    assert!(s.nacks.is_empty(), "not yet: {:?}", s.nacks);
    // Taken as lost 10 ms after the last one (4 spacings are less; 5.6 ms, a packet at
    // 2 Mbit/s, is not yet), NACKed after the reordering wait (1 ms): long before
    // frame 2, 33 ms on.
    s.advance(6 * MS);
    assert!(s.nacks.is_empty(), "not yet: {:?}", s.nacks);
    s.advance(4 * MS);
    let seqs: Vec<u32> = s.nacks.iter().map(|&(_, seq)| seq).collect();
    assert_eq!(seqs, vec![10, 11]);
    assert!(s.nacks.iter().all(|&(at, _)| at < 13 * MS), "{:?}", s.nacks);
    // The loss counts report the highest original that came, not the tail taken as
    // lost: had the tail only been slow, a report now would read 2 of 12 lost.
    assert_eq!(s.t.highest(), Some(9));
    // The resends fill the holes; frame 2 opens none.
    assert_eq!(s.packet(10, 1, true), Seen::Repaired);
    assert_eq!(s.t.highest(), Some(9), "a resend is not an original");
    // A late original of the tail's last packet fills its hole rather than counting
    // as a duplicate of the highest.
    assert_eq!(s.fragment(11, 1, 5, 6), Seen::Late);
    assert_eq!(s.t.highest(), Some(11));
    // ... and, slow rather than reordered, teaches no longer wait before NACKs.
    assert_eq!(s.t.reorder_wait(s.now), LossConfig::default().min_wait);
    s.fragment(12, 2, 0, 2);
    s.fragment(13, 2, 1, 2);
    s.advance(20 * MS);
    assert_eq!(s.nacks.len(), 2, "{:?}", s.nacks);
    assert_eq!(s.t.missing_len(), 0);
}

#[test]
fn a_frame_arriving_slowly_is_not_taken_for_a_lost_tail() {
    let mut s = Sim::new();
    // A 3 Mbit/s link: one packet per 3.2 ms, then a stall of 20 ms: not watched.
    for i in 0..10u16 {
        s.fragment(u32::from(i), 0, i, 10);
        s.advance(Duration::from_micros(3_200));
    }
    s.advance(20 * MS);
    assert!(s.nacks.is_empty(), "{:?}", s.nacks);
}

#[test]
fn a_frame_that_slows_down_mid_way_is_not_taken_for_a_lost_tail() {
    let mut s = Sim::new();
    // Twenty packets: eight at 8 Mbit/s of a fast path (0.1 ms apart, the mean spacing
    // stays under the watch's limit for a while), then the link drops to 2 Mbit/s
    // (4.8 ms a packet) and a 6 ms hiccup: the mean of the first nine gaps is still
    // under 1 ms, but the frame is trickling now; no NACK before it is done.
    for i in 0..8u16 {
        s.fragment(u32::from(i), 0, i, 20);
        s.advance(MS / 10);
    }
    s.advance(Duration::from_micros(4_800));
    s.fragment(8, 0, 8, 20);
    s.advance(6 * MS);
    assert!(s.nacks.is_empty(), "{:?}", s.nacks);
    for i in 9..20u16 {
        s.fragment(u32::from(i), 0, i, 20);
        s.advance(Duration::from_micros(4_800));
    }
    s.advance(20 * MS);
    assert!(s.nacks.is_empty(), "{:?}", s.nacks);
    assert_eq!(s.t.missing_len(), 0);
}
