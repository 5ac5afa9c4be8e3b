//! The raw `h264` wire: an Annex B byte stream with nothing around it, as
//! `rpicam-vid -o udp://` and `ffmpeg -f h264 udp://` send it (datagrams split anywhere)
//! and `rpicam-vid --listen -o tcp://` serves it.
//!
//! There are no sequence numbers, so loss over UDP cannot be seen here: the decoder's
//! refusal of corrupt pictures (and its wait for a keyframe after an error) is the only
//! guard, and there is no way to ask the sender for a keyframe. The receiver starts at a
//! keyframe with parameter sets and completes keyframes whose parameter sets came earlier.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use media::annexb::{AccessUnit, AccessUnitSplitter, ParameterSets};
use media::EncodedFrame;

use crate::machine::{Machine, Output, Transmit};
use crate::{
    ReceivedFrame, ReceiverEvent, ReceiverInput, ReceiverStats, SenderEvent, SenderInput,
    SenderStats,
};

/// How long the stream must be quiet before the access unit being gathered is handed out
/// without waiting for the next one to begin (a frame interval otherwise). Senders write
/// each frame in one burst of datagrams, microseconds apart.
pub const FLUSH_AFTER: Duration = Duration::from_millis(4);

/// Frames ready and not yet handed out, at most.
const MAX_READY: usize = 8;

/// Raw Annex B receiver.
#[derive(Debug)]
pub struct H264Receiver {
    splitter: AccessUnitSplitter,
    params: ParameterSets,
    waiting_keyframe: bool,
    last_data: Option<Instant>,
    ready: VecDeque<ReceivedFrame>,
    next_number: u32,
    stats: ReceiverStats,
}

impl H264Receiver {
    /// A receiver for the stream from `origin` (named in errors).
    pub fn new(origin: &str) -> Self {
        Self {
            splitter: AccessUnitSplitter::new(origin),
            params: ParameterSets::default(),
            waiting_keyframe: true,
            last_data: None,
            ready: VecDeque::new(),
            next_number: 0,
            stats: ReceiverStats::default(),
        }
    }

    /// The counters.
    pub fn stats(&self) -> ReceiverStats {
        self.stats
    }

    /// Panics if an internal bound is broken.
    pub fn check_invariants(&self) {
        assert!(self.ready.len() <= MAX_READY);
        assert!(self.splitter.buffered() <= media::annexb::MAX_ACCESS_UNIT + 65_536 * 2);
    }

    fn take(&mut self, now: Instant, au: AccessUnit) {
        self.stats.frames_complete += 1;
        let au = self.params.complete(au);
        let keyframe = au.keyframe && self.params.known();
        if self.waiting_keyframe && !keyframe {
            self.stats.dropped.undecodable += 1;
            return;
        }
        self.waiting_keyframe = false;
        if self.ready.len() >= MAX_READY {
            self.ready.pop_front();
            self.stats.dropped.queue_full += 1;
            if !keyframe {
                self.waiting_keyframe = true;
                return;
            }
        }
        let number = self.next_number;
        self.next_number = self.next_number.wrapping_add(1);
        self.ready.push_back(ReceivedFrame {
            number,
            session: 0,
            frame: EncodedFrame {
                data: Bytes::from(au.data),
                // No timing in a raw stream: latency comes from the stamp in the pixels.
                capture_us: 0,
                keyframe,
            },
            arrived: now,
        });
    }

    fn pull_all(&mut self, now: Instant) {
        loop {
            match self.splitter.pull() {
                Ok(Some(au)) => self.take(now, au),
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "raw H.264 stream refused; waiting for a keyframe");
                    self.stats.dropped.malformed += 1;
                    self.waiting_keyframe = true;
                    break;
                }
            }
        }
    }
}

impl Machine for H264Receiver {
    type Input<'a> = ReceiverInput<'a>;
    type Event = ReceiverEvent;

    fn handle_input(&mut self, now: Instant, input: ReceiverInput<'_>) {
        match input {
            ReceiverInput::Packet { from, data } => {
                self.stats.datagrams += 1;
                self.stats.bytes += data.len() as u64;
                if from.is_some() {
                    self.stats.peer = from;
                }
                self.splitter.push(data);
                self.last_data = Some(now);
                self.pull_all(now);
            }
            ReceiverInput::Timeout => {
                if self
                    .last_data
                    .is_some_and(|t| now.saturating_duration_since(t) >= FLUSH_AFTER)
                {
                    self.last_data = None;
                    if let Some(au) = self.splitter.flush() {
                        self.take(now, au);
                    }
                }
            }
            ReceiverInput::RequestKeyframe | ReceiverInput::DownstreamFull => {
                self.waiting_keyframe = true;
            }
            ReceiverInput::Close => {}
        }
    }

    fn poll_output(&mut self, _now: Instant, _buf: &mut Vec<u8>) -> Output<ReceiverEvent> {
        if let Some(f) = self.ready.pop_front() {
            self.stats.frames_emitted += 1;
            return Output::Event(ReceiverEvent::Frame(f));
        }
        let flush = self
            .last_data
            .filter(|_| self.splitter.has_picture())
            .map(|t| t + FLUSH_AFTER);
        Output::Timeout(flush)
    }
}

