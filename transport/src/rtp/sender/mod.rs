//! The RTP sender: access units in, RTP (RFC 6184) and RTCP sender reports out; PLI/FIR
//! become keyframe requests for the encoder, generic NACKs retransmissions from a bounded
//! history, receiver reports a bitrate that follows the peer's loss and queueing.
//!
//! The jam guard, where RTP allows it: with [`RtpSenderConfig::jam_guard`] set, a frame's
//! packets are paced (a keyframe does not burst into a router queue), a frame still
//! unsent `max_queue_delay` after it arrived is dropped whole and a keyframe asked for,
//! and receiver reports drive the bitrate ([`rate`]). Sequence numbers are given as
//! packets leave, so a frame dropped here leaves no gap: the peer sees a shorter stream,
//! and the next frame it gets is a keyframe.
//!
//! It has the crate's [`Machine`] shape with the native sender's input and event types,
//! so `bin` drives either through the same hooks. Call order: after every `handle_input`,
//! drain `poll_output` until it returns [`Output::Timeout`].
//!
//! Every packet, RTP and RTCP, is handed out with `to: None`; a driver that keeps RTCP on
//! its own port (RFC 3550's port + 1) tells them apart with [`super::is_rtcp`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use media::annexb::{AccessUnit, ParameterSets};
use rtp_types::RtpPacketBuilder;

use super::twcc::{self, SentLog};
use super::{h264, rtcp};
use crate::congestion::{Controller, Signal};
use crate::machine::{Machine, Output, Transmit, Via};
use crate::repair::resend::Resender;
use crate::send::pacing::Pacer;
use crate::{JamGuardConfig, SenderEvent, SenderInput, SenderStats};

/// The RTP header picam writes: 12 bytes (no CSRC, no extension).
pub const RTP_HEADER: usize = 12;

/// Knobs of the RTP sender.
#[derive(Clone, Debug)]
pub struct RtpSenderConfig {
    /// RTP payload type (dynamic, 96..=127; 96 is what GStreamer and ffmpeg use).
    pub payload_type: u8,
    /// RTP clock rate, Hz (90 kHz for video).
    pub clock_rate: u32,
    /// Largest RTP packet, header included.
    pub max_packet: usize,
    /// Synchronisation source: random per run, so a restarted sender is a new stream.
    pub ssrc: u32,
    /// First sequence number and timestamp offset: random (RFC 3550 §5.1).
    pub initial_seq: u16,
    /// Added to every timestamp.
    pub timestamp_offset: u32,
    /// Send RTCP sender reports (off over TCP, where peers such as GStreamer's
    /// `rtpstreamdepay ! rtph264depay` take every message for RTP).
    pub rtcp: bool,
    /// Interval between sender reports. With the jam guard they are also the probe whose
    /// round trip measures the path's queue, so they go more often (every 50 ms, after a
    /// frame's last packet: about 13 kbit/s of reports and as much of answers, which a
    /// 2 Mbit/s stream's RTCP share of 5 % covers several times).
    pub report_interval: Duration,
    /// RTP packets kept for retransmission on NACK, as bytes: this many packets of
    /// `max_packet` (the oldest are forgotten first, and any older than
    /// `HISTORY_AGE`).
    pub history_packets: usize,
    /// Retransmissions queued at most; more NACKed packets are refused (counted).
    pub max_resend_queue: usize,
    /// Keyframe requests closer together than this are answered once.
    pub keyframe_interval: Duration,
    /// Frames waiting to leave, at most; the oldest unstarted one is dropped for a new
    /// one beyond that.
    pub max_pending_frames: usize,
    /// Pacing, the stale-frame deadline and the report-driven bitrate (see the module
    /// documentation); `None` hands packets out as fast as they are polled.
    pub jam_guard: Option<JamGuardConfig>,
}

impl Default for RtpSenderConfig {
    fn default() -> Self {
        let r = crate::random_session_id();
        Self {
            payload_type: 96,
            clock_rate: 90_000,
            max_packet: 1400,
            ssrc: r,
            initial_seq: (r >> 7) as u16 ^ 0x5a5a,
            timestamp_offset: r.rotate_left(13),
            rtcp: true,
            report_interval: Duration::from_secs(1),
            history_packets: 1024,
            max_resend_queue: 512,
            keyframe_interval: Duration::from_millis(100),
            max_pending_frames: 8,
            jam_guard: None,
        }
    }
}

