//! The RTP sender's bitrate controller, driven by RTCP receiver reports.
//!
//! An RTP peer tells the sender only what RFC 3550 report blocks carry: the fraction of
//! packets lost, the interarrival jitter, and (through LSR/DLSR) the round-trip time of
//! the sender reports. picam's own wire measures every frame's one-way delay instead;
//! here the round-trip time of sender reports is the delay signal. Sender reports travel
//! the same path and queue as the media, so a router queue that fills shows as an RTT
//! above the smallest one seen, before the router drops anything.
//!
//! Policy (AIMD, like the native controller but coarser, as reports are sparse): start
//! at `start_bitrate` (below the ceiling: a Wi-Fi link may carry less); back off to 85 %
//! on a queue (or a jitter) over `overuse_queue` or loss over 5 %, to 70 % on a queue
//! four times that, then hold for `hold` so the queue can drain; probe up on a clean
//! report (queue under `clear_queue`, loss under 2 %): by 10 % on every report until
//! the first congestion (finding the link fast), then by 4 % at most once per
//! `probe_interval` (about 8 %/s, as the native controller). Never above the ceiling,
//! never below the floor.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// What one receiver report says, as the controller needs it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Reception {
    /// Fraction of packets lost since the previous report, 0..=1.
    pub loss: f64,
    /// The round-trip time of a sender report, when the report echoes one.
    pub rtt: Option<Duration>,
    /// Interarrival jitter (RFC 3550 §6.4.1) as time.
    pub jitter: Duration,
}

/// The controller's knobs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RateConfig {
    pub max_bitrate: u32,
    pub min_bitrate: u32,
    pub start_bitrate: u32,
    /// Queueing (RTT over the smallest seen) that means the bottleneck is saturated.
    pub overuse_queue: Duration,
    /// Queueing under which probing up may go on.
    pub clear_queue: Duration,
    /// After a back-off, how long no further change is made.
    pub hold: Duration,
    /// Probing up happens at most this often.
    pub probe_interval: Duration,
}

/// RTT samples kept for the base (smallest) RTT: about 10 s at 4 reports per second.
const RTT_WINDOW: usize = 40;

/// AIMD bitrate controller over receiver reports. See the module documentation.
#[derive(Debug)]
pub(crate) struct RateController {
    config: RateConfig,
    bitrate: u32,
    rtts: VecDeque<Duration>,
    hold_until: Option<Instant>,
    last_probe: Option<Instant>,
    /// A congestion has been seen: probing is slow from then on.
    found_link: bool,
    /// Loss smoothed over reports (1/4 new): one report over a short interval counts a
    /// single lost packet as several percent.
    loss: f64,
}

impl RateController {
    pub fn new(config: RateConfig) -> Self {
        Self {
            bitrate: config
                .start_bitrate
                .clamp(config.min_bitrate, config.max_bitrate),
            config,
            rtts: VecDeque::new(),
            hold_until: None,
            last_probe: None,
            found_link: false,
            loss: 0.0,
        }
    }

    pub fn bitrate(&self) -> u32 {
        self.bitrate
    }

    /// Queueing delay of the newest RTT sample over the smallest in the window.
    pub fn queue_delay(&self) -> Duration {
        match (self.rtts.back(), self.rtts.iter().min()) {
            (Some(&last), Some(&base)) => last.saturating_sub(base),
            _ => Duration::ZERO,
        }
    }

