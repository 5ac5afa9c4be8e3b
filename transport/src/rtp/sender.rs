//! The RTP sender: access units in, RTP (RFC 6184) and RTCP sender reports out; PLI/FIR
//! become keyframe requests for the encoder, generic NACKs retransmissions from a bounded
//! history, receiver reports a bitrate that follows the peer's loss.
//!
//! It has the crate's [`Machine`] shape with the native sender's input and event types,
//! so `bin` drives either through the same hooks. Call order: after every `handle_input`,
//! drain `poll_output` until it returns [`Output::Timeout`].
//!
//! Every packet, RTP and RTCP, is handed out with `to: None`; a driver that keeps RTCP on
//! its own port (RFC 3550's port + 1) tells them apart with [`super::is_rtcp`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use media::annexb::{AccessUnit, ParameterSets};
use rtp_types::RtpPacketBuilder;

use super::{h264, rtcp};
use crate::machine::{Machine, Output, Transmit};
use crate::{SenderEvent, SenderInput, SenderStats};

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
    /// Interval between sender reports.
    pub report_interval: Duration,
    /// RTP packets kept for retransmission on NACK (a ring: the oldest is forgotten).
    pub history_packets: usize,
    /// Retransmissions queued at most; more NACKed packets are refused (counted).
    pub max_resend_queue: usize,
    /// Keyframe requests closer together than this are answered once.
    pub keyframe_interval: Duration,
    /// Bitrate ceiling and floor, bits/s: with them, receiver reports drive
    /// [`SenderEvent::SetBitrate`] (loss over 5 % backs off by 15 %; a clean report
    /// probes up by 5 %).
    pub bitrate: Option<(u32, u32)>,
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
            bitrate: None,
        }
    }
}

/// RFC 6184 sender. See the module documentation.
#[derive(Debug)]
pub struct RtpSender {
    config: RtpSenderConfig,
    seq: u16,
    /// Packets to send, in order (retransmissions go first).
    out: VecDeque<Vec<u8>>,
    resend: VecDeque<u16>,
    /// Sent RTP packets by `seq % len`, for retransmission.
    history: Vec<Option<(u16, Vec<u8>)>>,
    events: VecDeque<SenderEvent>,
    params: ParameterSets,
    /// Frames were skipped before the sender: RTP shows no gap for them, so nothing may
    /// go until a keyframe (the peer would decode against a missing reference).
    need_keyframe: bool,
    last_keyframe_request: Option<Instant>,
    next_report: Option<Instant>,
    rtp_packets: u32,
    rtp_octets: u32,
    bitrate: u32,
    stats: SenderStats,
}

