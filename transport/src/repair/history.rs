//! The sender's bounded history of sent packets, kept for retransmission on NACK.
//!
//! The sender pushes every original packet (data and parity) in sequence order, so the
//! history is a run of consecutive sequence numbers: entry `i` holds seq
//! `first_seq + i`, and a lookup is one subtraction. Sequence numbers here are the
//! 64-bit extended ones ([`super::seq64`]), so the same history serves RTP's 16-bit
//! and picam's 32-bit wire numbers. It is bounded twice:
//! by bytes (a flood of large frames cannot grow it) and by age (a packet older than
//! `max_age` is useless to the receiver, whose frame deadline has passed).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

/// One sent packet, as kept for retransmission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// Frame number the packet belongs to.
    pub frame: u32,
    /// When it was first sent.
    pub sent_at: Instant,
    /// The packet exactly as sent (header included).
    pub packet: Bytes,
    /// When it was last retransmitted, to rate-limit repeated NACKs for one packet.
    pub last_resent: Option<Instant>,
}

/// Bounded history of sent packets indexed by sequence number.
///
/// Contract: `push` is called with consecutive sequence numbers. A push that
/// breaks the run (a gap or a step back) clears the history first, so lookups never
/// return the wrong packet.
#[derive(Debug)]
pub(crate) struct SendHistory {
    /// Entries for `first_seq`, `first_seq + 1`, ... in order.
    entries: VecDeque<Entry>,
    /// Sequence number of `entries[0]` (meaningless while empty).
    first_seq: u64,
    /// Sum of `packet.len()` over `entries`.
    bytes: usize,
    /// Byte budget; the oldest entries are evicted beyond it.
    max_bytes: usize,
    /// Age beyond which an entry is evicted.
    max_age: Duration,
}

impl SendHistory {
    /// An empty history holding at most `max_bytes` of packets, none older than
    /// `max_age`.
    pub(crate) fn new(max_bytes: usize, max_age: Duration) -> SendHistory {
        SendHistory {
            entries: VecDeque::new(),
            first_seq: 0,
            bytes: 0,
            max_bytes,
            max_age,
        }
    }

    /// Records a packet just sent as `seq` for `frame`, evicting the oldest entries
    /// beyond the byte budget and those past `max_age`.
    ///
    /// A packet larger than the whole budget is not kept (it would evict everything
    /// and then itself).
    pub(crate) fn push(&mut self, now: Instant, seq: u64, frame: u32, packet: Bytes) {
        if !self.entries.is_empty() && seq != self.next_seq() {
            // Contract broken (sender restart or bug): old indexes would be wrong.
            self.clear();
        }
        if self.entries.is_empty() {
            self.first_seq = seq;
        }
        self.bytes += packet.len();
        self.entries.push_back(Entry {
            frame,
            sent_at: now,
            packet,
            last_resent: None,
        });
        while self.bytes > self.max_bytes {
            self.pop_front();
        }
        self.expire(now);
    }

    /// The packet sent as `seq`, if still held and younger than `max_age` (expired
    /// entries are evicted first).
    pub(crate) fn get(&mut self, now: Instant, seq: u64) -> Option<Entry> {
        self.expire(now);
        self.index(seq).map(|i| self.entries[i].clone())
    }

    /// Notes that `seq` was retransmitted at `now`; false when it is not held.
    pub(crate) fn mark_resent(&mut self, seq: u64, now: Instant) -> bool {
        match self.index(seq) {
            Some(i) => {
                self.entries[i].last_resent = Some(now);
                true
            }
            None => false,
        }
    }

