//! Sender-side congestion control: a delay-gradient detector plus loss, driving the
//! encoder's target bitrate and, below the bitrate floor, its frame rate.
//!
//! The one-way delay of each frame (receiver's arrival time of its last fragment minus
//! the sender's send time of it) carries an unknown clock offset, but the offset is
//! constant: the smallest delay seen recently is the path's base delay, and the excess
//! over it is queueing. Queueing that rises means the bottleneck is saturated, and that
//! is visible before the bottleneck drops anything.
//!
//! Policy: start below the ceiling and probe up fast until the first congestion, then
//! back off fast (to 85 % of what actually got through), hold while the queue drains,
//! and probe up slowly (8 %/s). Never above the configured bitrate, never below the
//! floor; at the floor, lower the frame rate instead.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Knobs of the controller.
#[derive(Clone, Debug)]
pub struct CongestionConfig {
    /// The user's bitrate: the ceiling, bits/s.
    pub max_bitrate: u32,
    /// The floor, bits/s.
    pub min_bitrate: u32,
    /// Where probing starts, bits/s (clamped to the range).
    pub start_bitrate: u32,
    /// The configured frame rate: the ceiling.
    pub max_fps: u32,
    /// The lowest frame rate the controller may ask for.
    pub min_fps: u32,
    /// Queueing delay above which a rising queue is congestion.
    pub overuse_queue: Duration,
    /// Queueing delay below which the path is clear and probing may continue.
    pub clear_queue: Duration,
}

impl CongestionConfig {
    /// Defaults for a stream whose ceiling is `max_bitrate` at `max_fps`.
    pub fn for_stream(max_bitrate: u32, max_fps: u32) -> Self {
        Self {
            max_bitrate,
            min_bitrate: (max_bitrate / 10).clamp(100_000.min(max_bitrate), 500_000),
            start_bitrate: max_bitrate.min(1_500_000),
            max_fps,
            min_fps: max_fps.min(5),
            overuse_queue: Duration::from_millis(30),
            clear_queue: Duration::from_millis(10),
        }
    }
}

/// What the delay signal says about the path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Usage {
    /// No queue to speak of: probing may continue.
    Clear,
    /// Some queue, not growing: hold.
    Steady,
    /// A queue that is building: back off.
    Overuse,
}

const BASE_WINDOW: Duration = Duration::from_secs(10);
const RATE_WINDOW: Duration = Duration::from_millis(1000);
const TREND_SAMPLES: usize = 16;
const BACKOFF: f64 = 0.85;
const SLOW_START_GROWTH: f64 = 0.5; // per second
const PROBE_GROWTH: f64 = 0.08; // per second
const HOLD_AFTER_BACKOFF: Duration = Duration::from_millis(500);
const FPS_STEP_INTERVAL: Duration = Duration::from_millis(1000);

/// The controller. Feed it acknowledged frames and report boundaries; read targets.
#[derive(Debug)]
pub struct Controller {
    config: CongestionConfig,
    target: f64,
    fps: u32,
    slow_start: bool,
    /// Monotonic deque for the windowed minimum of one-way delay: (when, delay µs).
    base: VecDeque<(Instant, i64)>,
    /// Recent (arrival µs, queueing µs) for the trend.
    recent: VecDeque<(u64, f64)>,
    smoothed_queue_us: f64,
    /// Bytes acknowledged recently, for the delivered rate.
    acked: VecDeque<(Instant, usize)>,
    hold_until: Option<Instant>,
    last_decision: Option<Instant>,
    last_fps_step: Option<Instant>,
    usage: Usage,
}

impl Controller {
    /// A controller starting at `config.start_bitrate`.
    pub fn new(config: CongestionConfig) -> Self {
        let start = config
            .start_bitrate
            .clamp(config.min_bitrate, config.max_bitrate) as f64;
        Self {
            fps: config.max_fps,
            config,
            target: start,
            slow_start: true,
            base: VecDeque::new(),
            recent: VecDeque::new(),
            smoothed_queue_us: 0.0,
            acked: VecDeque::new(),
            hold_until: None,
            last_decision: None,
            last_fps_step: None,
            usage: Usage::Clear,
        }
    }

    /// Bitrate the encoder should aim for, bits/s.
    pub fn target_bitrate(&self) -> u32 {
        self.target.round() as u32
    }

    /// Frame rate the source should deliver.
    pub fn target_fps(&self) -> u32 {
        self.fps
    }

    /// Current queueing-delay estimate.
    pub fn queue_delay(&self) -> Duration {
        Duration::from_micros(self.smoothed_queue_us.max(0.0) as u64)
    }

    /// The latest verdict.
    pub fn usage(&self) -> Usage {
        self.usage
    }

