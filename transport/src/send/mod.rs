//! The sending side's state machine.
//!
//! It has the crate's one [`Machine`] shape: inputs are [`SenderInput`]s, outputs
//! [`Output`]s of [`SenderEvent`]. Call order (as in str0m): after **every**
//! `handle_input`, drain `poll_output` until it returns [`Output::Timeout`]. The machine
//! never reads a clock; `now` is always an argument.
//!
//! With a [`JamGuardConfig`] the sender also keeps latency from growing on a link slower
//! than the stream: congestion control from receiver reports drives the encoder's
//! bitrate and frame rate, frames that waited past their budget are dropped unsent (and
//! a keyframe asked for), and each frame's packets are paced.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

mod config;
mod feedback;
mod log;
mod loss_meter;
pub(crate) mod pacing;
mod repair;

pub use config::{
    JamGuardConfig, SenderConfig, SenderEvent, SenderInput, SourceFrame, DEFAULT_MAX_FRAME_BYTES,
};
pub use repair::RepairConfig;

use config::MAX_CONTROL;

use crate::machine::{Machine, Output, Transmit};
use crate::repair::fec;
use crate::secure::{Initiator, Opened, SEAL_OVERHEAD};
use crate::wire::{self, FragmentHeader, Packet, FRAGMENT_HEADER};
use crate::{seq, SenderStats};
use feedback::ReportFeedback;
use log::{SendLog, Sent};
use pacing::Pacer;

use repair::SenderRepair;

#[derive(Debug)]
struct QueuedFrame {
    number: u32,
    keyframe: bool,
    capture_us: u64,
    data: Bytes,
    /// Bytes of every data fragment but the last (even, as the parity needs).
    payload: usize,
    count: u16,
    next: u16,
    /// Parity packets this frame gets, computed when the first is due.
    parity: u16,
    parity_shards: Vec<Bytes>,
    next_parity: u16,
    queued_at: Instant,
    /// Sender wall clock when its first packet went out, µs.
    first_packet_us: u64,
}

/// The sending state machine: frames in, packets out.
#[derive(Debug)]
pub struct Sender {
    config: SenderConfig,
    session: u32,
    next_frame: u32,
    queue: VecDeque<QueuedFrame>,
    /// Small control packets (pongs), sent ahead of media and unpaced.
    control: VecDeque<Vec<u8>>,
    events: VecDeque<SenderEvent>,
    /// Number of the newest keyframe queued; requests older than it are already answered.
    last_keyframe: Option<u32>,
    /// When a keyframe was last asked of the encoder, while it has not arrived yet.
    keyframe_asked: Option<Instant>,
    /// Receiver reports and the rate controller they feed.
    feedback: ReportFeedback,
    pacer: Pacer,
    /// Sequence number of the next original packet (data or parity).
    next_seq: u32,
    repair: Option<SenderRepair>,
    /// The encrypted channel to the receiver (`None`: `--insecure`).
    secure: Option<Initiator>,
    log: SendLog,
    packets_sent: u64,
    stats: SenderStats,
}

impl Sender {
    /// A sender for media session `session`. Panics if `max_packet` leaves no room for
    /// payload (a configuration bug the caller validates first).
    pub fn new(config: SenderConfig, session: u32) -> Self {
        let seal = if config.secure.is_some() {
            SEAL_OVERHEAD
        } else {
            0
        };
        assert!(
            config.max_packet >= FRAGMENT_HEADER + seal + 2,
            "max_packet too small for the header"
        );
        assert!(config.queue_frames >= 1, "queue_frames must be at least 1");
        let repair = config.repair.clone().map(SenderRepair::new);
        let secure = config
            .secure
            .clone()
            .map(|key| Initiator::new(key, session));
        let mut events = VecDeque::new();
        let feedback = ReportFeedback::new(
            config.jam_guard.as_ref().map(|g| g.congestion.clone()),
            &mut events,
        );
        Self {
            next_frame: config.first_frame,
            config,
            session,
            queue: VecDeque::new(),
            control: VecDeque::new(),
            events,
            last_keyframe: None,
            keyframe_asked: None,
            feedback,
            pacer: Pacer::new(Duration::ZERO),
            next_seq: 0,
            repair,
            secure,
            log: SendLog::default(),
            packets_sent: 0,
            stats: SenderStats::default(),
        }
    }

