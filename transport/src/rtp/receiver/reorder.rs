//! The reorder buffer in front of the depacketizer: packets leave in sequence order; a
//! gap holds the packets after it until the missing ones arrive (reordered, or resent
//! after a NACK) or the wait runs out, and then the depacketizer sees the gap as loss.
//!
//! Everything is bounded: packets held, the span of sequence numbers tracked, and the
//! time any packet is held (`wait`, set by the receiver: long enough for a resend when
//! the sender answers NACKs, only a reordering allowance when it does not). A jump
//! further than [`MAX_SPAN`] is a discontinuity, not a gap: nothing is waited for.
//!
//! Sequence numbers are 16 bits on the wire; here they are extended to 64 bits relative
//! to the highest seen (RFC 3550 A.1), so ordering holds across the wrap.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use crate::repair::seq64;

/// Sequence numbers tracked between the next to release and the highest seen, at most;
/// also the largest gap waited for.
pub(crate) const MAX_SPAN: u64 = 1024;

/// Times one missing packet is NACKed at most.
pub(crate) const MAX_NACKS: u8 = 4;

/// A packet that has not arrived.
#[derive(Clone, Copy, Debug)]
struct Missing {
    /// When the gap was seen (a later packet arrived).
    noticed: Instant,
    nacks: u8,
    last_nack: Option<Instant>,
}

/// How a pushed packet was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Arrival {
    /// The next in sequence, or after a gap (held): new.
    New,
    /// It filled a gap; `since_nack` is the time since a NACK last asked for it, when
    /// one did (a resend, or an original that was only late).
    Filled { since_nack: Option<Duration> },
    /// Already received, or its place was given up: dropped.
    Stale,
    /// Far from the stream (a restart or a jump): taken as a new start; what was held
    /// was released.
    Discontinuity,
}

/// The reorder buffer. See the module documentation.
#[derive(Debug)]
pub(crate) struct Reorder {
    /// The extended sequence number to release next.
    next: Option<u64>,
    /// The highest extended sequence number seen.
    highest: u64,
    held: BTreeMap<u64, Vec<u8>>,
    missing: BTreeMap<u64, Missing>,
    ready: VecDeque<(u16, Vec<u8>)>,
    /// How long a gap is waited for.
    wait: Duration,
    /// Packets given up (never arrived in time).
    given_up: u64,
}

impl Reorder {
    pub fn new(wait: Duration) -> Self {
        Self {
            next: None,
            highest: 0,
            held: BTreeMap::new(),
            missing: BTreeMap::new(),
            ready: VecDeque::new(),
            wait,
            given_up: 0,
        }
    }