/// A frame packetized and waiting to leave.
#[derive(Debug)]
struct Pending {
    arrived: Instant,
    timestamp: u32,
    /// Payloads and their marker bits; sequence numbers are given as they leave.
    packets: VecDeque<(Vec<u8>, bool)>,
    /// Some of its packets have left: it is finished, never dropped half-way.
    started: bool,
    /// Pacing rate for its packets, bits/s.
    rate_bps: f64,
}

/// Sent packets older than this are not kept for retransmission: no viewer waits that
/// long for a packet of a live picture.
pub const HISTORY_AGE: Duration = Duration::from_secs(1);

/// Sender reports remembered for the round trip of receiver reports that echo them.
const SENT_REPORTS: usize = 16;

/// RFC 6184 sender. See the module documentation.
#[derive(Debug)]
pub struct RtpSender {
    config: RtpSenderConfig,
    seq: u16,
    pending: VecDeque<Pending>,
    /// Sent RTP packets and the NACKed ones waiting (the repair engine both wires
    /// share).
    resender: Resender,
    events: VecDeque<SenderEvent>,
    params: ParameterSets,
    /// Frames were skipped or dropped before leaving: nothing may go until a keyframe
    /// (the peer would decode against a missing reference).
    need_keyframe: bool,
    last_keyframe_request: Option<Instant>,
    next_report: Option<Instant>,
    /// Recent sender reports: the middle of their NTP time, and when they left.
    sent_reports: VecDeque<(u32, Instant)>,
    pacer: Pacer,
    /// The rate controller, fed by receiver reports, or by transport-wide feedback
    /// once the receiver sends it.
    rate: Option<Controller>,
    /// Every packet's transport-wide number, send time and size (with the controller):
    /// the receiver's transport-wide feedback is matched against it.
    transport_cc: Option<SentLog>,
    /// The loss of the last receiver report (after repair), fraction: with
    /// transport-wide feedback the controller updates on that, and takes the loss
    /// from here.
    report_loss: f64,
    rtp_packets: u32,
    rtp_octets: u32,
    stats: SenderStats,
}

impl RtpSender {
    /// A sender; nothing is sent before the first frame.
    pub fn new(mut config: RtpSenderConfig) -> Self {
        let resender = Resender::new(
            16,
            config.history_packets.max(1) * config.max_packet,
            HISTORY_AGE,
            config.max_resend_queue,
        );
        config.max_pending_frames = config.max_pending_frames.max(1);
        // Without RTCP (over TCP) no report can come: the bitrate stays the user's.
        let rate = config
            .jam_guard
            .as_ref()
            .filter(|_| config.rtcp)
            .map(|g| Controller::new(g.congestion.clone()));
        if config.jam_guard.is_some() {
            config.report_interval = config.report_interval.min(Duration::from_millis(50));
        }
        let target = rate.as_ref().map_or(0, Controller::target_bitrate);
        let transport_cc = rate.as_ref().map(|_| SentLog::new());
        Self {
            seq: config.initial_seq,
            config,
            pending: VecDeque::new(),
            resender,
            events: VecDeque::new(),
            params: ParameterSets::default(),
            need_keyframe: false,
            last_keyframe_request: None,
            next_report: None,
            sent_reports: VecDeque::new(),
            pacer: Pacer::new(Duration::ZERO),
            rate,
            transport_cc,
            report_loss: 0.0,
            rtp_packets: 0,
            rtp_octets: 0,
            stats: SenderStats {
                target_bitrate: target,
                ..Default::default()
            },
        }
    }

    /// The stream's SSRC.
    pub fn ssrc(&self) -> u32 {
        self.config.ssrc
    }

    /// The counters.
    pub fn stats(&self) -> SenderStats {
        self.stats
    }

    /// Packets waiting to be handed out.
    pub fn queued_packets(&self) -> usize {
        self.pending.iter().map(|f| f.packets.len()).sum::<usize>() + self.resender.queued()
    }

