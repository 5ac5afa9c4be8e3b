//! `picam send`: source thread -> bounded channel -> transport task.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use capture::{Control, H264FileSource, Source, StreamOptions, TestPatternSource, Y4mSource};
use record::{RecordTap, Recorder};
use tokio::sync::{mpsc, watch};
use transport::web::fanout::{FanoutConfig, FanoutEvent, WebFanout};
use transport::web::signalling::{Signalling, SignallingConfig};
use transport::web::viewer::{CongestionFeedback, ViewerConfig};
use transport::web_io::{WebHooks, WebStats};
use transport::{
    Protocol, Sender, SenderConfig, SenderEvent, SenderHooks, SenderStats, SourceFrame,
};

use crate::cli::SendArgs;
use crate::config::{Settings, Wire};
use crate::report::{RecordingRecord, Reporter, WebRecord};
use crate::security;
use crate::send_stats::{SendSnapshot, SendWindow};
use crate::shutdown::{self, Shutdown};
use crate::source_spec::SourceSpec;

/// Frames between the source and the transport. Two: one being sent, one waiting; a
/// third would only add a frame of latency. A full queue drops the new frame and asks
/// the encoder for a keyframe.
pub const CAPTURE_QUEUE: usize = 2;
/// Control commands to the source (keyframe requests, bitrate); excess ones are dropped
/// because one pending keyframe request is as good as many.
pub const CONTROL_QUEUE: usize = 8;

/// Opens the configured source (`--source`), with the capture flags of `args`.
pub fn open_source(settings: &Settings, args: &SendArgs) -> Result<Box<dyn Source>> {
    let spec = &settings.source;
    let stamp = args.stamp;
    let flags = &args.capture;
    let source: Box<dyn Source> = match spec {
        SourceSpec::Test => {
            Box::new(TestPatternSource::new(settings.encoder).context("starting the test pattern")?)
        }
        SourceSpec::Y4m(path) => Box::new(
            Y4mSource::open(path, settings.encoder, stamp)
                .with_context(|| format!("opening source {spec}"))?,
        ),
        SourceSpec::H264File(path) => {
            let options = StreamOptions {
                pace_fps: (!flags.no_pace).then_some(settings.encoder.fps),
                looping: flags.looping,
            };
            Box::new(
                H264FileSource::open(path, options)
                    .with_context(|| format!("opening source {spec}"))?,
            )
        }
        SourceSpec::Rpicam {
            program,
            extra,
            stride,
        } => crate::rpicam_choice::open(
            &spec.to_string(),
            program.as_deref(),
            &web_profile(settings, extra),
            *stride,
            settings.encoder,
            crate::rpicam_choice::parse_encoder(flags.encoder.as_deref())?,
        )?,
        SourceSpec::V4l2(_) | SourceSpec::Auto => open_camera(settings, args, spec)?,
    };
    Ok(source)
}

/// rpicam-vid's options, with constrained baseline asked for when browsers watch:
/// every browser decodes it (Debian's Chromium and Firefox's OpenH264 offer nothing
/// else), while picam asks rpicam-vid for High otherwise. An explicit `--profile` in
/// the user's options wins.
fn web_profile(settings: &Settings, extra: &[String]) -> Vec<String> {
    let mut args = extra.to_vec();
    if settings.web.is_some() && !extra.iter().any(|a| a == "--profile") {
        args.extend(["--profile".to_string(), "baseline".to_string()]);
    }
    args
}

