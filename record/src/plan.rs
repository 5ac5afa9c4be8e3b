//! The recording's decisions, without I/O: which file a frame goes to, when a file is
//! cut, which frames are dropped, when to ask the sender for a keyframe.
//!
//! [`Plan`] is fed each frame's metadata ([`FrameMeta`]: keyframe, capture time, the
//! picture size when a keyframe's SPS gives one, byte length) and the time `now`, and
//! answers with a [`Decision`] the writer carries out in order: close the file, open a
//! new one, write or drop the frame, ask for a keyframe. The writer reports failures
//! back ([`Plan::handle_failure`]). Nothing here touches a file or a clock, so the rules
//! are tested on simulated time (see the tests below).
//!
//! [`Gate`] is the producer's half: the tap's decision to drop frames up to the next
//! keyframe once the queue was full. [`Limiter`] keeps keyframe requests, from both
//! threads together, to about one a second.
//!
//! The rules (decided for issue 21):
//! - A file starts on a keyframe: H.264 inter frames cannot be decoded without the
//!   pictures before them, and a player given such a file shows grey smears until the
//!   next keyframe. Before the first keyframe every frame is dropped and a keyframe is
//!   asked for.
//! - Timestamps are capture times (the sender's clock), so a frame that never arrived
//!   leaves a gap in time instead of shifting later pictures.
//! - Capture time going backwards means the sender restarted with another clock: the
//!   file's timeline cannot go back, so a new file starts (at the next keyframe).
//! - A picture-size change (a sender restarted at another size) needs a new stream
//!   header: a new file, opened by the keyframe with the new SPS (said once, by the
//!   writer's log of the file it opens).
//! - A segment boundary (capture time of the file's first frame + the segment length)
//!   asks for a keyframe and cuts at the first keyframe at or after it; frames in
//!   between still go to the old file, so nothing is lost at a cut.
//! - A failed open or write abandons the file; the frames up to a keyframe that comes at
//!   least [`RETRY`] later are dropped, and that keyframe opens a new file.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long after a failure the writer waits before it opens a new file: a full or a
/// broken disk is not hammered at the frame rate.
pub const RETRY: Duration = Duration::from_secs(1);

/// The shortest time between two keyframe requests: a keyframe costs the sender a burst
/// of bits (several times an inter frame), and one arrives within a round trip anyway.
pub const REQUEST_INTERVAL: Duration = Duration::from_secs(1);

/// What the plan needs to know of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameMeta {
    /// The frame decodes on its own.
    pub keyframe: bool,
    /// Capture time, µs since the epoch on the sender's clock.
    pub capture_us: u64,
    /// Width and height from the SPS, when the frame carries one (keyframes do).
    pub size: Option<(u32, u32)>,
    /// Length in bytes.
    pub len: usize,
}

/// Why a file is opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenReason {
    /// The recording's first file.
    Start,
    /// A segment boundary passed.
    Segment,
    /// The picture size changed.
    SizeChange {
        /// The old file's size.
        from: (u32, u32),
        /// The new size.
        to: (u32, u32),
    },
    /// Capture time went backwards (the sender restarted with another clock).
    ClockBackwards,
    /// The previous file failed; this is the retry.
    Retry,
}

/// A file to open, for the frame being decided (a keyframe, its first frame).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Open {
    /// Why.
    pub reason: OpenReason,
    /// The picture size (the stream header's width and height).
    pub size: (u32, u32),
    /// The capture time of its first frame (segment names are made from it).
    pub start_us: u64,
}

/// Why a frame is not written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// No file is open and this frame cannot start one (not a keyframe).
    WaitingForKeyframe,
    /// A keyframe without an SPS the size could be read from: no header can be written.
    NoSize,
    /// A failure less than [`RETRY`] ago: waiting before opening a new file.
    Retrying,
}

/// What to do with a frame, in this order: close, open, write or drop, request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Close the open file first (the frame belongs to the next one, or to none).
    pub close: bool,
    /// Open a new file, starting with this frame.
    pub open: Option<Open>,
    /// Write the frame (to the file just opened, or the one open) or drop it.
    pub fate: Result<(), DropReason>,
    /// A keyframe is wanted: ask the sender, if the [`Limiter`] allows it now.
    pub request_keyframe: bool,
}

#[derive(Clone, Copy, Debug)]
struct FileState {
    size: (u32, u32),
    first_us: u64,
    last_us: u64,
}

