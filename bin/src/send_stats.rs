//! The sender's stats records, made from successive counter snapshots.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use transport::SenderStats;

use crate::cpu;
use crate::report::{SecureRecord, SendRecord, SendRepairRecord};

/// The sender's counters read at one instant.
#[derive(Clone, Copy, Debug)]
pub struct SendSnapshot {
    /// When they were read.
    pub at: Instant,
    /// The transport's counters.
    pub transport: SenderStats,
    /// Frames the capture thread dropped because the queue to the transport was full.
    pub capture_queue_full: u64,
    /// Process CPU time so far.
    pub cpu: Duration,
}

impl SendSnapshot {
    /// Reads the counters now.
    pub fn take(transport: SenderStats, capture_queue_full: u64) -> Self {
        Self {
            at: Instant::now(),
            transport,
            capture_queue_full,
            cpu: cpu::process_cpu_time(),
        }
    }
}

/// The previous snapshot: rates are counted from it to the next one.
#[derive(Clone, Copy, Debug)]
pub struct SendWindow {
    start: Instant,
    cpu_start: Duration,
    previous: SendSnapshot,
    /// Loss repair is on (its figures are reported).
    repair: bool,
    /// Encryption is on (its counters are reported).
    secure: bool,
}

impl SendWindow {
    /// A window opening at `first` (the start of the run); `repair` when loss repair
    /// is on.
    pub fn new(first: SendSnapshot, repair: bool, secure: bool) -> Self {
        Self {
            start: first.at,
            cpu_start: first.cpu,
            previous: first,
            repair,
            secure,
        }
    }

    /// The record of the interval since the previous snapshot; `now` becomes it.
    pub fn interval(&mut self, now: SendSnapshot) -> SendRecord {
        let dt = now
            .at
            .duration_since(self.previous.at)
            .as_secs_f64()
            .max(1e-3);
        let (s, p) = (now.transport, self.previous.transport);
        let mut record = self.totals(&now, false);
        record.bitrate_bps = (s.bytes.saturating_sub(p.bytes) as f64 * 8.0 / dt) as u64;
        record.fps = s.frames_sent.saturating_sub(p.frames_sent) as f64 / dt;
        self.previous = now;
        record
    }

    /// The summary at exit: totals, without rates.
    pub fn last(&self, now: SendSnapshot) -> SendRecord {
        self.totals(&now, true)
    }

    fn totals(&self, now: &SendSnapshot, last: bool) -> SendRecord {
        let s = now.transport;
        let frames = s.frames_in + now.capture_queue_full;
        let cpu = now.cpu.saturating_sub(self.cpu_start).as_secs_f64() * 1e3;
        SendRecord {
            t: now.at.duration_since(self.start).as_secs_f64(),
            frames_captured: frames,
            frames_sent: s.frames_sent,
            frames_dropped: BTreeMap::from([
                ("capture_queue_full", now.capture_queue_full),
                ("late", s.frames_late),
                ("too_large", s.frames_too_large),
                (
                    "stale",
                    s.frames_dropped
                        .saturating_sub(s.frames_late)
                        .saturating_sub(s.frames_too_large),
                ),
            ]),
            keyframe_requests: s.keyframe_requests,
            keyframes_forced: s.keyframes_forced,
            bitrate_bps: 0,
            fps: 0.0,
            cpu_ms_per_frame: (frames > 0).then(|| cpu / frames as f64),
            target_bitrate_bps: (s.target_bitrate > 0).then_some(s.target_bitrate),
            target_fps: (s.target_fps > 0).then_some(s.target_fps),
            queue_delay_ms: (s.target_bitrate > 0).then(|| s.queue_delay_us as f64 / 1e3),
            loss_permille: s.loss_permille,
            repair: self.repair.then(|| SendRepairRecord {
                nacks_received: s.nacks_received,
                packets_requested: s.nack_requests,
                packets_retransmitted: s.packets_retransmitted,
                requests_refused: s.nack_unknown + s.nack_useless + s.nack_over_budget,
                parity_packets: s.parity_packets,
                overhead_percent: crate::recv_stats::percent(
                    s.parity_bytes + s.retransmit_bytes,
                    s.bytes,
                ),
            }),
            secure: self.secure.then(|| SecureRecord::from_stats(&s.secure)),
            record: None,
            last,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_cover_the_interval_and_the_summary_has_none() {
        let t0 = Instant::now();
        let at = |secs: u64, bytes: u64, sent: u64| SendSnapshot {
            at: t0 + Duration::from_secs(secs),
            transport: SenderStats {
                bytes,
                frames_sent: sent,
                frames_in: sent,
                ..Default::default()
            },
            capture_queue_full: 1,
            cpu: Duration::ZERO,
        };
        let mut window = SendWindow::new(at(0, 0, 0), true, true);
        let r = window.interval(at(1, 1000, 30));
        assert_eq!((r.bitrate_bps, r.fps, r.last), (8000, 30.0, false));
        let r = window.interval(at(3, 2000, 40));
        assert_eq!((r.bitrate_bps, r.fps, r.frames_captured), (4000, 5.0, 41));
        let r = window.last(at(4, 3000, 50));
        assert_eq!((r.bitrate_bps, r.fps, r.t, r.last), (0, 0.0, 4.0, true));
        assert_eq!(r.frames_dropped["capture_queue_full"], 1);
    }
}
