//! What the sender remembers of frames it sent, to pair receiver reports with its own
//! send times and packet counts.

use std::collections::VecDeque;

use crate::seq;

/// One frame's record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Sent {
    pub number: u32,
    /// Sender wall clock when its first packet went out, µs.
    pub first_packet_us: u64,
    /// Sender wall clock when its last packet went out, µs.
    pub last_packet_us: u64,
    /// Packets in the frame.
    pub count: u16,
    pub bytes: usize,
    /// Packets sent this session up to and including this frame.
    pub packets_through: u64,
}

/// A bounded log of recently sent frames in number order.
#[derive(Debug, Default)]
pub(crate) struct SendLog {
    frames: VecDeque<Sent>,
}

/// Frames remembered: several seconds at 60 fps, far more than reports lag.
const CAPACITY: usize = 512;

impl Sent {
    /// When packet `index` went out (pacing spreads a frame's packets evenly), µs.
    pub fn packet_us(&self, index: u16) -> u64 {
        if self.count <= 1 {
            return self.last_packet_us;
        }
        let span = self.last_packet_us.saturating_sub(self.first_packet_us);
        let index = index.min(self.count - 1) as u64;
        self.first_packet_us + span * index / (self.count as u64 - 1)
    }

    /// Packets sent this session up to and including packet `index` of this frame.
    pub fn packets_through_index(&self, index: u16) -> u64 {
        let before = self.packets_through - self.count as u64;
        before + index.min(self.count - 1) as u64 + 1
    }
}

impl SendLog {
    pub fn push(&mut self, sent: Sent) {
        if self.frames.len() == CAPACITY {
            self.frames.pop_front();
        }
        self.frames.push_back(sent);
    }

    pub fn get(&self, number: u32) -> Option<&Sent> {
        let first = self.frames.front()?.number;
        let offset = seq::distance(number, first);
        if offset < 0 {
            return None;
        }
        // Numbers are increasing but may skip (dropped frames): search near the offset.
        let guess = (offset as usize).min(self.frames.len() - 1);
        self.frames
            .range(..=guess)
            .rev()
            .find(|s| s.number == number)
    }

    pub fn clear(&mut self) {
        self.frames.clear();
    }
}

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

    fn sent(number: u32) -> Sent {
        Sent {
            number,
            first_packet_us: number as u64 * 10,
            last_packet_us: number as u64 * 10 + 4,
            count: 5,
            bytes: 100,
            packets_through: number as u64 * 5 + 5,
        }
    }

    #[test]
    fn finds_frames_across_gaps_and_the_wrap() {
        let mut log = SendLog::default();
        for n in [u32::MAX - 2, u32::MAX, 1, 2, 5] {
            log.push(sent(n));
        }
        assert_eq!(log.get(1).map(|s| s.number), Some(1));
        assert_eq!(log.get(u32::MAX).map(|s| s.number), Some(u32::MAX));
        assert_eq!(log.get(0), None);
        assert_eq!(log.get(u32::MAX - 5), None);
        for n in 10..10 + CAPACITY as u32 {
            log.push(sent(n));
        }
        assert_eq!(log.get(5), None, "forgotten beyond capacity");
        assert!(log.get(10 + CAPACITY as u32 - 1).is_some());
    }

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

    #[test]
    fn interpolates_packet_send_times_and_counts() {
        let s = sent(2); // packets 11..=15 sent from 20 to 24 µs
        assert_eq!(
            (
                s.packet_us(0),
                s.packet_us(2),
                s.packet_us(4),
                s.packet_us(99)
            ),
            (20, 22, 24, 24)
        );
        assert_eq!(
            (s.packets_through_index(0), s.packets_through_index(4)),
            (11, 15)
        );
    }
}
