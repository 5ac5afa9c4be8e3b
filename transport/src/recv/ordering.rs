//! Frame order: the frames in flight, where a new fragment's frame sits among them,
//! giving up the oldest, and handing frames out in number order (rules 1-3 of the
//! module above). [`FrameOrder`] owns that state; the receiver owns sessions, feedback
//! and the requests it sends, and asks for a keyframe when [`FrameOrder`] says so.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use media::EncodedFrame;

use super::reassembly::Partial;
use super::ReceivedFrame;
use crate::wire::FragmentHeader;
use crate::{seq, ReceiverDrops};

/// The frames in flight and the order they leave in.
#[derive(Debug)]
pub(super) struct FrameOrder {
    /// Frames held (incomplete, or complete and waiting for an earlier one), in number
    /// order.
    partials: Vec<Partial>,
    /// The last frame handed out or given up.
    last_emitted: Option<u32>,
    /// The last frame actually handed out.
    last_shown: Option<u32>,
    /// After a gap nothing leaves until a keyframe.
    waiting_keyframe: bool,
    /// Frames ready for the decoder, in order.
    ready: VecDeque<ReceivedFrame>,
    max_in_flight: usize,
    /// Something happened that calls for a keyframe request; the receiver takes it
    /// ([`Self::take_keyframe_ask`]) and decides whether one goes now.
    ask_keyframe: bool,
}

impl FrameOrder {
    /// Nothing held; holds at most `max_in_flight` frames (and as many ready ones).
    pub(super) fn new(max_in_flight: usize) -> Self {
        Self {
            partials: Vec::new(),
            last_emitted: None,
            last_shown: None,
            waiting_keyframe: true,
            ready: VecDeque::new(),
            max_in_flight,
            ask_keyframe: false,
        }
    }

    /// A new session: forget every frame and wait for a keyframe.
    pub(super) fn reset(&mut self) {
        self.partials.clear();
        self.last_emitted = None;
        self.last_shown = None;
        self.waiting_keyframe = true;
    }

    /// The last frame handed out or given up.
    pub(super) fn last_emitted(&self) -> Option<u32> {
        self.last_emitted
    }

    /// Whether nothing can leave until a keyframe.
    pub(super) fn waiting_keyframe(&self) -> bool {
        self.waiting_keyframe
    }

    /// Whether a keyframe is being received (it will end the wait by itself).
    pub(super) fn keyframe_in_progress(&self) -> bool {
        self.partials.iter().any(|p| p.keyframe)
    }

    /// Whether the receiver should consider asking for a keyframe now; clears the ask.
    pub(super) fn take_keyframe_ask(&mut self) -> bool {
        std::mem::take(&mut self.ask_keyframe)
    }

    /// The next frame for the decoder.
    pub(super) fn pop_ready(&mut self) -> Option<ReceivedFrame> {
        self.ready.pop_front()
    }

    /// Whether `frame` is not after the last frame given up or emitted, or not after the
    /// last frame actually handed out: either way too late. (The two differ when
    /// frames were given up since, and a jump of half the number space past the one
    /// would be "before" the other: found by fuzzing.)
    pub(super) fn is_stale(&self, frame: u32) -> bool {
        let not_after = |last: Option<u32>| last.is_some_and(|last| !seq::after(frame, last));
        not_after(self.last_emitted) || not_after(self.last_shown)
    }

    /// Whether `frame` is half the number space away from the frames held: held
    /// frames must stay within half the space of one another, or wrapping order stops
    /// being an order. Only reachable before anything has left: after that,
    /// [`Self::is_stale`] keeps every frame within half a range of `last_emitted`.
    pub(super) fn is_too_far(&self, frame: u32) -> Option<u32> {
        let (oldest, newest) = (self.partials.first()?, self.partials.last()?);
        let span = newest.number.wrapping_sub(oldest.number);
        let ahead = frame.wrapping_sub(oldest.number);
        (ahead > span && ahead >= 1 << 31 && u64::from(ahead) <= (1 << 31) + u64::from(span))
            .then_some(oldest.number)
    }

