//! The reorder buffer in front of the depacketizer: packets leave in sequence order; a
//! gap holds the packets after it until the missing ones arrive (reordered, or resent
//! after a NACK) or the receiver stops waiting for them, and then the depacketizer sees
//! the gap as loss.
//!
//! This is what the RTP wire needs beyond the gap tracking both wires share
//! ([`crate::repair::nack::LossTracker`], which decides what to NACK, when, and when a
//! gap is given up): picam's own wire reassembles frames by index and needs no order,
//! RTP's depacketizer needs its packets in sequence. The receiver drives both: it
//! pushes each packet here under the tracker's extended (64-bit) sequence number, and
//! calls [`Reorder::release_before`] with the tracker's oldest missing packet, so what
//! the tracker gave up is released past.
//!
//! Everything is bounded: packets held, and the span of sequence numbers between the
//! next to release and the highest seen ([`MAX_SPAN`]; beyond it the oldest gap is
//! skipped, and the receiver tells the tracker with [`Reorder::next_ext`]). A jump
//! further than [`MAX_SPAN`] is a discontinuity, not a gap: nothing is waited for.

use std::collections::{BTreeMap, VecDeque};

/// Sequence numbers tracked between the next to release and the highest seen, at most;
/// also the largest gap waited for.
pub(crate) const MAX_SPAN: u64 = 1024;

/// How a pushed packet was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Taken {
    /// Released in order, or held behind a gap.
    Kept,
    /// Already received, or its place was given up: dropped.
    Stale,
    /// Far from the stream (a restart or a jump): taken as a new start; what was held
    /// was released.
    Discontinuity,
}

/// The reorder buffer. See the module documentation.
#[derive(Debug, Default)]
pub(crate) struct Reorder {
    /// The extended sequence number to release next.
    next: Option<u64>,
    /// The highest extended sequence number seen.
    highest: u64,
    held: BTreeMap<u64, Vec<u8>>,
    /// Released packets with their extended sequence numbers, oldest first.
    ready: VecDeque<(u64, Vec<u8>)>,
    /// Sequence numbers released past without their packet.
    given_up: u64,
}

