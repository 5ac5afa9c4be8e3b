//! The process's wall clock: system time read once, at first use, and carried forward by
//! the monotonic clock.
//!
//! Every time that crosses the wire or is painted into a picture (the capture time, the
//! latency stamp, the ping/pong times the clock offset is measured with) must come from
//! one clock, or an NTP step after start (a Pi without a real-time clock syncs minutes
//! after boot) shifts every latency figure until restart. The transport pairs its clock
//! once at start (`transport::clock::WallClock`); reading the system time afresh for the
//! stamps would disagree with it after a step. So the stamps use the same kind of pairing,
//! made once per process: a step never moves them, and the offset measured between two
//! processes is between exactly the clocks the stamps use.

use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Wall-clock microseconds derived from one pairing of an `Instant` with system time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcessClock {
    base: Instant,
    base_us: u64,
}

impl ProcessClock {
    /// `base` corresponds to `base_us` microseconds since the Unix epoch.
    pub fn pair(base: Instant, base_us: u64) -> Self {
        Self { base, base_us }
    }

    /// Microseconds since the Unix epoch at `now`, on this clock.
    pub fn us_at(&self, now: Instant) -> u64 {
        match now.checked_duration_since(self.base) {
            Some(d) => self.base_us.saturating_add(d.as_micros() as u64),
            None => self
                .base_us
                .saturating_sub(self.base.duration_since(now).as_micros() as u64),
        }
    }
}

/// The system time now, µs since the Unix epoch (0 before it).
pub fn system_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// This process's clock, paired at its first use.
pub fn process() -> ProcessClock {
    static CLOCK: OnceLock<ProcessClock> = OnceLock::new();
    *CLOCK.get_or_init(|| ProcessClock::pair(Instant::now(), system_us()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A system clock that NTP steps forward an hour half a second after start.
    fn stepping_system(t0: Instant, t0_us: u64, at: Instant) -> u64 {
        let elapsed = at.duration_since(t0);
        let step = if elapsed >= Duration::from_millis(500) {
            3_600_000_000
        } else {
            0
        };
        t0_us + elapsed.as_micros() as u64 + step
    }

    /// A sender stamps a picture before the step and one after; the receiver (another
    /// process on this host, paired at its own start) reads each 40 ms later. With the
    /// stamps on the process clocks both read 40 ms, and the offset between the two
    /// process clocks is what it was at start (here 0: both paired before the step).
    /// Reading the stepped system time instead would give an hour for the second.
    #[test]
    fn a_system_clock_step_after_start_moves_no_latency() {
        let t0 = Instant::now();
        let t0_us = 1_700_000_000_000_000;
        let sender = ProcessClock::pair(t0, stepping_system(t0, t0_us, t0));
        let receiver_start = t0 + Duration::from_millis(100);
        let receiver =
            ProcessClock::pair(receiver_start, stepping_system(t0, t0_us, receiver_start));
        let offset = sender.us_at(t0) as i64 - receiver.us_at(t0) as i64;
        assert_eq!(offset, 0);
        for stamped_ms in [200, 800, 5_000] {
            let stamped = t0 + Duration::from_millis(stamped_ms);
            let shown = stamped + Duration::from_millis(40);
            let stamp = sender.us_at(stamped) as i64;
            let latency_us = receiver.us_at(shown) as i64 - (stamp - offset);
            assert_eq!(latency_us, 40_000, "stamped at {stamped_ms} ms");
            // What a fresh read of the system time would have said at the receiver.
            let naive = stepping_system(t0, t0_us, shown) as i64 - stamp;
            if stamped_ms > 500 {
                assert_eq!(naive, 3_600_040_000, "the step shows up unless paired");
            }
        }
    }

    #[test]
    fn the_process_clock_is_paired_once_and_advances_with_the_monotonic_clock() {
        let a = process();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(process(), a);
        let now = Instant::now();
        let us = a.us_at(now);
        assert!(us >= a.us_at(a.base) + 5_000);
        // Close to the system time while nothing steps it.
        assert!(us.abs_diff(system_us()) < 5_000_000);
    }
}