/// The V4L2 sources (`v4l2:DEV`, `auto`), Linux only.
#[cfg(target_os = "linux")]
fn open_camera(settings: &Settings, args: &SendArgs, spec: &SourceSpec) -> Result<Box<dyn Source>> {
    use capture::v4l2::{EncoderChoice, V4l2Options, V4l2Source};
    let mut encoder = match args.capture.encoder.as_deref().unwrap_or("auto") {
        "auto" => EncoderChoice::Auto,
        "x264" | "libx264" | "software" => EncoderChoice::X264,
        dev if dev.starts_with("/dev/") => EncoderChoice::Device(dev.to_string()),
        other => bail!("invalid `--encoder` = {other:?}: allowed \"auto\", \"x264\" or an encoder device such as /dev/video11"),
    };
    let device = match spec {
        SourceSpec::V4l2(dev) => dev.clone(),
        _ => {
            let Some(choice) = crate::source_spec::detect_camera() else {
                bail!(
                    "--source auto: no camera found (no V4L2 camera with H.264 or a raw format picam encodes, and no \
                     rpicam-vid); `picam devices` lists what is here, `--source test` is the synthetic camera"
                );
            };
            tracing::info!("--source auto chose {}: {}", choice.source, choice.why);
            let chosen: SourceSpec = choice
                .source
                .parse()
                .with_context(|| format!("--source auto chose {:?}", choice.source))?;
            let SourceSpec::V4l2(device) = chosen else {
                let settings = Settings {
                    source: chosen,
                    ..settings.clone()
                };
                return open_source(&settings, args);
            };
            if encoder == EncoderChoice::Auto {
                encoder = match choice.encoder.as_deref() {
                    Some("x264") => EncoderChoice::X264,
                    Some(dev) => EncoderChoice::Device(dev.to_string()),
                    None => EncoderChoice::Auto,
                };
            }
            device
        }
    };
    let options = V4l2Options {
        device,
        settings: settings.encoder,
        encoder,
        stamp: args.stamp,
    };
    Ok(Box::new(
        V4l2Source::open(options).with_context(|| format!("opening source {spec}"))?,
    ))
}

/// The V4L2 sources exist on Linux only.
#[cfg(not(target_os = "linux"))]
fn open_camera(
    _settings: &Settings,
    _args: &SendArgs,
    spec: &SourceSpec,
) -> Result<Box<dyn Source>> {
    bail!("invalid `source` = \"{spec}\": V4L2 cameras (and `auto`) are Linux only here")
}

/// Runs the sender until the source ends, `--duration` passes or a signal arrives.
pub fn run(args: SendArgs) -> Result<()> {
    run_with(&args, Shutdown::new(), Role::Alone)
}

/// Whether the sender runs on its own, or inside a process that owns signals and stats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// `picam send`: watches Ctrl-C, SIGTERM and `--duration`, prints its stats.
    Alone,
    /// `picam demo`: the viewer side watches the signals and prints the stats; the
    /// shared `shutdown` stops both.
    Embedded,
}