    /// This sender's session id.
    pub fn session(&self) -> u32 {
        self.session
    }

    /// Whether the jam guard is on.
    pub fn jam_guard(&self) -> bool {
        self.feedback.controller().is_some()
    }

    /// Counters since start, with the controller's current targets.
    pub fn stats(&self) -> SenderStats {
        let mut stats = self.stats;
        stats.secure = self.secure.as_ref().map(|s| s.stats()).unwrap_or_default();
        if let Some(cc) = self.feedback.controller() {
            stats.target_bitrate = cc.target_bitrate();
            stats.target_fps = cc.target_fps();
            stats.queue_delay_us = cc.queue_delay().as_micros() as u64;
        }
        stats
    }

    /// Largest frame this sender sends: the configured limit, or what the fragment
    /// count (a u16) allows at this packet size, whichever is smaller.
    pub fn max_frame_bytes(&self) -> usize {
        let by_count = self.payload() * u16::MAX as usize;
        by_count.min(self.config.max_frame_bytes)
    }

    /// Frame bytes per data packet: what a packet leaves after the header, rounded
    /// down to even (Reed-Solomon shards are whole 16-bit words).
    fn payload(&self) -> usize {
        let seal = if self.config.secure.is_some() {
            SEAL_OVERHEAD
        } else {
            0
        };
        ((self
            .config
            .max_packet
            .saturating_sub(FRAGMENT_HEADER + seal))
            & !1)
            .max(2)
    }

    /// Takes one encoded frame, after accounting for the frames the source dropped just
    /// before it. A frame too large for the receiver is refused (counted, logged) and
    /// the encoder asked for a keyframe.
    fn on_frame(&mut self, now: Instant, source: SourceFrame) {
        let SourceFrame {
            frame,
            skipped_before,
        } = source;
        if skipped_before > 0 {
            // Frames the source could not queue still take numbers, so the receiver
            // sees a gap. They were never in our queue, so no frames_in/frames_dropped.
            self.next_frame = self.next_frame.wrapping_add(skipped_before);
            self.stats.frames_skipped_at_source += u64::from(skipped_before);
            if !frame.keyframe {
                self.force_keyframe(now);
            }
        }
        self.stats.frames_in += 1;
        let number = self.next_frame;
        // The number is consumed even when the frame is dropped, so the receiver sees
        // the gap and waits for a keyframe instead of decoding against a missing picture.
        self.next_frame = self.next_frame.wrapping_add(1);
        if frame.keyframe {
            self.keyframe_asked = None;
        }
        if frame.data.len() > self.max_frame_bytes() {
            self.stats.frames_dropped += 1;
            self.stats.frames_too_large += 1;
            if self.stats.frames_too_large.is_power_of_two() {
                tracing::warn!(
                    frame = number,
                    bytes = frame.data.len(),
                    max = self.max_frame_bytes(),
                    count = self.stats.frames_too_large,
                    "frame too large for the receiver: dropped unsent (lower the bitrate or the picture size)"
                );
            }
            self.force_keyframe(now);
            return;
        }
        let payload = self.payload();
        let count = u16::try_from(frame.data.len().div_ceil(payload).max(1))
            .expect("max_frame_bytes keeps the fragment count within u16");
        let parity = self
            .repair
            .as_ref()
            .map_or(0, |r| r.parity_for(count, frame.keyframe));
        // Jam guard at the sender: unstarted frames older than the newest few are stale.
        while self.queue.len() >= self.config.queue_frames {
            let Some(pos) = self.queue.iter().position(|f| f.next == 0) else {
                break;
            };
            self.queue.remove(pos);
            self.stats.frames_dropped += 1;
            if !frame.keyframe {
                self.force_keyframe(now);
            }
        }
        if frame.keyframe {
            self.last_keyframe = Some(number);
            if let Some(repair) = self.repair.as_mut() {
                repair.on_keyframe(now, number, &mut self.stats);
            }
        }
        let bytes = frame.data.len() * usize::from(count + parity) / usize::from(count);
        tracing::trace!(
            number,
            bytes,
            parity,
            keyframe = frame.keyframe,
            "frame queued"
        );
        // Just after the capacity dropped, a frame far beyond the new budget was made
        // for the old rate (the encoder was busy with it, or the GOP's keyframe fell
        // there): at a quarter of the rate it would take several frame intervals to
        // cross, and every frame behind it would wait as long. A keyframe made at the
        // new rate replaces it (the receiver sees the gap and waits for that).
        let stale = self
            .feedback
            .controller()
            .is_some_and(|cc| cc.made_for_old_rate(now, bytes));
        if stale {
            tracing::debug!(
                frame = number,
                bytes,
                "frame made for the rate before a capacity drop: dropped unsent"
            );
            self.stats.frames_dropped += 1;
            self.stats.frames_late += 1;
            self.force_keyframe(now);
            return;
        }
        self.feedback.on_frame_queued(now, bytes, &mut self.events);
        self.queue.push_back(QueuedFrame {
            number,
            keyframe: frame.keyframe,
            capture_us: frame.capture_us,
            data: frame.data,
            payload,
            count,
            next: 0,
            parity,
            parity_shards: Vec::new(),
            next_parity: 0,
            queued_at: now,
            first_packet_us: 0,
        });
    }

