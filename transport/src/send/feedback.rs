//! The receiver's periodic report, turned into the controller's [`Signal`]s: what the
//! sender remembers between reports (loss counts, the receiver's clock, how far
//! delivery is acknowledged, what the encoder was last told) and the controller itself.

use std::collections::VecDeque;
use std::time::Instant;

use super::config::REPAIRABLE_LOSS;
use super::log::SendLog;
use super::loss_meter::{LossMeter, LossSample};
use crate::congestion::{CongestionConfig, Controller, Signal};
use crate::wire::{Report, SequenceCounts};
use crate::{SenderEvent, SenderStats};

/// Report state of one sender.
#[derive(Debug)]
pub(super) struct ReportFeedback {
    /// `None`: the jam guard is off (no rate control).
    controller: Option<Controller>,
    loss: LossMeter,
    /// Packets sent through the newest packet the receiver reported.
    acked_through: Option<u64>,
    /// Receiver clock of the last report, µs.
    last_report_us: Option<u64>,
    /// The bitrate and frame rate the encoder and source were last told.
    announced: (u32, u32),
}

impl ReportFeedback {
    /// Report handling with a controller when `congestion` is given; the first events
    /// (the encoder starts where the controller starts, not at the ceiling) go to
    /// `events`.
    pub fn new(congestion: Option<CongestionConfig>, events: &mut VecDeque<SenderEvent>) -> Self {
        let controller = congestion.map(Controller::new);
        let mut announced = (0, 0);
        if let Some(cc) = &controller {
            announced = (cc.target_bitrate(), cc.target_fps());
            events.push_back(SenderEvent::SetBitrate(announced.0));
        }
        Self {
            controller,
            loss: LossMeter::default(),
            acked_through: None,
            last_report_us: None,
            announced,
        }
    }

    /// The controller, when the jam guard is on.
    pub fn controller(&self) -> Option<&Controller> {
        self.controller.as_ref()
    }

    /// The controller, to feed it signals directly in tests.
    #[cfg(test)]
    pub fn controller_mut(&mut self) -> Option<&mut Controller> {
        self.controller.as_mut()
    }

    /// A new receiver (or new keys): its loss counts start over.
    pub fn restart_loss(&mut self) {
        self.loss = LossMeter::default();
    }

    /// The loss since the last report that gave one (`None` while too few packets).
    pub fn loss_sample(&mut self, counts: SequenceCounts) -> Option<LossSample> {
        self.loss.update(counts)
    }

    /// Takes one report of this session, with the loss sample its counts gave; then
    /// [`Self::announce`] tells what changed.
    /// `repair_loss`: with loss repair on, the (smoothed) loss it is sized for.
    pub fn on_report(
        &mut self,
        now: Instant,
        report: &Report<'_>,
        sample: Option<LossSample>,
        log: &SendLog,
        repair_loss: Option<f64>,
        stats: &mut SenderStats,
    ) {
        if let Some(sample) = sample {
            stats.loss_permille = (sample.loss * 1000.0).round() as u32;
        }
        let Some(cc) = self.controller.as_mut() else {
            return;
        };
        // Reports are authenticated, but a receiver's clock can still step (NTP) and
        // bugs are not only attackers: a report whose clock ran backwards by more than
        // a second, or that claims time zero, gives no delay samples.
        let backwards = self
            .last_report_us
            .is_some_and(|last| report.report_us.saturating_add(1_000_000) < last);
        self.last_report_us = Some(report.report_us);
        if report.report_us == 0 || backwards {
            stats.reports_implausible += 1;
            return;
        }
        for arrival in report.arrivals() {
            // A frame still being paced out is not in the log yet: its early packets
            // give no sample.
            if let Some(sent) = log.get(arrival.frame) {
                let through = sent.packets_through_index(arrival.index);
                // Credit the packets since the previous sample, at this frame's average
                // packet size.
                let packets = through.saturating_sub(self.acked_through.unwrap_or(through));
                let bytes = packets as usize * sent.bytes / sent.count.max(1) as usize;
                cc.on_signal(
                    now,
                    Signal::Delivered {
                        sent_us: sent.packet_us(arrival.index),
                        arrival_us: arrival.at_us,
                        bytes,
                    },
                );
                self.acked_through = Some(through);
            }
        }
        // The receiver counts original packets before repair. Loss that repair mends
        // (while the loss it is sized for stays within what it can carry) is not
        // congestion: random loss on Wi-Fi is not a full queue. A tail-dropping
        // router queue shows in the delay long before it drops.
        let loss = sample.map_or(0.0, |s| s.loss);
        let loss = match repair_loss {
            Some(sized_for) if sized_for <= REPAIRABLE_LOSS => 0.0,
            _ => loss,
        };
        cc.on_signal(now, Signal::Report { loss });
    }

    /// A frame of `bytes` (parity included) was queued: the encoder's budget.
    pub fn on_frame_queued(
        &mut self,
        now: Instant,
        bytes: usize,
        events: &mut VecDeque<SenderEvent>,
    ) {
        if let Some(cc) = self.controller.as_mut() {
            cc.on_signal(now, Signal::FrameQueued { bytes });
            self.announce(events);
        }
    }

    /// Tells the encoder and the source what changed (after a report).
    pub fn announce(&mut self, events: &mut VecDeque<SenderEvent>) {
        let Some(cc) = &self.controller else {
            return;
        };
        let (bitrate, fps) = (cc.target_bitrate(), cc.target_fps());
        if bitrate != self.announced.0 {
            events.push_back(SenderEvent::SetBitrate(bitrate));
            self.announced.0 = bitrate;
        }
        if fps != self.announced.1 {
            events.push_back(SenderEvent::SetFps(fps));
            self.announced.1 = fps;
        }
    }

    /// Asserts the controller's rules.
    pub fn check_invariants(&self) {
        if let Some(cc) = &self.controller {
            cc.check_invariants();
        }
    }
}