/// Runs the sender pipeline on the calling thread (the source on a thread of its own)
/// until the source ends or `shutdown` fires; fires `shutdown` when it stops.
pub fn run_with(args: &SendArgs, shutdown: Shutdown, role: Role) -> Result<()> {
    let settings = Settings::for_send(args)?;
    // With `--web` a picam receiver is optional: browsers may be the only viewers.
    let remote = settings.remote_addr_opt()?;
    if let Some(path) = &args.sdp {
        if settings.wire != Wire::Rtp {
            bail!("`--sdp` describes an RTP stream: use it with `--wire rtp`");
        }
        let Some(remote) = remote else {
            bail!("`--sdp` describes the stream sent to `--remote`: give `--remote`");
        };
        std::fs::write(path, sdp(&settings, remote))
            .with_context(|| format!("writing the SDP file {}", path.display()))?;
        tracing::info!(path = %path.display(), "SDP written");
    }
    // Pair (or find the key) before the camera starts: a wrong code fails at once.
    // The interop wires are plain (their peers cannot decrypt): no key there.
    let key = match remote {
        Some(remote) if settings.wire == Wire::Picam => {
            security::sender_key(&settings.security, args.pair.as_deref(), remote, &shutdown)?
        }
        _ => None,
    };
    let secure_on = key.is_some();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // The web port is bound before the camera starts, so a port in use fails at once,
    // and the URL is printed only once it can be served.
    let web = match &settings.web {
        Some(web) => {
            let token = security::web_token(settings.web_token_new)?;
            let listener = runtime
                .block_on(transport::web_io::WebListener::bind(web.bind))
                .with_context(|| format!("invalid `web` = \"{}\": cannot serve there", web.bind))?;
            let url = security::web_url(listener.local_addr(), &token);
            eprintln!("picam: watch in a browser: {url}");
            Some((listener, token, web.max_viewers))
        }
        None => None,
    };
    let mut source = open_source(&settings, args)?;
    // A source blocked waiting (a camera starting, a child restarting) ends on shutdown.
    source.set_stop(shutdown.capture_stop());
    match remote {
        Some(remote) => {
            tracing::info!(source = %source.describe(), %remote, protocol = ?settings.protocol, "starting sender")
        }
        None => {
            tracing::info!(source = %source.describe(), "starting sender (browser viewers only)")
        }
    }

    let (frame_tx, frame_rx) = mpsc::channel::<SourceFrame>(CAPTURE_QUEUE);
    let (web_tx, web_rx) = mpsc::channel::<SourceFrame>(CAPTURE_QUEUE);
    let (control_tx, control_rx) = std_mpsc::sync_channel::<Control>(CONTROL_QUEUE);
    let queue_full = Arc::new(AtomicU64::new(0));
    // The recording keeps the encoder's output on this machine (a Pi's own storage),
    // whatever happens to the link; it asks the encoder itself for its keyframes.
    let (recorder, record) = match settings.record.clone() {
        Some(config) => {
            let controls = control_tx.clone();
            let request_keyframe = Box::new(move || {
                let _ = controls.try_send(Control::ForceKeyframe);
            });
            let (recorder, tap) = Recorder::start(config, request_keyframe)?;
            (Some(Arc::new(recorder)), Some(tap))
        }
        None => (None, None),
    };
    let outlets = Outlets {
        native: remote.is_some().then_some(frame_tx),
        web: web.is_some().then_some(web_tx),
        record,
    };

    let capture = {
        let shutdown = shutdown.clone();
        let queue_full = queue_full.clone();
        std::thread::Builder::new()
            .name("capture".into())
            .spawn(move || {
                let result = capture_loop(
                    source.as_mut(),
                    outlets,
                    &control_rx,
                    &queue_full,
                    &shutdown,
                );
                if let Err(e) = &result {
                    tracing::error!("{e:#}");
                }
                // The source ended (or failed): the sender drains and stops.
                shutdown.fire();
                result
            })?
    };
    let votes = Arc::new(std::sync::Mutex::new(BitrateVotes::default()));

    let result = runtime.block_on(async {
        if role == Role::Alone {
            tokio::spawn(shutdown::watch_signals(
                shutdown.clone(),
                args.link.duration,
            ));
        }
        let (stats_tx, stats_rx) = watch::channel(SenderStats::default());
        let max_packet = match settings.protocol {
            Protocol::Udp => settings.payload_size,
            // One message per frame on TCP: the largest frame the receiver accepts.
            Protocol::Tcp => {
                transport::ReceiverConfig::default().max_frame_bytes
                    + transport::wire::FRAGMENT_HEADER
                    + transport::secure::SEAL_OVERHEAD
            }
        };
        let jam_guard = settings.jam_guard_config();
        if jam_guard.is_none() {
            tracing::warn!(
                "congestion control off: latency will grow on a link slower than the stream"
            );
        }
        let sender = Sender::new(
            SenderConfig {
                max_packet,
                jam_guard,
                repair: settings.sender_repair(),
                secure: key.clone(),
                ..Default::default()
            },
            transport::random_session_id(),
        );
        let web_task = web.map(|(listener, token, max_viewers)| {
            let control_tx = control_tx.clone();
            let votes = votes.clone();
            let on_event = move |event| {
                let command = match event {
                    FanoutEvent::ForceKeyframe => Control::ForceKeyframe,
                    FanoutEvent::SetBitrate(vote) => match lock(&votes).set(Voter::Web, vote) {
                        Some(bps) => Control::SetBitrate(bps),
                        None => return,
                    },
                    FanoutEvent::ViewerConnected(_) | FanoutEvent::ViewerLeft(..) => return,
                };
                let _ = control_tx.try_send(command);
            };
            let fanout = WebFanout::new(
                FanoutConfig {
                    max_viewers,
                    viewer: ViewerConfig {
                        max_bitrate: settings.encoder.bitrate,
                        congestion: web_congestion(),
                        ..Default::default()
                    },
                    ..Default::default()
                },
                transport::random_session_id().into(),
            );
            let signalling = Signalling::new(token, SignallingConfig::default());
            let (web_stats_tx, web_stats_rx) = watch::channel(WebStats::default());
            let hooks = WebHooks {
                frames: web_rx,
                on_event,
                stats: web_stats_tx,
                shutdown: shutdown.watch(),
            };
            let reporter = (role == Role::Alone).then(|| {
                tokio::spawn(web_report_loop(
                    Reporter::new(args.link.stats, false),
                    web_stats_rx,
                    shutdown.clone(),
                ))
            });
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                let served = transport::web_io::run(listener, signalling, fanout, hooks).await;
                if remote.is_none() {
                    // Browsers are the only viewers: the sender ends with the web side.
                    shutdown.fire();
                }
                // The summary reads the final counters, published as the web side ended.
                if let Some(reporter) = reporter {
                    let _ = reporter.await;
                }
                served
            })
        });
        let Some(remote) = remote else {
            let served = match web_task {
                Some(task) => task.await.map_err(|e| anyhow::anyhow!("web task: {e}"))?,
                None => Ok(()),
            };
            shutdown.fire();
            return served.map_err(anyhow::Error::from).map(|()| None);
        };
        let votes_native = votes.clone();
        let on_event = move |event| {
            let command = match event {
                SenderEvent::ForceKeyframe => Control::ForceKeyframe,
                SenderEvent::SetBitrate(bps) => {
                    match lock(&votes_native).set(Voter::Native, Some(bps)) {
                        Some(bps) => Control::SetBitrate(bps),
                        None => return,
                    }
                }
                SenderEvent::SetFps(fps) => Control::SetFps(fps),
                SenderEvent::ReceiverLeft => {
                    tracing::info!("receiver said bye");
                    return;
                }
            };
            tracing::debug!(?command, "control");
            let _ = control_tx.try_send(command);
        };
        let hooks = SenderHooks {
            frames: frame_rx,
            on_event,
            stats: stats_tx,
            shutdown: shutdown.watch(),
        };
        let reporter = (role == Role::Alone).then(|| {
            tokio::spawn(report_loop(
                Reporter::new(args.link.stats, false),
                stats_rx.clone(),
                queue_full.clone(),
                shutdown.clone(),
                settings.sender_repair().is_some(),
                secure_on,
                recorder.clone(),
            ))
        });
        let sent = match settings.wire {
            Wire::Picam => match settings.protocol {
                Protocol::Udp => {
                    transport::udp::run_sender(
                        settings.sender_bind_addr(remote),
                        remote,
                        sender,
                        hooks,
                    )
                    .await
                }
                Protocol::Tcp => transport::tcp::run_sender(remote, sender, hooks).await,
            },
            Wire::Rtp | Wire::H264 => run_interop_sender(&settings, remote, hooks).await,
        };
        shutdown.fire();
        // The transport has ended, so its counters are final: the summary reads them
        // once the capture thread (the recording's producer) has ended too.
        let summary = match reporter {
            Some(reporter) => reporter.await.ok().map(|(reporter, window)| {
                let last =
                    SendSnapshot::take(*stats_rx.borrow(), queue_full.load(Ordering::Relaxed));
                (reporter, window.last(last))
            }),
            None => None,
        };
        if let Some(task) = web_task {
            if let Ok(Err(e)) = task.await {
                tracing::error!("browser viewers: {e}");
            }
        }
        sent.map_err(anyhow::Error::from).map(|()| summary)
    });
    let captured = join_capture(capture);
    // No frame comes any more: the recording writes what it holds and closes its file.
    let recorded = recorder.and_then(Arc::into_inner).map(Recorder::finish);
    if let Some((reporter, mut summary)) = result? {
        summary.record = recorded.as_ref().map(RecordingRecord::from_stats);
        reporter.send(&summary);
    }
    captured
}

