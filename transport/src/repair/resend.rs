//! The sender's half of retransmission, shared by both wires: the history of sent
//! packets (bounded by bytes and age) and the queue of NACKed packets waiting to go
//! again.
//!
//! Each wire keeps what really differs: how a NACK is encoded (RFC 4585 generic NACK or
//! picam's packet), how a resent packet is marked (picam sets a flag in its header;
//! RTP resends the packet as it was), and what limits resends beyond the queue (picam's
//! byte budget). The bookkeeping is here, on 64-bit extended sequence numbers
//! ([`super::seq64`]) so the 16-bit and 32-bit wire numbers share it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::history::{Entry, SendHistory};
use super::seq64::Extender;
use crate::SenderStats;

/// The same packet is not resent twice within this long (a NACK and its repeat
/// crossing a retransmission in flight).
const RESEND_GAP: Duration = Duration::from_millis(3);

/// Sent packets and the NACKed ones waiting to be resent. Counts what it refuses in the
/// sender's [`SenderStats`] (`nack_requests`, `nack_unknown`, `nack_useless`,
/// `nack_over_budget`), which both wires report the same way.
#[derive(Debug)]
pub(crate) struct Resender {
    history: SendHistory,
    /// Extends the wire numbers of sent and NACKed packets.
    seq: Extender,
    queue: VecDeque<u64>,
    max_queue: usize,
}

impl Resender {
    /// A resender for a wire whose sequence numbers are `bits` wide, keeping at most
    /// `max_bytes` of sent packets none older than `max_age`, and at most `max_queue`
    /// packets waiting to be resent.
    pub(crate) fn new(bits: u32, max_bytes: usize, max_age: Duration, max_queue: usize) -> Self {
        Self {
            history: SendHistory::new(max_bytes, max_age),
            seq: Extender::new(bits),
            queue: VecDeque::new(),
            max_queue: max_queue.max(1),
        }
    }

    /// Remembers an original packet just sent as wire number `seq` of `frame` (the
    /// wire's own frame count, used to tell whether a NACK can still help).
    pub(crate) fn on_sent(&mut self, now: Instant, seq: u64, frame: u32, packet: Bytes) {
        let ext = self.seq.push(seq);
        self.history.push(now, ext, frame, packet);
    }

    /// Queues wire number `seq`, NACKed, if it can still help: held, `useful` (its
    /// frame still wanted, it cannot still be on its way), not resent in the last few
    /// ms, not queued already, and room left.
    pub(crate) fn on_nack(
        &mut self,
        now: Instant,
        seq: u64,
        useful: impl Fn(&Entry) -> bool,
        stats: &mut SenderStats,
    ) {
        stats.nack_requests += 1;
        let Some((ext, entry)) = self.lookup(now, seq) else {
            // Never sent, or forgotten (older than the history keeps).
            stats.nack_unknown += 1;
            return;
        };
        let resent_lately = entry
            .last_resent
            .is_some_and(|at| now.saturating_duration_since(at) < RESEND_GAP);
        if !useful(&entry) || resent_lately || self.queue.contains(&ext) {
            stats.nack_useless += 1;
            return;
        }
        if self.queue.len() >= self.max_queue {
            stats.nack_over_budget += 1;
            return;
        }
        self.queue.push_back(ext);
    }

    /// Whether a resend is waiting.
    pub(crate) fn has_resend(&self) -> bool {
        !self.queue.is_empty()
    }

    /// Resends waiting.
    pub(crate) fn queued(&self) -> usize {
        self.queue.len()
    }

    /// The next packet to resend, as first sent, that `admit` lets go (a budget); those
    /// forgotten since they were NACKed, or refused, are counted and skipped.
    pub(crate) fn next(
        &mut self,
        now: Instant,
        mut admit: impl FnMut(&Entry) -> bool,
        stats: &mut SenderStats,
    ) -> Option<Bytes> {
        while let Some(ext) = self.queue.pop_front() {
            let Some(entry) = self.history.get(now, ext) else {
                stats.nack_unknown += 1;
                continue;
            };
            if !admit(&entry) {
                stats.nack_over_budget += 1;
                continue;
            }
            self.history.mark_resent(ext, now);
            return Some(entry.packet);
        }
        None
    }

