//! The receiver's view of the packet sequence: gaps, NACK timing and loss counting,
//! for both wires (picam's 32-bit packet counter, RTP's 16-bit sequence number).
//!
//! Every original packet carries a consecutive sequence number, so a jump is a hole.
//! Numbers are extended to 64 bits ([`super::seq64`]); the extended numbers' low bits
//! are the wire's, so `ext as u32` / `ext as u16` gives the number to put in a NACK. A hole is not NACKed at once: the path may reorder, and the
//! "missing" packet may be a few milliseconds behind. [`LossTracker`] learns how late
//! out-of-order originals arrive and waits a little longer than that before the first
//! NACK, so a reordering path stops producing spurious NACKs once it has been seen.
//!
//! The wires differ in one thing the tracker sees: picam's marks a resend, RTP cannot
//! tell a resend from a late original. So each packet comes with an [`Arrival`], and
//! the counters that need the mark (spurious NACKs, unrequested resends) count only
//! what the wire tells.
//!
//! Call order: `on_packet` for every data/parity packet, then `poll_nacks` (after every
//! input and when `next_timeout` is reached), or `expire` while NACKs are not sent.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::seq64;
use crate::seq;

/// Tunables of [`LossTracker`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LossConfig {
    /// Width of the wire's sequence number in bits (32 for picam's, 16 for RTP's).
    pub seq_bits: u32,
    /// A forward jump larger than this resets the tracker (restart or garbage) instead
    /// of opening a hole of that many NACKs.
    pub max_gap: u32,
    /// Shortest wait between detecting a hole and its first NACK.
    pub min_wait: Duration,
    /// Longest such wait, however much the path reorders.
    pub max_wait: Duration,
    /// NACKs per missing packet before waiting for it silently.
    pub max_nacks: u8,
    /// A hole is given up (counted lost) this long after detection.
    pub give_up_after: Duration,
    /// Most missing packets tracked at once; beyond, the oldest are given up.
    pub max_missing: usize,
    /// Longest spacing of repeated NACKs, whatever the round trip (RTP measures its
    /// round trip from NACK answers only: one slow answer must not stop the repeats).
    pub max_retry: Duration,
}

impl Default for LossConfig {
    fn default() -> Self {
        LossConfig {
            seq_bits: 32,
            max_gap: 1024,
            min_wait: Duration::from_millis(1),
            max_wait: Duration::from_millis(20),
            max_nacks: 8,
            give_up_after: Duration::from_millis(250),
            max_missing: 2048,
            max_retry: Duration::MAX,
        }
    }
}

/// What the wire says about a packet's origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arrival {
    /// Sent once, in sequence (picam's wire: the resend flag is clear).
    Original,
    /// A retransmission answering a NACK (picam's wire: the resend flag is set).
    Resend,
    /// The wire does not say (RTP: a resend reuses the original's sequence number).
    Unknown,
}

/// How a packet related to the sequence seen so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seen {
    /// An original at or past the highest seq seen.
    New,
    /// An original that filled a hole (it arrived out of order).
    Late,
    /// A retransmission that filled a hole.
    Repaired,
    /// Already received, or given up on, or too old to tell.
    Duplicate,
    /// A retransmission of a packet that was not missing.
    Unrequested,
    /// An [`Arrival::Unknown`] packet that filled a hole: a resend or a late original.
    /// `since_nack` is the time since the hole was last NACKed, when it was (counted
    /// repaired then, else as a late original).
    Filled {
        /// Time since the last NACK of this packet, if one was sent.
        since_nack: Option<Duration>,
    },
}