/// Runs the sender of an interop wire (`--wire rtp|h264`). Over UDP it sends to
/// `remote`; over TCP it listens on `bind:port`, as `rpicam-vid --listen` does.
async fn run_interop_sender<E: FnMut(SenderEvent)>(
    settings: &Settings,
    remote: SocketAddr,
    hooks: SenderHooks<E>,
) -> std::result::Result<(), transport::TransportError> {
    use transport::rtp::{interop_io, H264Sender, RtpSender, RtpSenderConfig, StreamFraming};
    let udp = settings.protocol == Protocol::Udp;
    let bind = settings.sender_bind_addr(remote);
    let listen = settings.listen_addr();
    tracing::warn!(
        "--wire {:?}: plain, unauthenticated interop stream (no parity; RTP answers NACKs)",
        settings.wire
    );
    match settings.wire {
        Wire::Rtp => {
            let sender = RtpSender::new(RtpSenderConfig {
                payload_type: settings.payload_type,
                clock_rate: settings.clock_rate,
                max_packet: settings.payload_size,
                // Over TCP, GStreamer's rtpstreamdepay ! rtph264depay takes every message
                // for RTP: no RTCP there.
                rtcp: udp,
                // Pacing, the stale-frame deadline and report-driven bitrate, as far
                // as RTP allows (see transport::rtp::RtpSender).
                jam_guard: settings.jam_guard_config(),
                ..Default::default()
            });
            if udp {
                let rtcp = (!settings.rtcp_mux)
                    .then(|| SocketAddr::new(remote.ip(), remote.port().wrapping_add(1)));
                interop_io::run_udp_sender(bind, remote, rtcp, sender, hooks).await
            } else {
                interop_io::run_tcp_sender(listen, StreamFraming::Rfc4571, sender, hooks).await
            }
        }
        _ => {
            if udp {
                let sender = H264Sender::new(settings.payload_size);
                interop_io::run_udp_sender(bind, remote, None, sender, hooks).await
            } else {
                let sender = H264Sender::new(usize::MAX);
                interop_io::run_tcp_sender(listen, StreamFraming::Raw, sender, hooks).await
            }
        }
    }
}

