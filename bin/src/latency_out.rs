//! `--latency-out`: one line per picture shown, so a run's latency can be read frame by
//! frame (the once-a-second records give only each second's p50, p95 and max, and a
//! percentile of those is not the run's). CSV with a header:
//! `frame,shown_s,latency_ms`: the sender's frame number, seconds since the viewer
//! started when the picture was shown, and its stamp-to-picture latency.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};

/// The open log.
pub struct LatencyOut {
    out: std::io::BufWriter<std::fs::File>,
    path: String,
    started: Instant,
}

impl LatencyOut {
    /// Creates (or truncates) `path` and writes the header.
    pub fn open(path: &str, started: Instant) -> Result<Self> {
        let file = std::fs::File::create(Path::new(path))
            .with_context(|| format!("cannot create --latency-out file {path}"))?;
        let mut log = Self {
            out: std::io::BufWriter::new(file),
            path: path.to_owned(),
            started,
        };
        log.write_line(format_args!("frame,shown_s,latency_ms"))?;
        Ok(log)
    }

    /// One picture shown at `now`.
    pub fn shown(&mut self, frame: u32, now: Instant, latency_ms: f64) -> Result<()> {
        let at = now.saturating_duration_since(self.started).as_secs_f64();
        self.write_line(format_args!("{frame},{at:.4},{latency_ms:.3}"))
    }

    /// Writes what is buffered (once a second, and at the end).
    pub fn flush(&mut self) -> Result<()> {
        self.out
            .flush()
            .with_context(|| format!("cannot write --latency-out file {}", self.path))
    }

    fn write_line(&mut self, line: std::fmt::Arguments<'_>) -> Result<()> {
        writeln!(self.out, "{line}")
            .with_context(|| format!("cannot write --latency-out file {}", self.path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn writes_a_header_and_one_line_per_picture() {
        let dir = std::env::temp_dir().join(format!("picam-latency-out-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("lat.csv");
        let t0 = Instant::now();
        let mut log = LatencyOut::open(path.to_str().unwrap(), t0).unwrap();
        log.shown(7, t0 + Duration::from_millis(1500), 12.3456)
            .unwrap();
        log.shown(8, t0 + Duration::from_millis(1533), 9.0).unwrap();
        log.flush().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            text,
            "frame,shown_s,latency_ms\n7,1.5000,12.346\n8,1.5330,9.000\n"
        );
    }

    #[test]
    fn a_path_that_cannot_be_created_is_named_in_the_error() {
        let err = LatencyOut::open("/nonexistent-dir/lat.csv", Instant::now())
            .err()
            .unwrap();
        assert!(
            format!("{err:#}").contains("/nonexistent-dir/lat.csv"),
            "{err:#}"
        );
    }
}