/// Counters for receiver reports and stats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct LossCounters {
    /// Distinct original packets received (New + Late), wrapping.
    pub originals_received: u32,
    /// Holes opened (and resets on a huge jump), wrapping.
    pub loss_events: u32,
    /// Packets still missing when given up.
    pub lost: u64,
    /// Sequence numbers requested in NACKs.
    pub nacks_sent: u64,
    /// Holes filled by a retransmission.
    pub repaired: u64,
    /// Originals that arrived after being NACKed (the NACK was not needed); only where
    /// the wire marks resends.
    pub spurious: u64,
    /// Duplicate packets.
    pub duplicates: u64,
    /// Retransmissions of packets that were not missing; only where the wire marks
    /// resends (otherwise they are `duplicates`).
    pub unrequested: u64,
    /// Missing packets dropped because the missing set was full (also in `lost`).
    pub overflowed: u64,
    /// Resets on a jump larger than `max_gap`.
    pub resets: u64,
}

/// One missing sequence number.
#[derive(Debug, Clone, Copy)]
struct Missing {
    /// When the hole was seen.
    detected: Instant,
    /// Frame of the packet just before the hole.
    #[cfg_attr(not(test), allow(dead_code))] // read by tests (`oldest_missing`)
    lo_frame: u32,
    /// Frame of the packet just after the hole: the missing packet belongs to a frame
    /// in `lo_frame..=hi_frame`, so once `hi_frame` is done nothing is gained.
    hi_frame: u32,
    /// NACKs sent so far.
    nacks: u8,
    /// When the last NACK was sent.
    last_nack: Option<Instant>,
    /// When the next NACK is due (meaningless once `nacks == max_nacks`).
    next_nack: Instant,
    /// Opened by a frame's tail stopping short (`check_tail`), not by a later packet:
    /// one that comes after all was slow, not reordered, and teaches no reorder wait.
    tail: bool,
}

/// The spacing of repeated NACKs of one packet, given the round trip `rtt`: a resend
/// is given a round trip and a quarter to arrive (plus 2 ms of scheduling), and never
/// less than 5 ms, so a LAN is not flooded with repeats of a NACK whose answer is
/// simply queued behind a frame. Both wires' receivers space their NACKs by this, and
/// the sender's parity policy counts the resend rounds that fit a deadline by it.
pub(crate) fn retry_interval(rtt: Duration) -> Duration {
    (rtt.mul_f64(1.25) + Duration::from_millis(2)).max(Duration::from_millis(5))
}

/// A frame whose last packets have not come this long after its latest one (and
/// four of its packet spacings) has lost its tail: no later packet will open a hole for
/// them until the next frame, a frame interval later.
///
/// 10 ms, longer than one 1400-byte packet takes at 1.2 Mbit/s: a frame's first
/// packets come at line rate out of the router's token bucket, so a capacity drop
/// just after them (issue 22's 8 -> 2 Mbit/s step, 5.6 ms a packet) read as a lost
/// tail at 5 ms, and its NACKed packets, still queued, were resent into the narrowed
/// link (29-84 resends, transients of 382-443 ms where runs without them read
/// 100-200 ms).
const TAIL_MIN_WAIT: Duration = Duration::from_millis(10);
/// Only a frame whose packets come closer than this is watched: a fast path, where a
/// frame arrives within a few milliseconds and a frame interval is long beside it. A
/// frame trickling through a bottleneck (3 ms a packet at 3 Mbit/s) is not: a stall of
/// the receiving thread or the queue's own jitter would be taken for loss, and the
/// resends of a whole tail would load the bottleneck further (seen: the jam's start
/// collapsed to the floor rate).
const TAIL_MAX_SPACING: Duration = Duration::from_millis(1);

/// The newest frame whose last original packet has not arrived yet.
#[derive(Debug, Clone, Copy)]
struct TailWatch {
    frame: u32,
    /// Extended seq of the frame's last original packet.
    through: u64,
    first_at: Instant,
    last_at: Instant,
    received: u32,
    /// The widest gap between two of its packets' arrivals so far.
    widest: Duration,
}