    /// Panics if an internal bound is broken.
    pub fn check_invariants(&self) {
        self.resender.check_invariants();
        assert!(self.pending.len() <= self.config.max_pending_frames);
        assert!(self.sent_reports.len() <= SENT_REPORTS);
        assert!(self.pending.iter().all(|f| !f.packets.is_empty()));
        if let Some(log) = &self.transport_cc {
            log.check_invariants();
        }
    }

    fn force_keyframe(&mut self, now: Instant) {
        if self
            .last_keyframe_request
            .is_some_and(|t| now.saturating_duration_since(t) < self.config.keyframe_interval)
        {
            return;
        }
        self.last_keyframe_request = Some(now);
        self.stats.keyframes_forced += 1;
        self.events.push_back(SenderEvent::ForceKeyframe);
    }

    /// A frame that will not leave: the ones after it reference it.
    fn drop_frame(&mut self, now: Instant) {
        self.stats.frames_dropped += 1;
        self.need_keyframe = true;
        self.force_keyframe(now);
    }

    fn on_frame(&mut self, now: Instant, frame: crate::SourceFrame) {
        self.stats.frames_in += 1;
        if frame.skipped_before > 0 {
            self.stats.frames_skipped_at_source += u64::from(frame.skipped_before);
            self.need_keyframe = true;
        }
        let au = self.params.complete(AccessUnit {
            data: frame.frame.data.to_vec(),
            keyframe: frame.frame.keyframe,
        });
        if self.need_keyframe && !(au.keyframe && self.params.known()) {
            self.drop_frame(now);
            return;
        }
        if self
            .rate
            .as_ref()
            .is_some_and(|r| r.made_for_old_rate(now, au.data.len()))
        {
            tracing::debug!(
                bytes = au.data.len(),
                "frame made for the rate before a capacity drop: dropped unsent"
            );
            self.stats.frames_late += 1;
            self.drop_frame(now);
            return;
        }
        if au.keyframe {
            // A keyframe replaces whatever waits and has not started: nothing older is
            // needed to decode it, and the viewer gets the newest picture sooner.
            let before = self.pending.len();
            self.pending.retain(|f| f.started);
            self.stats.frames_dropped += (before - self.pending.len()) as u64;
        }
        self.need_keyframe = false;
        // The RTP timestamp is the capture time on a 90 kHz clock (plus a random
        // offset): a timing hint for players, never used for latency (the stamp in the
        // pixels is).
        let ticks =
            u128::from(frame.frame.capture_us) * u128::from(self.config.clock_rate) / 1_000_000;
        let timestamp = (ticks as u32).wrapping_add(self.config.timestamp_offset);
        let header = RTP_HEADER
            + self
                .transport_cc
                .as_ref()
                .map_or(0, |_| twcc::EXTENSION_BYTES);
        let max_payload = self.config.max_packet.saturating_sub(header).max(3);
        let mut packets = VecDeque::new();
        h264::packetize(&au.data, max_payload, |payload, marker| {
            packets.push_back((payload.to_vec(), marker));
        });
        if packets.is_empty() {
            return;
        }
        let rate_bps = self
            .rate
            .as_ref()
            .map_or(f64::INFINITY, |r| r.pacing_rate(au.data.len()));
        if self.pending.len() >= self.config.max_pending_frames {
            // Full: the oldest frame not yet started goes (a started one finishes).
            if let Some(i) = self.pending.iter().position(|f| !f.started) {
                self.pending.remove(i);
                self.drop_frame(now);
                if !au.keyframe {
                    // This frame references the one just dropped.
                    self.stats.frames_dropped += 1;
                    return;
                }
                self.need_keyframe = false;
            } else {
                self.drop_frame(now);
                return;
            }
        }
        self.pending.push_back(Pending {
            arrived: now,
            timestamp,
            packets,
            started: false,
            rate_bps,
        });
        // A frame beyond the average (a keyframe) is paid back by the next ones; the
        // first frame's announcement below covers the start.
        let bytes = au.data.len();
        if let Some(rate) = self.rate.as_mut() {
            rate.on_signal(now, Signal::FrameQueued { bytes });
            let next = rate.target_bitrate();
            if self.next_report.is_some() && next != self.stats.target_bitrate {
                self.stats.target_bitrate = next;
                self.events.push_back(SenderEvent::SetBitrate(next));
            }
        }
        if self.config.rtcp && self.next_report.is_none() {
            self.next_report = Some(now);
            // The encoder starts at the configured bitrate; the controller starts below
            // it: tell the encoder once, before the link fills.
            if let Some(r) = &self.rate {
                self.stats.target_bitrate = r.target_bitrate();
                self.events
                    .push_back(SenderEvent::SetBitrate(r.target_bitrate()));
            }
        }
    }

