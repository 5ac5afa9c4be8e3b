//! The once-a-second stats lines, as text or JSON (one object a line).

use std::collections::BTreeMap;
use std::io::Write;

use serde::Serialize;

use crate::cli::StatsFormat;
use crate::latency::Summary;

/// One receiver stats record. Counters are totals since start; rates and latency cover
/// the last interval (the final record's latency covers the whole run).
#[derive(Debug, Serialize)]
pub struct RecvRecord {
    /// Seconds since start.
    pub t: f64,
    /// Frames reassembled by the transport.
    pub frames_received: u64,
    /// Frames the decoder turned into pictures.
    pub frames_decoded: u64,
    /// Pictures handed to the display.
    pub frames_shown: u64,
    /// Frames dropped, by reason.
    pub frames_dropped: BTreeMap<&'static str, u64>,
    /// Pictures shown but not written by `--frames-out` (another size on stdout,
    /// which cannot be split into files).
    pub frames_out_skipped: u64,
    /// Packets dropped, by reason.
    pub packets_dropped: BTreeMap<&'static str, u64>,
    /// Keyframe requests sent to the sender.
    pub keyframe_requests: u64,
    /// Received bitrate over the interval, bits/s.
    pub bitrate_bps: u64,
    /// Frames received per second over the interval.
    pub fps_in: f64,
    /// Pictures shown per second over the interval.
    pub fps_out: f64,
    /// Stamp-to-picture latency, or null when frames carry no stamp.
    pub latency_ms: Option<Summary>,
    /// From a picture leaving the decoder to the window's present returning, or null
    /// when headless (or nothing was presented).
    pub present_ms: Option<Summary>,
    /// Process CPU time per decoded frame, ms.
    pub cpu_ms_per_frame: Option<f64>,
    /// Sender restarts seen plus one.
    pub sessions: u64,
    /// The sender's clock minus ours, ms, measured over the feedback path (null until
    /// measured); latency is corrected by it.
    pub clock_offset_ms: Option<f64>,
    /// Smallest recent round trip to the sender, ms.
    pub rtt_ms: Option<f64>,
    /// What loss repair did (null when it is off: `--no-repair`, or TCP).
    pub repair: Option<RecvRepairRecord>,
    /// The encrypted channel (null with `--insecure`).
    pub secure: Option<SecureRecord>,
    /// The recording (null without `--record`).
    pub record: Option<RecordingRecord>,
    /// True on the summary printed at exit.
    pub last: bool,
}

/// The recording's figures (`--record`), totals since start.
#[derive(Debug, Serialize, Clone, PartialEq)]
pub struct RecordingRecord {
    /// The file being written, or null between files (after a write error, until
    /// recording resumes; before the first keyframe).
    pub file: Option<String>,
    /// Files started.
    pub files: u32,
    /// Bytes of video written.
    pub bytes: u64,
    /// Frames written.
    pub frames: u64,
    /// Frames not written: waiting for a keyframe, a full queue (a slow disk), a write
    /// error.
    pub dropped: u64,
    /// What stops the recording now (file and cause), or null.
    pub error: Option<String>,
}

impl RecordingRecord {
    /// From the record stage's figures.
    pub fn from_stats(s: &record::RecordStats) -> Self {
        Self {
            file: s.file.as_ref().map(|p| p.display().to_string()),
            files: s.files,
            bytes: s.bytes,
            frames: s.frames,
            dropped: s.dropped,
            error: s.error.clone(),
        }
    }

    /// The stats line's and the overlay's words for it.
    pub fn text(&self) -> String {
        let dropped = if self.dropped > 0 {
            format!(", {} dropped", self.dropped)
        } else {
            String::new()
        };
        let written = format!(
            "{} frames, {:.1} MB{dropped}",
            self.frames,
            self.bytes as f64 / 1e6
        );
        match (&self.error, &self.file) {
            (Some(e), _) => format!("rec FAILING ({e}); {written}"),
            (None, Some(f)) => format!("rec {f}: {written}"),
            (None, None) => format!("rec waiting for a keyframe; {written}"),
        }
    }
}

fn record_text(r: &Option<RecordingRecord>) -> String {
    r.as_ref()
        .map_or(String::new(), |r| format!(" | {}", r.text()))
}