impl TailWatch {
    /// When the packets after the latest are taken as lost: `None` while the frame's
    /// spacing is unknown (one packet so far) or slow.
    fn due(&self) -> Option<Instant> {
        if self.received < 2 {
            return None;
        }
        // The widest gap, not the mean: a frame that came fast and then slowed (the
        // link's capacity dropped under it, seen at issue 22's 8 -> 2 Mbit/s step) is
        // trickling now, and NACKing its whole tail sent 100 resends into the narrowed
        // link, half a second of it.
        let spacing = self.last_at.saturating_duration_since(self.first_at) / (self.received - 1);
        (self.widest <= TAIL_MAX_SPACING)
            .then(|| self.last_at + (spacing.max(self.widest) * 4).max(TAIL_MIN_WAIT))
    }
}

/// Base of the extended (64-bit, non-wrapping) sequence space: a multiple of every
/// wire's range (so the low bits are the wire's), far enough from zero that a packet
/// half a range behind the first one still has a non-negative extended seq.
const EXT_BASE: u64 = 1 << 48;

/// Tracks holes in the packet sequence and decides when to NACK them.
///
/// Sans-IO: `now` is always an argument. Call `poll_nacks` after every `on_packet` and
/// whenever `next_timeout` is reached.
#[derive(Debug)]
pub(crate) struct LossTracker {
    /// Tunables.
    config: LossConfig,
    /// Frame of the highest seq seen; `None` before the first packet.
    highest_frame: Option<u32>,
    /// Extended highest seq seen: seqs are unwrapped into u64 so the missing set is
    /// ordered across the wire's wrap. Meaningless while `highest_frame` is `None`.
    ext_highest: u64,
    /// Extended highest seq of an original that arrived: below `ext_highest` while a
    /// tail is taken as lost (`check_tail`). The loss counts report this one, because
    /// a tail that was only slow would otherwise read as a frame's worth of loss (a
    /// 20-packet "burst" at 95 %) in the one report that falls before it arrives.
    ext_seen: u64,
    /// Missing packets by extended seq; the first is the oldest.
    missing: BTreeMap<u64, Missing>,
    /// Decaying maximum of how late out-of-order originals arrived.
    reorder: Duration,
    /// When `reorder` was last raised (it halves every second since).
    reorder_at: Option<Instant>,
    /// Earliest instant `poll_nacks` has timed work; `None` when nothing is missing.
    deadline: Option<Instant>,
    /// True when the missing set changed since the last full scan.
    dirty: bool,
    /// `last_done_frame` of the last full scan.
    scanned_done: Option<u32>,
    /// Counters.
    counters: LossCounters,
    /// The newest frame's tail, on a wire that tells how many packets a frame has.
    tail: Option<TailWatch>,
}

impl LossTracker {
    /// A tracker that has seen nothing.
    pub(crate) fn new(config: LossConfig) -> LossTracker {
        LossTracker {
            config,
            highest_frame: None,
            ext_highest: EXT_BASE,
            ext_seen: EXT_BASE,
            missing: BTreeMap::new(),
            reorder: Duration::ZERO,
            reorder_at: None,
            deadline: None,
            dirty: false,
            scanned_done: None,
            counters: LossCounters::default(),
            tail: None,
        }
    }

    /// After `on_packet` of an original packet of `frame` with wire seq `seq`, on a
    /// wire that numbers a frame's packets: `still_to_come` of its packets follow it
    /// (consecutive seqs). A lost last packet opens no hole until a later packet
    /// comes, the next frame's, a frame interval later; so when the frame's packets
    /// stop short for a few of their own spacings, the rest is taken as a hole.
    pub(crate) fn expect_tail(&mut self, now: Instant, seq: u64, frame: u32, still_to_come: u16) {
        let through = self.extend(seq) + u64::from(still_to_come);
        match &mut self.tail {
            Some(watch) if watch.frame == frame => {
                watch.widest = watch
                    .widest
                    .max(now.saturating_duration_since(watch.last_at));
                watch.last_at = now;
                watch.received = watch.received.saturating_add(1);
                watch.through = watch.through.max(through);
            }
            // A later frame: the earlier one's missing tail, if any, lies below this
            // packet's seq and is a hole already.
            _ => {
                self.tail = Some(TailWatch {
                    frame,
                    through,
                    first_at: now,
                    last_at: now,
                    received: 1,
                    widest: Duration::ZERO,
                })
            }
        }
        if self.ext_highest >= through {
            self.tail = None;
        }
    }

