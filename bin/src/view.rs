//! Where the receiver's pictures go: nowhere but the stats (headless), or an SDL2
//! window. One loop (`recv::sink_loop`) drives either, so the stats, `--frames-out` and
//! the latency measurement are the same in both modes.
//!
//! The window is SDL-bound: it is opened, driven and dropped on the thread that calls
//! [`View::open`], which is the main thread (`recv::run` runs there).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use display::{display_available, Flow, Hud, Status, Window, WindowOptions};
use media::Picture;

use crate::cli::ViewArgs;
use crate::report::{self, RecvRecord};

/// How much of the latency history the overlay's graph shows.
const GRAPH_SPAN: Duration = Duration::from_secs(5);
/// No picture for this long and the window says the stream stalled.
const STALL_AFTER: Duration = Duration::from_secs(1);
/// While no pictures arrive, the window is redrawn this often (so "no frames for N s"
/// counts up).
const IDLE_REDRAW: Duration = Duration::from_secs(1);
/// Longest wait for a picture between two looks at the window's events: keeps the
/// window responsive. A picture that arrives ends the wait at once.
const WINDOW_POLL: Duration = Duration::from_millis(10);
/// Longest wait for a picture between two looks at the shutdown signal, headless.
const HEADLESS_POLL: Duration = Duration::from_millis(100);

/// The receiver's view.
pub enum View {
    /// No window: pictures are counted, measured and recorded, not shown.
    Headless,
    /// An SDL2 window (boxed: it is large and there is one per process).
    Window(Box<WindowView>),
}

/// The window and what its status and overlay need to remember.
pub struct WindowView {
    window: Window,
    /// Where the sender is expected, for "waiting for the sender at ADDR".
    waiting_for: String,
    /// The overlay's text lines, refreshed with each stats record.
    lines: Vec<String>,
    /// Stamp latency of recent pictures (ms) and when each was shown, oldest first.
    history_ms: VecDeque<f32>,
    history_at: VecDeque<Instant>,
    last_picture: Option<Instant>,
    last_present: Option<Instant>,
    /// The pairing code shown while waiting to be paired.
    pairing: Option<String>,
}

/// The overlay's initial state when neither `--overlay` nor `--no-overlay` is given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OverlayDefault {
    /// `picam recv`: a clean picture.
    Off,
    /// `picam demo`: the point is to see the numbers.
    On,
}

impl View {
    /// Opens what `args` ask for: headless with `--headless`; a window with `--window`
    /// (an error without a display); otherwise a window when a display is available,
    /// headless (said once, on stderr) when not or when the window cannot be opened.
    /// `peer` names where the sender is expected, for the title and status.
    pub fn open(args: &ViewArgs, overlay: OverlayDefault, peer: &str) -> Result<View> {
        if args.headless {
            return Ok(View::Headless);
        }
        if !display_available() {
            if args.window {
                bail!(
                    "--window: no display to open a window on (DISPLAY and WAYLAND_DISPLAY are \
                     unset; SDL_VIDEODRIVER=offscreen renders without one)"
                );
            }
            tracing::warn!("no display (DISPLAY and WAYLAND_DISPLAY are unset): running headless");
            return Ok(View::Headless);
        }
        let overlay_on = match (args.overlay, args.no_overlay) {
            (true, _) => true,
            (_, true) => false,
            _ => overlay == OverlayDefault::On,
        };
        let options = WindowOptions {
            title_peer: peer.to_owned(),
            vsync: args.vsync,
            overlay_on,
            ..Default::default()
        };
        let window = match Window::open(options) {
            Ok(window) => window,
            Err(e) if args.window => return Err(e).context("--window: cannot open the window"),
            Err(e) => {
                tracing::warn!("cannot open the window ({e}): running headless");
                return Ok(View::Headless);
            }
        };
        let on_off = |b: bool| if b { "on" } else { "off" };
        tracing::info!(
            "viewer window open: {} video driver, {} renderer, overlay {}, vsync {} \
             (keys: F fullscreen, S overlay, Esc/Q quit)",
            window.video_driver(),
            window.renderer_name(),
            on_off(overlay_on),
            on_off(args.vsync),
        );
        Ok(View::Window(Box::new(WindowView {
            window,
            waiting_for: peer.to_owned(),
            lines: Vec::new(),
            history_ms: VecDeque::new(),
            history_at: VecDeque::new(),
            last_picture: None,
            last_present: None,
            pairing: None,
        })))
    }

    /// Longest wait for a picture before the loop looks at events and signals again.
    pub fn max_wait(&self) -> Duration {
        match self {
            View::Headless => HEADLESS_POLL,
            View::Window(_) => WINDOW_POLL,
        }
    }

