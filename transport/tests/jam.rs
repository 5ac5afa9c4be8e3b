//! The jam guard on simulated time: a bottleneck with a deep FIFO queue that is slower
//! than the stream, capacity steps, cross traffic. With the guard, queueing delay
//! settles under budget within seconds of each step and throughput comes back when the
//! capacity does; without it, delay climbs to the queue's limit.

mod common;

use std::time::{Duration, Instant};

use common::{LinkConfig, Pair, PairConfig, Rng, SourceConfig};
use transport::{JamGuardConfig, SenderConfig, SenderEvent};

const MBIT: u64 = 1_000_000;
const FPS: u32 = 30;
const CEILING: u32 = 10_000_000;
const TICK: Duration = Duration::from_millis(10);

fn bytes_per_sec(bits: u64) -> u64 {
    bits / 8
}

/// Frame sizes an encoder would produce at `bitrate`: keyframes 4x a P-frame, one
/// keyframe per 2 s.
fn size_source(source: &mut SourceConfig, bitrate: u32, fps: u32) {
    let per_frame = bitrate as usize / 8 / fps as usize;
    source.p_size = per_frame * 60 / 63; // leaves room for one keyframe per 60 frames
    source.key_size = source.p_size * 4;
    source.interval = Duration::from_secs(1) / fps;
}

struct Run {
    /// (time since start, latency of each emitted frame)
    latencies: Vec<(Duration, Duration)>,
    /// (time since start, bytes of each emitted frame)
    delivered: Vec<(Duration, usize)>,
    bitrate_targets: Vec<(Duration, u32)>,
    emitted_after_gap: usize,
}

/// 30 s: capacity 8 Mbit/s, 2 Mbit/s from 10 s, 8 Mbit/s again from 20 s; a FIFO of
/// 600 KB (2.4 s at 2 Mbit/s); 500 kbit/s of cross traffic from 5 s.
fn run(guard: bool, seed: u64) -> Run {
    let mut source = SourceConfig {
        gop: 60,
        size_spread: 0.2,
        ..SourceConfig::default()
    };
    size_source(&mut source, CEILING, FPS);
    let mut pair = Pair::new(
        PairConfig {
            sender: SenderConfig {
                jam_guard: guard.then(|| JamGuardConfig::for_stream(CEILING, FPS)),
                ..Default::default()
            },
            forward: LinkConfig {
                rate: Some(bytes_per_sec(8 * MBIT)),
                max_queue: 600_000,
                jitter: Duration::from_millis(2),
                ..LinkConfig::ideal(Duration::from_millis(5))
            },
            backward: LinkConfig::ideal(Duration::from_millis(5)),
            source,
            ..PairConfig::default()
        },
        seed,
    );
    let start = pair.now;
    let mut rng = Rng::new(seed ^ 0xC0FFEE);
    let mut seen_events = 0;
    let mut fps = FPS;
    let mut bitrate_targets = Vec::new();
    for tick in 0..3000u32 {
        let t = TICK * tick;
        let capacity = if (10..20).contains(&t.as_secs()) {
            2 * MBIT
        } else {
            8 * MBIT
        };
        pair.forward.config.rate = Some(bytes_per_sec(capacity));
        if t >= Duration::from_secs(5) && rng.chance(0.5) {
            // 1250-byte cross-traffic packets, on average 50 per second: 500 kbit/s.
            pair.forward.send(pair.now, vec![0xEE; 1250]);
        }
        pair.drive_for(TICK);
        for (_, event) in &pair.events[seen_events..] {
            match *event {
                SenderEvent::SetBitrate(b) => {
                    bitrate_targets.push((t, b));
                    let fps_now = fps;
                    size_source(&mut pair.source.config, b, fps_now);
                }
                SenderEvent::SetFps(f) => {
                    fps = f;
                    let b = bitrate_targets.last().map_or(CEILING, |x| x.1);
                    size_source(&mut pair.source.config, b, f);
                }
                _ => {}
            }
        }
        seen_events = pair.events.len();
    }
    let emitted_after_gap = pair.check_decodable();
    let sent_at = |number: u32| pair.sent[pair.index_of(number) as usize].at;
    let since = |at: Instant| at.saturating_duration_since(start);
    Run {
        latencies: pair
            .emitted
            .iter()
            .map(|(at, f)| (since(*at), *at - sent_at(f.number)))
            .collect(),
        delivered: pair
            .emitted
            .iter()
            .map(|(at, f)| (since(*at), f.frame.data.len()))
            .collect(),
        bitrate_targets,
        emitted_after_gap,
    }
}

/// p95 latency of frames shown in `from..to` seconds; `None` when none was shown.
fn p95(run: &Run, from: u64, to: u64) -> Option<Duration> {
    let mut v: Vec<Duration> = run
        .latencies
        .iter()
        .filter(|(t, _)| (from..to).contains(&t.as_secs()))
        .map(|&(_, l)| l)
        .collect();
    v.sort();
    (!v.is_empty()).then(|| v[(v.len() * 95).div_ceil(100) - 1])
}

fn goodput_bps(run: &Run, from: u64, to: u64) -> f64 {
    let bytes: usize = run
        .delivered
        .iter()
        .filter(|(t, _)| (from..to).contains(&t.as_secs()))
        .map(|x| x.1)
        .sum();
    bytes as f64 * 8.0 / (to - from) as f64
}

#[test]
fn guarded_latency_settles_after_each_capacity_step_and_throughput_returns() {
    for seed in [1, 2] {
        let guarded = run(true, seed);
        let unguarded = run(false, seed);
        let budget = Duration::from_millis(150);
        // Settled windows: from 3 s after each step to the next step.
        for (from, to) in [(3, 10), (13, 20), (23, 30)] {
            let p = p95(&guarded, from, to).expect("guarded run shows frames");
            assert!(
                p < budget,
                "seed {seed}: guarded p95 {p:?} between {from} and {to} s"
            );
        }
        // Without the guard the 2 Mbit/s phase fills the FIFO: seconds of delay, or
        // nothing decodable at all once the FIFO overflows.
        let unguarded_p95 = p95(&unguarded, 13, 20);
        assert!(
            unguarded_p95.is_none_or(|p| p > Duration::from_millis(1000)),
            "seed {seed}: unguarded p95 only {unguarded_p95:?}"
        );
        // Throughput comes back: in the last 4 s at 8 Mbit/s, at least 4 Mbit/s of
        // frames get through (the stream's own ceiling is 10).
        let back = goodput_bps(&guarded, 26, 30);
        assert!(
            back > 4e6,
            "seed {seed}: goodput after recovery {:.2} Mbit/s",
            back / 1e6
        );
        // In the slow phase the stream fits the link rather than starving.
        let slow = goodput_bps(&guarded, 13, 20);
        assert!(
            slow > 0.8e6 && slow < 2.0e6,
            "seed {seed}: goodput at 2 Mbit/s {:.2} Mbit/s",
            slow / 1e6
        );
        assert!(guarded.bitrate_targets.iter().all(|&(_, b)| b <= CEILING));
        eprintln!(
            "seed {seed}: guarded p95 {:?}/{:?}/{:?}, unguarded p95 at 2 Mbit/s {:?}, goodput slow {:.2} back {:.2} Mbit/s, {} restarts",
            p95(&guarded, 3, 10),
            p95(&guarded, 13, 20),
            p95(&guarded, 23, 30),
            unguarded_p95,
            slow / 1e6,
            back / 1e6,
            guarded.emitted_after_gap
        );
    }
}