    /// Opens the hole of a tail that stopped short, when it is due.
    fn check_tail(&mut self, now: Instant) {
        let Some(watch) = self.tail else { return };
        if watch.due().is_none_or(|due| due > now) {
            return;
        }
        self.tail = None;
        let Some(highest_frame) = self.highest_frame else {
            return;
        };
        if watch.through > self.ext_highest
            && watch.through - self.ext_highest <= u64::from(self.config.max_gap)
        {
            let first = self.ext_highest + 1;
            self.open_hole(
                now,
                watch.through - self.ext_highest,
                highest_frame,
                watch.frame,
            );
            for (_, hole) in self.missing.range_mut(first..) {
                hole.tail = true;
            }
            self.ext_highest = watch.through;
            self.highest_frame = Some(watch.frame);
        }
    }

    /// Forgets everything, counters and the reordering estimate included (new session).
    pub(crate) fn reset(&mut self) {
        *self = LossTracker::new(self.config);
    }

    /// Highest seq of an original that arrived (its wire value), if any: with
    /// `counters().originals_received`, what the loss figure is made of.
    pub(crate) fn highest(&self) -> Option<u32> {
        self.highest_frame
            .map(|_| (self.ext_seen & self.mask()) as u32)
    }

    /// The extended number of wire seq `seq`: the one nearest the highest seen, or
    /// where the first packet starts the count.
    pub(crate) fn extend(&self, seq: u64) -> u64 {
        match self.highest_frame {
            Some(_) => seq64::extend(self.ext_highest, seq, self.bits()),
            None => EXT_BASE + (seq & self.mask()),
        }
    }

    /// The oldest missing packet's extended seq: everything before it has arrived or
    /// was given up.
    pub(crate) fn first_missing(&self) -> Option<u64> {
        self.missing.first_key_value().map(|(&ext, _)| ext)
    }

    /// When the oldest missing packet is given up, if one is missing (holes open in
    /// sequence order, so the oldest by seq is the oldest by time).
    pub(crate) fn next_give_up(&self) -> Option<Instant> {
        self.missing
            .first_key_value()
            .map(|(_, hole)| hole.detected + self.config.give_up_after)
    }

    /// Changes how long a hole is waited for (RTP: shorter once the sender is found
    /// not to answer NACKs).
    pub(crate) fn set_give_up_after(&mut self, wait: Duration) {
        self.config.give_up_after = wait;
        // The next poll scans again and times the holes by the new wait.
        self.dirty = true;
    }

    /// Gives up every missing packet below extended seq `ext` (counted lost): the owner
    /// no longer waits for them (RTP's reorder buffer released past them).
    pub(crate) fn give_up_below(&mut self, ext: u64) {
        // Called after every RTP packet: only split when there is something to drop.
        if self.first_missing().is_none_or(|first| first >= ext) {
            return;
        }
        let before = self.missing.len();
        self.missing = self.missing.split_off(&ext);
        let lost = before - self.missing.len();
        if lost > 0 {
            self.counters.lost += lost as u64;
            self.dirty = true;
        }
    }

    /// A new start at wire seq `seq` (the owner saw a jump backwards too far to be a
    /// late packet): every missing packet is given up, counters are kept. The new
    /// start's extended number lies more than a wire's range after the old highest, so
    /// extended numbers only grow and an owner keyed by them sees a far jump.
    pub(crate) fn restart(&mut self, seq: u64, frame: u32) {
        self.give_up_all();
        self.counters.resets += 1;
        self.counters.loss_events = self.counters.loss_events.wrapping_add(1);
        let bits = self.bits();
        let ranges = (self.ext_highest >> bits).saturating_add(2);
        self.highest_frame = Some(frame);
        self.ext_highest = (ranges << bits) | (seq & self.mask());
        self.ext_seen = self.ext_highest;
    }

