//! Pacing: spreads a frame's packets so a keyframe does not burst past a router's
//! queue, while bounding the delay the spreading itself adds.

use std::time::{Duration, Instant};

/// A leaky bucket over packets: sends are allowed while the bucket's debt has run out,
/// with a small burst allowance.
#[derive(Debug)]
pub(crate) struct Pacer {
    /// When the bytes sent so far have drained at the current rate.
    drained_at: Option<Instant>,
    rate_bps: f64,
    burst: Duration,
}

impl Pacer {
    pub fn new(burst: Duration) -> Self {
        Self {
            drained_at: None,
            rate_bps: f64::INFINITY,
            burst,
        }
    }

    /// Sets the rate for the packets that follow, bits/s, and the burst that may go
    /// at once, bytes.
    pub fn set_rate(&mut self, bps: f64, burst_bytes: usize) {
        self.rate_bps = bps.max(1.0);
        self.burst = Duration::from_secs_f64(burst_bytes as f64 * 8.0 / self.rate_bps);
    }

    /// When the next packet may go; `None` means now.
    pub fn next_send(&self, now: Instant) -> Option<Instant> {
        let at = self.drained_at?.checked_sub(self.burst)?;
        (at > now).then_some(at)
    }

    /// When the next packet may go, whatever the time now (may be in the past).
    pub fn next_send_any(&self) -> Option<Instant> {
        self.drained_at?.checked_sub(self.burst)
    }

    /// A packet of `bytes` went out at `now`.
    pub fn on_sent(&mut self, now: Instant, bytes: usize) {
        let start = self.drained_at.map_or(now, |d| d.max(now));
        let cost = Duration::from_secs_f64(bytes as f64 * 8.0 / self.rate_bps);
        self.drained_at = Some(start + cost);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_packets_at_the_rate_after_a_small_burst() {
        let t0 = Instant::now();
        let mut p = Pacer::new(Duration::ZERO);
        p.set_rate(8_000_000.0, 1000); // 1 byte per µs, 1 ms of burst
        assert_eq!(p.next_send(t0), None);
        p.on_sent(t0, 1000); // drains at +1 ms: within the burst
        assert_eq!(p.next_send(t0), None);
        p.on_sent(t0, 1000); // drains at +2 ms: wait until +1 ms
        assert_eq!(p.next_send(t0), Some(t0 + Duration::from_millis(1)));
        // Idle time is not banked beyond the burst.
        let later = t0 + Duration::from_secs(1);
        assert_eq!(p.next_send(later), None);
        p.on_sent(later, 1000);
        p.on_sent(later, 1000);
        assert_eq!(p.next_send(later), Some(later + Duration::from_millis(1)));
    }
}