/// The encrypted channel's counters, totals since start.
#[derive(Debug, Serialize, Clone, Copy, PartialEq)]
pub struct SecureRecord {
    /// Handshakes completed (1, plus one per restart of either side).
    pub handshakes: u64,
    /// Packets that did not authenticate (forged, modified, another key), dropped
    /// before any parser.
    pub unauthenticated: u64,
    /// Authentic packets seen before (replays), dropped.
    pub replayed: u64,
    /// Unencrypted packets refused (the peer runs with `--insecure`).
    pub plaintext_refused: u64,
}

impl SecureRecord {
    /// From the transport's counters.
    pub fn from_stats(s: &transport::secure::SecureStats) -> Self {
        Self {
            handshakes: s.handshakes,
            unauthenticated: s.unauthenticated,
            replayed: s.replayed,
            plaintext_refused: s.plaintext,
        }
    }
}

/// Loss repair at the receiver, totals since start.
#[derive(Debug, Serialize, Clone, Copy, PartialEq)]
pub struct RecvRepairRecord {
    /// Nack packets sent.
    pub nacks_sent: u64,
    /// Packets asked for in them (repeats included).
    pub packets_requested: u64,
    /// Lost packets that a retransmission replaced.
    pub packets_retransmitted: u64,
    /// Lost packets rebuilt from parity.
    pub packets_repaired_by_parity: u64,
    /// Frames made whole by repair.
    pub frames_repaired: u64,
    /// Packets lost and never repaired.
    pub packets_lost: u64,
    /// Frames the transport could not deliver (incomplete, evicted or never seen), as a
    /// percentage of the frames it knows of.
    pub residual_frame_loss_percent: f64,
    /// Repair traffic (parity and retransmissions) as a percentage of all bytes received.
    pub overhead_percent: f64,
}

/// Loss repair at the sender, totals since start.
#[derive(Debug, Serialize, Clone, Copy, PartialEq)]
pub struct SendRepairRecord {
    /// Nack packets received.
    pub nacks_received: u64,
    /// Packets asked for in them.
    pub packets_requested: u64,
    /// Packets sent again.
    pub packets_retransmitted: u64,
    /// Asked-for packets not sent again: unknown or expired, of no more use, or over the
    /// retransmission budget.
    pub requests_refused: u64,
    /// Parity packets sent.
    pub parity_packets: u64,
    /// Repair traffic (parity and retransmissions) as a percentage of all bytes sent.
    pub overhead_percent: f64,
}

/// One sender stats record.
#[derive(Debug, Serialize)]
pub struct SendRecord {
    /// Seconds since start.
    pub t: f64,
    /// Frames from the source.
    pub frames_captured: u64,
    /// Frames fully handed to the socket.
    pub frames_sent: u64,
    /// Frames dropped, by reason.
    pub frames_dropped: BTreeMap<&'static str, u64>,
    /// Keyframe requests received.
    pub keyframe_requests: u64,
    /// Keyframes forced.
    pub keyframes_forced: u64,
    /// Sent bitrate over the interval, bits/s.
    pub bitrate_bps: u64,
    /// Frames sent per second over the interval.
    pub fps: f64,
    /// Process CPU time per captured frame, ms.
    pub cpu_ms_per_frame: Option<f64>,
    /// Congestion control's bitrate target, bits/s (null without the jam guard).
    pub target_bitrate_bps: Option<u32>,
    /// Congestion control's frame-rate target (null without the jam guard).
    pub target_fps: Option<u32>,
    /// Estimated queueing delay on the path, ms (null without the jam guard).
    pub queue_delay_ms: Option<f64>,
    /// Packet loss on the link (before repair) over the last report interval, per
    /// mille.
    pub loss_permille: u32,
    /// What loss repair did (null when it is off: `--no-repair`, or TCP).
    pub repair: Option<SendRepairRecord>,
    /// The encrypted channel (null with `--insecure`).
    pub secure: Option<SecureRecord>,
    /// The recording (null without `--record`).
    pub record: Option<RecordingRecord>,
    /// True on the summary printed at exit.
    pub last: bool,
}

