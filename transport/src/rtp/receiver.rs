//! The RTP receiver: RTP (RFC 6184) and RTCP in, access units out, PLIs back.
//!
//! It has the crate's [`Machine`] shape with the native receiver's input and event
//! types, so `bin` drives either through the same hooks. Call order: after every
//! `handle_input`, drain `poll_output` until it returns [`Output::Timeout`].
//!
//! Rules it keeps: one stream (SSRC) at a time, a new one adopted when the old has been
//! quiet for `session_idle`; any sequence gap or malformed packet means nothing leaves
//! until a decodable keyframe ([`super::h264::Depacketizer`]); while waiting, a PLI goes
//! to the sender's RTCP address when it is known (the source of its sender reports, or
//! with rtcp-mux the source of its RTP), repeated every `keyframe_retry`.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use media::EncodedFrame;
use rtp_types::RtpPacket;

use super::h264::Depacketizer;
use super::rtcp;
use crate::machine::{Machine, Output, Transmit};
use crate::{ReceivedFrame, ReceiverEvent, ReceiverInput, ReceiverStats};

/// Knobs of the RTP receiver.
#[derive(Clone, Debug)]
pub struct RtpReceiverConfig {
    /// The payload type carrying H.264; RTP packets of other types are refused.
    pub payload_type: u8,
    /// RTCP shares the RTP port (RFC 5761): keyframe requests may go to the address RTP
    /// comes from before any sender report names one.
    pub rtcp_mux: bool,
    /// Largest access unit accepted.
    pub max_frame_bytes: usize,
    /// Interval between repeated PLIs while waiting for a keyframe.
    pub keyframe_retry: Duration,
    /// Silence after which another SSRC is adopted.
    pub session_idle: Duration,
    /// Our own SSRC, for the RTCP we send.
    pub ssrc: u32,
}

impl Default for RtpReceiverConfig {
    fn default() -> Self {
        Self {
            payload_type: 96,
            rtcp_mux: false,
            max_frame_bytes: crate::DEFAULT_MAX_FRAME_BYTES,
            keyframe_retry: Duration::from_millis(100),
            session_idle: Duration::from_millis(500),
            ssrc: crate::random_session_id(),
        }
    }
}

/// Where RTCP to the sender goes: `Some(None)` is the stream's one peer (TCP).
type RtcpDestination = Option<Option<SocketAddr>>;

/// RFC 6184 receiver. See the module documentation.
#[derive(Debug)]
pub struct RtpReceiver {
    config: RtpReceiverConfig,
    depacketizer: Depacketizer,
    ssrc: Option<u32>,
    last_heard: Option<Instant>,
    rtcp_to: RtcpDestination,
    next_number: u32,
    ready: VecDeque<ReceivedFrame>,
    /// A PLI is due (a request came in, or the retry timer ran out).
    pli_due: bool,
    last_pli: Option<Instant>,
    stats: ReceiverStats,
}

/// Frames ready and not yet handed out, at most (the driver drains after every input).
const MAX_READY: usize = 8;

impl RtpReceiver {
    /// A receiver waiting for its first stream.
    pub fn new(config: RtpReceiverConfig) -> Self {
        Self {
            depacketizer: Depacketizer::new(config.max_frame_bytes),
            config,
            ssrc: None,
            last_heard: None,
            rtcp_to: None,
            next_number: 0,
            ready: VecDeque::new(),
            pli_due: false,
            last_pli: None,
            stats: ReceiverStats::default(),
        }
    }

    /// The counters, with the depacketizer's folded in.
    pub fn stats(&self) -> ReceiverStats {
        let mut s = self.stats;
        let d = self.depacketizer.stats();
        s.dropped.malformed += d.packets_malformed;
        s.dropped.stale += d.packets_stale;
        s.dropped.incomplete += d.frames_incomplete;
        s.dropped.undecodable += d.frames_undecodable;
        s.dropped.queue_full += d.frames_overflow;
        s.repair.packets_lost = d.packets_lost;
        s
    }

    /// Panics if an internal bound is broken.
    pub fn check_invariants(&self) {
        assert!(self.ready.len() <= MAX_READY);
        self.depacketizer.check_invariants();
    }

