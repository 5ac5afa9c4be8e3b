//! `picam recv`: transport task -> bounded channel -> decode thread -> latest-wins slot
//! -> sink on the main thread (the view, window or headless, plus stats and
//! `--frames-out`).

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use decode::{Decoded, Decoder};
use display::{Flow, Y4mWriter};
use media::{stamp, wallclock_us, Picture};
use tokio::sync::{mpsc, watch};
use transport::{
    Protocol, ReceivedFrame, Receiver, ReceiverCommand, ReceiverConfig, ReceiverHooks,
    ReceiverStats,
};

use crate::cli::RecvArgs;
use crate::config::Settings;
use crate::latency::Samples;
use crate::latest::{Latest, Taken};
use crate::report::{RecvRecord, Reporter};
use crate::view::{OverlayDefault, View};
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

/// Runs the receiver until `--duration` passes, a signal arrives or the window closes.
pub fn run(args: RecvArgs) -> Result<()> {
    let (trigger, shutdown_rx) = shutdown::channel();
    run_with(
        &args,
        OverlayDefault::Off,
        None,
        trigger,
        shutdown_rx,
        || Ok(()),
    )
}

/// Runs the receiver on the calling thread, which must be the main thread: the window,
/// if any, lives there. Stops when `trigger` fires (which it watches signals and
/// `--duration` for, and fires itself when the window closes or the transport ends).
/// `peer` names the sender for the window's title and status (default: the listen
/// address). `ready` runs once everything is started and the view is open.
pub fn run_with(
    args: &RecvArgs,
    overlay: OverlayDefault,
    peer: Option<String>,
    trigger: shutdown::Trigger,
    shutdown_rx: watch::Receiver<bool>,
    ready: impl FnOnce() -> Result<()>,
) -> Result<()> {
    let settings = Settings::for_recv(&args.link)?;
    let listen = settings.listen_addr();
    let mut frames_out = open_frames_out(args.frames_out.as_deref())?;
    let reporter = Reporter::new(args.link.stats, args.frames_out.as_deref() == Some("-"));
    let peer = peer.unwrap_or_else(|| listen.to_string());
    let mut view = View::open(&args.view, overlay, &peer)?;

    let (frame_tx, frame_rx) = mpsc::channel::<ReceivedFrame>(DECODE_QUEUE);
    let (command_tx, command_rx) = mpsc::channel::<ReceiverCommand>(COMMAND_QUEUE);
    let (stats_tx, stats_rx) = watch::channel(ReceiverStats::default());
    let latest = Arc::new(Latest::<Picture>::new());
    let counters = Arc::new(DecodeCounters::default());

    // Bind before anything else starts, so a busy port is reported at once.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
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
                Protocol::Tcp => {
                    transport::tcp::run_receiver(listen, max_frame_bytes, receiver, hooks).await
                }
            };
            trigger.fire();
            result
        })
    };

    let decoder = {
        let latest = latest.clone();
        let counters = counters.clone();
        let decoder = Decoder::new(2).context("opening the H.264 decoder")?;
        std::thread::Builder::new()
            .name("decode".into())
            .spawn(move || decode_loop(decoder, frame_rx, &latest, &counters, &command_tx))?
    };

    let sink = Sink {
        latest: &latest,
        trigger: &trigger,
        reporter: &reporter,
        stats: &stats_rx,
        counters: &counters,
    };
    let sink_result = ready().and_then(|()| sink.run(&mut view, frames_out.as_mut()));
    trigger.fire();
    // Close the window at once; the transport's goodbye and the joins follow.
    drop(view);
    let transport_result = runtime.block_on(transport);
    let _ = decoder.join();
    sink_result?;
    transport_result.context("transport task failed")??;
    Ok(())
}

