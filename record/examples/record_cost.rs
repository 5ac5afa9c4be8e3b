//! What recording costs per frame, beside what encoding it costs: encodes the test
//! pattern at 1280x720 (libx264, as `picam send` does), then records the same frames
//! to each container, and prints the process CPU time per frame of each.
//!
//! `cargo run -p record --release --example record_cost [FRAMES]`

use std::time::{Duration, Instant};

use capture::{EncoderSettings, Source, TestPatternSource};
use record::{RecordConfig, Recorder};

/// User + system CPU time of this process (all threads), from /proc/self/stat.
fn cpu() -> Duration {
    cpu_of("/proc/self/stat")
}

/// CPU time of the thread named "record" (the writer), if it runs.
fn writer_cpu() -> Option<Duration> {
    for t in std::fs::read_dir("/proc/self/task").ok()? {
        let t = t.ok()?.path();
        if std::fs::read_to_string(t.join("comm")).is_ok_and(|c| c.trim() == "record") {
            // schedstat's first field: time on a CPU in ns (stat counts 10 ms ticks,
            // too coarse for a thread that works a few µs per frame).
            let ns = std::fs::read_to_string(t.join("schedstat")).ok()?;
            let ns: u64 = ns.split_whitespace().next()?.parse().ok()?;
            return Some(Duration::from_nanos(ns));
        }
    }
    None
}

fn cpu_of(file: &str) -> Duration {
    let stat = std::fs::read_to_string(file).unwrap_or_default();
    let after: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    // After the `)`: field 3 (the state) is token 0, so utime (14) and stime (15) are
    // tokens 11 and 12; in clock ticks of 10 ms.
    let field = |i: usize| {
        after
            .get(i)
            .and_then(|x| x.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let ticks = field(11) + field(12);
    Duration::from_millis(ticks * 10)
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(300);
    let mut source = TestPatternSource::new(EncoderSettings {
        width: 1280,
        height: 720,
        fps: 30,
        bitrate: 4_000_000,
        intra: 60,
    })
    .expect("libx264")
    .unpaced();
    let c0 = cpu();
    let t0 = Instant::now();
    let frames: Vec<_> = (0..n)
        .map(|i| {
            let mut f = source.next_frame().expect("encodes").expect("a frame");
            f.capture_us = 1_796_518_923_000_000 + i as u64 * 33_333;
            f
        })
        .collect();
    let encode = cpu() - c0;
    println!(
        "encode (pattern + x264, 1280x720): {:.0} µs CPU per frame ({:.1} s wall)",
        encode.as_micros() as f64 / n as f64,
        t0.elapsed().as_secs_f64()
    );
    let dir = std::env::temp_dir().join(format!("picam-record-cost-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    for ext in ["mkv", "ts", "mp4"] {
        let path = dir.join(format!("cost.{ext}"));
        let (rec, mut tap) = Recorder::start(
            RecordConfig {
                path: path.clone(),
                segment: None,
                keep: None,
                max_bytes: None,
            },
            Box::new(|| {}),
        )
        .expect("recording starts");
        // Batches of half a queue, then a sleeping wait: nothing is dropped, and the
        // producer's waiting costs nothing.
        for batch in frames.chunks(record::RECORD_QUEUE / 2) {
            let before = rec.stats();
            for f in batch {
                tap.offer(f);
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let s = rec.stats();
                if s.frames + s.dropped >= before.frames + before.dropped + batch.len() as u64
                    || Instant::now() > deadline
                {
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        let writer = writer_cpu().unwrap_or_default();
        let s = rec.finish();
        println!(
            "{ext}: {} frames, {} dropped, {} bytes; the writer thread: {:.0} µs CPU per frame ({:.1}% of encoding)",
            s.frames,
            s.dropped,
            s.bytes,
            writer.as_micros() as f64 / n as f64,
            100.0 * writer.as_secs_f64() / encode.as_secs_f64(),
        );
        let _ = path;
    }
    let _ = std::fs::remove_dir_all(&dir);
}
