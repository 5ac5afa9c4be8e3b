//! The RTP receiver: RTP (RFC 6184) and RTCP in, access units out; receiver reports,
//! NACKs and PLIs back.
//!
//! It has the crate's [`Machine`] shape with the native receiver's input and event
//! types, so `bin` drives either through the same hooks. Call order: after every
//! `handle_input`, drain `poll_output` until it returns [`Output::Timeout`].
//!
//! Rules it keeps: one stream (SSRC) at a time, a new one adopted when the old has been
//! quiet for `session_idle`. Packets pass a bounded reorder buffer ([`reorder`]); the
//! gaps are tracked by the loss tracker both wires share ([`LossTracker`], on
//! 16-bit sequence numbers): a sequence gap is NACKed (RFC 4585 generic NACK) once it
//! is `reorder_wait` old, at most [`MAX_NACKS`] times, and waited for up to
//! `repair_wait` when the sender answers NACKs, or only `reorder_wait` when it does not
//! (after [`UNANSWERED_NACKS`] NACKed packets with no answer). A gap still open then,
//! or any malformed packet, means nothing leaves until a decodable keyframe
//! ([`super::h264::Depacketizer`]); while waiting, a PLI goes to the sender's RTCP
//! address when it is known (the source of its sender reports, or with rtcp-mux the
//! source of its RTP), repeated every `keyframe_retry`. Receiver reports ([`reception`])
//! go on every sender report (so the sender can time the round trip) and at least every
//! `report_interval`. Packets numbered in the transport-wide extension ([`super::twcc`],
//! as picam's RTP sender numbers them) are fed back with their arrival times every
//! `transport_cc_interval`, for the sender's rate controller.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use media::EncodedFrame;
use rtp_types::RtpPacket;

use super::h264::Depacketizer;
use super::rtcp;
use super::twcc::{self, ArrivalLog};
use crate::machine::{Machine, Output, Transmit};
use crate::repair::nack::{Arrival, LossConfig, LossTracker, Seen};
use crate::{ReceivedFrame, ReceiverEvent, ReceiverInput, ReceiverStats};

mod reception;
mod reorder;

use reception::Reception;
use reorder::{Reorder, Taken, MAX_SPAN};

/// NACKed packets with no answer after which the sender is taken not to resend.
pub const UNANSWERED_NACKS: u64 = 24;

/// Times one missing packet is NACKed at most.
pub const MAX_NACKS: u8 = 4;

/// Longest spacing of repeated NACKs: RTP has no clock pings, so the round trip is
/// measured from NACK answers only, and a repair time inflated by one slow answer must
/// not stop the repeats.
const MAX_NACK_RETRY: Duration = Duration::from_millis(40);

/// Knobs of the RTP receiver.
#[derive(Clone, Debug)]
pub struct RtpReceiverConfig {
    /// The payload type carrying H.264; RTP packets of other types are refused.
    pub payload_type: u8,
    /// RTP clock rate, Hz (for the jitter in receiver reports).
    pub clock_rate: u32,
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
    /// Send NACKs for gaps and wait for the resends (off: wait only for reordering).
    pub nack: bool,
    /// A gap is NACKed once it is this old (a reordered packet may still come).
    pub reorder_wait: Duration,
    /// The longest a gap is waited for when the sender answers NACKs.
    pub repair_wait: Duration,
    /// Receiver reports go at least this often while a stream is received.
    pub report_interval: Duration,
    /// Transport-wide feedback (arrival times of packets numbered in the extension)
    /// goes this often while such packets come; `None`: never. 15 ms, as picam's own
    /// receiver reports: a few samples per frame interval.
    pub transport_cc_interval: Option<Duration>,
}

