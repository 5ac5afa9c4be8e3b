//! What the receiver reports back (RFC 3550 §6.4.1, appendix A.3 and A.8): packets lost
//! (in total and since the last report), the highest sequence number, the interarrival
//! jitter, and the echo of the last sender report, from which the sender measures the
//! round trip and so the queue on the path.

use std::time::Instant;

use super::super::rtcp::{ntp_middle, ReportBlockFields};

/// Reception statistics of one stream.
#[derive(Debug)]
pub(crate) struct Reception {
    clock_rate: u32,
    /// Extended sequence number of the first packet.
    base: Option<u64>,
    /// Packets received (each sequence number once).
    received: u64,
    /// At the last report: packets expected and received.
    expected_prior: u64,
    received_prior: u64,
    /// Interarrival jitter, RTP clock units, times 16 (A.8 keeps it scaled).
    jitter16: u64,
    last_transit: Option<i64>,
    /// The last sender report: the middle of its NTP time, and when it arrived.
    last_sr: Option<(u32, Instant)>,
    epoch: Instant,
}

impl Reception {
    pub fn new(clock_rate: u32, epoch: Instant) -> Self {
        Self {
            clock_rate: clock_rate.max(1),
            base: None,
            received: 0,
            expected_prior: 0,
            received_prior: 0,
            jitter16: 0,
            last_transit: None,
            last_sr: None,
            epoch,
        }
    }

    /// The packet with extended sequence number `ext` left the reorder buffer in order:
    /// it counts as received.
    pub fn on_released(&mut self, ext: u64) {
        // Release is in order, so nothing comes below the first; what would (packets
        // held from before a discontinuity) belongs to no interval here.
        if ext >= *self.base.get_or_insert(ext) {
            self.received += 1;
        }
    }

    /// Starts the statistics over (a discontinuity in the sequence numbers); the jitter
    /// and the last sender report carry over.
    pub fn restart_counts(&mut self) {
        self.base = None;
        self.received = 0;
        self.expected_prior = 0;
        self.received_prior = 0;
    }

    /// A packet with RTP `timestamp` arrived at `now` for the first time, not as a
    /// resend (whose arrival says nothing of the path's jitter).
    pub fn on_arrival(&mut self, now: Instant, timestamp: u32) {
        let arrival = now.saturating_duration_since(self.epoch).as_micros() as u64
            * u64::from(self.clock_rate)
            / 1_000_000;
        // Transit time modulo 2^32: only differences matter.
        let transit = i64::from((arrival as u32).wrapping_sub(timestamp) as i32);
        if let Some(last) = self.last_transit {
            let d = (transit - last).unsigned_abs();
            // J += (|D| - J) / 16, in the scaled form of A.8.
            self.jitter16 = self.jitter16 + d - ((self.jitter16 + 8) >> 4);
        }
        self.last_transit = Some(transit);
    }

    /// A sender report with NTP time `ntp` arrived at `now`.
    pub fn on_sender_report(&mut self, now: Instant, ntp: u64) {
        self.last_sr = Some((ntp_middle(ntp), now));
    }

    /// The report block for a report sent at `now`; starts the next loss interval.
    /// `highest` is the highest extended sequence number accounted for. Packets received
    /// beyond it (held behind a gap) are left out of `received` too, so they do not
    /// hide the loss of the gap once it is given up.
    pub fn report_block(
        &mut self,
        now: Instant,
        media_ssrc: u32,
        highest: u64,
    ) -> ReportBlockFields {
        let base = self.base.unwrap_or(highest);
        let expected = highest.saturating_sub(base) + 1;
        let lost = expected.saturating_sub(self.received);
        let expected_interval = expected.saturating_sub(self.expected_prior);
        let received_interval = self.received.saturating_sub(self.received_prior);
        self.expected_prior = expected;
        self.received_prior = self.received;
        let lost_interval = expected_interval.saturating_sub(received_interval);
        let fraction_lost = (lost_interval << 8)
            .checked_div(expected_interval)
            .map_or(0, |f| f.min(255) as u8);
        let (lsr, dlsr) = self.last_sr.map_or((0, 0), |(middle, at)| {
            let held = now.saturating_duration_since(at).as_secs_f64() * 65_536.0;
            (middle, held.min(f64::from(u32::MAX)) as u32)
        });
        ReportBlockFields {
            media_ssrc,
            fraction_lost,
            cumulative_lost: lost.min(0x7f_ffff) as u32,
            extended_seq: highest as u32,
            jitter: (self.jitter16 >> 4) as u32,
            lsr,
            dlsr,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn loss_and_fraction_follow_rfc_3550() {
        let t0 = Instant::now();
        let mut r = Reception::new(90_000, t0);
        // 100 expected, 90 received.
        for ext in 1000..1100u64 {
            if ext % 10 != 3 {
                r.on_released(ext);
            }
        }
        let b = r.report_block(t0, 7, 1099);
        assert_eq!((b.cumulative_lost, b.fraction_lost), (10, 25)); // 10/100 * 256
        assert_eq!(b.extended_seq, 1099);
        // The next interval: 50 expected, all received.
        for ext in 1100..1150u64 {
            r.on_released(ext);
        }
        let b = r.report_block(t0, 7, 1149);
        assert_eq!((b.cumulative_lost, b.fraction_lost), (10, 0));
    }

    #[test]
    fn steady_arrivals_have_no_jitter_and_uneven_ones_do() {
        let t0 = Instant::now();
        let mut steady = Reception::new(90_000, t0);
        let mut uneven = Reception::new(90_000, t0);
        for i in 0..200u64 {
            let ts = (i * 3000) as u32; // 33.3 ms of 90 kHz
            let at = t0 + Duration::from_micros(i * 33_333);
            steady.on_arrival(at, ts);
            let wobble = Duration::from_millis(if i % 2 == 0 { 0 } else { 10 });
            uneven.on_arrival(at + wobble, ts);
        }
        assert!(steady.report_block(t0, 1, 199).jitter <= 2);
        // 10 ms each packet: the estimate converges to 900 ticks.
        let j = uneven.report_block(t0, 1, 199).jitter;
        assert!((800..=950).contains(&j), "{j}");
    }

    #[test]
    fn the_last_sender_report_is_echoed_with_the_delay_since() {
        let t0 = Instant::now();
        let mut r = Reception::new(90_000, t0);
        r.on_released(5);
        assert_eq!(r.report_block(t0, 1, 5).lsr, 0, "none yet");
        r.on_sender_report(t0, 0x0001_2345_6789_0000);
        let b = r.report_block(t0 + Duration::from_millis(500), 1, 5);
        assert_eq!(b.lsr, 0x2345_6789);
        assert_eq!(b.dlsr, 32_768);
    }
}