/// The writer's state machine. Call [`Plan::handle_frame`] for every frame that reaches
/// the writer, carry out its [`Decision`], and report a failed open or write with
/// [`Plan::handle_failure`] before the next frame.
#[derive(Debug)]
pub struct Plan {
    segment_us: Option<u64>,
    file: Option<FileState>,
    /// Why the next file will be opened.
    next_reason: OpenReason,
    /// A keyframe is needed: to start a file, or to cut a segment.
    want_keyframe: bool,
    /// No file is opened before this (after a failure).
    retry_at: Option<Instant>,
}

impl Plan {
    /// A plan cutting files every `segment` of capture time (never, when `None`).
    pub fn new(segment: Option<Duration>) -> Plan {
        Plan {
            segment_us: segment.map(|s| (s.as_micros() as u64).max(1)),
            file: None,
            next_reason: OpenReason::Start,
            want_keyframe: true,
            retry_at: None,
        }
    }

    /// Decides what happens to `frame`, which arrived at `now`.
    pub fn handle_frame(&mut self, now: Instant, frame: FrameMeta) -> Decision {
        let mut close = false;
        if let Some(file) = self.file {
            let size_changed = frame.keyframe && frame.size.is_some_and(|s| s != file.size);
            let boundary = self.segment_us.map(|s| file.first_us.saturating_add(s));
            let past_boundary = boundary.is_some_and(|b| frame.capture_us >= b);
            if frame.capture_us < file.last_us {
                close = true;
                self.next_reason = OpenReason::ClockBackwards;
            } else if size_changed {
                close = true;
                self.next_reason = OpenReason::SizeChange {
                    from: file.size,
                    // `size_changed` holds only with a size.
                    to: frame.size.unwrap_or(file.size),
                };
            } else if past_boundary && frame.keyframe {
                close = true;
                self.next_reason = OpenReason::Segment;
            } else {
                // Past the boundary without a keyframe: ask for one, keep writing here.
                if past_boundary {
                    self.want_keyframe = true;
                }
                if let Some(f) = &mut self.file {
                    f.last_us = frame.capture_us;
                }
                return self.decision(false, None, Ok(()), now);
            }
            self.file = None;
            self.want_keyframe = true;
        }
        // No file open: only a keyframe with a size starts one, and not too soon after a
        // failure.
        if self.retry_at.is_some_and(|t| now < t) {
            return self.decision(close, None, Err(DropReason::Retrying), now);
        }
        if !frame.keyframe {
            return self.decision(close, None, Err(DropReason::WaitingForKeyframe), now);
        }
        let Some(size) = frame.size else {
            return self.decision(close, None, Err(DropReason::NoSize), now);
        };
        let open = Open {
            reason: self.next_reason,
            size,
            start_us: frame.capture_us,
        };
        self.file = Some(FileState {
            size,
            first_us: frame.capture_us,
            last_us: frame.capture_us,
        });
        self.retry_at = None;
        self.want_keyframe = false;
        self.decision(close, Some(open), Ok(()), now)
    }

    /// The open or the write the last decision asked for failed at `now`: the file is
    /// abandoned (the writer closes what it can), and a keyframe at least `retry_after`
    /// later opens a new one: [`RETRY`] normally; zero when the writer made room on a
    /// full disk (the ring deleted old segments), so the next keyframe opens.
    pub fn handle_failure(&mut self, now: Instant, retry_after: Duration) {
        self.file = None;
        self.next_reason = OpenReason::Retry;
        self.retry_at = (!retry_after.is_zero()).then(|| now + retry_after);
        self.want_keyframe = true;
    }

    /// Whether a file is open.
    pub fn is_open(&self) -> bool {
        self.file.is_some()
    }

    /// Checks the state's invariants (tests call it after every step).
    pub fn check_invariants(&self) {
        if let Some(f) = &self.file {
            assert!(f.last_us >= f.first_us, "a file's time runs forwards");
            assert!(
                self.retry_at.is_none(),
                "no retry pending while a file is open"
            );
        } else {
            assert!(
                self.want_keyframe,
                "without a file a keyframe is always wanted"
            );
        }
    }