    /// Takes one report; returns the new bitrate when it changed.
    pub fn on_report(&mut self, now: Instant, report: Reception) -> Option<u32> {
        if let Some(rtt) = report.rtt {
            if self.rtts.len() == RTT_WINDOW {
                self.rtts.pop_front();
            }
            self.rtts.push_back(rtt);
        }
        let queue = report.rtt.map(|_| self.queue_delay());
        // Jitter is the fallback delay signal for peers whose reports echo no sender
        // report: a queue that fills and drains shows as arrival times that wander. It
        // is a poor one (a video source's own frame timing varies), so it is not used
        // when the round trip is known.
        let delayed = match queue {
            Some(q) => q > self.config.overuse_queue,
            None => report.jitter > self.config.overuse_queue,
        };
        let undelayed = match queue {
            Some(q) => q < self.config.clear_queue,
            None => report.jitter < self.config.overuse_queue / 2,
        };
        self.loss = 0.75 * self.loss + 0.25 * report.loss;
        let congested = self.loss > 0.05 || delayed;
        let clear = self.loss < 0.02 && undelayed;
        let severe = queue.is_some_and(|q| q > self.config.overuse_queue * 4);
        let held = self.hold_until.is_some_and(|t| now < t);
        let probe_due = self
            .last_probe
            .is_none_or(|t| now.saturating_duration_since(t) >= self.config.probe_interval);
        let next = if congested && !held {
            self.hold_until = Some(now + self.config.hold);
            self.found_link = true;
            let keep = if severe { 70 } else { 85 };
            (u64::from(self.bitrate) * keep / 100) as u32
        } else if clear && !held && !self.found_link {
            (u64::from(self.bitrate) * 110 / 100) as u32
        } else if clear && !held && probe_due {
            self.last_probe = Some(now);
            (u64::from(self.bitrate) * 104 / 100) as u32
        } else {
            self.bitrate
        }
        .clamp(self.config.min_bitrate, self.config.max_bitrate);
        (next != self.bitrate).then(|| {
            self.bitrate = next;
            next
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn controller() -> RateController {
        RateController::new(RateConfig {
            max_bitrate: 4_000_000,
            min_bitrate: 500_000,
            start_bitrate: 4_000_000,
            probe_interval: Duration::from_millis(500),
            overuse_queue: Duration::from_millis(30),
            clear_queue: Duration::from_millis(10),
            hold: Duration::from_millis(500),
        })
    }

    fn report(loss: f64, rtt_ms: u64) -> Reception {
        Reception {
            loss,
            rtt: Some(Duration::from_millis(rtt_ms)),
            jitter: Duration::ZERO,
        }
    }

    #[test]
    fn a_growing_queue_backs_off_then_holds_then_probes_up() {
        let t0 = Instant::now();
        let mut c = controller();
        assert_eq!(c.on_report(t0, report(0.0, 2)), None, "at the ceiling");
        // RTT 50 ms over a 2 ms base: the queue is 48 ms.
        assert_eq!(c.on_report(t0, report(0.0, 50)), Some(3_400_000));
        let t0 = t0 + Duration::from_millis(600);
        // 150 ms of queue: a deeper cut.
        assert_eq!(c.on_report(t0, report(0.0, 150)), Some(2_380_000));
        // Still queued, but within the hold: no second cut for the same queue.
        let t1 = t0 + Duration::from_millis(250);
        assert_eq!(c.on_report(t1, report(0.0, 60)), None);
        // After the hold, still congested: cut again.
        let t2 = t0 + Duration::from_millis(600);
        assert_eq!(c.on_report(t2, report(0.0, 60)), Some(2_023_000));
        // The queue drained: probe up, but not twice within the probe interval.
        let t3 = t2 + Duration::from_millis(600);
        assert_eq!(c.on_report(t3, report(0.0, 3)), Some(2_103_920));
        assert_eq!(
            c.on_report(t3 + Duration::from_millis(200), report(0.0, 3)),
            None
        );
    }

    #[test]
    fn probing_is_fast_until_the_first_congestion_then_slow() {
        let t0 = Instant::now();
        let mut c = RateController::new(RateConfig {
            start_bitrate: 1_000_000,
            ..controller().config
        });
        let mut t = t0;
        for _ in 0..5 {
            t += Duration::from_millis(200);
            c.on_report(t, report(0.0, 2));
        }
        assert_eq!(c.bitrate(), 1_610_510, "+10 % a report");
        c.on_report(t, report(0.0, 60));
        assert_eq!(c.bitrate(), 1_368_933);
        for _ in 0..10 {
            t += Duration::from_millis(200);
            c.on_report(t, report(0.0, 2));
        }
        // 2 s, of which the first 0.5 s held: +4 % three times.
        assert_eq!(c.bitrate(), 1_539_862);
    }

    #[test]
    fn loss_backs_off_and_the_floor_holds() {
        let t0 = Instant::now();
        let mut c = controller();
        for i in 0..100 {
            c.on_report(
                t0 + Duration::from_secs(i),
                Reception {
                    loss: 0.2,
                    rtt: None,
                    jitter: Duration::ZERO,
                },
            );
        }
        assert_eq!(c.bitrate(), 500_000);
    }

    #[test]
    fn jitter_alone_backs_off_for_peers_that_echo_no_sender_report() {
        let t0 = Instant::now();
        let mut c = controller();
        let jittery = Reception {
            loss: 0.0,
            rtt: None,
            jitter: Duration::from_millis(40),
        };
        assert_eq!(c.on_report(t0, jittery), Some(3_400_000));
    }

    #[test]
    fn moderate_loss_without_queueing_neither_cuts_nor_probes() {
        let t0 = Instant::now();
        let mut c = controller();
        // 3 % in every report (smoothed, it approaches 3 %): between the clear and the
        // congested marks, so the ceiling holds.
        for i in 0..20 {
            let t = t0 + Duration::from_secs(i);
            assert_eq!(c.on_report(t, report(0.03, 2)), None, "report {i}");
        }
        // One bad report on top moves the smoothed loss over 5 %: a cut.
        let t = t0 + Duration::from_secs(30);
        assert_eq!(c.on_report(t, report(0.15, 2)), Some(3_400_000));
    }
}