    /// Drops the waiting resends of frames before `frame` (a keyframe queued after
    /// them: the receiver will jump to it, and their resends would only delay it),
    /// counting them useless.
    pub(crate) fn forget_frames_before(
        &mut self,
        now: Instant,
        frame: u32,
        stats: &mut SenderStats,
    ) {
        let history = &mut self.history;
        self.queue.retain(|&ext| {
            let keep = history
                .get(now, ext)
                .is_some_and(|entry| !crate::seq::after(frame, entry.frame));
            if !keep {
                stats.nack_useless += 1;
            }
            keep
        });
    }

    /// Drops the waiting resends (the receiver went away).
    pub(crate) fn clear_queue(&mut self) {
        self.queue.clear();
    }

    /// Panics if a bound is broken (tests and fuzzers).
    pub(crate) fn check_invariants(&self) {
        assert!(
            self.queue.len() <= self.max_queue,
            "resend queue over its bound"
        );
        self.history.check_invariants();
    }

    fn lookup(&mut self, now: Instant, seq: u64) -> Option<(u64, Entry)> {
        let ext = self.seq.extend(seq)?;
        self.history.get(now, ext).map(|e| (ext, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn resender() -> Resender {
        Resender::new(16, 1 << 20, 500 * MS, 4)
    }

    #[test]
    fn nacked_packets_go_again_once_across_the_wrap() {
        let t0 = Instant::now();
        let mut r = resender();
        let mut stats = SenderStats::default();
        for i in 0..10u16 {
            let seq = (u16::MAX - 4).wrapping_add(i);
            r.on_sent(
                t0,
                u64::from(seq),
                u32::from(i),
                Bytes::from(vec![i as u8; 10]),
            );
        }
        // 1 (after the wrap) and 65533 (before it); 200 was never sent.
        for seq in [1u64, 65533, 200, 1] {
            r.on_nack(t0, seq, |_| true, &mut stats);
        }
        assert_eq!(
            (stats.nack_requests, stats.nack_unknown, stats.nack_useless),
            (4, 1, 1)
        );
        assert_eq!(r.next(t0, |_| true, &mut stats).unwrap()[0], 6);
        assert_eq!(r.next(t0, |_| true, &mut stats).unwrap()[0], 2);
        assert!(r.next(t0, |_| true, &mut stats).is_none());
        // Asked again at once: resent lately, refused; a little later, sent again.
        r.on_nack(t0 + MS, 1, |_| true, &mut stats);
        assert_eq!(stats.nack_useless, 2);
        r.on_nack(t0 + 5 * MS, 1, |_| true, &mut stats);
        assert!(r.next(t0 + 5 * MS, |_| true, &mut stats).is_some());
        r.check_invariants();
    }

    #[test]
    fn refused_and_expired_resends_are_counted() {
        let t0 = Instant::now();
        let mut r = resender();
        let mut stats = SenderStats::default();
        for seq in 0..8u64 {
            r.on_sent(t0, seq, seq as u32, Bytes::from(vec![0; 100]));
        }
        // Frame 0 is done at the receiver: no use.
        r.on_nack(t0, 0, |e| e.frame > 0, &mut stats);
        assert_eq!(stats.nack_useless, 1);
        // The queue holds four; the fifth is refused.
        for seq in 1..6u64 {
            r.on_nack(t0, seq, |_| true, &mut stats);
        }
        assert_eq!((r.queued(), stats.nack_over_budget), (4, 1));
        // The budget refuses one; the rest expire before they could go.
        assert!(r.next(t0, |_| false, &mut stats).is_none());
        assert_eq!(stats.nack_over_budget, 5);
        for seq in 1..3u64 {
            r.on_nack(t0, seq, |_| true, &mut stats);
        }
        assert!(r.next(t0 + 501 * MS, |_| true, &mut stats).is_none());
        assert_eq!(stats.nack_unknown, 2);
        assert!(!r.has_resend());
        r.check_invariants();
    }

    #[test]
    fn the_queue_stays_bounded_under_a_flood_of_nacks() {
        let t0 = Instant::now();
        let mut r = Resender::new(32, 1 << 16, 500 * MS, 64);
        let mut stats = SenderStats::default();
        for seq in 0..10_000u64 {
            r.on_sent(t0, seq, (seq / 10) as u32, Bytes::from(vec![0; 1200]));
            r.on_nack(
                t0,
                seq.wrapping_mul(2654435761) % 10_000,
                |_| true,
                &mut stats,
            );
            r.check_invariants();
        }
        assert!(r.queued() <= 64);
    }
}