    fn decision(
        &self,
        close: bool,
        open: Option<Open>,
        fate: Result<(), DropReason>,
        now: Instant,
    ) -> Decision {
        // A keyframe asked for before the retry time would be wasted: it would arrive
        // while frames are still being dropped.
        let waiting = self.retry_at.is_some_and(|t| now < t);
        Decision {
            close,
            open,
            fate,
            request_keyframe: self.want_keyframe && !waiting,
        }
    }
}

/// The producer's half: once the queue was full, frames are dropped up to the next
/// keyframe (an inter frame after a gap would decode into smears), and a keyframe is
/// asked for.
#[derive(Debug, Default)]
pub struct Gate {
    dropping: bool,
}

impl Gate {
    /// Whether the frame should be offered to the queue (`false`: drop it and want a
    /// keyframe).
    pub fn admit(&self, keyframe: bool) -> bool {
        !self.dropping || keyframe
    }

    /// The queue took the frame (`true`) or was full (`false`).
    pub fn handle_sent(&mut self, accepted: bool) {
        self.dropping = !accepted;
    }

    /// Whether frames are being dropped up to the next keyframe.
    pub fn dropping(&self) -> bool {
        self.dropping
    }
}

/// Keeps keyframe requests, from the tap and the writer together, to one per
/// [`REQUEST_INTERVAL`]. Shared between the threads (an atomic, no lock: the tap never
/// waits).
#[derive(Debug)]
pub struct Limiter {
    origin: Instant,
    /// µs since `origin` of the last request, plus one; 0 when none was made.
    last: AtomicU64,
}

impl Limiter {
    /// A limiter measuring time from `origin`.
    pub fn new(origin: Instant) -> Limiter {
        Limiter {
            origin,
            last: AtomicU64::new(0),
        }
    }