    fn bits(&self) -> u32 {
        self.config.seq_bits.clamp(1, 32)
    }

    fn mask(&self) -> u64 {
        (1u64 << self.bits()) - 1
    }

    /// The counters.
    pub(crate) fn counters(&self) -> LossCounters {
        self.counters
    }

    /// Number of missing packets tracked.
    pub(crate) fn missing_len(&self) -> usize {
        self.missing.len()
    }

    /// The oldest missing packet as `(seq, lo_frame, hi_frame)`: it belongs to a frame
    /// in `lo_frame..=hi_frame`, so frames from `lo_frame` on may still be repaired.
    #[cfg(test)]
    pub(crate) fn oldest_missing(&self) -> Option<(u32, u32, u32)> {
        let (&ext, hole) = self.missing.first_key_value()?;
        Some((ext as u32, hole.lo_frame, hole.hi_frame))
    }

    /// The wait before the first NACK of a hole detected at `now`: 1.5 times the
    /// (decayed) reordering estimate, clamped to `[min_wait, max_wait]`.
    pub(crate) fn reorder_wait(&self, now: Instant) -> Duration {
        let wait = self.reorder_estimate(now).mul_f64(1.5);
        wait.clamp(
            self.config.min_wait,
            self.config.max_wait.max(self.config.min_wait),
        )
    }

    /// Handles a data or parity packet with wire seq `seq` (its bits beyond the wire's
    /// width are ignored) of `frame` (any number that grows with the frames, or 0 where
    /// the owner gives no frames); `arrival` is what the wire says of its origin.
    pub(crate) fn on_packet(
        &mut self,
        now: Instant,
        seq: u64,
        frame: u32,
        arrival: Arrival,
    ) -> Seen {
        let resend = arrival == Arrival::Resend;
        let Some(highest_frame) = self.highest_frame else {
            if resend {
                return self.unrequested();
            }
            self.highest_frame = Some(frame);
            self.ext_highest = self.extend(seq);
            self.ext_seen = self.ext_highest;
            return self.original_new();
        };
        let ext = self.extend(seq);
        if !resend {
            self.ext_seen = self.ext_seen.max(ext);
        }
        if ext > self.ext_highest {
            if resend {
                // Nothing ahead of `highest` was ever NACKed.
                return self.unrequested();
            }
            let d = ext - self.ext_highest;
            if d > u64::from(self.config.max_gap) {
                // A restart or garbage: NACKing such a hole would flood the sender.
                self.give_up_all();
                self.counters.loss_events = self.counters.loss_events.wrapping_add(1);
                self.counters.resets += 1;
            } else if d > 1 {
                self.open_hole(now, d - 1, highest_frame, frame);
            }
            self.ext_highest = ext;
            self.highest_frame = Some(frame);
            // A hole half the wire's range behind can no longer be told from a new
            // packet: given up (a short wire, RTP's 16 bits, under a flood).
            let oldest = self.ext_highest - (1 << (self.bits() - 1)) + 1;
            if self.first_missing().is_some_and(|first| first < oldest) {
                self.give_up_below(oldest);
            }
            return self.original_new();
        }
        // The highest may be a tail taken as lost (`check_tail`): then it fills a hole.
        if ext == self.ext_highest && !self.missing.contains_key(&ext) {
            return self.duplicate(resend);
        }
        // Behind `highest`: a hole being filled, or a duplicate.
        let Some(hole) = self.missing.remove(&ext) else {
            return self.duplicate(resend);
        };
        self.dirty = true;
        let since_nack = hole.last_nack.map(|t| now.saturating_duration_since(t));
        match arrival {
            Arrival::Resend => {
                self.counters.repaired += 1;
                Seen::Repaired
            }
            Arrival::Unknown if since_nack.is_some() => {
                // Most likely the answer to the NACK; a late original cannot be told.
                self.counters.repaired += 1;
                Seen::Filled { since_nack }
            }
            Arrival::Original | Arrival::Unknown => {
                if hole.nacks > 0 {
                    self.counters.spurious += 1;
                }
                if !hole.tail {
                    self.raise_reorder(now, now.saturating_duration_since(hole.detected));
                }
                self.counters.originals_received = self.counters.originals_received.wrapping_add(1);
                if arrival == Arrival::Unknown {
                    Seen::Filled { since_nack }
                } else {
                    Seen::Late
                }
            }
        }
    }

