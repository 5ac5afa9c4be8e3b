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
/// Delivered rate is measured over this much of the receiver's time: short enough to
/// see a capacity drop within a report or two.
const RATE_WINDOW: Duration = Duration::from_millis(300);
/// Queueing must persist this long (of the receiver's time) to count: a keyframe's
/// own burst queues briefly at the bottleneck and drains; congestion stays.
const SUSTAIN_WINDOW: Duration = Duration::from_millis(100);
const MAX_RECENT: usize = 512;
const BACKOFF: f64 = 0.85;
const SLOW_START_GROWTH: f64 = 0.5; // per second
const PROBE_GROWTH: f64 = 0.08; // per second
const HOLD_AFTER_BACKOFF: Duration = Duration::from_millis(300);
/// Queueing delay that a back-off aims to drain within about a second: the deeper the
/// queue, the further below the delivered rate the target goes (down to half).
const DRAIN_HORIZON_US: f64 = 1_000_000.0;
const FPS_STEP_INTERVAL: Duration = Duration::from_millis(1000);
/// After this long without congestion, probing speeds up again (the link may have
/// grown back), but never beyond what delivery has shown plus half.
const FAST_PROBE_AFTER: Duration = Duration::from_secs(2);
const FAST_PROBE_HEADROOM: f64 = 1.5;

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
    /// Bytes acknowledged recently, for the delivered rate.
    /// (arrival µs on the receiver's clock, bytes) of acknowledged packets: the rate
    /// at which the path delivers, measured where it delivers.
    acked: VecDeque<(u64, usize)>,
    hold_until: Option<Instant>,
    /// When the last back-off happened.
    last_backoff: Option<Instant>,
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
            acked: VecDeque::new(),
            hold_until: None,
            last_backoff: None,
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
        Duration::from_micros(self.sustained_queue_us().max(0.0) as u64)
    }

    /// The latest verdict.
    pub fn usage(&self) -> Usage {
        self.usage
    }

    /// A packet sent at `sent_us` (sender clock) arrived at `arrival_us` (receiver
    /// clock), completing `bytes` of delivered media (0 for a packet mid-frame).
    pub fn on_packet_acked(&mut self, now: Instant, sent_us: u64, arrival_us: u64, bytes: usize) {
        // Clocks of two machines may be years apart (a Pi without a real-time clock);
        // only the change of this difference matters. Clamped and saturating so a
        // report with absurd times cannot overflow anything below.
        let delay = (i128::from(arrival_us) - i128::from(sent_us))
            .clamp(i128::from(i64::MIN / 4), i128::from(i64::MAX / 4)) as i64;
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
        let queue = delay.saturating_sub(base) as f64;
        self.recent.push_back((arrival_us, queue));
        let window = SUSTAIN_WINDOW.as_micros() as u64;
        while self.recent.len() > MAX_RECENT
            || self
                .recent
                .front()
                .is_some_and(|&(t, _)| t.saturating_add(window) < arrival_us)
        {
            self.recent.pop_front();
        }
        self.acked.push_back((arrival_us, bytes));
        let window = RATE_WINDOW.as_micros() as u64;
        while self
            .acked
            .front()
            .is_some_and(|&(at, _)| at.saturating_add(window) < arrival_us)
        {
            self.acked.pop_front();
        }
    }

    /// The queueing delay that persisted over the last `SUSTAIN_WINDOW`, µs.
    fn sustained_queue_us(&self) -> f64 {
        let min = self
            .recent
            .iter()
            .map(|&(_, q)| q)
            .fold(f64::INFINITY, f64::min);
        if min.is_finite() {
            min.max(0.0)
        } else {
            0.0
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

    /// Rate that got through over the last [`RATE_WINDOW`] (300 ms) of the receiver's
    /// time, bits/s.
    fn delivered_bps(&self, _now: Instant) -> Option<f64> {
        let first = self.acked.front()?.0;
        let last = self.acked.back()?.0;
        let span = last.saturating_sub(first) as f64 / 1e6;
        if span < 0.1 {
            return None;
        }
        // The first sample opens the window; the bytes after it arrived within it.
        let bytes: usize = self.acked.iter().skip(1).map(|&(_, b)| b).sum();
        Some(bytes as f64 * 8.0 / span)
    }

    fn classify(&self) -> Usage {
        let queue = self.sustained_queue_us();
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
                let drain = (1.0 - self.sustained_queue_us() / DRAIN_HORIZON_US).clamp(0.5, 1.0);
                let by_delay = self.target.min(delivered) * BACKOFF * drain;
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
                self.last_backoff = Some(now);
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
        let long_clear = self
            .last_backoff
            .is_some_and(|t| now.saturating_duration_since(t) >= FAST_PROBE_AFTER);
        let target = if self.slow_start || long_clear {
            let fast = self.target * (1.0 + SLOW_START_GROWTH * dt);
            match self.delivered_bps(now) {
                // Probing fast is only safe as far as the encoder really fills the rate.
                Some(d) if long_clear => fast.min((d * FAST_PROBE_HEADROOM).max(self.target)),
                _ => fast,
            }
        } else {
            self.target * (1.0 + PROBE_GROWTH * dt)
        };
        self.target = target.clamp(min, max);
        // Frame rate comes back first once the bitrate has room again.
        let fps_due = self
            .last_fps_step
            .is_none_or(|t| now.saturating_duration_since(t) >= FPS_STEP_INTERVAL);
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
