//! Packet loss as the sender learns it from receiver reports: original packets the
//! receiver counted against the span of sequence numbers it has seen, and how many
//! holes that loss came in (its burstiness), between two reports.

use crate::wire::SequenceCounts;

/// Loss over one report interval.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct LossSample {
    /// Fraction of original packets lost on the link (before any repair).
    pub loss: f64,
    /// Packets lost per hole in the sequence (1: isolated losses).
    pub mean_burst: f64,
}

/// Differences between successive receiver counts.
#[derive(Debug, Default)]
pub(crate) struct LossMeter {
    /// The counts at the last report that moved the baseline.
    base: Option<SequenceCounts>,
}

/// Fewer packets than this since the baseline give no loss figure yet (too noisy).
const MIN_PACKETS: u64 = 20;

impl LossMeter {
    /// The loss since the baseline, once enough packets were seen; moves the baseline
    /// when it answers.
    pub fn update(&mut self, now: SequenceCounts) -> Option<LossSample> {
        let Some(base) = self.base else {
            self.base = Some(now);
            return None;
        };
        let span = u64::from(now.highest.wrapping_sub(base.highest));
        let received = u64::from(now.received.wrapping_sub(base.received));
        // The highest number went backwards (a reordered report, or the receiver
        // restarted its counts for a new session), or more arrived than were sent:
        // start over from here.
        if span >= 1 << 31 || received > span + span / 4 {
            self.base = Some(now);
            return None;
        }
        if span < MIN_PACKETS {
            return None;
        }
        self.base = Some(now);
        let lost = span.saturating_sub(received);
        let events = u64::from(now.loss_events.wrapping_sub(base.loss_events));
        let mean_burst = if events > 0 && lost > 0 {
            (lost as f64 / events as f64).max(1.0)
        } else {
            1.0
        };
        Some(LossSample {
            loss: lost as f64 / span as f64,
            mean_burst,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(highest: u32, received: u32, loss_events: u32) -> SequenceCounts {
        SequenceCounts {
            highest,
            received,
            loss_events,
        }
    }

    #[test]
    fn measures_loss_and_burstiness_between_reports() {
        let mut m = LossMeter::default();
        assert_eq!(
            m.update(counts(1000, 990, 3)),
            None,
            "first report: baseline"
        );
        assert_eq!(
            m.update(counts(1010, 1000, 3)),
            None,
            "ten packets are too few"
        );
        let s = m.update(counts(1100, 1070, 5)).expect("100 packets");
        assert!((s.loss - 0.2).abs() < 1e-9, "{s:?}");
        assert!(
            (s.mean_burst - 10.0).abs() < 1e-9,
            "20 lost in 2 holes: {s:?}"
        );
        let s = m.update(counts(1200, 1180, 5)).expect("clean");
        assert_eq!((s.loss, s.mean_burst), (0.0, 1.0));
    }

    #[test]
    fn survives_wraps_and_restarts() {
        let mut m = LossMeter::default();
        m.update(counts(u32::MAX - 9, u32::MAX - 9, 0));
        let s = m
            .update(counts(40, 40, 0))
            .expect("50 packets across the wrap");
        assert_eq!(s.loss, 0.0);
        // A new receiver session counts from zero: the numbers go backwards.
        assert_eq!(m.update(counts(5, 5, 0)), None);
        assert!(m
            .update(counts(105, 95, 1))
            .is_some_and(|s| (s.loss - 0.1).abs() < 1e-9));
    }
}