    pub fn set_wait(&mut self, wait: Duration) {
        self.wait = wait;
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

    /// Forgets the stream.
    pub fn reset(&mut self) {
        *self = Self::new(self.wait);
    }

    /// Extends `seq` against the highest seen (the nearest 64-bit value with those low
    /// 16 bits), by the rule both wires' repair shares.
    fn extend(&self, seq: u16) -> u64 {
        seq64::extend(self.highest, u64::from(seq), 16)
    }

    /// Takes one packet (`data` is the whole RTP packet, kept until it leaves).
    pub fn push(&mut self, now: Instant, seq: u16, data: &[u8]) -> Arrival {
        let Some(next) = self.next else {
            // Start well above 0 so sequence numbers just before the first extend
            // without underflow.
            let ext = (1 << 32) + u64::from(seq);
            self.next = Some(ext + 1);
            self.highest = ext;
            self.ready.push_back((seq, data.to_vec()));
            return Arrival::New;
        };
        let ext = self.extend(seq);
        if ext > self.highest + MAX_SPAN || ext + MAX_SPAN < next {
            self.restart(ext, seq, data);
            return Arrival::Discontinuity;
        }
        if ext < next || self.held.contains_key(&ext) {
            return Arrival::Stale;
        }
        if ext > self.highest {
            for gap in self.highest + 1..ext {
                if gap >= next {
                    self.missing.insert(
                        gap,
                        Missing {
                            noticed: now,
                            nacks: 0,
                            last_nack: None,
                        },
                    );
                }
            }
            self.highest = ext;
        }
        let arrival = match self.missing.remove(&ext) {
            Some(m) => Arrival::Filled {
                since_nack: m.last_nack.map(|t| now.saturating_duration_since(t)),
            },
            None => Arrival::New,
        };
        if ext == next {
            self.ready.push_back((seq, data.to_vec()));
            self.next = Some(next + 1);
            self.release_held();
        } else {
            self.held.insert(ext, data.to_vec());
        }
        // Bound the span: the oldest gaps are given up first.
        while self.highest.saturating_sub(self.next.unwrap_or(0)) >= MAX_SPAN {
            self.give_up_oldest_gap();
        }
        arrival
    }

    /// A far jump: release what is held (the depacketizer sees the gaps) and start over
    /// at `ext`.
    fn restart(&mut self, ext: u64, seq: u16, data: &[u8]) {
        self.given_up += self.missing.len() as u64;
        self.missing.clear();
        for (e, packet) in std::mem::take(&mut self.held) {
            self.ready.push_back((e as u16, packet));
        }
        self.ready.push_back((seq, data.to_vec()));
        self.next = Some(ext + 1);
        self.highest = ext;
    }

    /// Moves held packets that are now in sequence to the ready queue.
    fn release_held(&mut self) {
        let Some(mut next) = self.next else { return };
        while let Some(packet) = self.held.remove(&next) {
            self.ready.push_back((next as u16, packet));
            next += 1;
        }
        self.next = Some(next);
    }

    /// Gives up the oldest gap: its missing packets are forgotten and the held packets
    /// up to the next gap leave.
    fn give_up_oldest_gap(&mut self) {
        let Some(next) = self.next else { return };
        // Skip to the first held packet after `next`; everything before it is missing.
        let resume = self.held.keys().next().copied().unwrap_or(self.highest + 1);
        let lost: Vec<u64> = self.missing.range(next..resume).map(|(&k, _)| k).collect();
        self.given_up += lost.len() as u64;
        for k in lost {
            self.missing.remove(&k);
        }
        self.next = Some(resume);
        self.release_held();
    }

    /// Gives up gaps that have been waited for long enough.
    pub fn expire(&mut self, now: Instant) {
        while let Some((_, m)) = self.missing.first_key_value() {
            if now.saturating_duration_since(m.noticed) < self.wait {
                break;
            }
            self.give_up_oldest_gap();
        }
    }

    /// The next packet in sequence, with its 16-bit sequence number.
    pub fn pop(&mut self) -> Option<(u16, Vec<u8>)> {
        self.ready.pop_front()
    }

    /// Missing packets due a NACK now: noticed at least `delay` ago, not NACKed within
    /// `retry`, and NACKed fewer than [`MAX_NACKS`] times. Marks them NACKed.
    pub fn nacks_due(
        &mut self,
        now: Instant,
        delay: Duration,
        retry: Duration,
        out: &mut Vec<u16>,
    ) {
        out.clear();
        for (&ext, m) in self.missing.iter_mut() {
            let since_noticed = now.saturating_duration_since(m.noticed);
            let retry_due = m
                .last_nack
                .is_none_or(|t| now.saturating_duration_since(t) >= retry);
            if since_noticed >= delay && retry_due && m.nacks < MAX_NACKS {
                m.nacks += 1;
                m.last_nack = Some(now);
                out.push(ext as u16);
            }
        }
    }

    /// When something is due: the oldest gap's end of wait, or the next NACK.
    pub fn next_timeout(&self, delay: Duration, retry: Duration, nacking: bool) -> Option<Instant> {
        let expiry = self.missing.values().next().map(|m| m.noticed + self.wait);
        let nack = nacking
            .then(|| {
                self.missing
                    .values()
                    .filter(|m| m.nacks < MAX_NACKS)
                    .map(|m| m.last_nack.map_or(m.noticed + delay, |t| t + retry))
                    .min()
            })
            .flatten();
        expiry.into_iter().chain(nack).min()
    }

    /// Panics if an internal bound is broken.
    pub fn check_invariants(&self) {
        assert!(self.held.len() as u64 <= MAX_SPAN);
        assert!(self.missing.len() as u64 <= MAX_SPAN);
        if let Some(next) = self.next {
            assert!(self.held.keys().all(|&k| k > next && k <= self.highest));
            assert!(self.missing.keys().all(|&k| k >= next && k < self.highest));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn drain(r: &mut Reorder) -> Vec<u16> {
        std::iter::from_fn(|| r.pop()).map(|(s, _)| s).collect()
    }

    #[test]
    fn in_order_packets_pass_at_once() {
        let t0 = Instant::now();
        let mut r = Reorder::new(ms(50));
        for s in [65_534u16, 65_535, 0, 1] {
            assert_eq!(r.push(t0, s, &[s as u8]), Arrival::New);
        }
        assert_eq!(drain(&mut r), vec![65_534, 65_535, 0, 1]);
        r.check_invariants();
    }

    #[test]
    fn a_reordered_packet_is_put_back_in_place() {
        let t0 = Instant::now();
        let mut r = Reorder::new(ms(50));
        r.push(t0, 10, b"a");
        r.push(t0, 12, b"c");
        assert_eq!(drain(&mut r), vec![10], "12 waits for 11");
        assert_eq!(r.push(t0, 11, b"b"), Arrival::Filled { since_nack: None });
        assert_eq!(drain(&mut r), vec![11, 12]);
        assert_eq!(r.push(t0, 11, b"b"), Arrival::Stale, "a duplicate");
        assert_eq!(r.given_up(), 0);
    }

    #[test]
    fn a_gap_is_nacked_then_given_up_after_the_wait() {
        let t0 = Instant::now();
        let mut r = Reorder::new(ms(50));
        r.push(t0, 0, b"");
        r.push(t0, 3, b"");
        let mut nacks = Vec::new();
        r.nacks_due(t0, ms(2), ms(10), &mut nacks);
        assert!(nacks.is_empty(), "not before the reordering delay");
        assert_eq!(r.next_timeout(ms(2), ms(10), true), Some(t0 + ms(2)));
        r.nacks_due(t0 + ms(2), ms(2), ms(10), &mut nacks);
        assert_eq!(nacks, vec![1, 2]);
        r.nacks_due(t0 + ms(5), ms(2), ms(10), &mut nacks);
        assert!(nacks.is_empty(), "not again before the retry interval");
        r.nacks_due(t0 + ms(12), ms(2), ms(10), &mut nacks);
        assert_eq!(nacks, vec![1, 2]);
        assert_eq!(
            r.push(t0 + ms(13), 1, b""),
            Arrival::Filled {
                since_nack: Some(ms(1))
            }
        );
        r.expire(t0 + ms(49));
        assert_eq!(drain(&mut r), vec![0, 1], "3 still waits for 2");
        r.expire(t0 + ms(50));
        assert_eq!(drain(&mut r), vec![3]);
        assert_eq!(r.given_up(), 1);
        assert_eq!(r.push(t0 + ms(60), 2, b""), Arrival::Stale, "too late");
        r.check_invariants();
    }

    #[test]
    fn nacks_stop_after_the_limit() {
        let t0 = Instant::now();
        let mut r = Reorder::new(ms(1000));
        r.push(t0, 0, b"");
        r.push(t0, 2, b"");
        let mut nacks = Vec::new();
        let mut total = 0;
        for i in 0..20 {
            r.nacks_due(t0 + ms(10 * i), ms(0), ms(10), &mut nacks);
            total += nacks.len();
        }
        assert_eq!(total, usize::from(MAX_NACKS));
    }

    #[test]
    fn a_far_jump_restarts_without_waiting() {
        let t0 = Instant::now();
        let mut r = Reorder::new(ms(50));
        r.push(t0, 100, b"");
        r.push(t0, 102, b"");
        assert_eq!(r.push(t0, 30_000, b""), Arrival::Discontinuity);
        assert_eq!(drain(&mut r), vec![100, 102, 30_000]);
        assert_eq!(r.push(t0, 30_001, b""), Arrival::New);
        assert_eq!(drain(&mut r), vec![30_001]);
        r.check_invariants();
    }

    #[test]
    fn the_span_stays_bounded_under_a_spray_of_sequence_numbers() {
        let t0 = Instant::now();
        let mut r = Reorder::new(ms(10_000));
        let mut seq = 0u16;
        for i in 0..20_000u32 {
            // Mostly forward jumps with holes, some backwards.
            seq = seq.wrapping_add(if i % 7 == 0 {
                65_000
            } else {
                3 + (i % 5) as u16
            });
            r.push(t0, seq, b"x");
            r.check_invariants();
            while r.pop().is_some() {}
        }
        assert!(r.held() as u64 <= MAX_SPAN);
    }
}
