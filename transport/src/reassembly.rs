//! One frame being put back together from its fragments.

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
    fragments: Vec<Option<Bytes>>,
    received: u16,
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
            fragments: vec![None; header.count as usize],
            received: 0,
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
        if header.count as usize != self.fragments.len()
            || header.keyframe != self.keyframe
            || header.capture_us != self.capture_us
        {
            return Added::Inconsistent;
        }
        let slot = &mut self.fragments[header.index as usize];
        if slot.is_some() {
            return Added::Duplicate;
        }
        if self.bytes + payload.len() > max_bytes {
            return Added::Inconsistent;
        }
        *slot = Some(Bytes::copy_from_slice(payload));
        self.received += 1;
        self.bytes += payload.len();
        if self.received as usize == self.fragments.len() {
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
        if let [Some(only)] = self.fragments.as_mut_slice() {
            return std::mem::take(only);
        }
        let mut out = BytesMut::with_capacity(self.bytes);
        for part in self.fragments.iter_mut().flatten() {
            out.extend_from_slice(part);
        }
        self.fragments.clear();
        out.freeze()
    }
}
