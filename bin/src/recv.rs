//! `picam recv`: transport task -> bounded channel -> decode thread -> latest-wins slot
//! -> sink (window, or headless stats and `--frames-out`).

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use decode::{Decoded, Decoder};
use display::Y4mWriter;
use media::{stamp, wallclock_us, Picture};
use tokio::sync::{mpsc, watch};
use transport::{Protocol, ReceivedFrame, Receiver, ReceiverCommand, ReceiverConfig, ReceiverHooks, ReceiverStats};

use crate::cli::RecvArgs;
use crate::config::Settings;
use crate::latency::Samples;
use crate::latest::{Latest, Taken};
use crate::report::{RecvRecord, Reporter};
use crate::{cpu, shutdown};

/// Frames between the transport and the decoder. Two: one decoding, one waiting. When
/// full, the transport drops the frame and waits for a keyframe (the decoder would miss
/// a reference otherwise).
pub const DECODE_QUEUE: usize = 2;
/// Keyframe requests from the decoder to the transport; excess ones are redundant.
pub const COMMAND_QUEUE: usize = 8;

/// Counters kept by the decode thread.
#[derive(Default)]
struct DecodeCounters {
    decoded: AtomicU64,
    errors: AtomicU64,
    /// Frames skipped after a decode error until the next keyframe.
    skipped: AtomicU64,
}