    /// Drops frames that waited past the budget without starting, and everything after
    /// them up to the next keyframe (which the encoder is asked for).
    fn drop_stale(&mut self, now: Instant) {
        let Some(budget) = self.config.jam_guard.as_ref().map(|g| g.max_queue_delay) else {
            return;
        };
        let stale = |f: &Pending| !f.started && now.saturating_duration_since(f.arrived) > budget;
        if !self.pending.iter().any(stale) {
            return;
        }
        let before = self.pending.len();
        // Keep what has started; everything else goes, since what follows a dropped
        // frame cannot be decoded without it.
        self.pending.retain(|f| f.started);
        let dropped = (before - self.pending.len()) as u64;
        self.stats.frames_late += dropped;
        self.stats.frames_dropped += dropped.saturating_sub(1);
        self.drop_frame(now);
    }

    /// Builds the next RTP packet of the oldest pending frame into `buf`.
    fn next_packet(&mut self, now: Instant, buf: &mut Vec<u8>) -> bool {
        let Some(frame) = self.pending.front_mut() else {
            return false;
        };
        let Some((payload, marker)) = frame.packets.pop_front() else {
            // Frames are pushed with packets and popped when empty; should one ever be
            // empty, it is simply done.
            self.pending.pop_front();
            return false;
        };
        frame.started = true;
        let (timestamp, rate_bps, finished) =
            (frame.timestamp, frame.rate_bps, frame.packets.is_empty());
        if finished {
            self.pending.pop_front();
            self.stats.frames_sent += 1;
        }
        let extension = self.transport_cc.as_mut().map(|log| {
            let bytes = RTP_HEADER + twcc::EXTENSION_BYTES + payload.len();
            let at_us = media::clock::process().us_at(now);
            twcc::extension_data(log.on_sent(at_us, bytes, marker))
        });
        let mut builder = RtpPacketBuilder::<&[u8], &[u8]>::new()
            .payload_type(self.config.payload_type)
            .sequence_number(self.seq)
            .timestamp(timestamp)
            .ssrc(self.config.ssrc)
            .marker_bit(marker)
            .payload(payload.as_slice());
        if let Some(data) = extension.as_ref() {
            builder = builder.extension(twcc::ONE_BYTE_PROFILE, data.as_slice());
        }
        buf.clear();
        if builder.write_into_vec(buf).is_err() {
            // Only an oversized payload fails, which packetize never makes.
            return false;
        }
        self.resender.on_sent(
            now,
            u64::from(self.seq),
            // The frame a packet is filed under only matters for NACKs that say which
            // frames are done, which RTCP's do not: the timestamp names it well enough.
            timestamp,
            Bytes::copy_from_slice(buf),
        );
        self.seq = self.seq.wrapping_add(1);
        self.rtp_packets = self.rtp_packets.wrapping_add(1);
        self.rtp_octets = self.rtp_octets.wrapping_add(payload.len() as u32);
        if rate_bps.is_finite() {
            // As the native sender does: an average frame goes out at once; only what is
            // beyond it (a keyframe's bulk) is spread.
            let average = self.rate.as_ref().map_or(0, Controller::frame_budget);
            self.pacer
                .set_rate(rate_bps, average.max(2 * self.config.max_packet));
            self.pacer.on_sent(now, buf.len());
        }
        true
    }

