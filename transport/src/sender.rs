//! The sending side's state machine.
//!
//! Call order (as in str0m): after **every** input (`handle_frame`, `handle_packet`,
//! `handle_timeout`) drain `poll_transmit` until it returns `None` and `poll_event`
//! until it returns `None`, then sleep until `poll_timeout`. The machine never reads a
//! clock; `now` is always an argument.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;
use media::EncodedFrame;

use crate::wire::{self, FragmentHeader, Packet, FRAGMENT_HEADER};
use crate::{seq, SenderStats};

/// Knobs of the sender.
#[derive(Clone, Debug)]
pub struct SenderConfig {
    /// Largest packet handed out, header included (UDP: the datagram size; TCP: one
    /// message, normally large enough for a whole frame).
    pub max_packet: usize,
    /// Frames that may wait unsent; when a newer frame arrives beyond this, the oldest
    /// unstarted frames are dropped and a keyframe is asked for.
    pub queue_frames: usize,
    /// First frame number, normally 0 (tests start near the wrap).
    pub first_frame: u32,
}

impl Default for SenderConfig {
    fn default() -> Self {
        Self {
            max_packet: 1400,
            queue_frames: 2,
            first_frame: 0,
        }
    }
}

/// What the sender needs its surroundings to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SenderEvent {
    /// Ask the encoder for a keyframe (IDR with parameter sets) as the next frame.
    ForceKeyframe,
    /// A receiver said it is leaving.
    ReceiverLeft,
}

#[derive(Debug)]
struct QueuedFrame {
    number: u32,
    keyframe: bool,
    capture_us: u64,
    data: Bytes,
    payload: usize,
    count: u16,
    next: u16,
}

/// The sending state machine: frames in, packets out.
#[derive(Debug)]
pub struct Sender {
    config: SenderConfig,
    session: u32,
    next_frame: u32,
    queue: VecDeque<QueuedFrame>,
    events: VecDeque<SenderEvent>,
    /// Number of the newest keyframe queued; requests older than it are already answered.
    last_keyframe: Option<u32>,
    /// A keyframe was asked of the encoder and has not arrived yet.
    keyframe_pending: bool,
    stats: SenderStats,
}

impl Sender {
    /// A sender for media session `session`. Panics if `max_packet` leaves no room for
    /// payload (a configuration bug the caller validates first).
    pub fn new(config: SenderConfig, session: u32) -> Self {
        assert!(
            config.max_packet > FRAGMENT_HEADER,
            "max_packet too small for the header"
        );
        assert!(config.queue_frames >= 1, "queue_frames must be at least 1");
        Self {
            next_frame: config.first_frame,
            config,
            session,
            queue: VecDeque::new(),
            events: VecDeque::new(),
            last_keyframe: None,
            keyframe_pending: false,
            stats: SenderStats::default(),
        }
    }

    /// This sender's session id.
    pub fn session(&self) -> u32 {
        self.session
    }

    /// Counters since start.
    pub fn stats(&self) -> SenderStats {
        self.stats
    }

    /// Largest frame this configuration can carry (fragment count is a u16).
    pub fn max_frame_bytes(&self) -> usize {
        (self.config.max_packet - FRAGMENT_HEADER) * u16::MAX as usize
    }

    /// Takes one encoded frame. Returns false if the frame had to be refused (too large
    /// for the wire); the encoder is then asked for a keyframe.
    pub fn handle_frame(&mut self, _now: Instant, frame: EncodedFrame) -> bool {
        self.stats.frames_in += 1;
        let number = self.next_frame;
        // The number is consumed even when the frame is dropped, so the receiver sees
        // the gap and waits for a keyframe instead of decoding against a missing picture.
        self.next_frame = self.next_frame.wrapping_add(1);
        if frame.keyframe {
            self.keyframe_pending = false;
        }
        let payload = self.config.max_packet - FRAGMENT_HEADER;
        let count = frame.data.len().div_ceil(payload).max(1);
        let Ok(count) = u16::try_from(count) else {
            self.stats.frames_dropped += 1;
            self.force_keyframe();
            return false;
        };
        // Jam guard at the sender: unstarted frames older than the newest few are stale.
        while self.queue.len() >= self.config.queue_frames {
            let Some(pos) = self.queue.iter().position(|f| f.next == 0) else {
                break;
            };
            self.queue.remove(pos);
            self.stats.frames_dropped += 1;
            self.force_keyframe();
        }
        if frame.keyframe {
            self.last_keyframe = Some(number);
        }
        self.queue.push_back(QueuedFrame {
            number,
            keyframe: frame.keyframe,
            capture_us: frame.capture_us,
            data: frame.data,
            payload,
            count,
            next: 0,
        });
        true
    }