    /// Asks the encoder for a keyframe, unless one was asked for recently and has not
    /// arrived yet: asking again within `keyframe_timeout` would only repeat the
    /// command, but after it the first command is presumed lost and is re-issued.
    fn force_keyframe(&mut self, now: Instant) {
        let pending = self
            .keyframe_asked
            .is_some_and(|at| now.saturating_duration_since(at) < self.config.keyframe_timeout);
        if !pending {
            self.keyframe_asked = Some(now);
            self.stats.keyframes_forced += 1;
            self.events.push_back(SenderEvent::ForceKeyframe);
        }
    }

    /// Takes one packet from a receiver (feedback). Unparseable or foreign packets are
    /// ignored (logged at trace level, counted): feedback is advisory and must never
    /// stop the stream.
    fn on_packet(&mut self, now: Instant, packet: &[u8]) {
        let Some(secure) = self.secure.as_mut() else {
            return self.on_feedback(now, packet);
        };
        match secure.open(now, packet) {
            Opened::Inner(inner) => self.on_feedback(now, &inner),
            Opened::Established => self.on_keys_agreed(now),
            Opened::Handshake => {}
            Opened::Dropped => {
                self.stats.feedback_ignored += 1;
                tracing::trace!(len = packet.len(), "feedback discarded: not authentic");
            }
        }
    }

