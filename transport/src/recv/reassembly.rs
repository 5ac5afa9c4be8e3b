//! One frame being put back together from its fragments.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use crate::repair::fec::{self, Geometry};
use crate::wire::FragmentHeader;

/// Outcome of adding a fragment.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Added {
    /// Stored; the frame is still missing fragments.
    Stored,
    /// Stored, and the frame is now complete.
    Completed,
    /// This fragment index was already present.
    Duplicate,
    /// A parity fragment stored; the frame still misses data that parity cannot yet
    /// rebuild.
    ParityStored,
    /// Parity rebuilt this many missing data fragments, and the frame is now complete.
    Rebuilt(u16),
    /// A parity fragment for a frame already complete.
    ParityUnused,
    /// The fragment contradicts earlier ones (count, flags, time) or overflows the size
    /// limit; it is ignored.
    Inconsistent,
}

/// A frame in flight: fragments so far, and when it must be given up.
#[derive(Debug)]
pub(crate) struct Partial {
    pub number: u32,
    pub keyframe: bool,
    pub capture_us: u64,
    pub deadline: Instant,
    /// The deadline never moves past this.
    hard_deadline: Instant,
    /// Fragments so far by index. A map, not a slot per fragment, so memory follows
    /// what arrived: a forged header claiming 65535 fragments costs one entry, not
    /// 65535 slots.
    fragments: BTreeMap<u16, Bytes>,
    count: u16,
    frame_len: u32,
    /// Parity shards so far (kept only while they may still help).
    parity: BTreeMap<u16, Bytes>,
    parity_count: u16,
    parity_bytes: usize,
    /// Some data was filled by repair (retransmission or parity).
    pub repaired: bool,
    bytes: usize,
    /// When the last fragment arrived (set once complete).
    pub completed_at: Option<Instant>,
}

impl Partial {
    /// A frame whose first fragment arrived at `now`: it is given up `gap` after its
    /// latest fragment, and never later than `max_age` after its first, so a large
    /// frame on a slow link may take as long as it keeps arriving.
    pub fn new(header: &FragmentHeader, now: Instant, gap: Duration, max_age: Duration) -> Self {
        Self {
            number: header.frame,
            keyframe: header.keyframe,
            capture_us: header.capture_us,
            deadline: now + gap.min(max_age),
            hard_deadline: now + max_age,
            fragments: BTreeMap::new(),
            count: header.count,
            frame_len: header.frame_len,
            parity: BTreeMap::new(),
            parity_count: header.parity,
            parity_bytes: 0,
            repaired: false,
            bytes: 0,
            completed_at: None,
        }
    }