impl RtpSender {
    /// A sender; nothing is sent before the first frame.
    pub fn new(config: RtpSenderConfig) -> Self {
        let history = vec![None; config.history_packets.max(1)];
        let bitrate = config.bitrate.map_or(0, |(ceiling, _)| ceiling);
        Self {
            seq: config.initial_seq,
            config,
            out: VecDeque::new(),
            resend: VecDeque::new(),
            history,
            events: VecDeque::new(),
            params: ParameterSets::default(),
            need_keyframe: false,
            last_keyframe_request: None,
            next_report: None,
            rtp_packets: 0,
            rtp_octets: 0,
            bitrate,
            stats: SenderStats {
                target_bitrate: bitrate,
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
        self.out.len() + self.resend.len()
    }

    /// Panics if an internal bound is broken.
    pub fn check_invariants(&self) {
        assert!(self.resend.len() <= self.config.max_resend_queue);
        assert!(self.history.len() == self.config.history_packets.max(1));
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
            self.stats.frames_dropped += 1;
            self.force_keyframe(now);
            return;
        }
        self.need_keyframe = false;
        // The RTP timestamp is the capture time on a 90 kHz clock (plus a random
        // offset): a timing hint for players, never used for latency (the stamp in the
        // pixels is).
        let ticks =
            u128::from(frame.frame.capture_us) * u128::from(self.config.clock_rate) / 1_000_000;
        let timestamp = (ticks as u32).wrapping_add(self.config.timestamp_offset);
        let max_payload = self.config.max_packet.saturating_sub(RTP_HEADER).max(3);
        let (pt, ssrc) = (self.config.payload_type, self.config.ssrc);
        let mut packets = Vec::new();
        h264::packetize(&au.data, max_payload, |payload, marker| {
            packets.push((payload.to_vec(), marker));
        });
        for (payload, marker) in packets {
            let builder = RtpPacketBuilder::<&[u8], &[u8]>::new()
                .payload_type(pt)
                .sequence_number(self.seq)
                .timestamp(timestamp)
                .ssrc(ssrc)
                .marker_bit(marker)
                .payload(payload.as_slice());
            let Ok(packet) = builder.write_vec() else {
                // Only an oversized payload fails, which packetize never makes.
                continue;
            };
            let slot = usize::from(self.seq) % self.history.len();
            self.history[slot] = Some((self.seq, packet.clone()));
            self.out.push_back(packet);
            self.rtp_packets = self.rtp_packets.wrapping_add(1);
            self.rtp_octets = self.rtp_octets.wrapping_add(payload.len() as u32);
            self.seq = self.seq.wrapping_add(1);
        }
        self.stats.frames_sent += 1;
        if self.config.rtcp && self.next_report.is_none() {
            self.next_report = Some(now);
        }
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
        for seq in fb.nacks {
            self.stats.nack_requests += 1;
            let slot = usize::from(seq) % self.history.len();
            let known = matches!(&self.history[slot], Some((s, _)) if *s == seq);
            if !known {
                self.stats.nack_unknown += 1;
                continue;
            }
            if self.resend.len() >= self.config.max_resend_queue {
                self.stats.nack_over_budget += 1;
                continue;
            }
            if !self.resend.contains(&seq) {
                self.resend.push_back(seq);
            }
        }
        if let Some((fraction_lost, _jitter)) = fb.reception {
            self.stats.reports += 1;
            self.stats.loss_permille = u32::from(fraction_lost) * 1000 / 256;
            self.follow_reception(fraction_lost);
        }
    }

    /// Receiver reports steer the encoder's bitrate: a plain loss-based controller, as
    /// RTP peers report nothing finer (picam's own wire measures delay instead).
    fn follow_reception(&mut self, fraction_lost: u8) {
        let Some((ceiling, floor)) = self.config.bitrate else {
            return;
        };
        let next = if u32::from(fraction_lost) * 100 > 5 * 256 {
            (self.bitrate as u64 * 85 / 100) as u32
        } else if fraction_lost == 0 {
            (self.bitrate as u64 * 105 / 100) as u32
        } else {
            self.bitrate
        }
        .clamp(floor, ceiling);
        if next != self.bitrate {
            self.bitrate = next;
            self.stats.target_bitrate = next;
            self.events.push_back(SenderEvent::SetBitrate(next));
        }
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
                self.out.clear();
                self.resend.clear();
            }
        }
    }

    fn poll_output(&mut self, now: Instant, buf: &mut Vec<u8>) -> Output<SenderEvent> {
        if let Some(event) = self.events.pop_front() {
            return Output::Event(event);
        }
        while let Some(seq) = self.resend.pop_front() {
            let slot = usize::from(seq) % self.history.len();
            if let Some((s, packet)) = &self.history[slot] {
                if *s == seq {
                    buf.clear();
                    buf.extend_from_slice(packet);
                    self.stats.packets_retransmitted += 1;
                    self.stats.retransmit_bytes += buf.len() as u64;
                    self.stats.datagrams += 1;
                    self.stats.bytes += buf.len() as u64;
                    return Output::Transmit(Transmit { to: None });
                }
            }
        }
        if let Some(packet) = self.out.pop_front() {
            *buf = packet;
            self.stats.datagrams += 1;
            self.stats.bytes += buf.len() as u64;
            return Output::Transmit(Transmit { to: None });
        }
        if let Some(at) = self.next_report {
            if now >= at {
                let wall_us = media::clock::process().us_at(now);
                let ticks = u128::from(wall_us) * u128::from(self.config.clock_rate) / 1_000_000;
                rtcp::sender_report(
                    buf,
                    self.config.ssrc,
                    rtcp::ntp_from_unix_us(wall_us),
                    (ticks as u32).wrapping_add(self.config.timestamp_offset),
                    self.rtp_packets,
                    self.rtp_octets,
                );
                self.next_report = Some(now + self.config.report_interval);
                if !buf.is_empty() {
                    self.stats.datagrams += 1;
                    self.stats.bytes += buf.len() as u64;
                    return Output::Transmit(Transmit { to: None });
                }
            }
        }
        Output::Timeout(self.next_report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::{RtpReceiver, RtpReceiverConfig};
    use crate::{drain, ReceiverEvent, ReceiverInput, SourceFrame};
    use bytes::Bytes;
    use media::EncodedFrame;

    fn frame(keyframe: bool, len: usize, us: u64) -> SourceFrame {
        let mut data = Vec::new();
        if keyframe {
            data.extend_from_slice(&[
                0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1f, 0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80,
            ]);
        }
        data.extend_from_slice(&[0, 0, 0, 1, if keyframe { 0x65 } else { 0x41 }, 0x88]);
        data.extend((0..len).map(|i| (i % 251) as u8 | 1));
        SourceFrame {
            frame: EncodedFrame {
                data: Bytes::from(data),
                capture_us: us,
                keyframe,
            },
            skipped_before: 0,
        }
    }

    #[test]
    fn frames_cross_a_lossless_link_and_a_pli_forces_a_keyframe() {
        let t0 = Instant::now();
        let mut tx = RtpSender::new(RtpSenderConfig {
            initial_seq: 65_500,
            ..Default::default()
        });
        let mut rx = RtpReceiver::new(RtpReceiverConfig {
            rtcp_mux: true,
            ..Default::default()
        });
        let peer = Some("127.0.0.1:5000".parse().unwrap());
        let mut got = Vec::new();
        for i in 0..40u64 {
            let now = t0 + Duration::from_millis(33 * i);
            tx.handle_input(
                now,
                SenderInput::Frame(frame(i % 10 == 0, 5000, 1_000_000 + i * 33_333)),
            );
            let d = drain(&mut tx, now);
            for (_, p) in &d.transmits {
                rx.handle_input(
                    now,
                    ReceiverInput::Packet {
                        from: peer,
                        data: p,
                    },
                );
                for e in drain(&mut rx, now).events {
                    let ReceiverEvent::Frame(f) = e;
                    got.push(f.frame.keyframe);
                }
            }
            tx.check_invariants();
            rx.check_invariants();
        }
        assert_eq!(got.len(), 40);
        // A PLI from the receiver reaches the encoder as ForceKeyframe.
        rx.handle_input(t0, ReceiverInput::RequestKeyframe);
        let d = drain(&mut rx, t0);
        assert_eq!(d.transmits.len(), 1, "one PLI");
        tx.handle_input(
            t0 + Duration::from_secs(5),
            SenderInput::Packet(&d.transmits[0].1),
        );
        let events = drain(&mut tx, t0 + Duration::from_secs(5)).events;
        assert!(events.contains(&SenderEvent::ForceKeyframe), "{events:?}");
    }

    #[test]
    fn nacked_packets_are_resent_from_history_and_unknown_ones_refused() {
        let t0 = Instant::now();
        let mut tx = RtpSender::new(RtpSenderConfig {
            initial_seq: 10,
            rtcp: false,
            ..Default::default()
        });
        tx.handle_input(t0, SenderInput::Frame(frame(true, 5000, 0)));
        let sent = drain(&mut tx, t0).transmits;
        let mut nack = Vec::new();
        rtcp::nack(&mut nack, 1, tx.ssrc(), &[11, 12, 9000]);
        tx.handle_input(t0, SenderInput::Packet(&nack));
        let again = drain(&mut tx, t0).transmits;
        assert_eq!(again.len(), 2);
        assert_eq!(again[0].1, sent[1].1);
        assert_eq!(again[1].1, sent[2].1);
        assert_eq!(tx.stats().nack_unknown, 1);
    }

    #[test]
    fn a_nack_flood_stays_bounded() {
        let t0 = Instant::now();
        let mut tx = RtpSender::new(RtpSenderConfig {
            rtcp: false,
            initial_seq: 0,
            ..Default::default()
        });
        for i in 0..20 {
            tx.handle_input(t0, SenderInput::Frame(frame(i == 0, 60_000, i)));
        }
        let _ = drain(&mut tx, t0);
        let seqs: Vec<u16> = (0..1024).collect();
        let mut nack = Vec::new();
        rtcp::nack(&mut nack, 1, tx.ssrc(), &seqs);
        for _ in 0..10 {
            tx.handle_input(t0, SenderInput::Packet(&nack));
            tx.check_invariants();
        }
        assert!(tx.queued_packets() <= 512);
    }

    #[test]
    fn after_frames_skipped_at_the_source_only_a_keyframe_goes() {
        let t0 = Instant::now();
        let mut tx = RtpSender::new(RtpSenderConfig::default());
        tx.handle_input(t0, SenderInput::Frame(frame(true, 100, 0)));
        let _ = drain(&mut tx, t0);
        let mut f = frame(false, 100, 1);
        f.skipped_before = 1;
        tx.handle_input(t0, SenderInput::Frame(f));
        let d = drain(&mut tx, t0);
        assert!(d.events.contains(&SenderEvent::ForceKeyframe));
        assert!(d.transmits.iter().all(|(_, p)| rtcp::is_rtcp(p)));
        tx.handle_input(t0, SenderInput::Frame(frame(true, 100, 2)));
        assert!(!drain(&mut tx, t0).transmits.is_empty());
    }

    #[test]
    fn keyframes_carry_parameter_sets_even_when_the_encoder_left_them_out() {
        let t0 = Instant::now();
        let mut tx = RtpSender::new(RtpSenderConfig {
            rtcp: false,
            ..Default::default()
        });
        tx.handle_input(t0, SenderInput::Frame(frame(true, 100, 0)));
        let _ = drain(&mut tx, t0);
        let mut bare = frame(false, 100, 1);
        bare.frame.keyframe = true;
        bare.frame.data = Bytes::from(vec![0, 0, 0, 1, 0x65, 0x88, 1, 2, 3]);
        tx.handle_input(t0, SenderInput::Frame(bare));
        let d = drain(&mut tx, t0);
        // STAP-A (SPS + PPS), then the IDR slice.
        assert_eq!(d.transmits.len(), 2);
        assert_eq!(d.transmits[0].1[RTP_HEADER] & 0x1f, h264::STAP_A);
    }
}