    fn on_packet(&mut self, now: Instant, from: Option<SocketAddr>, data: &[u8]) {
        self.stats.datagrams += 1;
        self.stats.bytes += data.len() as u64;
        if rtcp::is_rtcp(data) {
            match rtcp::parse(data) {
                Some(fb) => {
                    if let Some(ssrc) = fb.sender_report {
                        if self.ssrc.map_or(true, |s| s == ssrc) {
                            self.rtcp_to = Some(from);
                        }
                    }
                }
                None => self.stats.dropped.malformed += 1,
            }
            return;
        }
        let packet = match RtpPacket::parse(data) {
            Ok(p) => p,
            Err(e) => {
                tracing::trace!(?from, error = %e, "malformed RTP packet");
                self.stats.dropped.malformed += 1;
                return;
            }
        };
        if packet.payload_type() != self.config.payload_type {
            tracing::trace!(
                ?from,
                pt = packet.payload_type(),
                "RTP packet of another payload type"
            );
            self.stats.dropped.malformed += 1;
            return;
        }
        let ssrc = packet.ssrc();
        if self.ssrc != Some(ssrc) {
            let idle = self.last_heard.map_or(true, |t| {
                now.saturating_duration_since(t) >= self.config.session_idle
            });
            if !idle {
                self.stats.dropped.other_sender += 1;
                return;
            }
            tracing::info!(?from, ssrc = format_args!("{ssrc:08x}"), "new RTP stream");
            self.ssrc = Some(ssrc);
            self.stats.sessions += 1;
            self.depacketizer.reset();
            self.rtcp_to = None;
        }
        self.last_heard = Some(now);
        self.stats.peer = from;
        if self.config.rtcp_mux && self.rtcp_to.is_none() {
            self.rtcp_to = Some(from);
        }
        if let Err(e) = self.depacketizer.push(
            packet.sequence_number(),
            packet.timestamp(),
            packet.marker_bit(),
            packet.payload(),
        ) {
            tracing::trace!(?from, ssrc = format_args!("{ssrc:08x}"), error = %e, "RTP packet refused");
        }
        while let Some(f) = self.depacketizer.pull() {
            self.stats.frames_complete += 1;
            if self.ready.len() >= MAX_READY {
                self.ready.pop_front();
                self.stats.dropped.queue_full += 1;
                self.depacketizer.wait_keyframe();
                continue;
            }
            let number = self.next_number;
            self.next_number = self.next_number.wrapping_add(1);
            self.ready.push_back(ReceivedFrame {
                number,
                session: ssrc,
                frame: EncodedFrame {
                    data: Bytes::from(f.data),
                    // RTP carries no wall clock per frame; latency comes from the stamp
                    // in the pixels, never from this.
                    capture_us: 0,
                    keyframe: f.keyframe,
                },
                arrived: now,
            });
        }
        if self.depacketizer.waiting_keyframe() && self.retry_due(now) {
            self.pli_due = true;
        }
    }

    fn retry_due(&self, now: Instant) -> bool {
        self.last_pli.map_or(true, |t| {
            now.saturating_duration_since(t) >= self.config.keyframe_retry
        })
    }
}

impl Machine for RtpReceiver {
    type Input<'a> = ReceiverInput<'a>;
    type Event = ReceiverEvent;

    fn handle_input(&mut self, now: Instant, input: ReceiverInput<'_>) {
        match input {
            ReceiverInput::Packet { from, data } => self.on_packet(now, from, data),
            ReceiverInput::Timeout => {
                if self.depacketizer.waiting_keyframe() && self.retry_due(now) {
                    self.pli_due = true;
                }
            }
            ReceiverInput::RequestKeyframe | ReceiverInput::DownstreamFull => {
                if matches!(input, ReceiverInput::DownstreamFull) {
                    self.stats.dropped.queue_full += 1;
                }
                self.depacketizer.wait_keyframe();
                self.pli_due = true;
            }
            ReceiverInput::Close => {}
        }
    }

    fn poll_output(&mut self, now: Instant, buf: &mut Vec<u8>) -> Output<ReceiverEvent> {
        if let Some(f) = self.ready.pop_front() {
            self.stats.frames_emitted += 1;
            return Output::Event(ReceiverEvent::Frame(f));
        }
        if self.pli_due {
            self.pli_due = false;
            if let (Some(to), Some(media)) = (self.rtcp_to, self.ssrc) {
                rtcp::picture_loss(buf, self.config.ssrc, media);
                self.last_pli = Some(now);
                self.stats.keyframe_requests += 1;
                return Output::Transmit(Transmit { to });
            }
        }
        let quiet = self
            .last_heard
            .is_some_and(|t| now.saturating_duration_since(t) >= self.config.session_idle);
        let timer = (self.depacketizer.waiting_keyframe() && self.rtcp_to.is_some() && !quiet)
            .then(|| {
                self.last_pli
                    .map_or(now, |t| t + self.config.keyframe_retry)
                    .max(now + Duration::from_millis(1))
            });
        Output::Timeout(timer)
    }
}