    /// The extended seqs to NACK now (`ext as u32` / `ext as u16` is the wire's
    /// number); forgets holes that are past `give_up_after` or whose frames are all done.
    ///
    /// `rtt` spaces repeated NACKs of one seq ([`retry_interval`], at most `max_retry`).
    /// `last_done_frame` is the last frame the receiver emitted or gave up on (`None`
    /// before the first, or where the owner gives no frames): a hole whose later
    /// bounding frame is not after it can no longer help any frame.
    pub(crate) fn poll_nacks(
        &mut self,
        now: Instant,
        rtt: Duration,
        last_done_frame: Option<u32>,
    ) -> Vec<u64> {
        self.check_tail(now);
        let timed = self.deadline.is_some_and(|d| d <= now);
        if !timed && !self.dirty && last_done_frame == self.scanned_done {
            return Vec::new();
        }
        self.dirty = false;
        self.scanned_done = last_done_frame;
        let interval = retry_interval(rtt).min(self.config.max_retry);
        self.scan(now, Some(interval), last_done_frame)
    }

    /// Forgets holes as `poll_nacks` does, without NACKing (the owner sends no NACKs
    /// now: no peer address yet, or a sender that does not answer them).
    pub(crate) fn expire(&mut self, now: Instant, last_done_frame: Option<u32>) {
        self.check_tail(now);
        let before = self.missing.len();
        let _ = self.scan(now, None, last_done_frame);
        // `scan` timed only the give-ups: the next `poll_nacks` must look at every hole.
        self.dirty |= self.missing.len() != before || !self.missing.is_empty();
    }

    /// Gives up holes that are too old or no longer useful and, with `interval`, NACKs
    /// those due; sets the deadline.
    fn scan(
        &mut self,
        now: Instant,
        interval: Option<Duration>,
        last_done_frame: Option<u32>,
    ) -> Vec<u64> {
        let mut nacks = Vec::new();
        let config = self.config;
        let mut deadline: Option<Instant> = None;
        let mut lost = 0;
        self.missing.retain(|&ext, hole| {
            let give_up_at = hole.detected + config.give_up_after;
            let done = last_done_frame.is_some_and(|done| !seq::after(hole.hi_frame, done));
            if done || now >= give_up_at {
                lost += 1;
                return false;
            }
            let Some(interval) = interval else {
                deadline = Some(deadline.map_or(give_up_at, |d| d.min(give_up_at)));
                return true;
            };
            if hole.nacks < config.max_nacks && now >= hole.next_nack {
                nacks.push(ext);
                hole.nacks += 1;
                hole.last_nack = Some(now);
                hole.next_nack = now + interval;
            }
            let next = if hole.nacks < config.max_nacks {
                hole.next_nack.min(give_up_at)
            } else {
                give_up_at
            };
            deadline = Some(deadline.map_or(next, |d| d.min(next)));
            true
        });
        self.counters.lost += lost;
        self.counters.nacks_sent += nacks.len() as u64;
        self.deadline = deadline;
        nacks
    }