    fn force_keyframe(&mut self) {
        if !self.keyframe_pending {
            self.keyframe_pending = true;
            self.stats.keyframes_forced += 1;
            self.events.push_back(SenderEvent::ForceKeyframe);
        }
    }

    /// Takes one packet from a receiver (feedback). Unparseable or foreign packets are
    /// ignored: feedback is advisory and must never stop the stream.
    pub fn handle_packet(&mut self, _now: Instant, packet: &[u8]) {
        match wire::parse(packet) {
            Ok(Packet::KeyframeRequest {
                session,
                highest_seen,
            }) if session == self.session => {
                self.stats.keyframe_requests += 1;
                // A keyframe newer than what the receiver has seen is already on its
                // way; a second one would only spend bandwidth.
                let in_flight = match (self.last_keyframe, highest_seen) {
                    (Some(kf), Some(seen)) => seq::after(kf, seen),
                    _ => false,
                };
                if !in_flight {
                    self.force_keyframe();
                }
            }
            Ok(Packet::Bye { session }) if session == self.session => {
                self.events.push_back(SenderEvent::ReceiverLeft);
            }
            _ => {}
        }
    }

    /// Called when a (TCP) receiver connects: it needs a keyframe to start.
    pub fn handle_new_receiver(&mut self, _now: Instant) {
        self.keyframe_pending = false;
        self.force_keyframe();
        // Frames queued for the old connection reference pictures the new receiver
        // never saw.
        self.queue.retain(|f| f.next > 0);
    }

    /// Writes the next packet into `buf` (cleared first) and returns true, or returns
    /// false when nothing is waiting.
    pub fn poll_transmit(&mut self, _now: Instant, buf: &mut Vec<u8>) -> bool {
        let Some(frame) = self.queue.front_mut() else {
            return false;
        };
        buf.clear();
        let start = frame.next as usize * frame.payload;
        let end = (start + frame.payload).min(frame.data.len());
        FragmentHeader {
            session: self.session,
            frame: frame.number,
            index: frame.next,
            count: frame.count,
            keyframe: frame.keyframe,
            capture_us: frame.capture_us,
        }
        .write(buf);
        buf.extend_from_slice(&frame.data[start..end]);
        frame.next += 1;
        if frame.next == frame.count {
            self.queue.pop_front();
            self.stats.frames_sent += 1;
        }
        self.stats.datagrams += 1;
        self.stats.bytes += buf.len() as u64;
        true
    }

    /// The next thing the surroundings must do.
    pub fn poll_event(&mut self) -> Option<SenderEvent> {
        self.events.pop_front()
    }

    /// When `handle_timeout` wants to be called; `None` while nothing is timed.
    pub fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    /// Time has passed.
    pub fn handle_timeout(&mut self, _now: Instant) {}

    /// Drops every unsent frame (nobody to send to), counting them.
    pub fn drop_queued(&mut self) {
        self.stats.frames_dropped += self.queue.len() as u64;
        self.queue.clear();
    }

    /// Frames waiting to be sent (bounded by `queue_frames`).
    pub fn queued_frames(&self) -> usize {
        self.queue.len()
    }