impl Default for RtpReceiverConfig {
    fn default() -> Self {
        Self {
            payload_type: 96,
            clock_rate: 90_000,
            rtcp_mux: false,
            max_frame_bytes: crate::DEFAULT_MAX_FRAME_BYTES,
            keyframe_retry: Duration::from_millis(100),
            session_idle: Duration::from_millis(500),
            ssrc: crate::random_session_id(),
            nack: true,
            reorder_wait: Duration::from_millis(3),
            repair_wait: Duration::from_millis(80),
            report_interval: Duration::from_secs(1),
            transport_cc_interval: Some(Duration::from_millis(15)),
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
    reorder: Reorder,
    /// Gaps, NACK timing and giving up: the tracker picam's own receiver uses too.
    tracker: LossTracker,
    reception: Reception,
    ssrc: Option<u32>,
    last_heard: Option<Instant>,
    rtcp_to: RtcpDestination,
    next_number: u32,
    ready: VecDeque<ReceivedFrame>,
    /// A PLI is due (a request came in, or the retry timer ran out).
    pli_due: bool,
    last_pli: Option<Instant>,
    /// A receiver report is due (a sender report came in).
    report_due: bool,
    last_report: Option<Instant>,
    /// NACKed packets of this stream, and how many of them arrived after all.
    nacked: u64,
    answered: u64,
    /// The sender does not answer NACKs: gaps are waited for only as reordering.
    nacks_unanswered: bool,
    /// NACKs the tracker made due and not yet sent (`poll_output` sends them).
    nack_list: Vec<u16>,
    /// Smoothed time from a packet's last NACK to its arrival (a NACK's round trip):
    /// the round trip the tracker spaces repeated NACKs by.
    repair_time: Duration,
    /// Arrival times of numbered packets not yet fed back.
    arrivals: ArrivalLog,
    stats: ReceiverStats,
}

/// Frames ready and not yet handed out, at most (the driver drains after every input).
const MAX_READY: usize = 8;

impl RtpReceiver {
    /// A receiver waiting for its first stream.
    pub fn new(config: RtpReceiverConfig) -> Self {
        let wait = if config.nack {
            config.repair_wait
        } else {
            config.reorder_wait
        };
        Self {
            depacketizer: Depacketizer::new(config.max_frame_bytes),
            reorder: Reorder::new(),
            tracker: LossTracker::new(loss_config(&config, wait)),
            reception: Reception::new(config.clock_rate, Instant::now()),
            config,
            ssrc: None,
            last_heard: None,
            rtcp_to: None,
            next_number: 0,
            ready: VecDeque::new(),
            pli_due: false,
            last_pli: None,
            report_due: false,
            last_report: None,
            nacked: 0,
            answered: 0,
            nacks_unanswered: false,
            nack_list: Vec::new(),
            repair_time: Duration::from_millis(10),
            arrivals: ArrivalLog::new(Instant::now()),
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
        self.reorder.check_invariants();
        self.tracker.check_invariants();
        self.arrivals.check_invariants();
    }

    /// NACKs go out: enabled, somewhere to send them, and the sender answers them.
    fn nacking(&self) -> bool {
        self.config.nack && !self.nacks_unanswered && self.rtcp_to.is_some()
    }

    /// Keeps the reorder buffer and the tracker in step: what the tracker gave up is
    /// released past, and what the buffer skipped (its span bound) is given up.
    fn sync_gaps(&mut self) {
        self.reorder
            .release_before(self.tracker.first_missing().unwrap_or(u64::MAX));
        if let Some(next) = self.reorder.next_ext() {
            self.tracker.give_up_below(next);
        }
    }

    fn new_stream(&mut self, now: Instant, from: Option<SocketAddr>, ssrc: u32) {
        tracing::info!(?from, ssrc = format_args!("{ssrc:08x}"), "new RTP stream");
        self.ssrc = Some(ssrc);
        self.stats.sessions += 1;
        self.depacketizer.reset();
        self.reorder.reset();
        self.reception = Reception::new(self.config.clock_rate, now);
        self.rtcp_to = None;
        self.nacked = 0;
        self.answered = 0;
        self.nacks_unanswered = false;
        self.nack_list.clear();
        self.tracker = LossTracker::new(loss_config(&self.config, self.wait()));
        self.arrivals = ArrivalLog::new(now);
    }

    fn wait(&self) -> Duration {
        if self.config.nack && !self.nacks_unanswered {
            self.config.repair_wait
        } else {
            self.config.reorder_wait
        }
    }

    fn on_rtcp(&mut self, now: Instant, from: Option<SocketAddr>, data: &[u8]) {
        match rtcp::parse(data) {
            Some(fb) => {
                if let Some((ssrc, ntp)) = fb.sender_report {
                    if self.ssrc.is_none_or(|s| s == ssrc) {
                        self.rtcp_to = Some(from);
                        self.reception.on_sender_report(now, ntp);
                        self.report_due = self.ssrc.is_some();
                    }
                }
            }
            None => self.stats.dropped.malformed += 1,
        }
    }

    fn on_packet(&mut self, now: Instant, from: Option<SocketAddr>, data: &[u8]) {
        self.stats.datagrams += 1;
        self.stats.bytes += data.len() as u64;
        if rtcp::is_rtcp(data) {
            self.on_rtcp(now, from, data);
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
            let idle = self
                .last_heard
                .is_none_or(|t| now.saturating_duration_since(t) >= self.config.session_idle);
            if !idle {
                self.stats.dropped.other_sender += 1;
                return;
            }
            self.new_stream(now, from, ssrc);
        }
        self.last_heard = Some(now);
        self.stats.peer = from;
        if self.config.rtcp_mux && self.rtcp_to.is_none() {
            self.rtcp_to = Some(from);
        }
        if self.config.transport_cc_interval.is_some() {
            // Every numbered packet crossed the path, a duplicate or a late resend too.
            if let Some(number) = twcc::read_seq(&packet) {
                self.arrivals.on_packet(now, number);
            }
        }
        let seq = packet.sequence_number();
        let wire = u64::from(seq);
        // RTP does not mark resends: the tracker is told it cannot know.
        let seen = if self.reorder.far_behind(self.tracker.extend(wire)) {
            // Too far back to be late: a new start (the tracker moves its extended
            // numbers past the old ones, so the reorder buffer sees a far jump too).
            self.tracker.restart(wire, 0);
            Seen::New
        } else {
            self.tracker.on_packet(now, wire, 0, Arrival::Unknown)
        };
        let taken = self.reorder.push(self.tracker.extend(wire), data);
        self.sync_gaps();
        let resent = match (taken, seen) {
            (Taken::Stale, _) => {
                self.stats.repair.retransmits_unneeded += 1;
                return;
            }
            (Taken::Discontinuity, _) => {
                tracing::debug!(?from, seq, "RTP sequence jump: a new start, not a gap");
                false
            }
            (
                Taken::Kept,
                Seen::Filled {
                    since_nack: Some(took),
                },
            ) => {
                // Smoothed as RFC 6298 smooths RTT: 7/8 old, 1/8 new.
                self.repair_time = (self.repair_time * 7 + took) / 8;
                self.answered += 1;
                self.stats.repair.packets_retransmitted += 1;
                self.stats.repair.retransmit_bytes += data.len() as u64;
                true
            }
            (Taken::Kept, _) => false,
        };
        self.stats.repair.packets_received += 1;
        if !resent {
            self.reception.on_arrival(now, packet.timestamp());
        }
        self.release(now);
        if taken == Taken::Discontinuity {
            self.reception.restart_counts();
        }
    }

    /// Passes what the reorder buffer lets go to the depacketizer, and finished frames
    /// on.
    fn release(&mut self, now: Instant) {
        while let Some((ext, data)) = self.reorder.pop() {
            self.reception.on_released(ext);
            // The extended numbers' low 16 bits are the wire's.
            let seq = ext as u16;
            let Ok(packet) = RtpPacket::parse(&data) else {
                // It parsed when it came in; the bytes are ours and unchanged.
                continue;
            };
            if let Err(e) = self.depacketizer.push(
                seq,
                packet.timestamp(),
                packet.marker_bit(),
                packet.payload(),
            ) {
                tracing::trace!(peer = ?self.stats.peer, error = %e, "RTP packet refused");
            }
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
                session: self.ssrc.unwrap_or(0),
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

    /// Time passed: gaps waited for long enough are given up; the sender is judged on
    /// whether it answers NACKs.
    fn on_time(&mut self, now: Instant) {
        self.tracker.expire(now, None);
        if !self.nacks_unanswered && self.nacked >= UNANSWERED_NACKS && self.answered == 0 {
            tracing::info!(
                nacked = self.nacked,
                "the RTP sender does not answer NACKs: gaps are no longer waited for"
            );
            self.nacks_unanswered = true;
            self.tracker.set_give_up_after(self.wait());
            self.tracker.expire(now, None);
        }
        self.sync_gaps();
        self.release(now);
    }

    fn retry_due(&self, now: Instant) -> bool {
        self.last_pli
            .is_none_or(|t| now.saturating_duration_since(t) >= self.config.keyframe_retry)
    }

    fn report_interval_passed(&self, now: Instant) -> bool {
        self.ssrc.is_some()
            && self
                .last_report
                .is_none_or(|t| now.saturating_duration_since(t) >= self.config.report_interval)
    }

    /// Writes a receiver report into `buf`, with the NACKs due when there are any.
    fn write_report(&mut self, now: Instant, buf: &mut Vec<u8>, nacks: bool) {
        let Some(media) = self.ssrc else { return };
        // Reported up to the last packet released in order, not the highest seen: a gap
        // still waited for (a NACK out, the resend on its way) is not loss yet. So the
        // loss reported is what repair could not mend, which is what the sender's
        // bitrate should answer to.
        let block = self
            .reorder
            .released()
            .map(|h| self.reception.report_block(now, media, h));
        let list = nacks.then_some((media, self.nack_list.as_slice()));
        rtcp::receiver_report(buf, self.config.ssrc, block, list);
        self.last_report = Some(now);
        self.report_due = false;
    }
}

impl Machine for RtpReceiver {
    type Input<'a> = ReceiverInput<'a>;
    type Event = ReceiverEvent;

    fn handle_input(&mut self, now: Instant, input: ReceiverInput<'_>) {
        match input {
            ReceiverInput::Packet { from, data } => self.on_packet(now, from, data),
            ReceiverInput::Timeout => {
                self.on_time(now);
                if self.depacketizer.waiting_keyframe() && self.retry_due(now) {
                    self.pli_due = true;
                }
            }
            ReceiverInput::RequestKeyframe | ReceiverInput::DownstreamFull => {
                if matches!(input, ReceiverInput::DownstreamFull) {
                    self.stats.dropped.queue_full += 1;
                }
                // The frames queued behind the one the decoder missed refer to it
                // (decoded anyway, the hole is concealed with the previous picture):
                // dropped up to a queued keyframe, which resyncs by itself.
                let keep_from = self.ready.iter().position(|f| f.frame.keyframe);
                let lost = keep_from.unwrap_or(self.ready.len());
                self.stats.dropped.undecodable += lost as u64;
                self.ready.drain(..lost);
                if keep_from.is_none() {
                    self.depacketizer.wait_keyframe();
                    self.pli_due = true;
                }
            }
            ReceiverInput::Close => {}
        }
    }

    fn poll_output(&mut self, now: Instant, buf: &mut Vec<u8>) -> Output<ReceiverEvent> {
        if self.nacking() && self.nack_list.is_empty() {
            let missing = self.tracker.missing_len();
            let due = self.tracker.poll_nacks(now, self.repair_time, None);
            // The extended numbers' low 16 bits are the wire's.
            self.nack_list.extend(due.into_iter().map(|ext| ext as u16));
            if self.tracker.missing_len() < missing {
                // Gaps given up: what they held leaves now.
                self.sync_gaps();
                self.release(now);
            }
        }
        if let Some(f) = self.ready.pop_front() {
            self.stats.frames_emitted += 1;
            return Output::Event(ReceiverEvent::Frame(f));
        }
        let Some(to) = self.rtcp_to else {
            return Output::Timeout(self.timer(now));
        };
        if self.pli_due {
            self.pli_due = false;
            if let Some(media) = self.ssrc {
                rtcp::picture_loss(buf, self.config.ssrc, media);
                self.last_pli = Some(now);
                self.stats.keyframe_requests += 1;
                return Output::Transmit(Transmit::control(to));
            }
        }
        if !self.nack_list.is_empty() {
            self.nacked += self.nack_list.len() as u64;
            self.stats.repair.nacks_sent += 1;
            self.stats.repair.packets_requested += self.nack_list.len() as u64;
            self.write_report(now, buf, true);
            self.nack_list.clear();
            return Output::Transmit(Transmit::control(to));
        }
        if let (Some(interval), Some(media)) = (self.config.transport_cc_interval, self.ssrc) {
            if self.arrivals.due(now, interval) {
                let count = self.arrivals.feedback_count();
                if let Some(feedback) = self.arrivals.take_feedback(now) {
                    rtcp::transport_cc(buf, self.config.ssrc, media, &feedback, count);
                    return Output::Transmit(Transmit::control(to));
                }
            }
        }
        if self.report_due || self.report_interval_passed(now) {
            self.write_report(now, buf, false);
            if !buf.is_empty() {
                return Output::Transmit(Transmit::control(to));
            }
        }
        Output::Timeout(self.timer(now))
    }
}

impl RtpReceiver {
    /// The next moment something is due: a gap's NACK or end of wait, a PLI retry, a
    /// receiver report. None while the stream is quiet and nothing is held.
    fn timer(&self, now: Instant) -> Option<Instant> {
        let quiet = self
            .last_heard
            .is_some_and(|t| now.saturating_duration_since(t) >= self.config.session_idle);
        let gaps = if self.nacking() {
            self.tracker.next_timeout()
        } else {
            self.tracker.next_give_up()
        };
        let pli =
            (self.depacketizer.waiting_keyframe() && self.rtcp_to.is_some() && !quiet).then(|| {
                self.last_pli
                    .map_or(now, |t| t + self.config.keyframe_retry)
            });
        let report = (self.rtcp_to.is_some() && self.ssrc.is_some() && !quiet).then(|| {
            self.last_report
                .map_or(now, |t| t + self.config.report_interval)
        });
        let transport_cc = self
            .config
            .transport_cc_interval
            .filter(|_| self.rtcp_to.is_some() && !quiet)
            .and_then(|interval| self.arrivals.next_due(interval));
        [gaps, pli, report, transport_cc]
            .into_iter()
            .flatten()
            .min()
            .map(|t| t.max(now + Duration::from_millis(1)))
    }
}

/// The tracker's tunables for this wire: first NACK after the fixed `reorder_wait`,
/// a gap waited for `wait`, spans bounded as the reorder buffer's.
fn loss_config(config: &RtpReceiverConfig, wait: Duration) -> LossConfig {
    LossConfig {
        seq_bits: 16,
        max_gap: MAX_SPAN as u32,
        min_wait: config.reorder_wait,
        max_wait: config.reorder_wait,
        max_nacks: MAX_NACKS,
        give_up_after: wait,
        max_missing: MAX_SPAN as usize,
        max_retry: MAX_NACK_RETRY,
    }
}

#[cfg(test)]
mod tests;
