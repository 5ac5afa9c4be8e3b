//! The sender's half of loss repair: how much parity each frame gets, the history of
//! sent packets, and answering nacks within a byte budget.
//!
//! The receiver's half (gap detection, nack timing, rebuilding from parity) is in
//! `recv/`; the shared pieces (Reed-Solomon, the history, the parity policy, the
//! receiver's loss tracker) are in `crate::repair`.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::log::SendLog;
use super::loss_meter::LossSample;
use crate::repair::fec::FecEncoder;
use crate::repair::history::Entry;
use crate::repair::policy;
use crate::repair::resend::Resender;
use crate::wire::{Nack, Report, FRAGMENT_FLAGS_OFFSET, RETRANSMIT_FLAG};
use crate::{seq, SenderStats};

/// Bits of picam's packet sequence number on the wire.
const SEQ_BITS: u32 = 32;

/// The most resend bytes that may go back to back: this long at the current rate
/// (a keyframe is about two frame intervals of it at 30 fps).
const RESEND_BURST_TIME: Duration = Duration::from_millis(200);

/// Loss repair knobs (datagram transport only). `None` in the sender's config turns
/// repair off (`--no-repair`): no parity, no history, nacks ignored.
#[derive(Clone, Debug)]
pub struct RepairConfig {
    /// Send parity packets per frame, as much as the reported loss calls for.
    pub fec: bool,
    /// Bytes of sent packets kept for retransmission (the oldest go first).
    pub history_bytes: usize,
    /// How long a sent packet is kept for retransmission: past the receiver's frame
    /// deadline nobody can use it.
    pub history_age: Duration,
    /// Retransmissions may use at most this share of the stream's bitrate ...
    pub retransmit_share: f64,
    /// ... plus a burst of this many bytes (a lost keyframe's worth), and never more
    /// than `RESEND_BURST_TIME` of the current rate.
    pub retransmit_burst: usize,
    /// The stream's bitrate when there is no congestion controller to ask, bits/s.
    pub nominal_bitrate: u32,
    /// How late after its first send a repaired packet is still worth having: a
    /// resend that cannot arrive within it does not count, and parity covers that
    /// loss instead. With a round trip well under it, resends repair nearly all loss
    /// and frames get little or no parity.
    pub deadline: Duration,
}

impl RepairConfig {
    /// Defaults for a stream of `bitrate` bits/s.
    pub fn for_bitrate(bitrate: u32) -> Self {
        Self {
            fec: true,
            history_bytes: 4 << 20,
            history_age: Duration::from_millis(300),
            retransmit_share: 0.5,
            retransmit_burst: 256 << 10,
            nominal_bitrate: bitrate,
            // A frame late by this much is a visible stall on a live picture; the
            // receiver's fragment wait (200 ms) is a last resort, not a target.
            deadline: Duration::from_millis(100),
        }
    }
}

/// Nacked packets waiting to be resent at once; more are refused (counted).
const MAX_RESEND_QUEUE: usize = 1024;
/// Weight of a new loss sample in the smoothed loss the parity policy reads.
const LOSS_GAIN: f64 = 0.3;
/// Round-trip samples above this are garbage (a report about a packet from before a
/// restart, or a clock step), not a path.
const MAX_RTT: Duration = Duration::from_secs(10);

/// The round trip as the sender sees it, smoothed as TCP does (RFC 6298: `srtt` with
/// gain 1/8, `rttvar` with gain 1/4).
///
/// Samples come from the receiver's reports: each report names packets it sampled
/// (frame, index) and how long ago on its own clock each arrived, and the sender knows
/// when it sent them on its own clock. So `now - sent - held` is a round trip with no
/// clock sync needed (RTCP's LSR/DLSR does the same). It includes the queue the
/// packet met, which is what a resend meets too.
#[derive(Clone, Copy, Debug, Default)]
struct RttEstimate {
    srtt: Option<Duration>,
    rttvar: Duration,
}

impl RttEstimate {
    fn on_sample(&mut self, sample: Duration) {
        if sample > MAX_RTT {
            return;
        }
        match self.srtt {
            None => {
                self.srtt = Some(sample);
                self.rttvar = sample / 2;
            }
            Some(srtt) => {
                let err = sample.abs_diff(srtt);
                self.rttvar = (self.rttvar * 3 + err) / 4;
                self.srtt = Some((srtt * 7 + sample) / 8);
            }
        }
    }