/// Runs the receiver until `--duration` passes or a signal arrives.
pub fn run(args: RecvArgs) -> Result<()> {
    let settings = Settings::for_recv(&args.link)?;
    let listen = settings.listen_addr();
    let mut frames_out = open_frames_out(args.frames_out.as_deref())?;
    if !args.headless {
        tracing::info!("no window in this build yet: running headless");
    }
    let reporter = Reporter::new(args.link.stats, args.frames_out.as_deref() == Some("-"));

    let (trigger, shutdown_rx) = shutdown::channel();
    let (frame_tx, mut frame_rx) = mpsc::channel::<ReceivedFrame>(DECODE_QUEUE);
    let (command_tx, command_rx) = mpsc::channel::<ReceiverCommand>(COMMAND_QUEUE);
    let (stats_tx, stats_rx) = watch::channel(ReceiverStats::default());
    let latest = Arc::new(Latest::<Picture>::new());
    let counters = Arc::new(DecodeCounters::default());

    // Bind before anything else starts, so a busy port is reported at once.
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    let config = ReceiverConfig::default();
    let max_frame_bytes = config.max_frame_bytes;
    let hooks = ReceiverHooks {
        on_frame: move |frame| frame_tx.try_send(frame).is_ok(),
        commands: command_rx,
        stats: stats_tx,
        shutdown: shutdown_rx.clone(),
    };
    runtime.spawn(shutdown::watch_signals(trigger.clone(), args.link.duration));
    let transport = {
        let trigger = trigger.clone();
        let receiver = Receiver::new(config);
        runtime.spawn(async move {
            let result = match settings.protocol {
                Protocol::Udp => transport::udp::run_receiver(listen, receiver, hooks).await,
                Protocol::Tcp => transport::tcp::run_receiver(listen, max_frame_bytes, receiver, hooks).await,
            };
            trigger.fire();
            result
        })
    };

    let decoder = {
        let latest = latest.clone();
        let counters = counters.clone();
        let mut decoder = Decoder::new(2).context("opening the H.264 decoder")?;
        std::thread::Builder::new().name("decode".into()).spawn(move || {
            let mut need_keyframe = false;
            while let Some(received) = frame_rx.blocking_recv() {
                if need_keyframe && !received.frame.keyframe {
                    counters.skipped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                match decoder.decode(&received.frame.data) {
                    Ok(Decoded::Picture(picture)) => {
                        need_keyframe = false;
                        counters.decoded.fetch_add(1, Ordering::Relaxed);
                        latest.put(picture);
                    }
                    Ok(Decoded::Nothing) => {}
                    Err(e) => {
                        tracing::debug!(frame = received.number, error = %e, "decode failed");
                        counters.errors.fetch_add(1, Ordering::Relaxed);
                        need_keyframe = true;
                        let _ = command_tx.try_send(ReceiverCommand::RequestKeyframe);
                    }
                }
            }
            latest.close();
        })?
    };

    let sink_result = sink_loop(&latest, &trigger, &reporter, &stats_rx, &counters, frames_out.as_mut());
    trigger.fire();
    let transport_result = runtime.block_on(transport);
    let _ = decoder.join();
    sink_result?;
    transport_result.context("transport task failed")??;
    Ok(())
}

type FramesOut = Y4mWriter<Box<dyn Write + Send>>;

fn open_frames_out(path: Option<&str>) -> Result<Option<FramesOut>> {
    let Some(path) = path else { return Ok(None) };
    let out: Box<dyn Write + Send> = if path == "-" {
        Box::new(std::io::stdout())
    } else {
        let file = std::fs::File::create(path).with_context(|| format!("cannot create --frames-out file {path}"))?;
        Box::new(std::io::BufWriter::with_capacity(4 << 20, file))
    };
    Ok(Some(Y4mWriter::new(out, path, 30)))
}

fn sink_loop(
    latest: &Latest<Picture>,
    trigger: &shutdown::Trigger,
    reporter: &Reporter,
    stats: &watch::Receiver<ReceiverStats>,
    counters: &DecodeCounters,
    mut frames_out: Option<&mut FramesOut>,
) -> Result<()> {
    let start = Instant::now();
    let cpu_start = cpu::process_cpu_time();
    let mut next_report = start + Duration::from_secs(1);
    let mut interval = Samples::new(10_000);
    let mut whole_run = Samples::new(1_000_000);
    let mut shown = 0u64;
    let mut last = (ReceiverStats::default(), 0u64, start);
    let mut result = Ok(());
    loop {
        let wait = next_report.saturating_duration_since(Instant::now()).min(Duration::from_millis(100));
        match latest.take(wait) {
            Taken::Value(picture) => {
                shown += 1;
                if let Some(s) = stamp::read(&picture) {
                    let ms = (wallclock_us() as i64 - s.time_us as i64) as f64 / 1e3;
                    interval.push(ms);
                    whole_run.push(ms);
                }
                if let Some(out) = frames_out.as_deref_mut() {
                    if let Err(e) = out.write(&picture) {
                        result = Err(anyhow::Error::new(e));
                        break;
                    }
                }
            }
            Taken::Empty => {}
            Taken::Closed => break,
        }
        if trigger.fired() {
            break;
        }
        let now = Instant::now();
        if now >= next_report {
            let record = record(now, start, stats, counters, latest, shown, &mut last, &interval, cpu_start, false);
            reporter.recv(&record);
            interval.clear();
            next_report += Duration::from_secs(1);
        }
    }
    // Let the transport publish its final counters, then summarise the whole run.
    std::thread::sleep(Duration::from_millis(50));
    let final_record = record(Instant::now(), start, stats, counters, latest, shown, &mut last, &whole_run, cpu_start, true);
    reporter.recv(&final_record);
    result
}

#[allow(clippy::too_many_arguments)]
fn record(
    now: Instant,
    start: Instant,
    stats: &watch::Receiver<ReceiverStats>,
    counters: &DecodeCounters,
    latest: &Latest<Picture>,
    shown: u64,
    last: &mut (ReceiverStats, u64, Instant),
    latency: &Samples,
    cpu_start: Duration,
    is_final: bool,
) -> RecvRecord {
    let s = *stats.borrow();
    let d = s.dropped;
    let decoded = counters.decoded.load(Ordering::Relaxed);
    let (dt, base) = if is_final {
        (now.duration_since(start).as_secs_f64(), (ReceiverStats::default(), 0))
    } else {
        (now.duration_since(last.2).as_secs_f64(), (last.0, last.1))
    };
    let dt = dt.max(1e-3);
    let cpu = (cpu::process_cpu_time() - cpu_start).as_secs_f64() * 1e3;
    let r = RecvRecord {
        t: now.duration_since(start).as_secs_f64(),
        frames_received: s.frames_complete,
        frames_decoded: decoded,
        frames_shown: shown,
        frames_dropped: BTreeMap::from([
            ("incomplete", d.incomplete),
            ("evicted", d.evicted),
            ("lost", d.lost),
            ("undecodable", d.undecodable),
            ("decode_queue_full", d.queue_full),
            ("decode_error", counters.errors.load(Ordering::Relaxed)),
            ("after_decode_error", counters.skipped.load(Ordering::Relaxed)),
            ("superseded", latest.replaced()),
        ]),
        packets_dropped: BTreeMap::from([
            ("malformed", d.malformed),
            ("other_sender", d.other_sender),
            ("duplicate", d.duplicate),
            ("stale", d.stale),
        ]),
        keyframe_requests: s.keyframe_requests,
        bitrate_bps: ((s.bytes - base.0.bytes) as f64 * 8.0 / dt) as u64,
        fps_in: (s.frames_complete - base.0.frames_complete) as f64 / dt,
        fps_out: (shown - base.1) as f64 / dt,
        latency_ms: latency.summary(),
        cpu_ms_per_frame: (decoded > 0).then(|| cpu / decoded as f64),
        sessions: s.sessions,
        last: is_final,
    };
    *last = (s, shown, now);
    r
}
