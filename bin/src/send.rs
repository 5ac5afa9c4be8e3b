//! `picam send`: source thread -> bounded channel -> transport task.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use capture::{Control, Source, TestPatternSource, Y4mSource};
use media::EncodedFrame;
use tokio::sync::{mpsc, watch};
use transport::{Protocol, Sender, SenderConfig, SenderEvent, SenderHooks, SenderStats};

use crate::cli::SendArgs;
use crate::config::Settings;
use crate::report::{Reporter, SendRecord};
use crate::{cpu, shutdown};

/// Frames between the source and the transport. Two: one being sent, one waiting; a
/// third would only add a frame of latency. A full queue drops the new frame and asks
/// the encoder for a keyframe.
pub const CAPTURE_QUEUE: usize = 2;
/// Control commands to the source (keyframe requests, bitrate); excess ones are dropped
/// because one pending keyframe request is as good as many.
pub const CONTROL_QUEUE: usize = 8;

/// Opens the configured source.
pub fn open_source(settings: &Settings, stamp: bool) -> Result<Box<dyn Source>> {
    let spec = settings.source.as_str();
    if spec == "test" {
        return Ok(Box::new(TestPatternSource::new(settings.encoder).context("starting the test pattern")?));
    }
    if let Some(path) = spec.strip_prefix("y4m:") {
        return Ok(Box::new(Y4mSource::open(path, settings.encoder, stamp).with_context(|| format!("opening source {spec}"))?));
    }
    bail!("invalid `source` = {spec:?}: allowed \"test\", \"y4m:FILE\" or \"y4m:-\"")
}

/// Runs the sender until the source ends, `--duration` passes or a signal arrives.
pub fn run(args: SendArgs) -> Result<()> {
    let settings = Settings::for_send(&args)?;
    let remote = settings.remote_addr()?;
    let mut source = open_source(&settings, args.stamp)?;
    tracing::info!(source = %source.describe(), %remote, protocol = ?settings.protocol, "starting sender");

    let (trigger, shutdown_rx) = shutdown::channel();
    let (frame_tx, frame_rx) = mpsc::channel::<EncodedFrame>(CAPTURE_QUEUE);
    let (control_tx, control_rx) = std_mpsc::sync_channel::<Control>(CONTROL_QUEUE);
    let queue_full = Arc::new(AtomicU64::new(0));

    let capture = {
        let trigger = trigger.clone();
        let queue_full = queue_full.clone();
        std::thread::Builder::new().name("capture".into()).spawn(move || {
            let result = capture_loop(source.as_mut(), &frame_tx, &control_rx, &queue_full, &trigger);
            if let Err(e) = &result {
                tracing::error!("{e:#}");
            }
            // The source ended (or failed): the sender drains and stops.
            trigger.fire();
            result
        })?
    };

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let result = runtime.block_on(async {
        tokio::spawn(shutdown::watch_signals(trigger.clone(), args.link.duration));
        let (stats_tx, stats_rx) = watch::channel(SenderStats::default());
        let max_packet = match settings.protocol {
            Protocol::Udp => settings.payload_size,
            // One message per frame on TCP: the largest frame the receiver accepts.
            Protocol::Tcp => transport::ReceiverConfig::default().max_frame_bytes + transport::wire::FRAGMENT_HEADER,
        };
        let sender = Sender::new(SenderConfig { max_packet, ..Default::default() }, transport::random_session_id());
        let on_event = move |event| match event {
            SenderEvent::ForceKeyframe => {
                let _ = control_tx.try_send(Control::ForceKeyframe);
            }
            SenderEvent::ReceiverLeft => tracing::info!("receiver said bye"),
        };
        let hooks = SenderHooks { frames: frame_rx, on_event, stats: stats_tx, shutdown: shutdown_rx.clone() };
        let reporter = tokio::spawn(report_loop(Reporter::new(args.link.stats, false), stats_rx, queue_full.clone(), shutdown_rx));
        let sent = match settings.protocol {
            Protocol::Udp => transport::udp::run_sender(settings.sender_bind_addr(remote), remote, sender, hooks).await,
            Protocol::Tcp => transport::tcp::run_sender(remote, sender, hooks).await,
        };
        trigger.fire();
        let _ = reporter.await;
        sent
    });
    let captured = capture.join().map_err(|_| anyhow::anyhow!("capture thread panicked"))?;
    result?;
    captured
}

fn capture_loop(
    source: &mut dyn Source,
    frames: &mpsc::Sender<EncodedFrame>,
    controls: &std_mpsc::Receiver<Control>,
    queue_full: &AtomicU64,
    trigger: &shutdown::Trigger,
) -> Result<()> {
    while !trigger.fired() {
        while let Ok(command) = controls.try_recv() {
            source.control(command);
        }
        let Some(frame) = source.next_frame().with_context(|| format!("source {}", source.describe()))? else {
            tracing::info!("source ended");
            return Ok(());
        };
        match frames.try_send(frame) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                // The next frame would reference the one dropped here: make it a keyframe.
                queue_full.fetch_add(1, Ordering::Relaxed);
                source.control(Control::ForceKeyframe);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return Ok(()),
        }
    }
    Ok(())
}

async fn report_loop(
    reporter: Reporter,
    mut stats: watch::Receiver<SenderStats>,
    queue_full: Arc<AtomicU64>,
    mut shutdown: watch::Receiver<bool>,
) {
    let start = Instant::now();
    let mut tick = tokio::time::interval_at((start + Duration::from_secs(1)).into(), Duration::from_secs(1));
    let mut last = (SenderStats::default(), start);
    let cpu_start = cpu::process_cpu_time();
    loop {
        let done = tokio::select! {
            _ = tick.tick() => false,
            _ = shutdown.changed() => true,
        };
        // Let the transport publish its last counters before the summary.
        if done {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let now = Instant::now();
        let s = *stats.borrow_and_update();
        let dt = now.duration_since(last.1).as_secs_f64().max(1e-3);
        let frames = s.frames_in + queue_full.load(Ordering::Relaxed);
        let cpu = (cpu::process_cpu_time() - cpu_start).as_secs_f64() * 1e3;
        let record = SendRecord {
            t: now.duration_since(start).as_secs_f64(),
            frames_captured: frames,
            frames_sent: s.frames_sent,
            frames_dropped: BTreeMap::from([
                ("capture_queue_full", queue_full.load(Ordering::Relaxed)),
                ("stale", s.frames_dropped),
            ]),
            keyframe_requests: s.keyframe_requests,
            keyframes_forced: s.keyframes_forced,
            bitrate_bps: if done { 0 } else { ((s.bytes - last.0.bytes) as f64 * 8.0 / dt) as u64 },
            fps: if done { 0.0 } else { (s.frames_sent - last.0.frames_sent) as f64 / dt },
            cpu_ms_per_frame: (frames > 0).then(|| cpu / frames as f64),
            last: done,
        };
        reporter.send(&record);
        last = (s, now);
        if done {
            return;
        }
    }
}