    /// A round trip a resend will most likely beat: `srtt + 2 rttvar`.
    fn likely(&self) -> Option<Duration> {
        self.srtt.map(|s| s + self.rttvar * 2)
    }
}

/// The sender's repair state.
pub(crate) struct SenderRepair {
    config: RepairConfig,
    /// The history of sent packets and the nacked ones waiting (shared with RTP).
    resender: Resender,
    /// Retransmission budget in bytes, refilled at the share of the bitrate.
    tokens: f64,
    refilled_at: Option<Instant>,
    /// Smoothed link loss and burst length from receiver reports.
    loss: f64,
    burst: f64,
    rtt: RttEstimate,
    /// Reused across frames: its working space is allocated once.
    encoder: FecEncoder,
    /// The newest keyframe queued: no resends for frames before it.
    keyframe: Option<u32>,
}

impl std::fmt::Debug for SenderRepair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SenderRepair")
            .field("loss", &self.loss)
            .field("burst", &self.burst)
            .field("rtt", &self.rtt)
            .field("resend", &self.resender.queued())
            .finish()
    }
}

impl SenderRepair {
    pub fn new(config: RepairConfig) -> Self {
        let resender = Resender::new(
            SEQ_BITS,
            config.history_bytes,
            config.history_age,
            MAX_RESEND_QUEUE,
        );
        Self {
            tokens: config.retransmit_burst as f64,
            config,
            resender,
            refilled_at: None,
            loss: 0.0,
            burst: 1.0,
            rtt: RttEstimate::default(),
            encoder: FecEncoder::new(),
            keyframe: None,
        }
    }

    /// The parity shards of a frame cut into `payload`-byte fragments.
    pub fn parity_shards(&mut self, frame: &[u8], payload: usize, parity: u16) -> Vec<Bytes> {
        self.encoder.encode(frame, payload, parity)
    }

    /// A new loss sample from a receiver report.
    pub fn on_loss(&mut self, sample: LossSample) {
        // Rise at once, decay slowly: a burst of loss must be met now, and a quiet
        // second does not mean the link got better.
        self.loss = if sample.loss > self.loss {
            sample.loss
        } else {
            self.loss + LOSS_GAIN * (sample.loss - self.loss)
        };
        self.burst += LOSS_GAIN * (sample.mean_burst - self.burst);
        tracing::trace!(
            sample = sample.loss,
            burst = sample.mean_burst,
            loss = self.loss,
            rtt = ?self.rtt.likely(),
            "loss sample: parity is sized from `loss` and the RTT"
        );
    }

    /// Round-trip samples from a receiver report: for each packet it sampled that
    /// `log` still knows, the time since its send (`now_us`, sender clock) less the
    /// time the receiver held it before reporting.
    pub fn on_report(&mut self, now_us: u64, report: &Report<'_>, log: &SendLog) {
        for arrival in report.arrivals() {
            let Some(sent) = log.get(arrival.frame) else {
                continue;
            };
            let held = report.report_us.saturating_sub(arrival.at_us);
            let since_sent = now_us.saturating_sub(sent.packet_us(arrival.index));
            // A negative span is the pacing estimate of a mid-frame packet's send time
            // being off, or a bad report: no sample.
            if let Some(rtt) = since_sent.checked_sub(held) {
                self.rtt.on_sample(Duration::from_micros(rtt));
            }
        }
    }

    /// The smoothed loss fraction the policy works from.
    pub fn loss(&self) -> f64 {
        self.loss
    }

    /// Parity packets for a frame of `data_packets` fragments.
    pub fn parity_for(&self, data_packets: u16, keyframe: bool) -> u16 {
        if !self.config.fec {
            return 0;
        }
        let rounds = policy::resend_rounds(self.rtt.likely(), self.config.deadline);
        policy::parity_with_resends(data_packets, keyframe, self.loss, self.burst, rounds)
    }

    /// Remembers a packet as sent (original transmissions only).
    pub fn on_sent(&mut self, now: Instant, seq: u32, frame: u32, packet: &[u8]) {
        self.resender
            .on_sent(now, u64::from(seq), frame, Bytes::copy_from_slice(packet));
    }