/// The SDP that describes `picam send --wire rtp` to ffplay, VLC and ffmpeg (RFC 4566,
/// RFC 6184 §8.2: packetization-mode 1; parameter sets travel in band before every
/// keyframe, so no sprop-parameter-sets are needed).
pub fn sdp(settings: &Settings, remote: SocketAddr) -> String {
    let (family, ip) = match remote.ip() {
        std::net::IpAddr::V4(ip) => ("IP4", ip.to_string()),
        std::net::IpAddr::V6(ip) => ("IP6", ip.to_string()),
    };
    let pt = settings.payload_type;
    let clock = settings.clock_rate;
    let mut s = format!(
        "v=0\r\no=- 0 0 IN {family} {ip}\r\ns=picam\r\nc=IN {family} {ip}\r\nt=0 0\r\n\
         m=video {port} RTP/AVP {pt}\r\na=rtpmap:{pt} H264/{clock}\r\n\
         a=fmtp:{pt} packetization-mode=1\r\n",
        port = remote.port()
    );
    if settings.rtcp_mux {
        s.push_str("a=rtcp-mux\r\n");
    }
    if settings.protocol == Protocol::Udp && settings.jam_guard_config().is_some() {
        // With its rate controller on, the sender numbers its packets for
        // transport-wide feedback (a peer may answer it; others skip the extension).
        let (id, uri) = (
            transport::rtp::twcc::EXTENSION_ID,
            transport::rtp::twcc::EXTENSION_URI,
        );
        s.push_str(&format!(
            "a=extmap:{id} {uri}\r\na=rtcp-fb:{pt} transport-cc\r\n"
        ));
    }
    s
}

/// How long a stopped source may take to return; sources look at the stop flag every
/// 100 ms, so only a read that cannot be interrupted (a quiet stdin) takes longer.
const CAPTURE_JOIN: Duration = Duration::from_secs(2);

