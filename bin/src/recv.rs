//! `picam recv`: transport task -> bounded channel -> decode thread -> latest-wins slot
//! -> sink on the main thread (the view, window or headless, plus stats and
//! `--frames-out`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use decode::{Decoded, Decoder};
use display::Flow;
use media::{stamp, wallclock_us, Picture};
use record::Recorder;
use tokio::sync::{mpsc, watch};
use transport::{Protocol, ReceivedFrame, Receiver, ReceiverCommand, ReceiverHooks, ReceiverStats};

use crate::cli::RecvArgs;
use crate::config::{Settings, Wire};
use crate::frames_out::FramesOut;
use crate::latency::Samples;
use crate::latency_out::LatencyOut;
use crate::latest::{Latest, Taken};
use crate::recv_stats::{PictureCounts, RecvSnapshot, RecvWindow};
use crate::report::{RecordingRecord, Reporter};
use crate::security;
use crate::shutdown::{self, Shutdown};
use crate::view::{OverlayDefault, View};

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

impl DecodeCounters {
    /// The counters with the slot's and the sink's, read now.
    fn read(&self, latest: &Latest<Picture>, shown: u64, frames_out_skipped: u64) -> PictureCounts {
        PictureCounts {
            decoded: self.decoded.load(Ordering::Relaxed),
            decode_errors: self.errors.load(Ordering::Relaxed),
            after_decode_error: self.skipped.load(Ordering::Relaxed),
            superseded: latest.replaced(),
            shown,
            frames_out_skipped,
        }
    }
}

/// Runs the receiver until `--duration` passes, a signal arrives or the window closes.
pub fn run(args: RecvArgs) -> Result<()> {
    run_with(&args, OverlayDefault::Off, None, Shutdown::new(), || Ok(()))
}

