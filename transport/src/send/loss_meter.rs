//! Packet loss as the sender sees it: packets the receiver counted, set against the
//! packets sent through the newest packet it reported on.

/// Packet loss between receiver reports: packets the receiver counted against packets
/// sent through the newest packet it reported.
#[derive(Debug, Default)]
pub(crate) struct LossMeter {
    /// (receiver's count, our count) at the last report that moved the baseline.
    base: Option<(u32, u64)>,
}

/// Fewer packets than this since the baseline give no loss figure yet (too noisy).
const MIN_PACKETS: u64 = 20;

impl LossMeter {
    /// The loss fraction since the baseline, once enough packets were sent; moves the
    /// baseline when it answers.
    pub fn update(&mut self, received_now: u32, sent_through: u64) -> Option<f64> {
        let Some((received_before, sent_before)) = self.base else {
            self.base = Some((received_now, sent_through));
            return None;
        };
        let received = received_now.wrapping_sub(received_before) as u64;
        let sent = sent_through.saturating_sub(sent_before);
        if received > sent + sent / 4 {
            // The receiver restarted its count (a new viewer): start over.
            self.base = Some((received_now, sent_through));
            return None;
        }
        if sent < MIN_PACKETS {
            return None;
        }
        self.base = Some((received_now, sent_through));
        Some((1.0 - received as f64 / sent as f64).max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_meter_waits_for_enough_packets_and_survives_a_recount() {
        let mut m = LossMeter::default();
        assert_eq!(m.update(100, 1000), None, "first report sets the baseline");
        assert_eq!(
            m.update(110, 1010),
            None,
            "ten packets are too few to judge"
        );
        let loss = m.update(145, 1050).expect("45 of 50 packets");
        assert!((loss - 0.1).abs() < 1e-9, "{loss}");
        assert_eq!(m.update(3, 1060), None, "the receiver restarted its count");
        assert_eq!(m.update(43, 1100), Some(0.0));
        // The receiver's count wraps.
        let mut m = LossMeter::default();
        m.update(u32::MAX - 9, 0);
        assert_eq!(m.update(10, 20), Some(0.0));
    }
}
