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