    /// Asserts the machine's internal rules; for tests and fuzzers.
    pub fn check_invariants(&self) {
        // One partly sent frame may sit beyond the bound: it is finished, not dropped.
        assert!(
            self.queue.len() <= self.config.queue_frames + 1,
            "sender queue over its bound"
        );
        for f in &self.queue {
            assert!(f.next < f.count, "finished frame left in the queue");
        }
        assert!(self.events.len() <= 64, "events not drained");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(keyframe: bool, len: usize) -> EncodedFrame {
        EncodedFrame {
            data: Bytes::from(vec![0x42; len]),
            capture_us: 1,
            keyframe,
        }
    }

    fn events(sender: &mut Sender) -> Vec<SenderEvent> {
        std::iter::from_fn(|| sender.poll_event()).collect()
    }

    #[test]
    fn queue_stays_bounded_under_a_flood_of_frames() {
        let now = Instant::now();
        let mut sender = Sender::new(SenderConfig::default(), 1);
        let mut buf = Vec::new();
        sender.handle_frame(now, frame(true, 5000));
        // Start the first frame: a partly sent frame is finished, never dropped.
        assert!(sender.poll_transmit(now, &mut buf));
        for _ in 0..10_000 {
            sender.handle_frame(now, frame(false, 3000));
            sender.check_invariants();
        }
        assert!(sender.queued_frames() <= SenderConfig::default().queue_frames + 1);
        // One keyframe asked for, however many frames were dropped.
        assert_eq!(events(&mut sender), vec![SenderEvent::ForceKeyframe]);
        let stats = sender.stats();
        assert_eq!(stats.frames_in, 10_001);
        assert_eq!(stats.frames_dropped, 10_001 - sender.queued_frames() as u64);
        let mut first = Vec::new();
        while sender.poll_transmit(now, &mut buf) {
            let Ok(Packet::Fragment(h, _)) = wire::parse(&buf) else {
                panic!("not a fragment")
            };
            first.push((h.frame, h.index));
        }
        assert_eq!(first[0], (0, 1), "the started keyframe is finished first");
        assert_eq!(sender.queued_frames(), 0);
    }

    #[test]
    fn keyframe_requests_already_answered_are_ignored() {
        let cases: [(Option<u32>, Option<u32>, bool); 6] = [
            (None, Some(5), true),
            (None, None, true),
            (Some(10), Some(5), false),
            (Some(10), Some(10), true),
            (Some(10), None, true),
            (Some(2), Some(u32::MAX - 1), false),
        ];
        for (keyframe_at, seen, forces) in cases {
            let now = Instant::now();
            let first_frame = keyframe_at.unwrap_or(0);
            let mut sender = Sender::new(
                SenderConfig {
                    first_frame,
                    ..SenderConfig::default()
                },
                9,
            );
            if keyframe_at.is_some() {
                sender.handle_frame(now, frame(true, 10));
            }
            let mut request = Vec::new();
            wire::write_keyframe_request(&mut request, 9, seen);
            sender.handle_packet(now, &request);
            let want = if forces {
                vec![SenderEvent::ForceKeyframe]
            } else {
                vec![]
            };
            assert_eq!(events(&mut sender), want, "{keyframe_at:?} {seen:?}");
            // A second request before the keyframe arrives asks nothing more.
            sender.handle_packet(now, &request);
            assert!(events(&mut sender).is_empty());
            assert_eq!(sender.stats().keyframe_requests, 2);
        }
    }

    #[test]
    fn a_new_keyframe_rearms_the_request() {
        let now = Instant::now();
        let mut sender = Sender::new(SenderConfig::default(), 9);
        let mut request = Vec::new();
        wire::write_keyframe_request(&mut request, 9, None);
        sender.handle_packet(now, &request);
        sender.handle_frame(now, frame(true, 10));
        sender.handle_packet(now, &request);
        assert_eq!(events(&mut sender), vec![SenderEvent::ForceKeyframe; 2]);
        assert_eq!(sender.stats().keyframes_forced, 2);
        let mut bye = Vec::new();
        wire::write_bye(&mut bye, 9);
        sender.handle_packet(now, &bye);
        wire::write_bye(&mut bye, 10); // another session's: ignored
        sender.handle_packet(now, &bye[wire::COMMON_HEADER..]);
        assert_eq!(events(&mut sender), vec![SenderEvent::ReceiverLeft]);
    }
}