/// Runs the receiver on the calling thread, which must be the main thread: the window,
/// if any, lives there. Stops when `shutdown` fires (which it watches signals and
/// `--duration` for, and fires itself when the window closes, the transport ends or
/// the decoder fails). The summary is printed once the transport and the decoder are
/// joined, so it holds their final counters.
/// `peer` names the sender for the window's title and status (default: the listen
/// address). `ready` runs once everything is started and the view is open.
pub fn run_with(
    args: &RecvArgs,
    overlay: OverlayDefault,
    peer: Option<String>,
    shutdown: Shutdown,
    ready: impl FnOnce() -> Result<()>,
) -> Result<()> {
    let settings = Settings::for_recv(&args.link)?;
    let listen = settings.listen_addr();
    // The key first: without one, pair now; the code is printed for the person at the
    // camera, and shown in the window if there is one. The interop wires are plain
    // (their peers cannot encrypt): no key, no pairing.
    let peer = peer.unwrap_or_else(|| listen.to_string());
    let mut opened = None;
    let key = if settings.wire != Wire::Picam {
        None
    } else if security::receiver_needs_pairing(&settings.security)? {
        let mut view = View::open(&args.view, overlay, &peer)?;
        let key = pair_in_view(&mut view, &settings.security, listen, &shutdown)?;
        opened = Some(view);
        key
    } else {
        security::receiver_key(&settings.security, listen, &shutdown, &mut |code| {
            security::print_code(code, listen)
        })?
    };
    if shutdown.fired() {
        return Ok(());
    }
    let mut frames_out = args
        .frames_out
        .as_deref()
        .map(FramesOut::open)
        .transpose()?;
    let mut latency_out = args
        .latency_out
        .as_deref()
        .map(|path| LatencyOut::open(path, Instant::now()))
        .transpose()?;
    let reporter = Reporter::new(args.link.stats, args.frames_out.as_deref() == Some("-"));
    let mut view = match opened {
        Some(view) => view,
        None => View::open(&args.view, overlay, &peer)?,
    };

    let (frame_tx, frame_rx) = mpsc::channel::<ReceivedFrame>(DECODE_QUEUE);
    let (command_tx, command_rx) = mpsc::channel::<ReceiverCommand>(COMMAND_QUEUE);
    let (stats_tx, stats_rx) = watch::channel(ReceiverStats::default());
    let latest = Arc::new(Latest::<Picture>::new());
    let counters = Arc::new(DecodeCounters::default());
    // The recording takes every frame the transport delivers (whole, in decodable
    // order), beside the decoder's queue and never behind it.
    let (recorder, mut record_tap) = match settings.record.clone() {
        Some(config) => {
            let commands = command_tx.clone();
            let request_keyframe = Box::new(move || {
                let _ = commands.try_send(ReceiverCommand::RequestKeyframe);
            });
            let (recorder, tap) = Recorder::start(config, request_keyframe)?;
            (Some(recorder), Some(tap))
        }
        None => (None, None),
    };

    // Bind before anything else starts, so a busy port is reported at once.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let config = transport::ReceiverConfig {
        secure: key,
        ..settings.receiver_config()
    };
    let repair_on = config.repair.is_some();
    let secure_on = config.secure.is_some();
    let max_frame_bytes = config.max_frame_bytes;
    let hooks = ReceiverHooks {
        on_frame: move |frame: ReceivedFrame| {
            if let Some(tap) = record_tap.as_mut() {
                tap.offer(&frame.frame);
            }
            frame_tx.try_send(frame).is_ok()
        },
        commands: command_rx,
        stats: stats_tx,
        shutdown: shutdown.watch(),
    };
    runtime.spawn(shutdown::watch_signals(
        shutdown.clone(),
        args.link.duration,
    ));
    let transport = {
        let shutdown = shutdown.clone();
        let receiver = Receiver::new(config);
        runtime.spawn(async move {
            let result = match (settings.wire, settings.protocol) {
                (Wire::Picam, Protocol::Udp) => {
                    transport::udp::run_receiver(listen, receiver, hooks).await
                }
                (Wire::Picam, Protocol::Tcp) => {
                    transport::tcp::run_receiver(listen, max_frame_bytes, receiver, hooks).await
                }
                (wire, protocol) => run_interop_receiver(&settings, wire, protocol, hooks).await,
            };
            shutdown.fire();
            result
        })
    };

    let decoder = {
        let counters = counters.clone();
        let decoder = Decoder::new(2).context("opening the H.264 decoder")?;
        spawn_decoder(latest.clone(), shutdown.clone(), move |latest| {
            decode_loop(decoder, frame_rx, latest, &counters, &command_tx)
        })?
    };

    let sink = Sink {
        latest: &latest,
        shutdown: &shutdown,
        reporter: &reporter,
        stats: &stats_rx,
        counters: &counters,
        repair: repair_on,
        secure: secure_on,
        recorder: recorder.as_ref(),
    };
    let ended =
        ready().and_then(|()| sink.run(&mut view, frames_out.as_mut(), latency_out.as_mut()));
    shutdown.fire();
    // Close the window at once; the transport's goodbye and the joins follow.
    drop(view);
    let transport_result = runtime.block_on(transport);
    let decoded = join_decoder(decoder);
    // The transport has stopped, so no frame comes: the recording closes its file.
    let recorded = recorder.map(Recorder::finish);
    // Every stage has stopped: their counters are final.
    let ended = ended?;
    if let Some(log) = latency_out.as_mut() {
        log.flush()?;
    }
    let skipped = frames_out.as_ref().map_or(0, FramesOut::skipped);
    let last = RecvSnapshot::take(
        *stats_rx.borrow(),
        counters.read(&latest, ended.shown, skipped),
    );
    let mut summary =
        ended
            .window
            .whole_run(last, &ended.latency.whole_run, &ended.present.whole_run);
    summary.record = recorded.as_ref().map(RecordingRecord::from_stats);
    reporter.recv(&summary);
    decoded?;
    transport_result.context("transport task failed")??;
    Ok(())
}