/// Raw Annex B sender: each access unit's bytes, cut into packets of at most
/// `max_packet` bytes (UDP) or in one piece (`usize::MAX`, TCP).
#[derive(Debug)]
pub struct H264Sender {
    max_packet: usize,
    params: ParameterSets,
    need_keyframe: bool,
    out: VecDeque<Bytes>,
    events: VecDeque<SenderEvent>,
    stats: SenderStats,
}

impl H264Sender {
    /// A sender cutting frames into packets of at most `max_packet` bytes.
    pub fn new(max_packet: usize) -> Self {
        Self {
            max_packet: max_packet.max(1),
            params: ParameterSets::default(),
            need_keyframe: false,
            out: VecDeque::new(),
            events: VecDeque::new(),
            stats: SenderStats::default(),
        }
    }

    /// The counters.
    pub fn stats(&self) -> SenderStats {
        self.stats
    }
}

impl Machine for H264Sender {
    type Input<'a> = SenderInput<'a>;
    type Event = SenderEvent;

    fn handle_input(&mut self, _now: Instant, input: SenderInput<'_>) {
        match input {
            SenderInput::Frame(f) => {
                self.stats.frames_in += 1;
                if f.skipped_before > 0 {
                    // No sequence numbers: the viewer cannot see the gap, so nothing
                    // goes until a keyframe.
                    self.stats.frames_skipped_at_source += u64::from(f.skipped_before);
                    self.need_keyframe = true;
                }
                let au = self.params.complete(AccessUnit {
                    data: f.frame.data.to_vec(),
                    keyframe: f.frame.keyframe,
                });
                if self.need_keyframe && !(au.keyframe && self.params.known()) {
                    self.stats.frames_dropped += 1;
                    if self.events.is_empty() {
                        self.stats.keyframes_forced += 1;
                        self.events.push_back(SenderEvent::ForceKeyframe);
                    }
                    return;
                }
                self.need_keyframe = false;
                self.stats.frames_sent += 1;
                let data = Bytes::from(au.data);
                let mut at = 0;
                while at < data.len() {
                    let end = data.len().min(at.saturating_add(self.max_packet));
                    self.out.push_back(data.slice(at..end));
                    at = end;
                }
            }
            SenderInput::NewReceiver => {
                self.need_keyframe = true;
                self.out.clear();
                self.stats.keyframes_forced += 1;
                self.events.push_back(SenderEvent::ForceKeyframe);
            }
            SenderInput::Disconnected => self.out.clear(),
            SenderInput::Packet(_) | SenderInput::Timeout => {}
        }
    }

    fn poll_output(&mut self, _now: Instant, buf: &mut Vec<u8>) -> Output<SenderEvent> {
        if let Some(e) = self.events.pop_front() {
            return Output::Event(e);
        }
        if let Some(chunk) = self.out.pop_front() {
            buf.clear();
            buf.extend_from_slice(&chunk);
            self.stats.datagrams += 1;
            self.stats.bytes += chunk.len() as u64;
            return Output::Transmit(Transmit::media(None));
        }
        Output::Timeout(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{drain, SourceFrame};

    fn au(keyframe: bool, seed: u8) -> Vec<u8> {
        let mut v = Vec::new();
        if keyframe {
            v.extend_from_slice(&[0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1f, 0, 0, 0, 1, 0x68, 0xce]);
        }
        v.extend_from_slice(&[0, 0, 0, 1, if keyframe { 0x65 } else { 0x41 }, 0x88]);
        v.extend((0..3000).map(|i| ((i as u8).wrapping_add(seed)) | 1));
        v
    }

    #[test]
    fn frames_split_anywhere_come_out_whole_after_the_quiet_flush() {
        let t0 = Instant::now();
        let mut tx = H264Sender::new(1000);
        let mut rx = H264Receiver::new("test");
        let frames = [au(false, 0), au(true, 1), au(false, 2), au(false, 3)];
        let mut got = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            let now = t0 + Duration::from_millis(33 * i as u64);
            tx.handle_input(
                now,
                SenderInput::Frame(SourceFrame {
                    frame: EncodedFrame {
                        data: Bytes::from(f.clone()),
                        capture_us: 0,
                        keyframe: i == 1,
                    },
                    skipped_before: 0,
                }),
            );
            for (_, p) in drain(&mut tx, now).transmits {
                rx.handle_input(
                    now,
                    ReceiverInput::Packet {
                        from: None,
                        data: &p,
                    },
                );
            }
            let d = drain(&mut rx, now);
            assert_eq!(d.timeout, Some(now + FLUSH_AFTER));
            let later = now + FLUSH_AFTER;
            rx.handle_input(later, ReceiverInput::Timeout);
            for e in drain(&mut rx, later).events.into_iter().chain(d.events) {
                let ReceiverEvent::Frame(f) = e;
                got.push(f.frame.data.to_vec());
            }
            rx.check_invariants();
        }
        // The first P-frame precedes any keyframe and is not decodable.
        assert_eq!(got, frames[1..].to_vec());
    }
}