    /// A keyframe numbered `frame` was queued: resends of the frames before it are no
    /// use any more. The receiver jumps to a complete keyframe rather than wait for an
    /// older frame, and on a link that just narrowed those resends queue ahead of the
    /// keyframe (seen at the 8 -> 2 Mbit/s step: 92 resends, 440 ms of the new link,
    /// for a frame the keyframe had replaced).
    pub fn on_keyframe(&mut self, now: Instant, frame: u32, stats: &mut SenderStats) {
        self.keyframe = Some(frame);
        self.resender.forget_frames_before(now, frame, stats);
    }

    /// Queues the packets a nack asks for that can still help; counts the rest.
    /// `still_queued_before`: packets first sent before this instant may still be in
    /// the path's queue (the controller braked then:
    /// [`crate::congestion::Controller::brake_draining`]).
    pub fn on_nack(
        &mut self,
        now: Instant,
        nack: &Nack<'_>,
        still_queued_before: Option<Instant>,
        stats: &mut SenderStats,
    ) {
        // A packet of a frame the receiver is done with (shown or given up), or of one
        // before the newest keyframe, is no use; nor is one the path still holds.
        let keyframe = self.keyframe;
        let useful = |e: &Entry| {
            nack.done_through
                .is_none_or(|done| seq::after(e.frame, done))
                && keyframe.is_none_or(|k| !seq::after(k, e.frame))
                && still_queued_before.is_none_or(|brake| e.sent_at >= brake)
        };
        for wanted in nack.missing() {
            self.resender.on_nack(now, u64::from(wanted), useful, stats);
        }
    }

    /// Whether a retransmission is waiting.
    pub fn has_resend(&self) -> bool {
        self.resender.has_resend()
    }

    /// Writes the next retransmission into `buf` (its retransmit flag set) and returns
    /// true, or returns false when none is waiting or the budget refuses them all.
    /// `bitrate` is the stream's current rate, bits/s (0: use the nominal one).
    pub fn next_resend(
        &mut self,
        now: Instant,
        bitrate: u32,
        buf: &mut Vec<u8>,
        stats: &mut SenderStats,
    ) -> bool {
        self.refill(now, bitrate);
        let tokens = &mut self.tokens;
        let admit = |entry: &crate::repair::history::Entry| {
            let len = entry.packet.len() as f64;
            let ok = *tokens >= len;
            if ok {
                *tokens -= len;
            }
            ok
        };
        let Some(packet) = self.resender.next(now, admit, stats) else {
            return false;
        };
        buf.clear();
        buf.extend_from_slice(&packet);
        if let Some(flags) = buf.get_mut(FRAGMENT_FLAGS_OFFSET) {
            *flags |= RETRANSMIT_FLAG;
        }
        stats.packets_retransmitted += 1;
        stats.retransmit_bytes += buf.len() as u64;
        true
    }

    fn refill(&mut self, now: Instant, bitrate: u32) {
        let bitrate = if bitrate > 0 {
            bitrate
        } else {
            self.config.nominal_bitrate
        };
        let dt = self
            .refilled_at
            .map_or(0.0, |t| now.saturating_duration_since(t).as_secs_f64());
        self.refilled_at = Some(now);
        let rate = bitrate as f64 / 8.0 * self.config.retransmit_share;
        // The burst follows the rate: tokens saved at 8 Mbit/s and spent just after the
        // capacity dropped to 2 would put seconds of resends into the narrowed link.
        let burst = (self.config.retransmit_burst as f64)
            .min(bitrate as f64 / 8.0 * RESEND_BURST_TIME.as_secs_f64());
        self.tokens = (self.tokens + rate * dt).min(burst);
    }

    /// A new receiver (TCP reconnect, which never uses repair) or a cleared queue.
    pub fn clear_resends(&mut self) {
        self.resender.clear_queue();
    }