    /// A frame of `bytes` sent at `sent_us` (sender clock) arrived at `arrival_us`
    /// (receiver clock).
    pub fn on_frame_acked(&mut self, now: Instant, sent_us: u64, arrival_us: u64, bytes: usize) {
        let delay = arrival_us as i64 - sent_us as i64;
        while self.base.back().is_some_and(|&(_, d)| d >= delay) {
            self.base.pop_back();
        }
        self.base.push_back((now, delay));
        while self
            .base
            .front()
            .is_some_and(|&(at, _)| now.saturating_duration_since(at) > BASE_WINDOW)
        {
            self.base.pop_front();
        }
        let base = self.base.front().map_or(delay, |&(_, d)| d);
        let queue = (delay - base) as f64;
        self.smoothed_queue_us = 0.7 * self.smoothed_queue_us + 0.3 * queue;
        self.recent.push_back((arrival_us, self.smoothed_queue_us));
        if self.recent.len() > TREND_SAMPLES {
            self.recent.pop_front();
        }
        self.acked.push_back((now, bytes));
        while self
            .acked
            .front()
            .is_some_and(|&(at, _)| now.saturating_duration_since(at) > RATE_WINDOW)
        {
            self.acked.pop_front();
        }
    }

    /// Slope of queueing delay over arrival time (µs of queue per µs), least squares.
    fn trend(&self) -> f64 {
        let n = self.recent.len();
        if n < 4 {
            return 0.0;
        }
        let t0 = self.recent[0].0 as f64;
        let (mut sx, mut sy, mut sxx, mut sxy) = (0.0, 0.0, 0.0, 0.0);
        for &(t, q) in &self.recent {
            let x = t as f64 - t0;
            sx += x;
            sy += q;
            sxx += x * x;
            sxy += x * q;
        }
        let n = n as f64;
        let denom = n * sxx - sx * sx;
        if denom.abs() < f64::EPSILON {
            return 0.0;
        }
        (n * sxy - sx * sy) / denom
    }

    /// Rate that got through over the last second, bits/s.
    fn delivered_bps(&self, now: Instant) -> Option<f64> {
        let first = self.acked.front()?.0;
        let span = now.saturating_duration_since(first).as_secs_f64();
        if span < 0.2 {
            return None;
        }
        let bytes: usize = self.acked.iter().map(|&(_, b)| b).sum();
        Some(bytes as f64 * 8.0 / span)
    }

    fn classify(&self) -> Usage {
        let queue = self.smoothed_queue_us;
        let over = self.config.overuse_queue.as_micros() as f64;
        let clear = self.config.clear_queue.as_micros() as f64;
        let trend = self.trend();
        // Rising by 5 % of real time (50 ms of queue per second) is a saturated link
        // even while the queue is still short; a deep queue is congestion unless it is
        // already draining quickly.
        if (queue > clear && trend > 0.05) || (queue > over && trend > -0.05) || queue > 4.0 * over
        {
            Usage::Overuse
        } else if queue < clear {
            Usage::Clear
        } else {
            Usage::Steady
        }
    }

    /// A receiver report has been applied (all its frames acknowledged), with `loss`
    /// the fraction of packets lost since the previous report. Updates the targets.
    pub fn on_report(&mut self, now: Instant, loss: f64) {
        let dt = self.last_decision.map_or(0.0, |t| {
            now.saturating_duration_since(t).as_secs_f64().min(0.5)
        });
        self.last_decision = Some(now);
        self.usage = self.classify();
        let holding = self.hold_until.is_some_and(|t| now < t);
        let (min, max) = (
            self.config.min_bitrate as f64,
            self.config.max_bitrate as f64,
        );
        if self.usage == Usage::Overuse || loss > 0.10 {
            if !holding {
                let delivered = self.delivered_bps(now).unwrap_or(self.target);
                let by_delay = self.target.min(delivered) * BACKOFF;
                let by_loss = self.target * (1.0 - loss / 2.0);
                let was_at_floor = self.target <= min;
                self.target = if self.usage == Usage::Overuse {
                    by_delay
                } else {
                    by_loss
                }
                .clamp(min, max);
                self.slow_start = false;
                self.hold_until = Some(now + HOLD_AFTER_BACKOFF);
                if was_at_floor {
                    self.fps = (self.fps * 3 / 4).max(self.config.min_fps);
                    self.last_fps_step = Some(now);
                }
            }
            return;
        }
        if self.usage != Usage::Clear || holding || loss > 0.02 {
            return;
        }
        let growth = if self.slow_start {
            SLOW_START_GROWTH
        } else {
            PROBE_GROWTH
        };
        self.target = (self.target * (1.0 + growth * dt)).clamp(min, max);
        // Frame rate comes back first once the bitrate has room again.
        let fps_due = self.last_fps_step.map_or(true, |t| {
            now.saturating_duration_since(t) >= FPS_STEP_INTERVAL
        });
        if self.fps < self.config.max_fps && self.target >= 1.5 * min && fps_due {
            self.fps = (self.fps + (self.config.max_fps / 6).max(1)).min(self.config.max_fps);
            self.last_fps_step = Some(now);
        }
    }

    /// Asserts the controller's rules; for tests.
    pub fn check_invariants(&self) {
        let t = self.target_bitrate();
        assert!(
            t >= self.config.min_bitrate && t <= self.config.max_bitrate,
            "target {t} outside its range"
        );
        assert!(
            self.fps >= self.config.min_fps && self.fps <= self.config.max_fps,
            "fps outside its range"
        );
        assert!(
            self.base.len() <= 100_000 && self.acked.len() <= 100_000,
            "windows unbounded"
        );
    }
}