    /// Handles the window's pending events (without blocking). [`Flow::Quit`] means the
    /// user closed the window or pressed Esc or Q. Headless: always `Continue`.
    pub fn poll(&mut self) -> Flow {
        match self {
            View::Headless => Flow::Continue,
            View::Window(w) => w.window.handle_events(),
        }
    }

    /// Shows `picture` (stamp latency `latency_ms`, if it had a stamp) and returns the
    /// time from its decoding to the window's present returning. Headless: `None`.
    pub fn show(
        &mut self,
        picture: &Picture,
        latency_ms: Option<f64>,
        now: Instant,
    ) -> Result<Option<Duration>> {
        let View::Window(w) = self else {
            return Ok(None);
        };
        w.last_picture = Some(now);
        if let Some(ms) = latency_ms {
            w.history_ms.push_back(ms as f32);
            w.history_at.push_back(now);
        }
        while w
            .history_at
            .front()
            .is_some_and(|&t| now.saturating_duration_since(t) > GRAPH_SPAN)
        {
            w.history_at.pop_front();
            w.history_ms.pop_front();
        }
        w.present(Some(picture), now)
    }

    /// Redraws without a new picture when the window asks for it (`flow` is
    /// [`Flow::Redraw`]) or when it has not been drawn for a second, so the status
    /// ("waiting for the sender", "no frames for N s") stays true.
    pub fn idle(&mut self, flow: Flow, now: Instant) -> Result<()> {
        let View::Window(w) = self else {
            return Ok(());
        };
        let due = w
            .last_present
            .is_none_or(|t| now.saturating_duration_since(t) >= IDLE_REDRAW);
        if flow == Flow::Redraw || due {
            w.present(None, now)?;
        }
        Ok(())
    }

    /// Shows a pairing code (or stops showing it) until the first picture.
    pub fn set_pairing(&mut self, code: Option<String>) {
        if let View::Window(w) = self {
            if w.pairing != code {
                w.pairing = code;
                w.last_present = None;
            }
        }
    }

    /// Names the sender in the title once the transport has heard it.
    pub fn set_peer(&mut self, peer: Option<std::net::SocketAddr>) {
        if let (View::Window(w), Some(peer)) = (self, peer) {
            w.window.set_peer(&peer.to_string());
        }
    }

    /// Refreshes the overlay's lines from the latest stats record.
    pub fn update_stats(&mut self, record: &RecvRecord) {
        if let View::Window(w) = self {
            w.lines = overlay_lines(record);
        }
    }
}

impl WindowView {
    /// Live, waiting for the first picture, or stalled.
    fn status(&self, now: Instant) -> Status {
        if let (None, Some(code)) = (self.last_picture, &self.pairing) {
            return Status::Pairing { code: code.clone() };
        }
        match self.last_picture {
            None => Status::Waiting {
                peer: self.waiting_for.clone(),
            },
            Some(t) if now.saturating_duration_since(t) >= STALL_AFTER => Status::Stalled {
                for_secs: now.saturating_duration_since(t).as_secs(),
            },
            Some(_) => Status::Live,
        }
    }

    fn present(&mut self, picture: Option<&Picture>, now: Instant) -> Result<Option<Duration>> {
        let status = self.status(now);
        let hud = Hud {
            status,
            stats_lines: &self.lines,
            latency_history_ms: self.history_ms.make_contiguous(),
        };
        let timing = self
            .window
            .present(picture, &hud)
            .context("showing a picture")?;
        self.last_present = Some(timing.presented_at);
        Ok(timing.decoded_to_presented)
    }
}

/// The overlay's text: the same figures as the stats line, one topic a line.
fn overlay_lines(r: &RecvRecord) -> Vec<String> {
    let mut lines = vec![
        report::latency_text(&r.latency_ms),
        format!(
            "in {:.1} fps, out {:.1} fps, {:.2} Mbit/s",
            r.fps_in,
            r.fps_out,
            r.bitrate_bps as f64 / 1e6
        ),
        format!(
            "{}, keyframe requests {}",
            report::drops_text(&r.frames_dropped),
            r.keyframe_requests
        ),
    ];
    if let Some(p) = &r.present_ms {
        lines.push(format!(
            "decoded to presented p50 {:.1} p95 {:.1} ms",
            p.p50, p.p95
        ));
    }
    let repair = report::recv_repair_text(&r.repair);
    if !repair.is_empty() {
        lines.push(repair);
    }
    if let Some(record) = &r.record {
        lines.push(record.text());
    }
    lines
}