/// Runs the receiver of an interop wire (`--wire rtp|h264`): over UDP it listens on
/// `bind:port` (RTCP on port + 1 unless `--rtcp-mux`); over TCP it connects to the
/// sender at `remote:port`, as a client of `rpicam-vid --listen` or `tcpserversink`.
async fn run_interop_receiver<F: FnMut(ReceivedFrame) -> bool>(
    settings: &Settings,
    wire: Wire,
    protocol: Protocol,
    hooks: ReceiverHooks<F>,
) -> std::result::Result<(), transport::TransportError> {
    use transport::rtp::{interop_io, H264Receiver, RtpReceiver, RtpReceiverConfig, StreamFraming};
    let listen = settings.listen_addr();
    let remote = || {
        settings
            .remote_addr()
            .map_err(|e| transport::TransportError::Io {
                context: "resolving `remote`",
                addr: listen,
                source: std::io::Error::other(format!("{e:#}")),
            })
    };
    tracing::warn!(?wire, "interop wire: plain and unauthenticated; no clock offset (latency only from stamps on one host)");
    match (wire, protocol) {
        (Wire::Rtp, Protocol::Udp) => {
            let rx = RtpReceiver::new(RtpReceiverConfig {
                payload_type: settings.payload_type,
                clock_rate: settings.clock_rate,
                rtcp_mux: settings.rtcp_mux,
                // NACKs for gaps, as rtpbin's do-retransmission asks; `--no-repair`
                // waits only for reordering.
                nack: settings.repair,
                ..Default::default()
            });
            let rtcp = (!settings.rtcp_mux)
                .then(|| std::net::SocketAddr::new(listen.ip(), listen.port().wrapping_add(1)));
            interop_io::run_udp_receiver(listen, rtcp, rx, hooks).await
        }
        (Wire::Rtp, Protocol::Tcp) => {
            let rx = RtpReceiver::new(RtpReceiverConfig {
                payload_type: settings.payload_type,
                clock_rate: settings.clock_rate,
                rtcp_mux: true,
                // A byte stream loses nothing: no NACKs.
                nack: false,
                ..Default::default()
            });
            interop_io::run_tcp_receiver(remote()?, StreamFraming::Rfc4571, rx, hooks).await
        }
        (_, Protocol::Udp) => {
            let rx = H264Receiver::new(&listen.to_string());
            interop_io::run_udp_receiver(listen, None, rx, hooks).await
        }
        (_, Protocol::Tcp) => {
            let remote = remote()?;
            let rx = H264Receiver::new(&remote.to_string());
            interop_io::run_tcp_receiver(remote, StreamFraming::Raw, rx, hooks).await
        }
    }
}

/// Runs `decode` on the decode thread. However it ends, `latest` is closed (the sink
/// stops waiting for pictures); if it panics, `shutdown` fires as well, so the process
/// stops instead of stalling.
fn spawn_decoder(
    latest: Arc<Latest<Picture>>,
    shutdown: Shutdown,
    decode: impl FnOnce(&Latest<Picture>) + Send + 'static,
) -> Result<std::thread::JoinHandle<()>> {
    /// Closes the slot on the way out, unwinding included.
    struct OnExit(Arc<Latest<Picture>>, Shutdown);
    impl Drop for OnExit {
        fn drop(&mut self) {
            if std::thread::panicking() {
                self.1.fire();
            }
            self.0.close();
        }
    }
    let thread = std::thread::Builder::new()
        .name("decode".into())
        .spawn(move || {
            let exit = OnExit(latest, shutdown);
            decode(&exit.0);
        })
        .context("starting the decode thread")?;
    Ok(thread)
}

/// Joins the decode thread; a panic becomes an error that names it.
fn join_decoder(thread: std::thread::JoinHandle<()>) -> Result<()> {
    thread.join().map_err(|payload| {
        let why = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".into());
        anyhow::anyhow!("the decode thread panicked: {why}")
    })
}

