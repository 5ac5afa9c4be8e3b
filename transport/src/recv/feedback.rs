//! The receiver's feedback to the sender besides keyframe requests: periodic reports
//! (frame arrival times and packet counts, for congestion control) and clock pings
//! (for the sender's clock offset, so latency is true across two machines).

use std::time::{Duration, Instant};

use crate::clock::{OffsetEstimator, WallClock};
use crate::wire::{self, Arrival, SequenceCounts};

/// Inside a long frame (a keyframe on a slow link), a fragment's arrival is sampled
/// this often, so the delay signal never goes quiet for a whole frame.
const SAMPLE_EVERY: Duration = Duration::from_millis(5);

/// Timing of the receiver's feedback.
#[derive(Clone, Copy, Debug)]
pub struct FeedbackConfig {
    /// Interval between reports.
    pub report_interval: Duration,
    /// Interval between clock pings.
    pub ping_interval: Duration,
    /// Maps `now` to this host's wall clock.
    pub clock: WallClock,
}

impl Default for FeedbackConfig {
    fn default() -> Self {
        Self {
            report_interval: Duration::from_millis(15),
            ping_interval: Duration::from_millis(1000),
            clock: WallClock::system(),
        }
    }
}

/// Per-session feedback state.
#[derive(Debug)]
pub(crate) struct Feedback {
    config: FeedbackConfig,
    /// Sampled fragment arrivals since the last report, newest last: every frame's last
    /// fragment, and one every `SAMPLE_EVERY` inside long frames, whether or not the
    /// frame is ever shown (the path's delay is the signal, not the decoder's needs).
    arrivals: Vec<Arrival>,
    last_sample: Option<Instant>,
    next_report: Option<Instant>,
    next_ping: Option<Instant>,
    ping_id: u32,
    offset: OffsetEstimator,
}

impl Feedback {
    pub fn new(config: FeedbackConfig) -> Self {
        Self {
            config,
            arrivals: Vec::with_capacity(wire::MAX_REPORT_ENTRIES),
            last_sample: None,
            next_report: None,
            next_ping: None,
            ping_id: 0,
            offset: OffsetEstimator::default(),
        }
    }

    /// A new sender session: counters restart, the first ping goes out with the first
    /// report.
    pub fn reset(&mut self, now: Instant) {
        self.arrivals.clear();
        self.next_report = Some(now + self.config.report_interval);
        self.next_ping = Some(now + self.config.report_interval.min(self.config.ping_interval));
        self.offset = OffsetEstimator::default();
    }

    /// The sender went quiet: no reports or pings until it is heard again (a quiet
    /// sender needs no feedback, and a stopped timer cannot fall behind).
    pub fn pause(&mut self) {
        self.next_report = None;
        self.next_ping = None;
    }

    /// The sender is heard again after a pause: feedback restarts from now.
    pub fn resume(&mut self, now: Instant) {
        if self.next_report.is_none() {
            self.next_report = Some(now + self.config.report_interval);
        }
        if self.next_ping.is_none() {
            self.next_ping = Some(now + self.config.report_interval.min(self.config.ping_interval));
        }
    }

    /// A data fragment of the current session arrived on its first transmission;
    /// `last` when it is its frame's last. (Retransmissions and parity give no delay
    /// sample: their send times are not the frame's.)
    pub fn on_fragment(&mut self, now: Instant, frame: u32, index: u16, last: bool) {
        let due = self.last_sample.is_none_or(|t| now >= t + SAMPLE_EVERY);
        if last || due {
            if self.arrivals.len() == wire::MAX_REPORT_ENTRIES {
                self.arrivals.remove(0);
            }
            let at_us = self.config.clock.us(now);
            self.arrivals.push(Arrival {
                frame,
                index,
                at_us,
            });
            self.last_sample = Some(now);
        }
    }

    pub fn on_pong(&mut self, now: Instant, t1: u64, t2: u64, t3: u64) {
        self.offset.add(t1, t2, t3, self.config.clock.us(now));
    }

    pub fn offset_us(&self) -> Option<i64> {
        self.offset.offset_us()
    }

    pub fn rtt_us(&self) -> Option<u64> {
        self.offset.rtt_us()
    }

    /// The earliest feedback due.
    pub fn next_due(&self) -> Option<Instant> {
        match (self.next_report, self.next_ping) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Writes the feedback due at `now` for `session`, each packet handed to `emit`;
    /// `sequence` is what the receiver has seen of the packet sequence.
    pub fn poll(
        &mut self,
        now: Instant,
        session: u32,
        highest_seen: Option<u32>,
        sequence: Option<SequenceCounts>,
        mut emit: impl FnMut(Vec<u8>),
    ) {
        if self.next_report.is_some_and(|t| now >= t) {
            let mut payload = Vec::with_capacity(wire::REPORT_HEADER + 8 * self.arrivals.len());
            let report_us = self.config.clock.us(now);
            wire::write_report(
                &mut payload,
                session,
                highest_seen,
                sequence,
                report_us,
                &self.arrivals,
            );
            self.arrivals.clear();
            emit(payload);
            self.next_report = Some(now + self.config.report_interval);
        }
        if self.next_ping.is_some_and(|t| now >= t) {
            let mut payload = Vec::with_capacity(wire::PING_LEN);
            self.ping_id = self.ping_id.wrapping_add(1);
            wire::write_ping(
                &mut payload,
                session,
                self.ping_id,
                self.config.clock.us(now),
            );
            emit(payload);
            self.next_ping = Some(now + self.config.ping_interval);
        }
    }
}