    /// The earliest instant at which `poll_nacks` would NACK or forget something.
    pub(crate) fn next_timeout(&self) -> Option<Instant> {
        let tail = self.tail.and_then(|watch| watch.due());
        [self.deadline, tail].into_iter().flatten().min()
    }

    /// Panics if internal state is inconsistent (tests and fuzzers).
    pub(crate) fn check_invariants(&self) {
        assert!(
            self.missing.len() <= self.config.max_missing.max(1),
            "missing set bound"
        );
        if let (Some((&first, _)), Some((&last, _))) = (
            self.missing.first_key_value(),
            self.missing.last_key_value(),
        ) {
            // A tail taken as lost ends at the highest (`check_tail`).
            assert!(last <= self.ext_highest, "missing seq past highest");
            assert!(
                self.ext_highest - first < 1 << (self.bits() - 1),
                "missing seq too old"
            );
            assert!(self.highest_frame.is_some(), "missing without highest");
        }
        for hole in self.missing.values() {
            assert!(hole.nacks <= self.config.max_nacks, "too many NACKs");
            assert_eq!(hole.nacks == 0, hole.last_nack.is_none(), "NACK time");
        }
    }

    /// Records `count` missing seqs just below the new highest (exclusive), i.e. after
    /// `ext_highest`, bounded by frames `lo_frame` and `hi_frame`.
    fn open_hole(&mut self, now: Instant, count: u64, lo_frame: u32, hi_frame: u32) {
        self.counters.loss_events = self.counters.loss_events.wrapping_add(1);
        let next_nack = now + self.reorder_wait(now);
        let hole = Missing {
            detected: now,
            lo_frame,
            hi_frame,
            nacks: 0,
            last_nack: None,
            next_nack,
            tail: false,
        };
        for ext in self.ext_highest + 1..=self.ext_highest + count {
            self.missing.insert(ext, hole);
        }
        let max = self.config.max_missing.max(1);
        while self.missing.len() > max {
            self.missing.pop_first();
            self.counters.overflowed += 1;
            self.counters.lost += 1;
        }
        self.deadline = Some(self.deadline.map_or(next_nack, |d| d.min(next_nack)));
        self.dirty = true;
    }

    /// Gives up every missing packet (counted lost).
    fn give_up_all(&mut self) {
        self.tail = None;
        self.counters.lost += self.missing.len() as u64;
        self.missing.clear();
        self.deadline = None;
        self.dirty = true;
    }

    /// The reordering estimate at `now`, halved for every full second since raised.
    fn reorder_estimate(&self, now: Instant) -> Duration {
        let Some(at) = self.reorder_at else {
            return Duration::ZERO;
        };
        let halvings = now.saturating_duration_since(at).as_secs().min(63) as u32;
        self.reorder / (1u32 << halvings.min(31))
    }

    /// Folds in one observation of an original arriving `late_by` after its hole.
    fn raise_reorder(&mut self, now: Instant, late_by: Duration) {
        // Capped: anything beyond max_wait is clamped anyway, and a bound keeps the
        // arithmetic tame.
        let late_by = late_by.min(self.config.max_wait * 4);
        self.reorder = self.reorder_estimate(now).max(late_by);
        self.reorder_at = Some(now);
    }

    /// Counts and classifies a new original.
    fn original_new(&mut self) -> Seen {
        self.counters.originals_received = self.counters.originals_received.wrapping_add(1);
        Seen::New
    }

    /// Counts and classifies an unrequested retransmission.
    fn unrequested(&mut self) -> Seen {
        self.counters.unrequested += 1;
        Seen::Unrequested
    }

    /// Counts and classifies a packet already seen (or given up).
    fn duplicate(&mut self, resend: bool) -> Seen {
        if resend {
            self.unrequested()
        } else {
            self.counters.duplicates += 1;
            Seen::Duplicate
        }
    }
}

#[cfg(test)]
#[path = "nack_tests.rs"]
mod tests;
