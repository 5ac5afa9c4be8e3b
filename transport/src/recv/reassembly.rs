//! One frame being put back together from its fragments.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

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
            || header.keyframe != self.keyframe
            || header.capture_us != self.capture_us
        {
            return Added::Inconsistent;
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
        if self.fragments.len() == self.count as usize {
            self.completed_at = Some(now);
            Added::Completed
        } else {
            self.deadline = (now + gap).min(self.hard_deadline).max(self.deadline);
            Added::Stored
        }
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
            keyframe: false,
            capture_us: 5,
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
}