impl Reorder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Packets never received in time (gaps the depacketizer will see).
    #[cfg(test)]
    pub fn given_up(&self) -> u64 {
        self.given_up
    }

    /// Packets held behind a gap.
    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// The highest extended sequence number released in order (everything up to it has
    /// arrived or been given up), if any.
    pub fn released(&self) -> Option<u64> {
        self.next.map(|n| n - 1)
    }

    /// The next extended sequence number to release: nothing before it is waited for.
    pub fn next_ext(&self) -> Option<u64> {
        self.next
    }

    /// Whether `ext` lies so far before the next to release that it is a new start.
    pub fn far_behind(&self, ext: u64) -> bool {
        self.next.is_some_and(|next| ext + MAX_SPAN < next)
    }

    /// Forgets the stream.
    pub fn reset(&mut self) {
        *self = Self::new();
    }

    /// Takes one packet with extended sequence number `ext` (`data` is the whole RTP
    /// packet, kept until it leaves).
    pub fn push(&mut self, ext: u64, data: &[u8]) -> Taken {
        let Some(next) = self.next else {
            self.next = Some(ext + 1);
            self.highest = ext;
            self.ready.push_back((ext, data.to_vec()));
            return Taken::Kept;
        };
        if ext > self.highest + MAX_SPAN || ext + MAX_SPAN < next {
            self.restart(ext, data);
            return Taken::Discontinuity;
        }
        if ext < next || self.held.contains_key(&ext) {
            return Taken::Stale;
        }
        self.highest = self.highest.max(ext);
        if ext == next {
            self.ready.push_back((ext, data.to_vec()));
            self.next = Some(next + 1);
            self.release_held();
        } else {
            self.held.insert(ext, data.to_vec());
        }
        // Bound the span: the oldest gap is skipped first.
        while self.highest.saturating_sub(self.next.unwrap_or(0)) >= MAX_SPAN {
            let resume = self.held.keys().next().copied().unwrap_or(self.highest + 1);
            self.release_before(resume);
        }
        Taken::Kept
    }

    /// A far jump: release what is held (the depacketizer sees the gaps) and start over
    /// at `ext`.
    fn restart(&mut self, ext: u64, data: &[u8]) {
        for (e, packet) in std::mem::take(&mut self.held) {
            self.ready.push_back((e, packet));
        }
        self.ready.push_back((ext, data.to_vec()));
        self.next = Some(ext + 1);
        self.highest = ext;
    }

    /// Moves held packets that are now in sequence to the ready queue.
    fn release_held(&mut self) {
        let Some(mut next) = self.next else { return };
        while let Some(packet) = self.held.remove(&next) {
            self.ready.push_back((next, packet));
            next += 1;
        }
        self.next = Some(next);
    }

    /// Stops waiting for anything before extended sequence number `bound`: held packets
    /// before it leave, the gaps between them are skipped (and counted given up).
    pub fn release_before(&mut self, bound: u64) {
        let bound = bound.min(self.highest + 1);
        loop {
            self.release_held();
            let Some(next) = self.next else { return };
            if next >= bound {
                return;
            }
            let resume = self.held.keys().next().copied().unwrap_or(bound).min(bound);
            self.given_up += resume - next;
            self.next = Some(resume);
        }
    }

    /// The next packet in sequence, with its extended sequence number.
    pub fn pop(&mut self) -> Option<(u64, Vec<u8>)> {
        self.ready.pop_front()
    }

    /// Panics if an internal bound is broken.
    pub fn check_invariants(&self) {
        assert!(self.held.len() as u64 <= MAX_SPAN);
        if let Some(next) = self.next {
            assert!(self.held.keys().all(|&k| k > next && k <= self.highest));
            assert!(self.highest < next + MAX_SPAN);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::repair::nack::{Arrival, LossConfig, LossTracker, Seen};

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// The buffer with the shared tracker, driven as the RTP receiver drives them.
    struct Pair {
        r: Reorder,
        t: LossTracker,
    }

    impl Pair {
        /// First NACK after 2 ms, a gap waited for `wait`, at most 4 NACKs.
        fn new(wait: Duration) -> Self {
            Self {
                r: Reorder::new(),
                t: LossTracker::new(LossConfig {
                    seq_bits: 16,
                    max_gap: MAX_SPAN as u32,
                    min_wait: ms(2),
                    max_wait: ms(2),
                    max_nacks: 4,
                    give_up_after: wait,
                    max_missing: MAX_SPAN as usize,
                    max_retry: ms(40),
                }),
            }
        }
        fn push(&mut self, now: Instant, seq: u16, data: &[u8]) -> (Taken, Seen) {
            let wire = u64::from(seq);
            let seen = if self.r.far_behind(self.t.extend(wire)) {
                self.t.restart(wire, 0);
                Seen::New
            } else {
                self.t.on_packet(now, wire, 0, Arrival::Unknown)
            };
            let taken = self.r.push(self.t.extend(wire), data);
            self.sync();
            (taken, seen)
        }
        fn sync(&mut self) {
            self.r
                .release_before(self.t.first_missing().unwrap_or(u64::MAX));
            if let Some(next) = self.r.next_ext() {
                self.t.give_up_below(next);
            }
            self.r.check_invariants();
            self.t.check_invariants();
        }
        /// NACKs due at `now` with round trip `rtt`, as wire numbers.
        fn nacks(&mut self, now: Instant, rtt: Duration) -> Vec<u16> {
            let due = self.t.poll_nacks(now, rtt, None);
            self.sync();
            due.into_iter().map(|e| e as u16).collect()
        }
        fn expire(&mut self, now: Instant) {
            self.t.expire(now, None);
            self.sync();
        }
        fn drain(&mut self) -> Vec<u16> {
            std::iter::from_fn(|| self.r.pop())
                .map(|(e, _)| e as u16)
                .collect()
        }
    }

    const KEPT_NEW: (Taken, Seen) = (Taken::Kept, Seen::New);

    #[test]
    fn in_order_packets_pass_at_once() {
        let t0 = Instant::now();
        let mut p = Pair::new(ms(50));
        for s in [65_534u16, 65_535, 0, 1] {
            assert_eq!(p.push(t0, s, &[s as u8]), KEPT_NEW);
        }
        assert_eq!(p.drain(), vec![65_534, 65_535, 0, 1]);
    }

    #[test]
    fn a_reordered_packet_is_put_back_in_place() {
        let t0 = Instant::now();
        let mut p = Pair::new(ms(50));
        p.push(t0, 10, b"a");
        p.push(t0, 12, b"c");
        assert_eq!(p.drain(), vec![10], "12 waits for 11");
        assert_eq!(
            p.push(t0, 11, b"b"),
            (Taken::Kept, Seen::Filled { since_nack: None })
        );
        assert_eq!(p.drain(), vec![11, 12]);
        assert_eq!(p.push(t0, 11, b"b").0, Taken::Stale, "a duplicate");
        assert_eq!(p.r.given_up(), 0);
    }

    #[test]
    fn a_gap_is_nacked_then_given_up_after_the_wait() {
        let t0 = Instant::now();
        let mut p = Pair::new(ms(50));
        p.push(t0, 0, b"");
        p.push(t0, 3, b"");
        assert!(
            p.nacks(t0, ms(10)).is_empty(),
            "not before the reordering delay"
        );
        assert_eq!(p.t.next_timeout(), Some(t0 + ms(2)));
        assert_eq!(p.nacks(t0 + ms(2), ms(10)), vec![1, 2]);
        assert!(
            p.nacks(t0 + ms(5), ms(10)).is_empty(),
            "not again before the retry interval"
        );
        // retry_interval(10 ms) = 14.5 ms.
        assert_eq!(p.nacks(t0 + ms(17), ms(10)), vec![1, 2]);
        assert_eq!(
            p.push(t0 + ms(18), 1, b""),
            (
                Taken::Kept,
                Seen::Filled {
                    since_nack: Some(ms(1))
                }
            )
        );
        p.expire(t0 + ms(49));
        assert_eq!(p.drain(), vec![0, 1], "3 still waits for 2");
        p.expire(t0 + ms(50));
        assert_eq!(p.drain(), vec![3]);
        assert_eq!(p.r.given_up(), 1);
        assert_eq!(p.push(t0 + ms(60), 2, b"").0, Taken::Stale, "too late");
    }

    #[test]
    fn nacks_stop_after_the_limit() {
        let t0 = Instant::now();
        let mut p = Pair::new(ms(1000));
        p.push(t0, 0, b"");
        p.push(t0, 2, b"");
        let mut total = 0;
        for i in 0..20 {
            total += p.nacks(t0 + ms(10 * i), Duration::ZERO).len();
        }
        assert_eq!(total, 4);
    }

    #[test]
    fn a_far_jump_restarts_without_waiting() {
        let t0 = Instant::now();
        let mut p = Pair::new(ms(50));
        p.push(t0, 100, b"");
        p.push(t0, 102, b"");
        assert_eq!(p.push(t0, 30_000, b"").0, Taken::Discontinuity);
        assert_eq!(p.drain(), vec![100, 102, 30_000]);
        assert_eq!(p.push(t0, 30_001, b""), KEPT_NEW);
        assert_eq!(p.drain(), vec![30_001]);
        assert_eq!(p.t.missing_len(), 0, "the old gap is given up");
    }

    #[test]
    fn a_far_jump_back_restarts_too() {
        let t0 = Instant::now();
        let mut p = Pair::new(ms(50));
        for s in 40_000..42_000u16 {
            p.push(t0, s, b"");
        }
        p.push(t0, 42_001, b"");
        p.drain();
        assert_eq!(p.push(t0, 5, b"").0, Taken::Discontinuity);
        assert_eq!(p.drain(), vec![42_001, 5]);
        assert_eq!(p.push(t0, 6, b""), KEPT_NEW);
        assert_eq!(p.drain(), vec![6]);
        assert_eq!(p.t.missing_len(), 0);
    }

    #[test]
    fn the_span_stays_bounded_under_a_spray_of_sequence_numbers() {
        let t0 = Instant::now();
        let mut p = Pair::new(ms(10_000));
        let mut seq = 0u16;
        for i in 0..20_000u32 {
            // Mostly forward jumps with holes, some backwards.
            seq = seq.wrapping_add(if i % 7 == 0 {
                65_000
            } else {
                3 + (i % 5) as u16
            });
            p.push(t0, seq, b"x");
            let _ = p.nacks(t0 + ms(u64::from(i)), ms(1));
            while p.r.pop().is_some() {}
        }
        assert!(p.r.held() as u64 <= MAX_SPAN);
        assert!(p.t.missing_len() as u64 <= MAX_SPAN);
    }
}
