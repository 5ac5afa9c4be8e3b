use std::time::{Duration, Instant};

/// Paces a live source at a frame rate without ever bursting to catch up: a source that
/// falls behind (slow encode, suspended process) restarts its schedule from now, because
/// frames sent late and fast only build a queue downstream.
#[derive(Debug)]
pub struct Pacer {
    interval: Duration,
    next: Option<Instant>,
}

impl Pacer {
    /// A pacer at `fps` frames per second (at least 1).
    pub fn new(fps: u32) -> Self {
        Self {
            interval: Self::interval_for(fps),
            next: None,
        }
    }

    fn interval_for(fps: u32) -> Duration {
        Duration::from_secs(1) / fps.max(1)
    }

    /// Changes the rate from the next frame on.
    pub fn set_fps(&mut self, fps: u32) {
        self.interval = Self::interval_for(fps);
    }

    /// When the frame after one due at `due` is due, given the time `now`.
    pub fn schedule(&self, due: Instant, now: Instant) -> Instant {
        let next = due + self.interval;
        if next + self.interval < now {
            now
        } else {
            next
        }
    }

    /// Sleeps until the next frame is due.
    pub fn wait(&mut self) {
        let now = Instant::now();
        let due = self.next.unwrap_or(now);
        if due > now {
            std::thread::sleep(due - now);
        }
        self.next = Some(self.schedule(due, Instant::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_rate_and_never_bursts_after_a_stall() {
        let pacer = Pacer::new(50);
        let t0 = Instant::now();
        assert_eq!(pacer.schedule(t0, t0), t0 + Duration::from_millis(20));
        // Slightly late: keep the grid.
        assert_eq!(
            pacer.schedule(t0, t0 + Duration::from_millis(25)),
            t0 + Duration::from_millis(20)
        );
        // A long stall: start again from now instead of firing the missed frames at once.
        let late = t0 + Duration::from_secs(1);
        assert_eq!(pacer.schedule(t0, late), late);
    }
}