    /// Whether a request may be made at `now`; if so, it counts as made.
    pub fn try_take(&self, now: Instant) -> bool {
        let now_us = now.saturating_duration_since(self.origin).as_micros() as u64 + 1;
        let interval = REQUEST_INTERVAL.as_micros() as u64;
        let last = self.last.load(Ordering::Relaxed);
        if last != 0 && now_us < last.saturating_add(interval) {
            return false;
        }
        // Whoever swaps first makes the request; the other thread sees it taken.
        self.last
            .compare_exchange(last, now_us, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME_US: u64 = 33_333;
    const T0: u64 = 1_765_000_000_000_000;

    /// Simulated time and a driver that checks invariants after every step.
    struct Sim {
        plan: Plan,
        now: Instant,
        us: u64,
        limiter: Limiter,
        requests: u32,
    }

    impl Sim {
        fn new(segment: Option<Duration>) -> Sim {
            let start = Instant::now();
            Sim {
                plan: Plan::new(segment),
                now: start,
                us: T0,
                limiter: Limiter::new(start),
                requests: 0,
            }
        }

        /// One frame a frame interval after the last one, in both clocks.
        fn frame(&mut self, keyframe: bool, size: (u32, u32)) -> Decision {
            let d = self.frame_at(keyframe, size, self.us);
            self.us += FRAME_US;
            self.now += Duration::from_micros(FRAME_US);
            d
        }

        fn frame_at(&mut self, keyframe: bool, size: (u32, u32), us: u64) -> Decision {
            let meta = FrameMeta {
                keyframe,
                capture_us: us,
                size: keyframe.then_some(size),
                len: 1000,
            };
            let d = self.plan.handle_frame(self.now, meta);
            self.plan.check_invariants();
            if d.request_keyframe && self.limiter.try_take(self.now) {
                self.requests += 1;
            }
            d
        }
    }

    const VGA: (u32, u32) = (640, 480);

    #[test]
    fn the_start_waits_for_a_keyframe_and_asks_for_one() {
        let mut s = Sim::new(None);
        let d = s.frame(false, VGA);
        assert_eq!(d.fate, Err(DropReason::WaitingForKeyframe));
        assert!(d.request_keyframe && !d.close && d.open.is_none());
        assert_eq!(s.requests, 1);
        for _ in 0..10 {
            assert_eq!(
                s.frame(false, VGA).fate,
                Err(DropReason::WaitingForKeyframe)
            );
        }
        assert_eq!(s.requests, 1, "not again within a second");
        let us = s.us;
        let d = s.frame(true, VGA);
        assert_eq!(
            d.open,
            Some(Open {
                reason: OpenReason::Start,
                size: VGA,
                start_us: us
            })
        );
        assert_eq!(d.fate, Ok(()));
        assert!(!d.request_keyframe);
        let d = s.frame(false, VGA);
        assert_eq!((d.fate, d.open, d.close), (Ok(()), None, false));
    }

    #[test]
    fn keyframe_requests_repeat_about_once_a_second_while_none_comes() {
        let mut s = Sim::new(None);
        // 10 s of inter frames at 30 fps.
        for _ in 0..300 {
            s.frame(false, VGA);
        }
        assert!((9..=11).contains(&s.requests), "{} requests", s.requests);
    }

    #[test]
    fn a_segment_boundary_asks_for_a_keyframe_and_cuts_at_the_first_after_it() {
        let mut s = Sim::new(Some(Duration::from_secs(2)));
        s.frame(true, VGA);
        let first_request = s.requests;
        // Up to the boundary (2 s: frame 60 is 20 µs short of it) nothing is wanted.
        for _ in 1..=60 {
            let d = s.frame(false, VGA);
            assert_eq!((d.fate, d.request_keyframe), (Ok(()), false));
        }
        // Past it: a keyframe is wanted, frames still go to the old file.
        for i in 0..10 {
            let d = s.frame(false, VGA);
            assert_eq!(d.fate, Ok(()), "frame {i} past the boundary");
            assert!(d.request_keyframe && !d.close && d.open.is_none());
        }
        assert_eq!(s.requests, first_request + 1);
        let d = s.frame(true, VGA);
        assert!(d.close);
        assert_eq!(d.open.map(|o| o.reason), Some(OpenReason::Segment));
        assert_eq!(d.fate, Ok(()));
        assert!(!d.request_keyframe);
    }

    #[test]
    fn keyframes_before_the_boundary_do_not_cut() {
        let mut s = Sim::new(Some(Duration::from_secs(2)));
        for i in 0..59 {
            let d = s.frame(i % 30 == 0, VGA);
            assert_eq!(d.open.is_some(), i == 0);
            assert!(!d.close);
        }
    }

    #[test]
    fn a_size_change_opens_one_new_file() {
        let mut s = Sim::new(None);
        s.frame(true, VGA);
        s.frame(false, VGA);
        let d = s.frame(true, (320, 240));
        assert!(d.close);
        assert_eq!(
            d.open.map(|o| o.reason),
            Some(OpenReason::SizeChange {
                from: VGA,
                to: (320, 240)
            })
        );
        // Said once: the next keyframes of the same size continue the file.
        for i in 0..100 {
            let d = s.frame(i % 30 == 0, (320, 240));
            assert!(!d.close && d.open.is_none() && d.fate.is_ok());
        }
    }

    #[test]
    fn capture_time_going_backwards_starts_a_new_file_at_a_keyframe() {
        let mut s = Sim::new(None);
        s.frame(true, VGA);
        s.frame(false, VGA);
        // The sender restarted with a clock an hour behind.
        s.us -= 3_600_000_000;
        let d = s.frame(false, VGA);
        assert!(d.close);
        assert_eq!(d.fate, Err(DropReason::WaitingForKeyframe));
        assert!(d.request_keyframe);
        let d = s.frame(false, VGA);
        assert!(!d.close);
        assert_eq!(d.fate, Err(DropReason::WaitingForKeyframe));
        let d = s.frame(true, VGA);
        assert!(!d.close);
        assert_eq!(d.open.map(|o| o.reason), Some(OpenReason::ClockBackwards));
        // A backwards keyframe cuts and opens at once.
        s.us -= 1_000_000;
        let d = s.frame(true, VGA);
        assert!(d.close && d.open.is_some() && d.fate.is_ok());
    }

    #[test]
    fn equal_capture_times_stay_in_the_file() {
        let mut s = Sim::new(None);
        s.frame_at(true, VGA, T0);
        let d = s.frame_at(false, VGA, T0);
        assert_eq!((d.close, d.fate), (false, Ok(())));
    }

    #[test]
    fn a_write_error_drops_up_to_a_keyframe_a_second_later() {
        let mut s = Sim::new(None);
        s.frame(true, VGA);
        s.frame(false, VGA);
        s.plan.handle_failure(s.now, RETRY);
        s.plan.check_invariants();
        let before = s.requests;
        let mut dropped = 0;
        // Half a second: even keyframes are dropped, and none is asked for yet.
        for i in 0..15 {
            let d = s.frame(i == 5, VGA);
            assert_eq!(d.fate, Err(DropReason::Retrying));
            assert!(!d.request_keyframe);
            dropped += 1;
        }
        assert_eq!(s.requests, before);
        loop {
            let d = s.frame(false, VGA);
            if d.fate.is_ok() {
                break;
            }
            dropped += 1;
            if d.request_keyframe {
                break;
            }
        }
        assert_eq!(s.requests, before + 1, "asks once the retry time came");
        let d = s.frame(true, VGA);
        assert_eq!(d.open.map(|o| o.reason), Some(OpenReason::Retry));
        assert!(
            dropped >= 30,
            "{dropped} frames dropped, counted by the caller"
        );
    }

    #[test]
    fn after_room_was_made_the_next_keyframe_opens() {
        let mut s = Sim::new(None);
        s.frame(true, VGA);
        s.plan.handle_failure(s.now, Duration::ZERO);
        s.plan.check_invariants();
        let d = s.frame(false, VGA);
        assert_eq!(d.fate, Err(DropReason::WaitingForKeyframe));
        assert!(d.request_keyframe);
        let d = s.frame(true, VGA);
        assert_eq!(d.open.map(|o| o.reason), Some(OpenReason::Retry));
    }

    #[test]
    fn a_keyframe_without_a_size_does_not_open() {
        let mut p = Plan::new(None);
        let d = p.handle_frame(
            Instant::now(),
            FrameMeta {
                keyframe: true,
                capture_us: T0,
                size: None,
                len: 10,
            },
        );
        assert_eq!(d.fate, Err(DropReason::NoSize));
        assert!(!p.is_open());
    }

    /// Any sequence of frames and failures, in any order of sizes and times: no panic,
    /// the invariants hold, and a frame is written only into an open file.
    #[test]
    fn random_inputs_keep_the_invariants() {
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for segment in [None, Some(Duration::from_millis(500))] {
            let mut plan = Plan::new(segment);
            let mut now = Instant::now();
            let mut us = T0;
            let mut open = false;
            for _ in 0..20_000 {
                let r = next();
                now += Duration::from_micros(r % 100_000);
                us = match r % 50 {
                    0 => us.wrapping_sub(r % 10_000_000),
                    1 => u64::MAX - r % 1000,
                    2 => 0,
                    _ => us.saturating_add(r % 70_000),
                };
                if r % 97 == 0 {
                    plan.handle_failure(now, if r % 2 == 0 { RETRY } else { Duration::ZERO });
                    open = false;
                    plan.check_invariants();
                    continue;
                }
                let keyframe = r % 7 == 0;
                let size = match (r >> 8) % 4 {
                    0 => None,
                    1 => Some((640, 480)),
                    2 => Some((320, 240)),
                    _ => Some((0, 0)),
                };
                let d = plan.handle_frame(
                    now,
                    FrameMeta {
                        keyframe,
                        capture_us: us,
                        size,
                        len: (r >> 16) as usize % 100_000,
                    },
                );
                plan.check_invariants();
                if d.close {
                    assert!(open, "close only an open file");
                    open = false;
                }
                if d.open.is_some() {
                    assert!(
                        !open && keyframe,
                        "a file opens on a keyframe, after a close"
                    );
                    open = true;
                }
                assert!(d.fate.is_err() || open, "written only into an open file");
                assert_eq!(open, plan.is_open());
            }
        }
    }

    #[test]
    fn the_gate_drops_up_to_the_next_keyframe_after_a_full_queue() {
        let mut g = Gate::default();
        assert!(g.admit(false));
        g.handle_sent(true);
        assert!(g.admit(false));
        g.handle_sent(false);
        assert!(g.dropping());
        assert!(!g.admit(false));
        assert!(g.admit(true));
        // The keyframe found the queue still full: keep dropping.
        g.handle_sent(false);
        assert!(!g.admit(false));
        g.handle_sent(true);
        assert!(g.admit(false));
    }

    #[test]
    fn the_limiter_allows_one_request_a_second() {
        let t = Instant::now();
        let l = Limiter::new(t);
        assert!(l.try_take(t));
        assert!(!l.try_take(t + Duration::from_millis(999)));
        assert!(l.try_take(t + Duration::from_millis(1000)));
        assert!(!l.try_take(t + Duration::from_millis(1500)));
        assert!(l.try_take(t + Duration::from_secs(5)));
    }
}