    /// Bytes of packets held.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Number of packets held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no packet is held.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Forgets every packet (new session).
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }

    /// Panics if the byte accounting or the bounds are wrong (tests and fuzzers).
    pub(crate) fn check_invariants(&self) {
        let sum: usize = self.entries.iter().map(|e| e.packet.len()).sum();
        assert_eq!(sum, self.bytes, "byte accounting");
        assert!(self.bytes <= self.max_bytes, "over the byte budget");
    }

    /// The seq the next push must carry to continue the run.
    fn next_seq(&self) -> u64 {
        self.first_seq + self.entries.len() as u64
    }

    /// Position of `seq` in `entries`, if held.
    fn index(&self, seq: u64) -> Option<usize> {
        let offset = usize::try_from(seq.checked_sub(self.first_seq)?).ok()?;
        (offset < self.entries.len()).then_some(offset)
    }

    /// Evicts entries older than `max_age`. Entries are in send order, so the oldest
    /// are at the front.
    fn expire(&mut self, now: Instant) {
        while let Some(front) = self.entries.front() {
            if now.saturating_duration_since(front.sent_at) <= self.max_age {
                break;
            }
            self.pop_front();
        }
    }

    /// Drops the oldest entry.
    fn pop_front(&mut self) {
        if let Some(e) = self.entries.pop_front() {
            self.bytes -= e.packet.len();
            self.first_seq += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn packet(seq: u64, len: usize) -> Bytes {
        Bytes::from(
            (0..len)
                .map(|i| (seq as usize + i) as u8)
                .collect::<Vec<u8>>(),
        )
    }

    #[test]
    fn stores_and_finds_by_seq() {
        let t0 = Instant::now();
        let mut h = SendHistory::new(1 << 20, 500 * MS);
        for seq in 10..20 {
            h.push(t0, seq, (seq / 4) as u32, packet(seq, 100));
            h.check_invariants();
        }
        assert_eq!(h.len(), 10);
        assert_eq!(h.bytes(), 1000);
        let e = h.get(t0, 13).unwrap();
        assert_eq!((e.frame, e.sent_at, e.last_resent), (3, t0, None));
        assert_eq!(e.packet, packet(13, 100));
        assert!(h.mark_resent(13, t0 + MS));
        assert_eq!(h.get(t0, 13).unwrap().last_resent, Some(t0 + MS));
        for unknown in [9, 20, 0, u64::MAX, 1 << 31] {
            assert_eq!(h.get(t0, unknown), None, "{unknown}");
            assert!(!h.mark_resent(unknown, t0));
        }
    }

    #[test]
    fn lookups_across_a_wire_wrap() {
        // 16-bit RTP numbers through their wrap, extended as the senders do.
        let t0 = Instant::now();
        let mut h = SendHistory::new(1 << 20, 500 * MS);
        let mut ext = super::super::seq64::Extender::new(16);
        let start = u16::MAX - 5;
        for i in 0..12u16 {
            let seq = ext.push(u64::from(start.wrapping_add(i)));
            h.push(t0, seq, u32::from(i), packet(seq, 10));
        }
        h.check_invariants();
        for i in 0..12u16 {
            let seq = ext.extend(u64::from(start.wrapping_add(i))).unwrap();
            assert_eq!(h.get(t0, seq).unwrap().packet, packet(seq, 10), "{seq}");
        }
        let before = ext.extend(u64::from(start.wrapping_sub(1))).unwrap();
        assert_eq!(h.get(t0, before), None);
        assert_eq!(h.get(t0, ext.highest().unwrap() + 1), None);
    }

    #[test]
    fn bounded_in_bytes_under_a_flood() {
        let t0 = Instant::now();
        let mut h = SendHistory::new(10_000, Duration::from_secs(3600));
        for seq in 0..100_000u64 {
            h.push(
                t0,
                seq,
                (seq / 10) as u32,
                packet(seq, 1 + (seq as usize * 7919) % 1400),
            );
            assert!(h.bytes() <= 10_000);
        }
        h.check_invariants();
        // The newest are kept, the oldest gone.
        assert!(h.get(t0, 99_999).is_some());
        assert!(h.get(t0, 90_000).is_none());
        // A packet larger than the budget is not kept, and does not break the run.
        h.push(t0, 100_000, 0, packet(0, 20_000));
        h.check_invariants();
        assert!(h.is_empty());
        h.push(t0, 100_001, 0, packet(0, 10));
        assert!(h.get(t0, 100_001).is_some());
    }

    #[test]
    fn bounded_in_age() {
        let t0 = Instant::now();
        let mut h = SendHistory::new(usize::MAX, 100 * MS);
        for seq in 0..1000u64 {
            h.push(t0 + seq as u32 * MS, seq, seq as u32, packet(seq, 50));
            // At 1 packet per ms, at most 101 are younger than 100 ms.
            assert!(h.len() <= 101, "{}", h.len());
        }
        h.check_invariants();
        let now = t0 + 999 * MS;
        assert!(h.get(now, 899).is_some());
        assert!(h.get(now, 898).is_none());
        // Expired on lookup, without a push.
        assert!(h.get(now + 51 * MS, 949).is_none(), "101 ms old");
        assert!(h.get(now + 51 * MS, 950).is_some(), "100 ms old");
        assert!(h.get(now + 200 * MS, 999).is_none());
        assert!(h.is_empty());
        assert_eq!(h.bytes(), 0);
    }

    #[test]
    fn broken_run_clears() {
        let t0 = Instant::now();
        let mut h = SendHistory::new(1 << 20, 500 * MS);
        for seq in 0..5 {
            h.push(t0, seq, 0, packet(seq, 10));
        }
        h.push(t0, 7, 1, packet(7, 10));
        h.check_invariants();
        assert_eq!(h.len(), 1);
        assert!(h.get(t0, 3).is_none());
        assert!(h.get(t0, 7).is_some());
        h.push(t0, 2, 1, packet(2, 10));
        assert_eq!(h.len(), 1);
        assert!(h.get(t0, 7).is_none());
        h.clear();
        assert!(h.is_empty() && h.bytes() == 0);
    }
}