    pub fn check_invariants(&self) {
        assert!(
            self.tokens <= self.config.retransmit_burst as f64 + 1.0,
            "retransmit budget over its burst"
        );
        self.resender.check_invariants();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(seq: u32) -> Vec<u8> {
        // Long enough to carry the fragment flags; the rest is payload.
        let mut p = vec![0u8; 1200];
        p[..4].copy_from_slice(&seq.to_be_bytes());
        p
    }

    #[test]
    fn the_resend_burst_follows_the_rate() {
        let mut r = SenderRepair::new(RepairConfig::for_bitrate(8_000_000));
        let t0 = Instant::now();
        for seq in 0..200u32 {
            r.on_sent(t0, seq, seq / 20, &packet(seq));
            r.resender
                .on_nack(t0, u64::from(seq), |_| true, &mut SenderStats::default());
        }
        // Tokens saved at a high rate are not spent at a low one: at 2 Mbit/s at most
        // 200 ms of it (50 KB, 41 packets of 1.2 KB) go back to back.
        let (mut sent, mut buf, mut stats) = (0, Vec::new(), SenderStats::default());
        while r.next_resend(t0, 2_000_000, &mut buf, &mut stats) {
            sent += 1;
        }
        assert_eq!(sent, 41);
        // At 8 Mbit/s the same moment allows four times as much (the 256 KB cap is
        // above 200 ms of 8 Mbit/s).
        let mut r8 = SenderRepair::new(RepairConfig::for_bitrate(8_000_000));
        for seq in 0..200u32 {
            r8.on_sent(t0, seq, seq / 20, &packet(seq));
            r8.resender
                .on_nack(t0, u64::from(seq), |_| true, &mut SenderStats::default());
        }
        let mut sent8 = 0;
        while r8.next_resend(t0, 8_000_000, &mut buf, &mut stats) {
            sent8 += 1;
        }
        assert_eq!(sent8, 166);
    }

    #[test]
    fn a_keyframe_queued_drops_the_resends_of_the_frames_before_it() {
        let mut r = SenderRepair::new(RepairConfig::for_bitrate(8_000_000));
        let t0 = Instant::now();
        let mut stats = SenderStats::default();
        // Frames 0-2, ten packets each; packets of frames 1 and 2 are NACKed.
        for seq in 0..30u32 {
            r.on_sent(t0, seq, seq / 10, &packet(seq));
        }
        for seq in [12u32, 13, 25] {
            r.resender.on_nack(t0, u64::from(seq), |_| true, &mut stats);
        }
        // Keyframe 2 is queued: frame 1's resends go, frame 2's stays.
        r.on_keyframe(t0, 2, &mut stats);
        assert_eq!(stats.nack_useless, 2);
        let mut buf = Vec::new();
        assert!(r.next_resend(t0, 8_000_000, &mut buf, &mut stats));
        assert_eq!(&buf[..4], &25u32.to_be_bytes());
        assert!(!r.next_resend(t0, 8_000_000, &mut buf, &mut stats));
    }

    /// A NACK for a packet sent before the controller braked is refused while the
    /// brake's queue may still hold it; one sent after it, or NACKed once that queue has
    /// drained, is resent.
    #[test]
    fn a_packet_sent_before_a_brake_is_not_resent_while_its_queue_drains() {
        let mut r = SenderRepair::new(RepairConfig::for_bitrate(8_000_000));
        let t0 = Instant::now();
        let brake = t0 + Duration::from_millis(40);
        let mut stats = SenderStats::default();
        // Packets 0-9 before the brake, 10-19 after it.
        for seq in 0..20u32 {
            let at = t0 + Duration::from_millis(u64::from(seq) * 4);
            r.on_sent(at, seq, seq / 10, &packet(seq));
        }
        let nack_bytes = crate::wire::write_nacks(0, None, &[5, 6, 15]).remove(0);
        let Ok(crate::wire::Packet::Nack(nack)) = crate::wire::parse(&nack_bytes) else {
            panic!("a NACK")
        };
        let now = brake + Duration::from_millis(60);
        r.on_nack(now, &nack, Some(brake), &mut stats);
        assert_eq!(stats.nack_useless, 2, "{stats:?}");
        let mut buf = Vec::new();
        assert!(r.next_resend(now, 2_000_000, &mut buf, &mut stats));
        assert_eq!(&buf[..4], &15u32.to_be_bytes());
        assert!(!r.next_resend(now, 2_000_000, &mut buf, &mut stats));
        // The queue drained (no brake draining any more): packet 5 goes.
        r.on_nack(now, &nack, None, &mut stats);
        assert!(r.next_resend(now, 2_000_000, &mut buf, &mut stats));
        assert_eq!(&buf[..4], &5u32.to_be_bytes());
    }
}