pub(crate) fn latency_text(l: &Option<Summary>) -> String {
    match l {
        Some(s) => format!(
            "latency p50 {:.1} p95 {:.1} max {:.1} ms",
            s.p50, s.p95, s.max
        ),
        None => "latency n/a (no stamp)".into(),
    }
}

pub(crate) fn drops_text(d: &BTreeMap<&'static str, u64>) -> String {
    let parts: Vec<String> = d
        .iter()
        .filter(|(_, &n)| n > 0)
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    if parts.is_empty() {
        "dropped 0".into()
    } else {
        format!("dropped {}", parts.join(", "))
    }
}

fn present_text(p: &Option<Summary>) -> String {
    p.map_or(String::new(), |p| {
        format!(" | present p50 {:.1} p95 {:.1} ms", p.p50, p.p95)
    })
}

fn frames_out_text(skipped: u64) -> String {
    if skipped == 0 {
        String::new()
    } else {
        format!(" | frames-out skipped {skipped} (new size)")
    }
}

pub(crate) fn recv_repair_text(r: &Option<RecvRepairRecord>) -> String {
    r.map_or(String::new(), |r| {
        format!(
            "repair: {} frames, {} resent, {} by parity, {} nacks, {} lost, residual {:.1} %, overhead {:.1} %",
            r.frames_repaired,
            r.packets_retransmitted,
            r.packets_repaired_by_parity,
            r.nacks_sent,
            r.packets_lost,
            r.residual_frame_loss_percent,
            r.overhead_percent
        )
    })
}

fn send_repair_text(r: &Option<SendRepairRecord>) -> String {
    r.map_or(String::new(), |r| {
        format!(
            " | repair: {} resent of {} asked ({} refused), {} parity, overhead {:.1} %",
            r.packets_retransmitted,
            r.packets_requested,
            r.requests_refused,
            r.parity_packets,
            r.overhead_percent
        )
    })
}

fn secure_text(r: &Option<SecureRecord>) -> String {
    match r {
        None => " | NOT ENCRYPTED".into(),
        Some(r) if r.unauthenticated + r.replayed + r.plaintext_refused > 0 => format!(
            " | encrypted, refused {} forged, {} replayed, {} plaintext",
            r.unauthenticated, r.replayed, r.plaintext_refused
        ),
        Some(_) => " | encrypted".into(),
    }
}

fn cpu_text(c: Option<f64>) -> String {
    c.map_or(String::new(), |c| format!(" | cpu {c:.2} ms/frame"))
}

/// Prints records where they belong: stdout, or stderr when stdout carries video.
pub struct Reporter {
    format: StatsFormat,
    to_stderr: bool,
}

/// One record of the browser viewers (`send --web`), a second apart. Counters are
/// totals since start.
#[derive(Debug, Serialize)]
pub struct WebRecord {
    /// Always "web": tells these records from the native sender's in one stream.
    pub kind: &'static str,
    /// Seconds since start.
    pub t: f64,
    /// Browsers watching now.
    pub viewers: usize,
    /// Browsers admitted since start.
    pub joined: u64,
    /// Offers turned away because every slot was taken.
    pub refused_full: u64,
    /// Frames handed to browsers over the interval, per second, summed over viewers.
    pub frames_per_second: f64,
    /// Frames a viewer skipped because its own link ran behind (totals).
    pub frames_skipped_lagging: u64,
    /// Frames a viewer skipped waiting for a keyframe (totals).
    pub frames_skipped_for_keyframe: u64,
    /// Keyframes the browsers asked the encoder for.
    pub keyframe_requests: u64,
    /// Requests refused for a missing or wrong token.
    pub unauthorized: u64,
    /// Requests refused for going over the request budgets.
    pub rate_limited: u64,
    /// True on the summary at exit.
    pub last: bool,
}

impl Reporter {
    /// A reporter in `format`; `to_stderr` when stdout is taken by `--frames-out -`.
    pub fn new(format: StatsFormat, to_stderr: bool) -> Self {
        Self { format, to_stderr }
    }