/// Decodes frames until the transport closes the channel, then closes `latest`. After
/// an error, skips frames until a keyframe and asks the sender for one.
fn decode_loop(
    mut decoder: Decoder,
    mut frames: mpsc::Receiver<ReceivedFrame>,
    latest: &Latest<Picture>,
    counters: &DecodeCounters,
    commands: &mpsc::Sender<ReceiverCommand>,
) {
    let mut need_keyframe = false;
    while let Some(received) = frames.blocking_recv() {
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
                let _ = commands.try_send(ReceiverCommand::RequestKeyframe);
            }
        }
    }
    latest.close();
}

type FramesOut = Y4mWriter<Box<dyn Write + Send>>;

fn open_frames_out(path: Option<&str>) -> Result<Option<FramesOut>> {
    let Some(path) = path else { return Ok(None) };
    let out: Box<dyn Write + Send> = if path == "-" {
        Box::new(std::io::stdout())
    } else {
        let file = std::fs::File::create(path)
            .with_context(|| format!("cannot create --frames-out file {path}"))?;
        Box::new(std::io::BufWriter::with_capacity(4 << 20, file))
    };
    Ok(Some(Y4mWriter::new(out, path, 30)))
}

/// What the sink loop reads and reports through.
struct Sink<'a> {
    latest: &'a Latest<Picture>,
    trigger: &'a shutdown::Trigger,
    reporter: &'a Reporter,
    stats: &'a watch::Receiver<ReceiverStats>,
    counters: &'a DecodeCounters,
}

impl Sink<'_> {
    /// Takes the newest picture, measures it, shows it, records it; prints the stats
    /// once a second and a summary at the end. The same loop serves both views.
    fn run(&self, view: &mut View, mut frames_out: Option<&mut FramesOut>) -> Result<()> {
        let Sink {
            latest,
            trigger,
            reporter,
            stats,
            counters,
        } = *self;
        let start = Instant::now();
        let cpu_start = cpu::process_cpu_time();
        let mut next_report = start + Duration::from_secs(1);
        let mut latency = Measure::default();
        let mut present = Measure::default();
        let mut shown = 0u64;
        let mut last = (ReceiverStats::default(), 0u64, start);
        let mut result = Ok(());
        loop {
            let flow = view.poll();
            if flow == Flow::Quit {
                tracing::info!("window closed: stopping");
                trigger.fire();
                break;
            }
            let wait = next_report
                .saturating_duration_since(Instant::now())
                .min(view.max_wait());
            match latest.take(wait) {
                Taken::Value(picture) => {
                    shown += 1;
                    // The stamp is on the sender's clock; the offset measured over the
                    // feedback path puts it on ours (zero on one host).
                    let (offset, peer) = {
                        let s = stats.borrow();
                        (s.clock_offset_us.unwrap_or(0), s.peer)
                    };
                    view.set_peer(peer);
                    let ms = stamp::read(&picture).map(|s| {
                        (wallclock_us() as i64 - (s.time_us as i64 - offset)) as f64 / 1e3
                    });
                    if let Some(ms) = ms {
                        latency.push(ms);
                    }
                    match view.show(&picture, ms, Instant::now()) {
                        Ok(Some(d)) => present.push(d.as_secs_f64() * 1e3),
                        Ok(None) => {}
                        Err(e) => {
                            result = Err(e);
                            break;
                        }
                    }
                    if let Some(out) = frames_out.as_deref_mut() {
                        if let Err(e) = out.write(&picture) {
                            result = Err(anyhow::Error::new(e));
                            break;
                        }
                    }
                }
                Taken::Empty => {
                    if let Err(e) = view.idle(flow, Instant::now()) {
                        result = Err(e);
                        break;
                    }
                }
                Taken::Closed => break,
            }
            if trigger.fired() {
                break;
            }
            let now = Instant::now();
            if now >= next_report {
                let record = record(
                    now,
                    start,
                    stats,
                    counters,
                    latest,
                    shown,
                    &mut last,
                    &latency.interval,
                    &present.interval,
                    cpu_start,
                    false,
                );
                reporter.recv(&record);
                view.update_stats(&record);
                latency.interval.clear();
                present.interval.clear();
                next_report += Duration::from_secs(1);
            }
        }
        // Let the transport publish its final counters, then summarise the whole run.
        std::thread::sleep(Duration::from_millis(50));
        let final_record = record(
            Instant::now(),
            start,
            stats,
            counters,
            latest,
            shown,
            &mut last,
            &latency.whole_run,
            &present.whole_run,
            cpu_start,
            true,
        );
        reporter.recv(&final_record);
        result
    }
}