    /// The frame a fragment with `header` belongs to, a new one made room for if need
    /// be (the oldest is given up); `None` when it is older than everything held and
    /// there is no room (counted as evicted).
    pub(super) fn frame_for(
        &mut self,
        now: Instant,
        header: &FragmentHeader,
        frame_deadline: Duration,
        max_frame_age: Duration,
        session: u32,
        dropped: &mut ReceiverDrops,
    ) -> Option<&mut Partial> {
        let index = match self.find(header.frame) {
            Ok(index) => index,
            Err(mut insert_at) => {
                if self.partials.len() >= self.max_in_flight {
                    if insert_at == 0 {
                        // Older than everything held, and no room: not worth a slot.
                        dropped.evicted += 1;
                        return None;
                    }
                    self.give_up_oldest(now, session, dropped);
                    insert_at -= 1;
                }
                let partial = Partial::new(header, now, frame_deadline, max_frame_age);
                self.partials.insert(insert_at, partial);
                insert_at
            }
        };
        self.partials.get_mut(index)
    }

    fn find(&self, frame: u32) -> Result<usize, usize> {
        self.partials.binary_search_by(|p| {
            if p.number == frame {
                std::cmp::Ordering::Equal
            } else if seq::after(frame, p.number) {
                std::cmp::Ordering::Less
            } else {
                std::cmp::Ordering::Greater
            }
        })
    }

    /// Moves the emission point to `number`, counting frame numbers skipped as lost.
    fn advance_to(&mut self, number: u32, dropped: &mut ReceiverDrops) {
        if let Some(last) = self.last_emitted {
            let skipped = seq::distance(number, last) - 1;
            if skipped > 0 {
                dropped.lost += skipped as u64;
                self.enter_gap();
            }
        }
        self.last_emitted = Some(number);
    }

    /// Nothing more can be decoded until a keyframe.
    pub(super) fn enter_gap(&mut self) {
        self.waiting_keyframe = true;
    }

    /// A frame already handed out never reached the decoder (its queue was full) or
    /// failed there, so every frame queued behind it refers to a picture the decoder
    /// does not have: decoded anyway, the decoder conceals the hole with the previous
    /// picture (seen as a stale band at stream start). Those frames are dropped,
    /// counted undecodable, up to the first keyframe queued, which resyncs by itself;
    /// with none queued, nothing more leaves until a keyframe.
    pub(super) fn lose_handed_out(&mut self, dropped: &mut ReceiverDrops) {
        let keep_from = self.ready.iter().position(|f| f.frame.keyframe);
        let lost = keep_from.unwrap_or(self.ready.len());
        dropped.undecodable += lost as u64;
        self.ready.drain(..lost);
        if keep_from.is_none() {
            self.enter_gap();
        }
    }

    fn give_up_oldest(&mut self, now: Instant, session: u32, dropped: &mut ReceiverDrops) {
        let mut oldest = self.partials.remove(0);
        if oldest.is_complete() {
            self.emit_or_drop(now, &mut oldest, session, dropped);
        } else {
            dropped.evicted += 1;
            self.advance_to(oldest.number, dropped);
            self.enter_gap();
            self.ask_keyframe = true;
        }
    }

    fn emit_or_drop(
        &mut self,
        now: Instant,
        partial: &mut Partial,
        session: u32,
        dropped: &mut ReceiverDrops,
    ) {
        self.advance_to(partial.number, dropped);
        if self.waiting_keyframe && !partial.keyframe {
            dropped.undecodable += 1;
            self.ask_keyframe = true;
            return;
        }
        if partial.keyframe {
            self.waiting_keyframe = false;
        }
        self.last_shown = Some(partial.number);
        self.ready.push_back(ReceivedFrame {
            number: partial.number,
            session,
            frame: EncodedFrame {
                data: partial.assemble(),
                capture_us: partial.capture_us,
                keyframe: partial.keyframe,
            },
            arrived: partial.completed_at.unwrap_or(now),
        });
        if self.ready.len() > self.max_in_flight {
            // Nobody is draining: drop the oldest and start over from a keyframe.
            self.ready.pop_front();
            dropped.queue_full += 1;
            self.enter_gap();
            self.ask_keyframe = true;
        }
    }

