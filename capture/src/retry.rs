//! Exponential backoff for restarting what failed (a child process, an unplugged
//! camera): quick at first, then spaced out, and back to quick once things have run
//! well for a while.

use std::time::Duration;

/// The delay before each attempt.
#[derive(Clone, Debug)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
    /// Running at least this long counts as recovered: the next failure starts over.
    healthy_after: Duration,
}

impl Backoff {
    /// 0.5 s doubling to at most 5 s (kept short: a source waits inside `next_frame`, so
    /// this bounds how long a shutdown waits too).
    pub fn new() -> Self {
        Self::with(Duration::from_millis(500), Duration::from_secs(5))
    }

    /// A backoff from `initial` doubling up to `max`.
    pub fn with(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max: max.max(initial),
            next: initial,
            healthy_after: Duration::from_secs(10),
        }
    }

    /// The delay to wait now, given how long the thing ran since it last started.
    pub fn delay(&mut self, ran_for: Duration) -> Duration {
        if ran_for >= self.healthy_after {
            self.next = self.initial;
        }
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_the_cap_and_resets_after_a_healthy_run() {
        let mut b = Backoff::with(Duration::from_millis(100), Duration::from_millis(500));
        let short = Duration::from_millis(10);
        let got: Vec<_> = (0..5).map(|_| b.delay(short).as_millis()).collect();
        assert_eq!(got, vec![100, 200, 400, 500, 500]);
        assert_eq!(b.delay(Duration::from_secs(60)).as_millis(), 100);
        assert_eq!(b.delay(short).as_millis(), 200);
    }
}
