//! The receiver's stats records, made from successive counter snapshots.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use transport::ReceiverStats;

use crate::cpu;
use crate::latency::Samples;
use crate::report::{RecvRecord, RecvRepairRecord, SecureRecord};

/// Counters kept outside the transport: the decode thread's, the picture slot's and
/// the sink's, as read at one instant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PictureCounts {
    /// Frames the decoder turned into pictures.
    pub decoded: u64,
    /// Frames the decoder refused.
    pub decode_errors: u64,
    /// Frames skipped after a decode error until the next keyframe.
    pub after_decode_error: u64,
    /// Pictures replaced in the slot before the sink took them.
    pub superseded: u64,
    /// Pictures shown.
    pub shown: u64,
    /// Pictures `--frames-out` could not write (a new size on stdout).
    pub frames_out_skipped: u64,
}

/// Every counter of the receiver read at one instant.
#[derive(Clone, Copy, Debug)]
pub struct RecvSnapshot {
    /// When they were read.
    pub at: Instant,
    /// The transport's counters.
    pub transport: ReceiverStats,
    /// The decoder's and the sink's.
    pub pictures: PictureCounts,
    /// Process CPU time so far.
    pub cpu: Duration,
}

impl RecvSnapshot {
    /// Reads the process CPU time now, with the counters given.
    pub fn take(transport: ReceiverStats, pictures: PictureCounts) -> Self {
        Self {
            at: Instant::now(),
            transport,
            pictures,
            cpu: cpu::process_cpu_time(),
        }
    }
}

/// The previous snapshot: interval rates are counted from it to the next one.
#[derive(Clone, Copy, Debug)]
pub struct RecvWindow {
    first: RecvSnapshot,
    previous: RecvSnapshot,
    /// Loss repair is on (its figures are reported).
    repair: bool,
    /// Encryption is on (its counters are reported).
    secure: bool,
}

impl RecvWindow {
    /// A window opening at `first` (the start of the run); `repair` when loss repair
    /// is on.
    pub fn new(first: RecvSnapshot, repair: bool, secure: bool) -> Self {
        Self {
            first,
            previous: first,
            repair,
            secure,
        }
    }

    /// The record of the interval since the previous snapshot, with the interval's
    /// samples; `now` becomes the previous snapshot.
    pub fn interval(
        &mut self,
        now: RecvSnapshot,
        latency: &Samples,
        present: &Samples,
    ) -> RecvRecord {
        let record = self.record(&self.previous, &now, latency, present, false);
        self.previous = now;
        record
    }

    /// The summary at exit: rates over the whole run, with the whole run's samples.
    pub fn whole_run(&self, now: RecvSnapshot, latency: &Samples, present: &Samples) -> RecvRecord {
        self.record(&self.first, &now, latency, present, true)
    }

    fn record(
        &self,
        base: &RecvSnapshot,
        now: &RecvSnapshot,
        latency: &Samples,
        present: &Samples,
        last: bool,
    ) -> RecvRecord {
        let (s, b) = (now.transport, base.transport);
        let p = now.pictures;
        let d = s.dropped;
        let dt = now.at.duration_since(base.at).as_secs_f64().max(1e-3);
        let cpu = now.cpu.saturating_sub(self.first.cpu).as_secs_f64() * 1e3;
        RecvRecord {
            t: now.at.duration_since(self.first.at).as_secs_f64(),
            frames_received: s.frames_complete,
            frames_decoded: p.decoded,
            frames_shown: p.shown,
            frames_dropped: BTreeMap::from([
                ("incomplete", d.incomplete),
                ("evicted", d.evicted),
                ("lost", d.lost),
                ("undecodable", d.undecodable),
                ("decode_queue_full", d.queue_full),
                ("decode_error", p.decode_errors),
                ("after_decode_error", p.after_decode_error),
                ("superseded", p.superseded),
            ]),
            frames_out_skipped: p.frames_out_skipped,
            packets_dropped: BTreeMap::from([
                ("malformed", d.malformed),
                ("wrong_version", d.wrong_version),
                ("other_sender", d.other_sender),
                ("duplicate", d.duplicate),
                ("stale", d.stale),
            ]),
            keyframe_requests: s.keyframe_requests,
            bitrate_bps: (s.bytes.saturating_sub(b.bytes) as f64 * 8.0 / dt) as u64,
            fps_in: s.frames_complete.saturating_sub(b.frames_complete) as f64 / dt,
            fps_out: p.shown.saturating_sub(base.pictures.shown) as f64 / dt,
            latency_ms: latency.summary(),
            present_ms: present.summary(),
            cpu_ms_per_frame: (p.decoded > 0).then(|| cpu / p.decoded as f64),
            sessions: s.sessions,
            clock_offset_ms: s.clock_offset_us.map(|us| us as f64 / 1e3),
            rtt_ms: s.rtt_us.map(|us| us as f64 / 1e3),
            repair: self.repair.then(|| repair_record(&s)),
            secure: self.secure.then(|| SecureRecord::from_stats(&s.secure)),
            record: None,
            last,
        }
    }
}

/// The receiver's repair figures from its counters.
fn repair_record(s: &ReceiverStats) -> RecvRepairRecord {
    let r = s.repair;
    let d = s.dropped;
    let undelivered = d.incomplete + d.evicted + d.lost;
    let known = s.frames_complete + undelivered;
    let repair_bytes = r.parity_bytes + r.retransmit_bytes;
    RecvRepairRecord {
        nacks_sent: r.nacks_sent,
        packets_requested: r.packets_requested,
        packets_retransmitted: r.packets_retransmitted,
        packets_repaired_by_parity: r.packets_rebuilt,
        frames_repaired: r.frames_repaired,
        packets_lost: r.packets_lost,
        residual_frame_loss_percent: percent(undelivered, known),
        overhead_percent: percent(repair_bytes, s.bytes),
    }
}

/// `part` of `whole` in percent, 0 when there is no whole.
pub(crate) fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_count_from_the_previous_snapshot_and_the_summary_from_the_start() {
        let t0 = Instant::now();
        let at = |secs: u64, frames: u64| RecvSnapshot {
            at: t0 + Duration::from_secs(secs),
            transport: ReceiverStats {
                frames_complete: frames,
                bytes: frames * 100,
                ..Default::default()
            },
            pictures: PictureCounts {
                shown: frames,
                decoded: frames,
                frames_out_skipped: 2,
                ..Default::default()
            },
            cpu: Duration::ZERO,
        };
        let none = Samples::new(1);
        let mut window = RecvWindow::new(at(0, 0), true, true);
        let r = window.interval(at(1, 30), &none, &none);
        assert_eq!((r.fps_in, r.fps_out, r.bitrate_bps), (30.0, 30.0, 24_000));
        let r = window.interval(at(3, 40), &none, &none);
        assert_eq!((r.fps_in, r.fps_out, r.t, r.last), (5.0, 5.0, 3.0, false));
        let r = window.whole_run(at(4, 60), &none, &none);
        assert_eq!((r.fps_in, r.frames_shown, r.last), (15.0, 60, true));
        assert_eq!(r.frames_out_skipped, 2);
    }
}