    fn on_packet(&mut self, now: Instant, data: &[u8]) {
        if !rtcp::is_rtcp(data) {
            self.stats.feedback_ignored += 1;
            return;
        }
        let Some(fb) = rtcp::parse(data) else {
            self.stats.feedback_ignored += 1;
            tracing::trace!(len = data.len(), "unparseable RTCP ignored");
            return;
        };
        if fb.keyframe {
            self.stats.keyframe_requests += 1;
            self.force_keyframe(now);
        }
        if !fb.nacks.is_empty() {
            self.stats.nacks_received += 1;
        }
        // RTCP says nothing of which frames the peer is done with: every held packet
        // may still help, except one sent before a brake whose queue may hold it still.
        let queued = self.rate.as_ref().and_then(|r| r.brake_draining(now));
        for seq in fb.nacks {
            self.resender.on_nack(
                now,
                u64::from(seq),
                |e| queued.is_none_or(|brake| e.sent_at >= brake),
                &mut self.stats,
            );
        }
        if let Some((media_ssrc, feedback)) = fb.transport_cc {
            if let (Some(log), Some(rate), true) = (
                self.transport_cc.as_mut(),
                self.rate.as_mut(),
                media_ssrc == self.config.ssrc,
            ) {
                self.stats.reports += 1;
                if log.feedbacks() == 0 {
                    // Round trips from receiver reports came before; one-way delays
                    // from now on, on another scale.
                    rate.restart_delay_base();
                }
                log.on_feedback(&feedback, |signal| rate.on_signal(now, signal));
                rate.on_signal(
                    now,
                    Signal::Report {
                        loss: self.report_loss,
                    },
                );
                self.announce_rate();
            }
        }
        if let Some(block) = fb.reception {
            if block.media_ssrc != self.config.ssrc {
                // A report on some other stream (a restarted sender's old SSRC).
                return;
            }
            self.stats.reports += 1;
            self.stats.loss_permille = u32::from(block.fraction_lost) * 1000 / 256;
            // Receivers report up to the last packet they released in order (picam's
            // does), so a resend that came in time is not loss here.
            self.report_loss = f64::from(block.fraction_lost) / 256.0;
            let rtt = self.report_rtt(now, block);
            let transport_cc = self
                .transport_cc
                .as_ref()
                .is_some_and(|l| l.feedbacks() > 0);
            let Some(rate) = self.rate.as_mut() else {
                return;
            };
            if transport_cc {
                // One-way delays from the transport-wide feedback drive the controller;
                // a round trip is on another scale and must not join their minimum.
                return;
            }
            if let Some(rtt) = rtt {
                tracing::trace!(rtt_us = rtt.as_micros() as u64, "RTCP round trip");
                rate.on_signal(now, Signal::RoundTrip(rtt));
            }
            let jitter = f64::from(block.jitter) / f64::from(self.config.clock_rate.max(1));
            rate.on_signal(now, Signal::Jitter(Duration::from_secs_f64(jitter)));
            rate.on_signal(
                now,
                Signal::Report {
                    loss: self.report_loss,
                },
            );
            self.announce_rate();
        }
    }

    /// Tells the encoder of a new target, after the controller took a report.
    fn announce_rate(&mut self) {
        let Some(rate) = self.rate.as_ref() else {
            return;
        };
        self.stats.queue_delay_us = rate.queue_delay().as_micros() as u64;
        let next = rate.target_bitrate();
        if next != self.stats.target_bitrate {
            self.stats.target_bitrate = next;
            self.events.push_back(SenderEvent::SetBitrate(next));
        }
    }

    /// The round trip of the sender report a receiver report echoes (RFC 3550 §6.4.1:
    /// now − LSR − DLSR), if it echoes one of ours.
    fn report_rtt(&self, now: Instant, block: rtcp::ReportInfo) -> Option<Duration> {
        if block.lsr == 0 {
            return None;
        }
        let &(_, sent) = self.sent_reports.iter().find(|(m, _)| *m == block.lsr)?;
        let held = Duration::from_secs_f64(f64::from(block.dlsr) / 65_536.0);
        now.saturating_duration_since(sent).checked_sub(held)
    }