    /// Hands out what may leave: complete frames in order (one with an unseen frame
    /// before it after waiting `grace` for it), giving up frames past their deadline
    /// or undecodable anyway.
    pub(super) fn emit_ready(
        &mut self,
        now: Instant,
        grace: Duration,
        session: u32,
        dropped: &mut ReceiverDrops,
    ) {
        // A complete keyframe needs no older frame. While waiting for a keyframe it ends
        // the wait at once: jump straight to it rather than wait out older frames that
        // cannot be decoded. Otherwise, once it has waited `grace` for the incomplete
        // frames before it, they would only be shown late and replaced at once (seen
        // at a capacity drop: the keyframe asked for after it waited 300 ms behind a
        // frame whose resends queued behind the router's backlog); they are given up.
        if let Some(pos) = self.keyframe_to_jump_to(now, grace) {
            for older in self.partials.drain(..pos).collect::<Vec<_>>() {
                if older.is_complete() {
                    dropped.undecodable += 1;
                } else {
                    dropped.incomplete += 1;
                }
                self.advance_to(older.number, dropped);
            }
            // Only the keyframe may leave now (the frames given up broke the chain).
            self.enter_gap();
        }
        while let Some(first) = self.partials.first() {
            let gap = self
                .last_emitted
                .map_or(0, |last| seq::distance(first.number, last) - 1);
            if let Some(done) = first.completed_at {
                let may_wait = gap > 0 && !self.waiting_keyframe;
                if may_wait && now < done + grace {
                    break;
                }
                let mut first = self.partials.remove(0);
                self.emit_or_drop(now, &mut first, session, dropped);
            } else if (self.waiting_keyframe && !first.keyframe) || now >= first.deadline {
                // Undecodable anyway, or out of time: give it up now.
                let first = self.partials.remove(0);
                if now >= first.deadline {
                    dropped.incomplete += 1;
                } else {
                    dropped.undecodable += 1;
                }
                self.advance_to(first.number, dropped);
                self.enter_gap();
                self.ask_keyframe = true;
            } else {
                break;
            }
        }
    }

    /// The first complete keyframe behind the oldest frame held: its position and when
    /// it completed.
    fn complete_keyframe_behind(&self) -> Option<(usize, Instant)> {
        let (pos, p) = self
            .partials
            .iter()
            .enumerate()
            .skip(1)
            .find(|(_, p)| p.keyframe && p.is_complete())?;
        Some((pos, p.completed_at?))
    }

    /// The position of a complete keyframe that may leave ahead of the older frames
    /// held before it (see [`Self::emit_ready`]).
    fn keyframe_to_jump_to(&self, now: Instant, grace: Duration) -> Option<usize> {
        let (pos, done) = self.complete_keyframe_behind()?;
        (self.waiting_keyframe || now >= done + grace).then_some(pos)
    }

    /// When the frames held must be looked at again: the oldest one's grace ends
    /// (complete) or its deadline (incomplete), or a complete keyframe behind it has
    /// waited its grace.
    pub(super) fn next_due(&self, grace: Duration) -> Option<Instant> {
        let oldest = self.partials.first().map(|p| match p.completed_at {
            Some(done) => done + grace,
            None => p.deadline,
        });
        let keyframe = self
            .complete_keyframe_behind()
            .map(|(_, done)| done + grace);
        match (oldest, keyframe) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Asserts the ordering rules (tests and fuzzers); `max_frame_bytes` bounds each
    /// frame held.
    pub(super) fn check_invariants(&self, max_frame_bytes: usize) {
        assert!(
            self.partials.len() <= self.max_in_flight,
            "too many frames in flight"
        );
        assert!(
            self.ready.len() <= self.max_in_flight,
            "ready queue over its bound"
        );
        for pair in self.partials.windows(2) {
            assert!(
                seq::after(pair[1].number, pair[0].number),
                "in-flight frames out of order"
            );
        }
        for p in &self.partials {
            assert!(p.bytes() <= max_frame_bytes, "frame over the size limit");
            if let Some(last) = self.last_emitted {
                assert!(
                    seq::after(p.number, last),
                    "held frame not newer than the last emitted"
                );
            }
            if let Some(last) = self.last_shown {
                assert!(
                    seq::after(p.number, last),
                    "held frame not newer than the last shown"
                );
            }
        }
        for pair in self.ready.iter().collect::<Vec<_>>().windows(2) {
            assert!(
                seq::after(pair[1].number, pair[0].number),
                "ready frames out of order"
            );
        }
    }
}