    pub fn is_complete(&self) -> bool {
        self.completed_at.is_some()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn add(
        &mut self,
        now: Instant,
        header: &FragmentHeader,
        payload: &[u8],
        max_bytes: usize,
        gap: Duration,
    ) -> Added {
        if header.count != self.count
            || header.parity != self.parity_count
            || header.frame_len != self.frame_len
            || header.keyframe != self.keyframe
            || header.capture_us != self.capture_us
        {
            return Added::Inconsistent;
        }
        if header.is_parity {
            return self.add_parity(now, header, payload, max_bytes, gap);
        }
        if self.fragments.contains_key(&header.index) {
            return Added::Duplicate;
        }
        if self.bytes + payload.len() > max_bytes {
            return Added::Inconsistent;
        }
        self.fragments
            .insert(header.index, Bytes::copy_from_slice(payload));
        self.bytes += payload.len();
        if header.retransmit {
            self.repaired = true;
        }
        if self.fragments.len() == self.count as usize {
            self.complete(now);
            return Added::Completed;
        }
        self.deadline = (now + gap).min(self.hard_deadline).max(self.deadline);
        match self.rebuild(now) {
            Some(n) => Added::Rebuilt(n),
            None => Added::Stored,
        }
    }

    fn add_parity(
        &mut self,
        now: Instant,
        header: &FragmentHeader,
        payload: &[u8],
        max_bytes: usize,
        gap: Duration,
    ) -> Added {
        if self.is_complete() {
            return Added::ParityUnused;
        }
        let geometry = self.geometry(payload.len());
        if payload.len() > u16::MAX as usize || geometry.validate(max_bytes).is_err() {
            return Added::Inconsistent;
        }
        if let Some(first) = self.parity.values().next() {
            if first.len() != payload.len() {
                return Added::Inconsistent;
            }
        }
        if self.parity.contains_key(&header.index) {
            return Added::Duplicate;
        }
        // Parity never needs to hold more than the frame it protects.
        if self.parity_bytes + payload.len() > max_bytes {
            return Added::Inconsistent;
        }
        self.parity
            .insert(header.index, Bytes::copy_from_slice(payload));
        self.parity_bytes += payload.len();
        self.deadline = (now + gap).min(self.hard_deadline).max(self.deadline);
        match self.rebuild(now) {
            Some(n) => Added::Rebuilt(n),
            None => Added::ParityStored,
        }
    }

    fn geometry(&self, shard_bytes: usize) -> Geometry {
        Geometry {
            data: self.count,
            parity: self.parity_count,
            shard_bytes: shard_bytes.min(u16::MAX as usize) as u16,
            frame_len: self.frame_len,
        }
    }

    /// Rebuilds missing data from parity as soon as enough shards are in; returns how
    /// many fragments were rebuilt.
    fn rebuild(&mut self, now: Instant) -> Option<u16> {
        let shard = self.parity.values().next()?.len();
        if self.fragments.len() + self.parity.len() < self.count as usize {
            return None;
        }
        let missing = fec::recover(&self.geometry(shard), &self.fragments, &self.parity)?;
        let rebuilt = missing.len() as u16;
        for (index, data) in missing {
            self.bytes += data.len();
            self.fragments.insert(index, data);
        }
        if self.fragments.len() != self.count as usize {
            return None;
        }
        self.repaired = true;
        self.complete(now);
        Some(rebuilt)
    }

    fn complete(&mut self, now: Instant) {
        self.completed_at = Some(now);
        self.parity.clear();
        self.parity_bytes = 0;
    }

    /// Joins the fragments; only valid once complete.
    pub fn assemble(&mut self) -> Bytes {
        debug_assert!(self.is_complete());
        let mut parts = std::mem::take(&mut self.fragments).into_values();
        if self.count == 1 {
            return parts.next().unwrap_or_default();
        }
        let mut out = BytesMut::with_capacity(self.bytes);
        for part in parts {
            out.extend_from_slice(&part);
        }
        out.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(index: u16, count: u16) -> FragmentHeader {
        FragmentHeader {
            session: 1,
            frame: 7,
            index,
            count,
            frame_len: 3,
            capture_us: 5,
            ..FragmentHeader::default()
        }
    }

    #[test]
    fn a_header_claiming_many_fragments_costs_only_what_arrived() {
        let now = Instant::now();
        let gap = Duration::from_millis(200);
        let h = header(u16::MAX - 1, u16::MAX);
        let mut p = Partial::new(&h, now, gap, gap);
        assert_eq!(p.add(now, &h, b"x", 1 << 22, gap), Added::Stored);
        // One entry held, however many fragments the header claims (before this fix a
        // slot per claimed fragment: 65535 of them, ~2 MiB, per 27-byte packet).
        assert_eq!(p.fragments.len(), 1);
        assert!(std::mem::size_of::<Bytes>() * p.fragments.len() < 1024);
    }

    #[test]
    fn assembles_in_index_order_whatever_the_arrival_order() {
        let now = Instant::now();
        let gap = Duration::from_millis(200);
        let mut p = Partial::new(&header(0, 3), now, gap, gap);
        for (i, part) in [(2u16, &b"c"[..]), (0, b"a"), (1, b"b")] {
            let added = p.add(now, &header(i, 3), part, 100, gap);
            assert_eq!(added == Added::Completed, i == 1);
        }
        assert_eq!(p.add(now, &header(1, 3), b"b", 100, gap), Added::Duplicate);
        assert_eq!(&p.assemble()[..], b"abc");
    }

    #[test]
    fn parity_rebuilds_missing_data_and_refuses_impossible_geometry() {
        let now = Instant::now();
        let gap = Duration::from_millis(200);
        let frame: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
        let payload = 300;
        let shards = fec::parity_shards(&frame, payload, 2);
        let h = |index: u16, is_parity: bool| FragmentHeader {
            session: 1,
            frame: 9,
            index,
            count: 4,
            parity: 2,
            is_parity,
            frame_len: 1000,
            capture_us: 5,
            ..FragmentHeader::default()
        };
        let mut p = Partial::new(&h(0, false), now, gap, gap);
        // Data 0 and 3 arrive, 1 and 2 are lost; both parity shards rebuild them.
        assert_eq!(
            p.add(now, &h(0, false), &frame[..300], 1 << 20, gap),
            Added::Stored
        );
        assert_eq!(
            p.add(now, &h(3, false), &frame[900..], 1 << 20, gap),
            Added::Stored
        );
        assert_eq!(
            p.add(now, &h(0, true), &shards[0], 1 << 20, gap),
            Added::ParityStored
        );
        assert_eq!(
            p.add(now, &h(1, true), &shards[1], 1 << 20, gap),
            Added::Rebuilt(2)
        );
        assert!(p.is_complete() && p.repaired);
        assert_eq!(
            p.add(now, &h(1, true), &shards[1], 1 << 20, gap),
            Added::ParityUnused
        );
        assert_eq!(&p.assemble()[..], &frame[..]);
        // A parity packet whose geometry cannot describe the frame is refused.
        let mut p = Partial::new(&h(0, false), now, gap, gap);
        assert_eq!(
            p.add(now, &h(0, true), &[0; 3], 1 << 20, gap),
            Added::Inconsistent
        );
        assert_eq!(
            p.add(now, &h(0, true), &[0; 100], 1 << 20, gap),
            Added::Inconsistent
        );
    }
}
