//! What the receiver tells the sender: feedback packets (keyframe requests, nacks,
//! pings) and the periodic report that drives congestion control, loss and parity.

use std::time::Instant;

use super::config::{MAX_CONTROL, MAX_REPAIR_SHARE, REPAIRABLE_LOSS};
use super::Sender;
use crate::wire::{self, Packet, Report};
use crate::{seq, SenderEvent};

impl Sender {
    /// Takes one authentic (or, with `--insecure`, any) packet of feedback.
    pub(super) fn on_feedback(&mut self, now: Instant, packet: &[u8]) {
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
                    Some(repair) => repair.on_nack(now, &nack, &mut self.stats),
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
                self.on_report(now, &report);
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

    pub(super) fn on_report(&mut self, now: Instant, report: &Report<'_>) {
        if let Some(r) = self.repair.as_mut() {
            r.on_report(self.config.clock.us(now), report, &self.log);
        }
        let sample = report.sequence.and_then(|c| self.loss.update(c));
        if let Some(sample) = sample {
            self.stats.loss_permille = (sample.loss * 1000.0).round() as u32;
            if let Some(repair) = self.repair.as_mut() {
                repair.on_loss(sample);
            }
        }
        let Some(cc) = self.congestion.as_mut() else {
            return;
        };
        // Reports are authenticated, but a receiver's clock can still step (NTP) and
        // bugs are not only attackers: a report whose clock ran backwards by more than
        // a second, or that claims time zero, gives no delay samples.
        let backwards = self
            .last_report_us
            .is_some_and(|last| report.report_us.saturating_add(1_000_000) < last);
        if report.report_us == 0 || backwards {
            self.stats.reports_implausible += 1;
            self.last_report_us = Some(report.report_us);
            return;
        }
        self.last_report_us = Some(report.report_us);
        for arrival in report.arrivals() {
            // A frame still being paced out is not in the log yet: its early packets
            // give no sample.
            if let Some(sent) = self.log.get(arrival.frame) {
                let through = sent.packets_through_index(arrival.index);
                // Credit the packets since the previous sample, at this frame's average
                // packet size.
                let packets = through.saturating_sub(self.acked_through.unwrap_or(through));
                let bytes = packets as usize * sent.bytes / sent.count.max(1) as usize;
                cc.on_packet_acked(now, sent.packet_us(arrival.index), arrival.at_us, bytes);
                self.acked_through = Some(through);
            }
        }
        // Loss that repair makes good is not congestion (random loss on Wi-Fi is not a
        // full queue); rising delay still is, and so is loss beyond what repair can
        // carry.
        let loss = sample.map_or(0.0, |s| s.loss);
        let loss = if self.repair.is_some() && loss <= REPAIRABLE_LOSS {
            0.0
        } else {
            loss
        };
        cc.on_report(now, loss);
        let (bitrate, fps) = (cc.target_bitrate(), cc.target_fps());
        // The encoder gets what is left of the target after the repair traffic the
        // current loss calls for.
        let overhead = self
            .repair
            .as_ref()
            .map_or(0.0, |r| (2.0 * r.loss()).min(MAX_REPAIR_SHARE));
        let bitrate = (bitrate as f64 * (1.0 - overhead)) as u32;
        let (said_bitrate, said_fps) = self.announced;
        // Encoders reconfigure per change; small steps are not worth one.
        if bitrate.abs_diff(said_bitrate) as f64 > 0.03 * said_bitrate as f64 {
            self.events.push_back(SenderEvent::SetBitrate(bitrate));
            self.announced.0 = bitrate;
        }
        if fps != said_fps {
            self.events.push_back(SenderEvent::SetFps(fps));
            self.announced.1 = fps;
        }
    }
}