/// Pairs on a thread of its own while this (main) thread keeps the window alive and
/// shows the code in it; closing the window stops the pairing.
fn pair_in_view(
    view: &mut View,
    security: &security::Security,
    listen: std::net::SocketAddr,
    shutdown: &Shutdown,
) -> Result<Option<transport::secure::Psk>> {
    let (code_tx, code_rx) = std::sync::mpsc::channel::<String>();
    let pairing = {
        let security = security.clone();
        let shutdown = shutdown.clone();
        std::thread::Builder::new()
            .name("pairing".into())
            .spawn(move || {
                security::receiver_key(&security, listen, &shutdown, &mut |code| {
                    security::print_code(code, listen);
                    let _ = code_tx.send(code.to_owned());
                })
            })?
    };
    while !pairing.is_finished() {
        let flow = view.poll();
        if flow == Flow::Quit {
            shutdown.fire();
        }
        if let Some(code) = code_rx.try_iter().last() {
            view.set_pairing(Some(code));
        }
        view.idle(flow, Instant::now())?;
        std::thread::sleep(Duration::from_millis(30));
    }
    view.set_pairing(None);
    pairing
        .join()
        .map_err(|_| anyhow::anyhow!("the pairing thread panicked"))?
}

/// Decodes frames until the transport closes the channel. After
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
}

/// What the sink loop reads and reports through.
struct Sink<'a> {
    latest: &'a Latest<Picture>,
    shutdown: &'a Shutdown,
    reporter: &'a Reporter,
    stats: &'a watch::Receiver<ReceiverStats>,
    counters: &'a DecodeCounters,
    /// Loss repair is on (its figures are reported).
    repair: bool,
    /// Encryption is on (its counters are reported).
    secure: bool,
    /// The recording, if any (its figures are reported).
    recorder: Option<&'a Recorder>,
}

/// What the sink loop leaves for the summary.
#[derive(Debug)]
struct SinkEnd {
    window: RecvWindow,
    latency: Measure,
    present: Measure,
    shown: u64,
}

impl Sink<'_> {
    /// Takes the newest picture, measures it, shows it, records it; prints the stats
    /// once a second. The same loop serves both views. The summary is the caller's, once
    /// the stages are joined.
    fn run(
        &self,
        view: &mut View,
        mut frames_out: Option<&mut FramesOut>,
        mut latency_out: Option<&mut LatencyOut>,
    ) -> Result<SinkEnd> {
        let Sink {
            latest,
            shutdown,
            reporter,
            stats,
            counters,
            repair,
            secure,
            recorder,
        } = *self;
        let snapshot = |shown: u64, frames_out: &Option<&mut FramesOut>| {
            let skipped = frames_out.as_deref().map_or(0, FramesOut::skipped);
            RecvSnapshot::take(*stats.borrow(), counters.read(latest, shown, skipped))
        };
        let mut window = RecvWindow::new(snapshot(0, &frames_out), repair, secure);
        let mut next_report = Instant::now() + Duration::from_secs(1);
        let mut latency = Measure::default();
        let mut present = Measure::default();
        let mut shown = 0u64;
        loop {
            let flow = view.poll();
            if flow == Flow::Quit {
                tracing::info!("window closed: stopping");
                shutdown.fire();
                break;
            }
            let wait = next_report
                .saturating_duration_since(Instant::now())
                .min(view.max_wait());
            match latest.take(wait) {
                Taken::Value(picture) => {
                    shown += 1;
                    if shown == 1 {
                        // Time to first picture (scripts/bench-first-picture.sh reads it).
                        let frame = stamp::read(&picture).map(|s| s.frame);
                        tracing::info!(?frame, "first picture shown");
                    }
                    // The stamp is on the sender's clock; the offset measured over the
                    // feedback path puts it on ours (zero on one host).
                    let (offset, peer) = {
                        let s = stats.borrow();
                        (s.clock_offset_us.unwrap_or(0), s.peer)
                    };
                    view.set_peer(peer);
                    let stamped = stamp::read(&picture).map(|s| {
                        let ms = (wallclock_us() as i64 - (s.time_us as i64 - offset)) as f64 / 1e3;
                        (s.frame, ms)
                    });
                    let ms = stamped.map(|(_, ms)| ms);
                    if let Some((frame, ms)) = stamped {
                        latency.push(ms);
                        if let Some(log) = latency_out.as_deref_mut() {
                            log.shown(frame, Instant::now(), ms)?;
                        }
                    }
                    if let Some(d) = view.show(&picture, ms, Instant::now())? {
                        present.push(d.as_secs_f64() * 1e3);
                    }
                    if let Some(out) = frames_out.as_deref_mut() {
                        out.write(&picture)?;
                    }
                }
                Taken::Empty => view.idle(flow, Instant::now())?,
                Taken::Closed => break,
            }
            if shutdown.fired() {
                break;
            }
            if Instant::now() >= next_report {
                let mut record = window.interval(
                    snapshot(shown, &frames_out),
                    &latency.interval,
                    &present.interval,
                );
                record.record = recorder.map(|r| RecordingRecord::from_stats(&r.stats()));
                reporter.recv(&record);
                view.update_stats(&record);
                latency.interval.clear();
                present.interval.clear();
                if let Some(log) = latency_out.as_deref_mut() {
                    log.flush()?;
                }
                next_report += Duration::from_secs(1);
            }
        }
        Ok(SinkEnd {
            window,
            latency,
            present,
            shown,
        })
    }
}