    /// Takes one authentic (or, with `--insecure`, any) packet of feedback.
    fn on_feedback(&mut self, now: Instant, packet: &[u8]) {
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
                    self.force_keyframe(now);
                }
            }
            Ok(Packet::Nack(nack)) if nack.session == self.session => {
                self.stats.nacks_received += 1;
                match self.repair.as_mut() {
                    Some(repair) => {
                        let queued = self
                            .feedback
                            .controller()
                            .and_then(|cc| cc.brake_draining(now));
                        repair.on_nack(now, &nack, queued, &mut self.stats);
                    }
                    None => {
                        // Repair is off here: count what was asked, send nothing.
                        let asked = nack.missing().count() as u64;
                        self.stats.nack_requests += asked;
                        self.stats.nack_unknown += asked;
                    }
                }
            }
            Ok(Packet::Bye { session }) if session == self.session => {
                self.events.push_back(SenderEvent::ReceiverLeft);
            }
            Ok(Packet::Report(report)) if report.session == self.session => {
                self.stats.reports += 1;
                // Repair learns the round trip and the loss first: the controller hears
                // what it cannot mend.
                if let Some(repair) = self.repair.as_mut() {
                    repair.on_report(self.config.clock.us(now), &report, &self.log);
                }
                let sample = report.sequence.and_then(|c| self.feedback.loss_sample(c));
                if let (Some(sample), Some(repair)) = (sample, self.repair.as_mut()) {
                    repair.on_loss(sample);
                }
                self.feedback.on_report(
                    now,
                    &report,
                    sample,
                    &self.log,
                    self.repair.as_ref().map(|r| r.loss()),
                    &mut self.stats,
                );
                self.feedback.announce(&mut self.events);
            }
            Ok(Packet::Ping { session, id, t1 })
                if session == self.session && self.control.len() < MAX_CONTROL =>
            {
                let t = self.config.clock.us(now);
                let mut pong = Vec::with_capacity(wire::PONG_LEN);
                wire::write_pong(&mut pong, session, id, t1, t, t);
                self.control.push_back(pong);
            }
            Ok(packet) => {
                self.stats.feedback_ignored += 1;
                tracing::trace!(
                    kind = packet.kind_name(),
                    session = format_args!("{:08x}", packet.session()),
                    ours = format_args!("{:08x}", self.session),
                    "feedback ignored: not for this session, or not feedback"
                );
            }
            Err(error) => {
                self.stats.feedback_ignored += 1;
                tracing::trace!(%error, len = packet.len(), "feedback discarded");
            }
        }
    }

    /// Keys were agreed with a receiver (at start, or after it restarted): it needs a
    /// keyframe to start. Frames that waited for the keys are kept: if the oldest is a
    /// keyframe (the stream's first, from a source that cannot make one on request) it
    /// is exactly what the receiver needs; otherwise one is asked for.
    fn on_keys_agreed(&mut self, now: Instant) {
        self.feedback.restart_loss();
        let starts_with_keyframe = self
            .queue
            .iter()
            .find(|f| f.next == 0)
            .is_some_and(|f| f.keyframe);
        if !starts_with_keyframe {
            self.keyframe_asked = None;
            self.force_keyframe(now);
        }
    }

    /// A (TCP) receiver connected: it needs a keyframe to start.
    fn on_new_receiver(&mut self, now: Instant) {
        self.keyframe_asked = None;
        self.force_keyframe(now);
        self.feedback.restart_loss();
        // Frames queued for the old connection reference pictures the new receiver
        // never saw.
        let before = self.queue.len();
        self.queue.retain(|f| f.next > 0);
        self.stats.frames_dropped += (before - self.queue.len()) as u64;
    }

    /// Drops unstarted frames that have waited past the budget.
    fn drop_late(&mut self, now: Instant) {
        let Some(budget) = self.config.jam_guard.as_ref().map(|g| g.max_queue_delay) else {
            return;
        };
        while let Some(pos) = self
            .queue
            .iter()
            .position(|f| f.next == 0 && now.saturating_duration_since(f.queued_at) > budget)
        {
            let dropped = self.queue.remove(pos).expect("position is in range");
            self.stats.frames_dropped += 1;
            self.stats.frames_late += 1;
            // A newer keyframe already queued repairs the gap by itself.
            let repaired = self.queue.iter().skip(pos).any(|f| f.keyframe);
            if !repaired || dropped.keyframe {
                self.force_keyframe(now);
            }
        }
    }

    /// Writes the next packet into `buf` (cleared first) and returns true, or returns
    /// false when nothing may go now (nothing waiting, or pacing says wait).
    fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> bool {
        if let Some(packet) = self.control.pop_front() {
            buf.clear();
            buf.extend_from_slice(&packet);
            self.stats.datagrams += 1;
            self.stats.bytes += buf.len() as u64;
            return true;
        }
        self.drop_late(now);
        let resend_waiting = self.repair.as_ref().is_some_and(|r| r.has_resend());
        if self.queue.is_empty() && !resend_waiting {
            return false;
        }
        if let Some(cc) = self.feedback.controller() {
            if let Some(frame) = self.queue.front().filter(|f| f.next == 0) {
                // Parity leaves with its frame and is paced with it.
                let bytes =
                    frame.data.len() * (frame.count + frame.parity) as usize / frame.count as usize;
                // An average frame goes out at once; only what is beyond it (a
                // keyframe's bulk) is spread.
                self.pacer.set_rate(
                    cc.pacing_rate(bytes),
                    cc.frame_budget().max(2 * self.config.max_packet),
                );
            }
            if self.pacer.next_send(now).is_some() {
                return false;
            }
        }
        // Repairs first: a nacked packet completes a frame the receiver is holding,
        // which is older than anything still queued.
        let bitrate = self
            .feedback
            .controller()
            .map_or(0, |cc| cc.target_bitrate());
        let resent = match self.repair.as_mut() {
            Some(repair) if resend_waiting => {
                repair.next_resend(now, bitrate, buf, &mut self.stats)
            }
            _ => false,
        };
        if !resent && !self.next_original(now, buf) {
            return false;
        }
        if self.feedback.controller().is_some() {
            self.pacer.on_sent(now, buf.len());
        }
        self.stats.datagrams += 1;
        self.stats.bytes += buf.len() as u64;
        true
    }

    /// Writes the front frame's next packet (data, then its parity) into `buf`.
    fn next_original(&mut self, now: Instant, buf: &mut Vec<u8>) -> bool {
        let Some(frame) = self.queue.front_mut() else {
            return false;
        };
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        let is_parity = frame.next == frame.count;
        let mut header = FragmentHeader {
            session: self.session,
            seq,
            frame: frame.number,
            index: frame.next,
            count: frame.count,
            parity: frame.parity,
            keyframe: frame.keyframe,
            is_parity,
            retransmit: false,
            frame_len: frame.data.len() as u32,
            capture_us: frame.capture_us,
        };
        buf.clear();
        if is_parity {
            if frame.parity_shards.is_empty() {
                frame.parity_shards = match self.repair.as_mut() {
                    Some(repair) => repair.parity_shards(&frame.data, frame.payload, frame.parity),
                    None => fec::parity_shards(&frame.data, frame.payload, frame.parity),
                };
            }
            header.index = frame.next_parity;
            header.write(buf);
            buf.extend_from_slice(&frame.parity_shards[frame.next_parity as usize]);
            frame.next_parity += 1;
            self.stats.parity_packets += 1;
            self.stats.parity_bytes += buf.len() as u64;
        } else {
            let start = frame.next as usize * frame.payload;
            let end = (start + frame.payload).min(frame.data.len());
            header.write(buf);
            buf.extend_from_slice(&frame.data[start..end]);
            if frame.next == 0 {
                frame.first_packet_us = self.config.clock.us(now);
            }
            frame.next += 1;
            self.packets_sent += 1;
            if frame.next == frame.count {
                self.log.push(Sent {
                    number: frame.number,
                    first_packet_us: frame.first_packet_us,
                    last_packet_us: self.config.clock.us(now),
                    count: frame.count,
                    bytes: frame.data.len(),
                    packets_through: self.packets_sent,
                });
            }
        }
        if let Some(repair) = self.repair.as_mut() {
            repair.on_sent(now, seq, frame.number, buf);
        }
        if frame.next == frame.count && frame.next_parity == frame.parity {
            self.queue.pop_front();
            self.stats.frames_sent += 1;
        }
        true
    }

    /// When a timeout input is wanted; `None` while nothing is timed.
    fn next_timeout(&self) -> Option<Instant> {
        let resend_waiting = self.repair.as_ref().is_some_and(|r| r.has_resend());
        if (self.queue.is_empty() && !resend_waiting) || self.feedback.controller().is_none() {
            return None;
        }
        // Frames wait for the pacer; one that waits too long is dropped when it is due.
        self.pacer.next_send_any()
    }

    /// The next timeout, the handshake's included.
    fn next_timeout_secure(&self, now: Instant) -> Option<Instant> {
        let handshake = self.secure.as_ref().and_then(|s| s.next_timeout(now));
        // Before the keys, media waits: only its deadline matters, not the pacer.
        let media = if self.secure.as_ref().is_some_and(|s| !s.established()) {
            self.queue
                .front()
                .zip(self.config.jam_guard.as_ref())
                .map(|(f, g)| f.queued_at + g.max_queue_delay + Duration::from_millis(1))
        } else {
            self.next_timeout()
        };
        [handshake, media].into_iter().flatten().min()
    }

    /// Drops every unsent frame (nobody to send to), counting them.
    fn drop_queued(&mut self) {
        self.stats.frames_dropped += self.queue.len() as u64;
        self.queue.clear();
        self.log.clear();
        if let Some(repair) = self.repair.as_mut() {
            repair.clear_resends();
        }
    }

    /// Frames waiting to be sent (bounded by `queue_frames`).
    pub fn queued_frames(&self) -> usize {
        self.queue.len()
    }

    /// Asserts the machine's internal rules; for tests and fuzzers.
    pub fn check_invariants(&self) {
        if let Some(secure) = &self.secure {
            secure.check_invariants();
        }
        // One partly sent frame may sit beyond the bound: it is finished, not dropped.
        assert!(
            self.queue.len() <= self.config.queue_frames + 1,
            "sender queue over its bound"
        );
        for f in &self.queue {
            assert!(
                f.next < f.count || f.next_parity < f.parity,
                "finished frame left in the queue"
            );
        }
        assert!(self.events.len() <= 64, "events not drained");
        assert!(
            self.control.len() <= MAX_CONTROL,
            "control queue over its bound"
        );
        self.feedback.check_invariants();
        if let Some(repair) = &self.repair {
            repair.check_invariants();
        }
    }
}