/// Joins the capture thread, or leaves it behind (with a warning) if it is still
/// blocked after [`CAPTURE_JOIN`]: exiting the process ends it, and a shutdown never
/// hangs on a source.
fn join_capture(capture: std::thread::JoinHandle<Result<()>>) -> Result<()> {
    let deadline = Instant::now() + CAPTURE_JOIN;
    while !capture.is_finished() {
        if Instant::now() >= deadline {
            tracing::warn!("the source did not stop within {CAPTURE_JOIN:?}: leaving it");
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    capture
        .join()
        .map_err(|_| anyhow::anyhow!("capture thread panicked"))?
}

/// The browsers' congestion feedback: REMB, or TWCC when `PICAM_WEB_CONGESTION=twcc`
/// (for comparison in `scripts/bench-web.sh`; see `CongestionFeedback`).
fn web_congestion() -> CongestionFeedback {
    match std::env::var("PICAM_WEB_CONGESTION").as_deref() {
        Ok("twcc") => CongestionFeedback::Twcc,
        Ok("remb") | Ok("") | Err(_) => CongestionFeedback::Remb,
        Ok(other) => {
            tracing::warn!(
                "PICAM_WEB_CONGESTION={other:?} is neither \"remb\" nor \"twcc\": using remb"
            );
            CongestionFeedback::Remb
        }
    }
}

/// Where captured frames go: the native stream, the browser viewers, or both. Each has
/// its own bounded queue, so a slow side drops its own frames and never holds up the
/// other.
struct Outlets {
    native: Option<mpsc::Sender<SourceFrame>>,
    web: Option<mpsc::Sender<SourceFrame>>,
    /// The recording's tap: its own bounded queue, never waited on.
    record: Option<RecordTap>,
}

/// One outlet's queue and the frames it missed since its last delivery.
struct Outlet<'a> {
    queue: &'a mpsc::Sender<SourceFrame>,
    skipped_before: u32,
}

impl Outlet<'_> {
    /// Offers a frame; false when the outlet is gone (the stage stopped).
    fn offer(
        &mut self,
        frame: &media::EncodedFrame,
        queue_full: &AtomicU64,
        source: &mut dyn Source,
    ) -> bool {
        let frame = SourceFrame {
            frame: frame.clone(),
            skipped_before: self.skipped_before,
        };
        match self.queue.try_send(frame) {
            Ok(()) => self.skipped_before = 0,
            Err(mpsc::error::TrySendError::Full(_)) => {
                // The next frame would reference the one dropped here: make it a
                // keyframe where the source can, and in any case tell the stage, which
                // waits for one.
                self.skipped_before = self.skipped_before.saturating_add(1);
                queue_full.fetch_add(1, Ordering::Relaxed);
                source.control(Control::ForceKeyframe);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return false,
        }
        true
    }
}

fn capture_loop(
    source: &mut dyn Source,
    outlets: Outlets,
    controls: &std_mpsc::Receiver<Control>,
    queue_full: &AtomicU64,
    shutdown: &Shutdown,
) -> Result<()> {
    let mut record = outlets.record;
    let mut outlets: Vec<Outlet> = [outlets.native.as_ref(), outlets.web.as_ref()]
        .into_iter()
        .flatten()
        .map(|queue| Outlet {
            queue,
            skipped_before: 0,
        })
        .collect();
    while !shutdown.fired() {
        while let Ok(command) = controls.try_recv() {
            source.control(command);
        }
        let Some(frame) = source
            .next_frame()
            .with_context(|| format!("source {}", source.describe()))?
        else {
            tracing::info!("source ended");
            return Ok(());
        };
        if let Some(tap) = record.as_mut() {
            tap.offer(&frame);
        }
        for outlet in &mut outlets {
            if !outlet.offer(&frame, queue_full, source) {
                // One stage stopped: the sender is shutting down.
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Which side votes on the encoder's bitrate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Voter {
    /// The picam receiver's congestion control.
    Native,
    /// The browser viewers (their slowest estimate, within the fan-out's floor).
    Web,
}

/// The encoder runs at the lower of the two votes: one encoder feeds both, and the
/// native link's jam guard must hold whatever the browsers say (and the reverse).
#[derive(Debug, Default)]
struct BitrateVotes {
    native: Option<u32>,
    web: Option<u32>,
    applied: Option<u32>,
}

impl BitrateVotes {
    /// Records a vote; the bitrate to apply when the lower of the votes changed.
    fn set(&mut self, voter: Voter, vote: Option<u32>) -> Option<u32> {
        match voter {
            Voter::Native => self.native = vote,
            Voter::Web => self.web = vote,
        }
        let lowest = match (self.native, self.web) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }?;
        (self.applied != Some(lowest)).then(|| {
            self.applied = Some(lowest);
            lowest
        })
    }
}

fn lock(votes: &std::sync::Mutex<BitrateVotes>) -> std::sync::MutexGuard<'_, BitrateVotes> {
    // A poisoned lock only means a panic elsewhere; the votes are still consistent.
    votes.lock().unwrap_or_else(|e| e.into_inner())
}

/// Prints a browser-viewer record a second until shutdown, then a summary.
async fn web_report_loop(
    reporter: Reporter,
    mut stats: watch::Receiver<WebStats>,
    shutdown: Shutdown,
) {
    let start = Instant::now();
    let mut last_frames = 0u64;
    let mut last_at = start;
    let mut tick = tokio::time::interval_at(
        (start + Duration::from_secs(1)).into(),
        Duration::from_secs(1),
    );
    let record = |s: &WebStats, fps: f64, last: bool| WebRecord {
        kind: "web",
        t: start.elapsed().as_secs_f64(),
        viewers: s.fanout.viewers,
        joined: s.fanout.joined,
        refused_full: s.fanout.refused_full,
        frames_per_second: fps,
        frames_skipped_lagging: s.fanout.frames_skipped_lagging,
        frames_skipped_for_keyframe: s.fanout.frames_skipped_for_keyframe,
        keyframe_requests: s.fanout.keyframes_requested,
        unauthorized: s.signalling.unauthorized,
        rate_limited: s.signalling.rate_limited,
        last,
    };
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let now = *stats.borrow_and_update();
                let secs = last_at.elapsed().as_secs_f64().max(1e-3);
                let fps = (now.fanout.frames_sent - last_frames) as f64 / secs;
                last_frames = now.fanout.frames_sent;
                last_at = Instant::now();
                reporter.web(&record(&now, fps, false));
            }
            _ = shutdown.wait() => break,
        }
    }
    // The web task publishes its final counters as it ends (it is awaited after this
    // loop's summary only once it has: see `run_with`).
    let _ = stats.changed().await;
    let now = *stats.borrow();
    let fps = now.fanout.frames_sent as f64 / start.elapsed().as_secs_f64().max(1e-3);
    reporter.web(&record(&now, fps, true));
}