/// Samples of one measure over the current stats interval and over the whole run.
#[derive(Debug)]
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{StatsFormat, ViewArgs};

    /// Closing the window (here: SDL's quit event, as the window manager's close
    /// button sends it) ends the viewer loop at once and starts the shutdown that
    /// makes the transport say bye and the process exit 0.
    #[test]
    fn closing_the_window_stops_the_loop_and_fires_shutdown() {
        if !testkit::require(
            "recv::tests::closing_the_window_stops_the_loop_and_fires_shutdown",
            display::display_available(),
            "a display (DISPLAY, WAYLAND_DISPLAY or SDL_VIDEODRIVER)",
            "scripts/test.sh sets SDL_VIDEODRIVER=offscreen",
        ) {
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
        let shutdown = Shutdown::new();
        let (_stats_tx, stats) = watch::channel(ReceiverStats::default());
        let counters = DecodeCounters::default();
        let reporter = Reporter::new(StatsFormat::Json, true);
        // Bound the test: a loop that ignored the quit would stop here after 10 s.
        let watchdog = {
            let shutdown = shutdown.clone();
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(10);
                while Instant::now() < deadline && !shutdown.fired() {
                    std::thread::sleep(Duration::from_millis(20));
                }
                shutdown.fire();
            })
        };
        let begun = Instant::now();
        let sink = Sink {
            latest: &latest,
            shutdown: &shutdown,
            reporter: &reporter,
            stats: &stats,
            counters: &counters,
            repair: false,
            secure: false,
            recorder: None,
        };
        let result = sink.run(&mut view, None, None);
        let took = begun.elapsed();
        assert!(result.is_ok(), "{result:?}");
        assert!(shutdown.fired());
        assert!(
            took < Duration::from_secs(2),
            "the loop took {took:?} to see the quit"
        );
        drop(view);
        drop(events);
        watchdog.join().unwrap();
    }

    /// A panic on the decode thread closes the picture slot (the sink stops waiting),
    /// fires shutdown (the transport stops) and comes back from the join as an error
    /// naming it, so the process exits non-zero with a message instead of stalling.
    #[test]
    fn a_decoder_panic_stops_everything_and_is_reported() {
        let latest = Arc::new(Latest::<Picture>::new());
        let shutdown = Shutdown::new();
        let thread = spawn_decoder(latest.clone(), shutdown.clone(), |_| {
            panic!("forged frame");
        })
        .unwrap();
        // Bounded: the slot must close well within this.
        let begun = Instant::now();
        loop {
            match latest.take(Duration::from_millis(100)) {
                Taken::Closed => break,
                _ => assert!(
                    begun.elapsed() < Duration::from_secs(10),
                    "slot never closed"
                ),
            }
        }
        assert!(shutdown.fired());
        let err = join_decoder(thread).unwrap_err().to_string();
        assert!(
            err.contains("decode thread panicked: forged frame"),
            "{err}"
        );
    }
}
