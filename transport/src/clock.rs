//! Wall-clock time for the sans-IO machines without reading a clock inside them.
//!
//! Timestamps on the wire are microseconds of each host's wall clock (the clock the
//! latency stamp uses). A machine is given one pairing of `Instant` and wall-clock
//! microseconds when it is built and derives every later wall-clock time from the
//! `now` it is handed, so tests on simulated time stay deterministic.

use std::time::Instant;

/// Maps `Instant`s to wall-clock microseconds from one known pairing.
#[derive(Clone, Copy, Debug)]
pub struct WallClock {
    base: Instant,
    base_us: u64,
}

impl WallClock {
    /// `base` corresponds to `base_us` microseconds since the Unix epoch.
    pub fn new(base: Instant, base_us: u64) -> Self {
        Self { base, base_us }
    }

    /// Pairs the process's current `Instant` with the current system time.
    pub fn system() -> Self {
        Self::new(Instant::now(), media::wallclock_us())
    }

    /// Wall-clock microseconds at `now`.
    pub fn us(&self, now: Instant) -> u64 {
        match now.checked_duration_since(self.base) {
            Some(d) => self.base_us + d.as_micros() as u64,
            None => self
                .base_us
                .saturating_sub(self.base.duration_since(now).as_micros() as u64),
        }
    }
}

/// Estimates another host's clock offset from ping-pong exchanges, trusting the
/// exchange with the smallest round trip: queueing inflates RTT and skews the offset,
/// so the fastest exchange is the least biased (NTP's minimum filter).
#[derive(Clone, Debug, Default)]
pub struct OffsetEstimator {
    /// (rtt µs, offset µs, when taken µs) of recent exchanges.
    samples: Vec<(u64, i64, u64)>,
}

/// Exchanges older than this are forgotten, so a changed path is re-learnt.
const WINDOW_US: u64 = 30_000_000;
const MAX_SAMPLES: usize = 64;

impl OffsetEstimator {
    /// Adds one exchange: `t1` our send, `t2` their receive, `t3` their send, `t4` our
    /// receive. Exchanges with impossible times are ignored.
    pub fn add(&mut self, t1: u64, t2: u64, t3: u64, t4: u64) {
        let Some(total) = t4.checked_sub(t1) else {
            return;
        };
        let Some(held) = t3.checked_sub(t2) else {
            return;
        };
        let Some(rtt) = total.checked_sub(held) else {
            return;
        };
        let offset = ((t2 as i64 - t1 as i64) + (t3 as i64 - t4 as i64)) / 2;
        self.samples.retain(|&(_, _, at)| at + WINDOW_US > t4);
        if self.samples.len() == MAX_SAMPLES {
            self.samples.remove(0);
        }
        self.samples.push((rtt, offset, t4));
    }

    /// Their clock minus ours, µs, from the fastest recent exchange.
    pub fn offset_us(&self) -> Option<i64> {
        self.best().map(|s| s.1)
    }

    /// The smallest recent round trip, µs.
    pub fn rtt_us(&self) -> Option<u64> {
        self.best().map(|s| s.0)
    }

    fn best(&self) -> Option<&(u64, i64, u64)> {
        self.samples.iter().min_by_key(|s| s.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn wall_clock_follows_the_instant() {
        let t0 = Instant::now();
        let clock = WallClock::new(t0, 1_000_000);
        assert_eq!(clock.us(t0 + Duration::from_millis(5)), 1_005_000);
    }

    #[test]
    fn offset_comes_from_the_fastest_exchange() {
        let mut e = OffsetEstimator::default();
        // Their clock is 500 ms ahead. A clean exchange: 1 ms each way.
        e.add(10_000, 511_000, 511_000, 12_000);
        // A queued exchange: 40 ms on the way back skews a naive estimate by 20 ms.
        e.add(20_000, 521_000, 521_000, 62_000);
        assert_eq!(e.offset_us(), Some(500_000));
        assert_eq!(e.rtt_us(), Some(2_000));
        // Nonsense (receive before send) is ignored.
        e.add(5, 0, 0, 1);
        assert_eq!(e.offset_us(), Some(500_000));
    }
}