/// Prints a record a second until shutdown; hands back the reporter and the window
/// for the summary, which waits for the transport's final counters.
async fn report_loop(
    reporter: Reporter,
    stats: watch::Receiver<SenderStats>,
    queue_full: Arc<AtomicU64>,
    shutdown: Shutdown,
    repair: bool,
    secure: bool,
    recorder: Option<Arc<Recorder>>,
) -> (Reporter, SendWindow) {
    let snapshot = || SendSnapshot::take(*stats.borrow(), queue_full.load(Ordering::Relaxed));
    let mut window = SendWindow::new(snapshot(), repair, secure);
    let recording = || {
        recorder
            .as_ref()
            .map(|r| RecordingRecord::from_stats(&r.stats()))
    };
    let start = Instant::now();
    let mut tick = tokio::time::interval_at(
        (start + Duration::from_secs(1)).into(),
        Duration::from_secs(1),
    );
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let mut record = window.interval(snapshot());
                record.record = recording();
                reporter.send(&record);
            }
            _ = shutdown.wait() => return (reporter, window),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lower_vote_wins_and_repeats_are_quiet() {
        let mut votes = BitrateVotes::default();
        assert_eq!(votes.set(Voter::Native, Some(4_000_000)), Some(4_000_000));
        assert_eq!(votes.set(Voter::Native, Some(4_000_000)), None);
        assert_eq!(votes.set(Voter::Web, Some(1_500_000)), Some(1_500_000));
        // The native side rising does not lift the browsers' limit.
        assert_eq!(votes.set(Voter::Native, Some(5_000_000)), None);
        // The last browser left: the native vote alone applies again.
        assert_eq!(votes.set(Voter::Web, None), Some(5_000_000));
        assert_eq!(votes.set(Voter::Native, Some(2_000_000)), Some(2_000_000));
    }
}