    fn sender_report(&mut self, now: Instant, buf: &mut Vec<u8>) {
        let wall_us = media::clock::process().us_at(now);
        let ticks = u128::from(wall_us) * u128::from(self.config.clock_rate) / 1_000_000;
        let ntp = rtcp::ntp_from_unix_us(wall_us);
        rtcp::sender_report(
            buf,
            self.config.ssrc,
            ntp,
            (ticks as u32).wrapping_add(self.config.timestamp_offset),
            self.rtp_packets,
            self.rtp_octets,
        );
        if self.sent_reports.len() == SENT_REPORTS {
            self.sent_reports.pop_front();
        }
        self.sent_reports.push_back((rtcp::ntp_middle(ntp), now));
    }

    fn count_out(&mut self, buf: &[u8], via: Via) -> Output<SenderEvent> {
        self.stats.datagrams += 1;
        self.stats.bytes += buf.len() as u64;
        Output::Transmit(Transmit { to: None, via })
    }
}

impl Machine for RtpSender {
    type Input<'a> = SenderInput<'a>;
    type Event = SenderEvent;

    fn handle_input(&mut self, now: Instant, input: SenderInput<'_>) {
        match input {
            SenderInput::Frame(frame) => self.on_frame(now, frame),
            SenderInput::Packet(data) => self.on_packet(now, data),
            SenderInput::Timeout => {}
            // A new TCP client starts decoding at a keyframe.
            SenderInput::NewReceiver => {
                self.need_keyframe = true;
                self.last_keyframe_request = None;
                self.force_keyframe(now);
            }
            SenderInput::Disconnected => {
                self.pending.clear();
                self.resender.clear_queue();
            }
        }
    }

    fn poll_output(&mut self, now: Instant, buf: &mut Vec<u8>) -> Output<SenderEvent> {
        if let Some(event) = self.events.pop_front() {
            return Output::Event(event);
        }
        self.drop_stale(now);
        if let Some(event) = self.events.pop_front() {
            return Output::Event(event);
        }
        // Retransmissions go first: the frame they complete is older than any waiting.
        if let Some(packet) = self.resender.next(now, |_| true, &mut self.stats) {
            buf.clear();
            buf.extend_from_slice(&packet);
            if let Some(log) = self.transport_cc.as_mut() {
                // A resend is a new packet on the path: it gets a new number.
                let at_us = media::clock::process().us_at(now);
                let marker = buf.get(1).is_some_and(|b| b & 0x80 != 0);
                let seq = log.on_sent(at_us, buf.len(), marker);
                twcc::rewrite_seq(buf, seq);
            }
            self.stats.packets_retransmitted += 1;
            self.stats.retransmit_bytes += buf.len() as u64;
            return self.count_out(buf, Via::Media);
        }
        let paced_until = self
            .pacer
            .next_send(now)
            .filter(|_| !self.pending.is_empty());
        // Each call takes a packet (or an empty frame) off the queue: the loop ends.
        while paced_until.is_none() && !self.pending.is_empty() {
            if self.next_packet(now, buf) {
                return self.count_out(buf, Via::Media);
            }
        }
        // A report due while a frame is partly sent waits for its last packet: its
        // round trip then measures the queue that frame built, as a frame's last packet
        // does on picam's wire. Sent on a timer alone, 200 ms (six frame intervals at
        // 30 fps) kept it at one phase of the frame cycle, often in the gap where the
        // router's queue had drained: it read 0.1 ms while frames waited 30-100 ms.
        let frame_in_progress = self.pending.front().is_some_and(|f| f.started);
        if let Some(at) = self.next_report.filter(|_| !frame_in_progress) {
            if now >= at {
                self.sender_report(now, buf);
                self.next_report = Some(now + self.config.report_interval);
                if !buf.is_empty() {
                    return self.count_out(buf, Via::Control);
                }
            }
        }
        // Wake for the next paced packet, the next report, or a waiting frame's deadline.
        let deadline = self.config.jam_guard.as_ref().and_then(|g| {
            self.pending
                .iter()
                .find(|f| !f.started)
                .map(|f| f.arrived + g.max_queue_delay + Duration::from_millis(1))
        });
        // A report held for a frame's last packet wakes with that packet (the pacer).
        let report = self.next_report.filter(|_| !frame_in_progress);
        let wake = [paced_until, report, deadline].into_iter().flatten().min();
        Output::Timeout(wake)
    }
}

#[cfg(test)]
mod tests;