    fn emit(&self, line: String) {
        // A closed stdout (piped into `head`) must not kill the process: ignore errors.
        if self.to_stderr {
            let _ = writeln!(std::io::stderr(), "{line}");
        } else {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
    }

    /// Prints a receiver record.
    pub fn recv(&self, r: &RecvRecord) {
        let line = match self.format {
            StatsFormat::Json => serde_json::to_string(r).unwrap_or_default(),
            StatsFormat::Text => format!(
                "recv{} {:6.1}s | in {:5.1} fps out {:5.1} fps | {:6.2} Mbit/s | {}{} | {}{} | kf req {}{}{}{}{}",
                if r.last { " total" } else { "" },
                r.t,
                r.fps_in,
                r.fps_out,
                r.bitrate_bps as f64 / 1e6,
                latency_text(&r.latency_ms),
                present_text(&r.present_ms),
                drops_text(&r.frames_dropped),
                frames_out_text(r.frames_out_skipped),
                r.keyframe_requests,
                match recv_repair_text(&r.repair) {
                    t if t.is_empty() => t,
                    t => format!(" | {t}"),
                },
                secure_text(&r.secure),
                record_text(&r.record),
                cpu_text(r.cpu_ms_per_frame),
            ),
        };
        self.emit(line);
    }

    /// Prints a browser-viewer record.
    pub fn web(&self, r: &WebRecord) {
        let line = match self.format {
            StatsFormat::Json => serde_json::to_string(r).unwrap_or_default(),
            StatsFormat::Text => format!(
                "web{} {:6.1}s | viewers {} (joined {}, turned away {}) | {:5.1} frames/s to browsers | skipped {} lagging, {} awaiting keyframe | kf req {} | refused {} token, {} rate",
                if r.last { " total" } else { "" },
                r.t,
                r.viewers,
                r.joined,
                r.refused_full,
                r.frames_per_second,
                r.frames_skipped_lagging,
                r.frames_skipped_for_keyframe,
                r.keyframe_requests,
                r.unauthorized,
                r.rate_limited,
            ),
        };
        self.emit(line);
    }

    /// Prints a sender record.
    pub fn send(&self, r: &SendRecord) {
        let line = match self.format {
            StatsFormat::Json => serde_json::to_string(r).unwrap_or_default(),
            StatsFormat::Text => format!(
                "send{} {:6.1}s | {:5.1} fps | {:6.2} Mbit/s{} | sent {} | {} | kf forced {} (requests {}){}{}{}{}",
                if r.last { " total" } else { "" },
                r.t,
                r.fps,
                r.bitrate_bps as f64 / 1e6,
                match (r.target_bitrate_bps, r.target_fps, r.queue_delay_ms) {
                    (Some(b), Some(f), Some(q)) => format!(
                        " (target {:.2} Mbit/s {f} fps, queue {q:.0} ms, loss {:.1} %)",
                        b as f64 / 1e6,
                        r.loss_permille as f64 / 10.0
                    ),
                    _ => String::new(),
                },
                r.frames_sent,
                drops_text(&r.frames_dropped),
                r.keyframes_forced,
                r.keyframe_requests,
                send_repair_text(&r.repair),
                secure_text(&r.secure),
                record_text(&r.record),
                cpu_text(r.cpu_ms_per_frame),
            ),
        };
        self.emit(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recording_is_told_by_its_state() {
        let mut r = RecordingRecord {
            file: Some("door.mkv".into()),
            files: 1,
            bytes: 12_345_678,
            frames: 360,
            dropped: 0,
            error: None,
        };
        assert_eq!(r.text(), "rec door.mkv: 360 frames, 12.3 MB");
        r.dropped = 4;
        assert_eq!(r.text(), "rec door.mkv: 360 frames, 12.3 MB, 4 dropped");
        r.file = None;
        assert_eq!(
            r.text(),
            "rec waiting for a keyframe; 360 frames, 12.3 MB, 4 dropped"
        );
        r.error = Some("writing door.mkv: No space left on device".into());
        assert_eq!(
            r.text(),
            "rec FAILING (writing door.mkv: No space left on device); 360 frames, 12.3 MB, 4 dropped"
        );
        assert_eq!(record_text(&None), "");
        let json = serde_json::to_value(&r).unwrap();
        for key in ["file", "files", "bytes", "frames", "dropped", "error"] {
            assert!(json.get(key).is_some(), "{key} missing from {json}");
        }
    }
}