impl Machine for Sender {
    type Input<'a> = SenderInput<'a>;
    type Event = SenderEvent;

    fn handle_input(&mut self, now: Instant, input: SenderInput<'_>) {
        match input {
            SenderInput::Frame(frame) => self.on_frame(now, frame),
            SenderInput::Packet(packet) => self.on_packet(now, packet),
            // Pacing and late frames are handled by the next poll.
            SenderInput::Timeout => self.drop_late(now),
            SenderInput::NewReceiver => {
                if let Some(secure) = self.secure.as_mut() {
                    secure.restart();
                }
                self.on_new_receiver(now);
            }
            SenderInput::Disconnected => self.drop_queued(),
        }
    }

    /// Events first (a keyframe command should reach the encoder before anything
    /// else), then control packets, then media as pacing allows, then the timeout.
    fn poll_output(&mut self, now: Instant, buf: &mut Vec<u8>) -> Output<SenderEvent> {
        if let Some(event) = self.events.pop_front() {
            return Output::Event(event);
        }
        let time_us = self.config.clock.us(now);
        if let Some(secure) = self.secure.as_mut() {
            if secure.poll_handshake(now, time_us, buf) {
                self.stats.datagrams += 1;
                self.stats.bytes += buf.len() as u64;
                return Output::Transmit(Transmit::media(None));
            }
            if !secure.established() {
                // Nothing leaves unsealed: frames wait (and age out) until the
                // receiver has answered.
                self.drop_late(now);
                return Output::Timeout(self.next_timeout_secure(now));
            }
        }
        if self.poll_transmit(now, buf) {
            if let Some(secure) = self.secure.as_mut() {
                let plain = buf.len() as u64;
                secure.seal(buf);
                self.stats.bytes += buf.len() as u64 - plain;
            }
            return Output::Transmit(Transmit::media(None));
        }
        Output::Timeout(self.next_timeout_secure(now))
    }
}

#[cfg(test)]
mod tests;