/// Samples of one measure over the current stats interval and over the whole run.
struct Measure {
    interval: Samples,
    whole_run: Samples,
}

impl Default for Measure {
    fn default() -> Self {
        Self {
            interval: Samples::new(10_000),
            whole_run: Samples::new(1_000_000),
        }
    }
}

impl Measure {
    fn push(&mut self, ms: f64) {
        self.interval.push(ms);
        self.whole_run.push(ms);
    }
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
    present: &Samples,
    cpu_start: Duration,
    is_final: bool,
) -> RecvRecord {
    let s = *stats.borrow();
    let d = s.dropped;
    let decoded = counters.decoded.load(Ordering::Relaxed);
    let (dt, base) = if is_final {
        (
            now.duration_since(start).as_secs_f64(),
            (ReceiverStats::default(), 0),
        )
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
            (
                "after_decode_error",
                counters.skipped.load(Ordering::Relaxed),
            ),
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
        present_ms: present.summary(),
        cpu_ms_per_frame: (decoded > 0).then(|| cpu / decoded as f64),
        sessions: s.sessions,
        clock_offset_ms: s.clock_offset_us.map(|us| us as f64 / 1e3),
        rtt_ms: s.rtt_us.map(|us| us as f64 / 1e3),
        last: is_final,
    };
    *last = (s, shown, now);
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{StatsFormat, ViewArgs};

    /// Closing the window (here: SDL's quit event, as the window manager's close
    /// button sends it) ends the viewer loop at once and starts the shutdown that
    /// makes the transport say bye and the process exit 0.
    #[test]
    fn closing_the_window_stops_the_loop_and_fires_shutdown() {
        if !display::display_available() {
            eprintln!("skipped: no display (scripts/test.sh sets SDL_VIDEODRIVER=offscreen)");
            return;
        }
        let args = ViewArgs {
            window: true,
            ..Default::default()
        };
        let mut view =
            View::open(&args, OverlayDefault::On, "127.0.0.1:5000").expect("window opens");
        assert!(matches!(view, View::Window(_)));
        // A picture shown through the view is timed from its decoding.
        let picture = media::pattern::TestPattern::new(320, 240).picture(1);
        let shown = view
            .show(&picture, Some(5.0), Instant::now())
            .expect("presented");
        assert!(
            shown.is_some_and(|d| d < Duration::from_secs(5)),
            "{shown:?}"
        );

        let events = sdl2::init()
            .and_then(|sdl| sdl.event())
            .expect("SDL events");
        events
            .push_event(sdl2::event::Event::Quit { timestamp: 0 })
            .expect("push quit");
        let latest = Latest::new();
        let (trigger, _rx) = shutdown::channel();
        let (_stats_tx, stats) = watch::channel(ReceiverStats::default());
        let counters = DecodeCounters::default();
        let reporter = Reporter::new(StatsFormat::Json, true);
        // Bound the test: a loop that ignored the quit would stop here after 10 s.
        let watchdog = {
            let trigger = trigger.clone();
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(10);
                while Instant::now() < deadline && !trigger.fired() {
                    std::thread::sleep(Duration::from_millis(20));
                }
                trigger.fire();
            })
        };
        let begun = Instant::now();
        let sink = Sink {
            latest: &latest,
            trigger: &trigger,
            reporter: &reporter,
            stats: &stats,
            counters: &counters,
        };
        let result = sink.run(&mut view, None);
        let took = begun.elapsed();
        assert!(result.is_ok(), "{result:?}");
        assert!(trigger.fired());
        assert!(
            took < Duration::from_secs(2),
            "the loop took {took:?} to see the quit"
        );
        drop(view);
        drop(events);
        watchdog.join().unwrap();
    }
}
