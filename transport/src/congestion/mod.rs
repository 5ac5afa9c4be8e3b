//! The one rate controller: every wire's feedback becomes [`Signal`]s, and the encoder's
//! bitrate, the source's frame rate and the pacer's rate come from [`Controller`] alone.
//!
//! # Design: NADA (RFC 8698), gradual-update mode
//!
//! The aggregate congestion signal is a queueing delay plus a loss penalty (RFC 8698
//! §4.2: `x = d_queue + DLOSS * (p_loss / PLRREF)^2`). The reference rate `r` moves
//! towards the rate where `x` equals the reference `x_ref` (§4.3, eq. 5-7):
//!
//! ```text
//! x_offset = x - x_ref,  x_ref = XREF * RMAX / r
//! r <- r * (1 - KAPPA * (delta / TAU) * (x_offset / TAU) - KAPPA * ETA * (x_diff / TAU))
//! ```
//!
//! so at equilibrium the bottleneck holds a small *standing* queue instead of a
//! saw-tooth between empty and full. While no queue has built up for `LOGWIN`, the
//! rate ramps up multiplicatively from what the path delivered (accelerated ramp-up,
//! §4.3 eq. 3-4). The encoder's rate is the reference less the repayment of the
//! sender's backlog (§5.2.2, `r_vin = r_ref - BETA_V * 8 * L * FPS`).
//!
//! # Where ours differs from RFC 8698, and why
//!
//! - **Signals.** NADA's receiver computes `x` and sends it back; here the sender
//!   computes it from whatever the wire reports: picam's own reports (per-packet
//!   one-way delay, delivered bytes, loss), RTCP receiver reports (the round trip of
//!   sender reports, fraction lost, jitter when no round trip is echoed), a browser's
//!   REMB (a ceiling, [`Signal::PeerEstimate`]). The base delay is the minimum over 5
//!   minutes, which also removes the clock offset of two machines.
//! - **`x` is the largest queueing delay of a report, not a min-filtered one.** Our
//!   flow is video: what matters is when a frame's *last* packet arrives, and a frame
//!   that fills the link queues behind its own first packets for up to a frame
//!   interval. The largest sample of each report is the frame latency beyond the
//!   path's base; the smallest (the queue that stood between frames) decides the
//!   ramp-up and the brake, which need to know whether a queue persists.
//! - **`x_ref` is capped** at `max_reference_queue` (30 ms) and `XREF` is 25 ms: NADA's
//!   reference grows without bound at low rates (it shares a link among flows by
//!   weight); ours is a latency budget: p95 ≤ 50 ms with the path's own delay on top.
//! - **Loss after repair.** The loss penalty uses loss that repair did not mend
//!   (random loss on Wi-Fi is not congestion); the caller says which loss that is.
//! - **The brake.** Gradual update alone takes hundreds of milliseconds of queue to
//!   come down from 8 to 2 Mbit/s. When the newest deliveries all queued while the
//!   path delivered under `BRAKE_DELIVERY` of the rate (after a brake, or over RTCP:
//!   a queue that never emptied during a report and rose), the rate drops at once to
//!   what was delivered, less enough to drain the queue within `DRAIN` (as GCC's
//!   decrease to the received rate), then gradual update resumes. Every report is
//!   checked for it; a frame already in the router at the old rate takes four times
//!   as long at the new one, so each report of delay costs about four in latency.
//! - **Ramp-up** steps by 15 % at most every 150 ms rather than by up to 50 % per
//!   update, and only while frames cross faster than the reference.
//! - **Backlog** (`L`) is the bytes of frames beyond the average (keyframes) not yet
//!   paid back, not a rate-shaping buffer: the encoder gets up to half the rate less
//!   for the few frames after a keyframe, so the queue it left drains sooner. On a
//!   path that shows no queue there is nothing to pay back.
//! - **Frame rate.** At the floor, congestion lowers the frame rate instead.
//! - **Updates** happen per report, at most every `UPDATE_INTERVAL` (reports come
//!   every 15 ms on picam's wire, so every other one; 50 ms over RTCP) rather than
//!   every `DELTA` = 100 ms; `delta` is the real interval, capped. The factor
//!   `1 - a` is taken as `exp(-a)`, so a signal swinging between updates cancels.
//! - **Pacing** ([`Controller::pacing_rate`]) spreads a frame at a multiple of the
//!   rate (NADA's `r_send` drains its buffer within a frame interval), and goes
//!   `CLEAR_BOOST` times faster while the path shows no queue.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Knobs of the controller.
#[derive(Clone, Debug)]
pub struct CongestionConfig {
    /// The user's bitrate: the ceiling (NADA's `RMAX`), bits/s.
    pub max_bitrate: u32,
    /// The floor (`RMIN`), bits/s.
    pub min_bitrate: u32,
    /// Where the controller starts, bits/s (clamped to the range).
    pub start_bitrate: u32,
    /// The configured frame rate: the ceiling.
    pub max_fps: u32,
    /// The lowest frame rate the controller may ask for.
    pub min_fps: u32,
    /// NADA's `XREF`: the standing queue at the ceiling. At rate `r` the controller
    /// settles where the queue is `reference_queue * max_bitrate / r`.
    pub reference_queue: Duration,
    /// The reference never exceeds this: a latency budget (at low rates NADA's
    /// reference grows without bound).
    pub max_reference_queue: Duration,
    /// NADA's `QEPS`: below this the path counts as having no queue (ramp-up).
    pub clear_queue: Duration,
    /// A frame is paced at no less than this multiple of the target bitrate ...
    pub pacing_gain: f64,
    /// ... and fast enough to take at most this fraction of a frame interval.
    pub pacing_spread: f64,
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
            // A frame's latency beyond the path: a frame that fills the link takes up
            // to 3/4 of an interval (25 ms at 30 fps, paced at 4x) to cross it, and a
            // p95 of 50 ms leaves room for the size spread and the path.
            reference_queue: Duration::from_millis(25),
            max_reference_queue: Duration::from_millis(30),
            clear_queue: Duration::from_millis(10),
            // A frame takes at most a quarter of a frame interval to leave: at most
            // about 8 ms of added delay at 30 fps, and a keyframe reaches the
            // bottleneck at 4x the stream's rate rather than at line rate.
            pacing_gain: 4.0,
            pacing_spread: 0.25,
        }
    }
}

/// One piece of feedback, whatever wire it came from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Signal {
    /// A packet sent at `sent_us` (sender clock) arrived at `arrival_us` (receiver
    /// clock), and `bytes` were delivered since the previous such sample. The clocks
    /// may be years apart: only the change of their difference is used.
    Delivered {
        /// Sender clock, µs.
        sent_us: u64,
        /// Receiver clock, µs.
        arrival_us: u64,
        /// Bytes delivered since the previous sample.
        bytes: usize,
    },
    /// The round trip of a probe that crossed the media's queue (an RTCP sender
    /// report echoed by a receiver report).
    RoundTrip(Duration),
    /// Interarrival jitter (RFC 3550): a weak delay signal, used only while no delay or
    /// round-trip sample has ever been seen (peers that echo no sender report).
    Jitter(Duration),
    /// The receiver's own estimate of the path (REMB), bits/s: a ceiling.
    PeerEstimate(u32),
    /// A frame of `bytes` was queued for sending (not feedback: the sender's own
    /// record, for the encoder's budget).
    FrameQueued {
        /// The frame's size, parity included.
        bytes: usize,
    },
    /// A report is complete: `loss` is the fraction of packets lost since the previous
    /// report that repair did not mend. The controller updates its rates.
    Report {
        /// Fraction 0..=1.
        loss: f64,
    },
}

/// NADA's `KAPPA` (scaling of both terms).
const KAPPA: f64 = 0.5;
/// NADA's `ETA` (weight of the queue's change against its offset).
const ETA: f64 = 2.0;
/// NADA's `TAU`, seconds (the target's time constant).
const TAU: f64 = 0.35;
/// NADA's `DLOSS`, seconds, at loss `PLRREF`: 1 % residual loss weighs like 10 ms of
/// queue, 3 % like 90 ms.
const DLOSS: f64 = 0.010;
const PLRREF: f64 = 0.01;
/// How long after a brake a frame may still have been made for the old rate: the
/// encoder's own frame and one waiting for it, at 30 fps.
const STALE_AFTER_BRAKE: Duration = Duration::from_millis(100);
/// A frame beyond this many average frames at the new rate is not one the encoder
/// made for it (its buffer holds two; a keyframe comes to about 1.7).
const STALE_BUDGETS: usize = 3;
/// NADA's `LOGWIN`: no queue for this long allows the accelerated ramp-up.
const LOGWIN: Duration = Duration::from_millis(500);
/// The accelerated ramp-up's step over the delivered rate. NADA's is
/// `min(GAMMA_MAX, QBOUND / (rtt + DELTA + DFILT))`, so that one step's overshoot
/// builds at most `QBOUND` of queue before the feedback loop sees it; our loop (a
/// report interval, the filter, the path) is short, but the encoder answers a new
/// target only over a few frames, so a step is taken at most every `RAMP_INTERVAL`
/// and is small enough (15 %) that overshooting by it is a queue the gradual update
/// absorbs without braking.
const GAMMA: f64 = 0.15;
const RAMP_INTERVAL: Duration = Duration::from_millis(150);
/// The gradual update runs at most this often (reports may come more often, for the
/// brake).
const UPDATE_INTERVAL: Duration = Duration::from_millis(25);
/// The longest interval one gradual update integrates, seconds (a gap in the reports
/// must not become one huge step).
const MAX_DELTA: f64 = 0.2;
/// The base delay is the minimum over `BASE_BUCKETS` buckets of `BASE_BUCKET` each (5
/// minutes, as LEDBAT's per-minute history): a standing queue hides the base, so a
/// window of seconds would forget it under load and read the queue as the base (the
/// controller would then build the queue again on top). A route change is forgotten
/// after 5 minutes; a clock drift of 50 ppm between the machines is 15 ms over them.
const BASE_BUCKET: Duration = Duration::from_secs(10);
const BASE_BUCKETS: usize = 30;
/// The delivered rate is measured over this much of the receiver's time: short enough
/// that a capacity step shows within two reports, long enough for a few packets.
const RATE_WINDOW_US: u64 = 100_000;
/// Brake: a queue this many times the reference (and at least `BRAKE_MIN`) that never
/// emptied over the newest deliveries (so the bottleneck was busy all along and what
/// it delivered is its capacity), while it delivers less than `BRAKE_DELIVERY` of the
/// rate, is a capacity drop, not a drift (`Controller::fresh_drop`; after a brake the
/// queue must also rise).
const BRAKE_FACTOR: f64 = 0.5;
const BRAKE_MIN: f64 = 0.010;
/// Half, not 0.7: x264 with a VBV of two frames fills ~0.8 of its target, so at 3.4
/// Mbit/s asked through a 3 Mbit/s link 25 ms of deliveries often read under 0.7 of
/// the target with no capacity change; on the real kernel that braked to 1.35 Mbit/s
/// twice in 30 s (3 s of ramping back each). A real drop (8 -> 2) reads 0.25.
const BRAKE_DELIVERY: f64 = 0.5;
/// Within `DRAIN` of a brake, a rising standing queue while under this share of the
/// (new) rate gets through means the brake went to a rate still above the capacity:
/// its delivered rate was measured over a window that began before the drop (seen on
/// the real kernel at the 8 -> 2 Mbit/s step: a brake 21 ms after it went to 3.3
/// Mbit/s, and the queue grew to 200 ms before gradual update caught up). Only
/// after a brake: in a steady jam the encoder fills ~0.8 of its target.
const BRAKE_SHORTFALL: f64 = 0.85;
/// A queue that never fell below this (and below a packet's own time at the rate)
/// over the newest deliveries kept the bottleneck busy.
const BRAKE_STANDING: f64 = 0.003;
/// After a brake (or without delivered rates), a queue that never fell below this
/// during a report and rose.
const BRAKE_STANDING_RISING: f64 = 0.010;
/// A full packet, bits: its own time at the bottleneck reads as queueing delay.
const PACKET_BITS: f64 = 1200.0 * 8.0;
/// After braking, the queue is drained within this long.
const DRAIN: f64 = 0.5;
/// After a brake, no second brake for this long (its effect must show first).
const BRAKE_HOLD: Duration = Duration::from_millis(60);
/// The delivered rate a brake goes to is measured over this much of the receiver's
/// time (two reports).
const BRAKE_WINDOW_US: u64 = 25_000;
/// The announced bitrate moves only when the reference moved this much: an encoder
/// reconfigures per change.
const ANNOUNCE_STEP: f64 = 0.02;
/// NADA's `BETA_V`: the share of the debt paid back per frame (the encoder's rate
/// goes down by at most half the reference while paying).
const BETA_V: f64 = 0.5;
/// The debt is bounded (a source far above its budget is the controller's business).
const MAX_DEBT_FRAMES: f64 = 8.0;
/// How much faster the pacer goes on a path that shows no queue.
const CLEAR_BOOST: f64 = 8.0;
const FPS_STEP_INTERVAL: Duration = Duration::from_secs(1);
/// Samples kept between reports, and delivery records: bounds under a flood.
const MAX_SAMPLES: usize = 1024;

/// The rate controller. Feed it [`Signal`]s; read its targets.
#[derive(Debug)]
pub struct Controller {
    config: CongestionConfig,
    /// NADA's `r_ref`, bits/s.
    rate: f64,
    /// What [`Self::target_bitrate`] says (moves in steps of `ANNOUNCE_STEP`).
    announced: u32,
    fps: u32,
    /// Minimum of the delay (one-way or round trip) per bucket: (bucket start, µs).
    base: VecDeque<(Instant, i64)>,
    /// Queueing-delay samples since the last report, µs.
    /// (smallest, largest) queueing delay of the samples since the last report,
    /// seconds.
    batch: Option<(f64, f64)>,
    /// The smallest of the last report: the standing queue between frames.
    standing: f64,
    /// (receiver µs, queueing delay s) of the newest delivered samples, within
    /// `BRAKE_WINDOW_US` of the newest: whether the queue stands *now*, for the brake.
    recent: VecDeque<(u64, f64)>,
    /// The filtered queueing delay of the last report, seconds (`d_tilde`).
    queue: f64,
    /// The previous congestion signal, seconds (`x_prev`).
    x_prev: Option<f64>,
    /// Last time the queue was above `clear_queue`.
    last_queued: Option<Instant>,
    /// (receiver µs, bytes) of recent deliveries, for the delivered rate.
    delivered: VecDeque<(u64, usize)>,
    jitter: Option<f64>,
    /// Bytes of frames beyond the average not yet paid back by smaller ones.
    debt: f64,
    /// No queue for `LOGWIN`: no bottleneck near the rate.
    path_clear: bool,
    delay_seen: bool,
    peer: Option<f64>,
    last_update: Option<Instant>,
    last_brake: Option<Instant>,
    last_ramp: Option<Instant>,
    last_fps_step: Option<Instant>,
}

impl Controller {
    /// A controller starting at `config.start_bitrate`.
    pub fn new(config: CongestionConfig) -> Self {
        let rate = f64::from(
            config
                .start_bitrate
                .clamp(config.min_bitrate, config.max_bitrate),
        );
        Self {
            fps: config.max_fps,
            config,
            rate,
            announced: rate as u32,
            base: VecDeque::new(),
            batch: None,
            standing: 0.0,
            recent: VecDeque::new(),
            queue: 0.0,
            x_prev: None,
            last_queued: None,
            delivered: VecDeque::new(),
            jitter: None,
            debt: 0.0,
            path_clear: false,
            delay_seen: false,
            peer: None,
            last_update: None,
            last_brake: None,
            last_ramp: None,
            last_fps_step: None,
        }
    }

    /// Bitrate the encoder should aim for, bits/s.
    pub fn target_bitrate(&self) -> u32 {
        self.announced
    }

    /// Frame rate the source should deliver.
    pub fn target_fps(&self) -> u32 {
        self.fps
    }

    /// The queueing delay of the last report.
    pub fn queue_delay(&self) -> Duration {
        Duration::from_secs_f64(self.queue.max(0.0))
    }

    /// The rate at which a frame of `frame_bytes` is paced, bits/s: at least
    /// `pacing_gain` times the rate (an average frame takes about 1/gain of a frame
    /// interval), and fast enough that even a large frame takes at most
    /// `pacing_spread` of a frame interval.
    ///
    /// While the path shows no queue at all (a LAN, loopback), both are `CLEAR_BOOST`
    /// times faster: spreading a keyframe over a quarter of a frame interval is what
    /// cost the clean link its tail latency (+8 ms on every keyframe, p99 = 1.9x p50),
    /// and a path that queued nothing for `LOGWIN` has no bottleneck near the rate.
    pub fn pacing_rate(&self, frame_bytes: usize) -> f64 {
        let boost = if self.path_clear { CLEAR_BOOST } else { 1.0 };
        let interval = 1.0 / f64::from(self.fps.max(1));
        let bound = frame_bytes as f64 * 8.0 * boost / (self.config.pacing_spread * interval);
        (boost * self.config.pacing_gain * self.rate).max(bound)
    }

    /// When the rate was last cut to what the path delivered, while the queue that
    /// brake found may still be draining (it is sized to drain within `DRAIN`, 0.5 s):
    /// packets sent before then may still be in that queue, not lost. A NACK for one
    /// came from a receiver that took a slow tail for a lost one, and a resend would
    /// only queue behind it (seen at the 8 -> 2 Mbit/s step: 38 resends, 180 ms of the
    /// new link, and a 382 ms transient where runs without them read 100-200 ms).
    pub fn brake_draining(&self, now: Instant) -> Option<Instant> {
        self.last_brake
            .filter(|&t| now.saturating_duration_since(t) <= Duration::from_secs_f64(DRAIN))
    }

    /// Whether a frame of `bytes` was made for the rate before a capacity drop: just
    /// after a brake (within `STALE_AFTER_BRAKE`), far beyond the new rate's average
    /// frame (`STALE_BUDGETS` of them). Sent, it would take several frame intervals to
    /// cross the narrowed link and every frame behind it would wait as long; both
    /// wires' senders drop it unsent and ask for a keyframe made at the new rate.
    pub fn made_for_old_rate(&self, now: Instant, bytes: usize) -> bool {
        self.braked_within(now, STALE_AFTER_BRAKE) && bytes > STALE_BUDGETS * self.frame_budget()
    }

    /// Whether the rate was cut to what the path delivered (a capacity drop) within
    /// `within`: frames the encoder made before it heard of the cut are for a rate the
    /// path no longer has.
    pub fn braked_within(&self, now: Instant, within: Duration) -> bool {
        self.last_brake
            .is_some_and(|t| now.saturating_duration_since(t) <= within)
    }

    /// The bytes an average frame has at the current rate: the pacer's burst.
    pub fn frame_budget(&self) -> usize {
        (self.rate / 8.0 / f64::from(self.fps.max(1))) as usize
    }

    /// Forgets the delay samples taken so far: the feedback switched to another kind
    /// of delay (one-way delays on the two hosts' clocks after round trips), whose
    /// minimum must not mix with the old one's.
    pub fn restart_delay_base(&mut self) {
        self.base.clear();
        self.batch = None;
        self.recent.clear();
    }

    /// Takes one signal; [`Signal::Report`] updates the targets.
    pub fn on_signal(&mut self, now: Instant, signal: Signal) {
        match signal {
            Signal::Delivered {
                sent_us,
                arrival_us,
                bytes,
            } => {
                // Clamped and saturating: a report with absurd times overflows nothing.
                let delay = (i128::from(arrival_us) - i128::from(sent_us))
                    .clamp(i128::from(i64::MIN / 4), i128::from(i64::MAX / 4))
                    as i64;
                let queue = self.delay_sample(now, delay);
                push_windowed(&mut self.recent, arrival_us, queue, BRAKE_WINDOW_US);
                push_windowed(&mut self.delivered, arrival_us, bytes, RATE_WINDOW_US);
            }
            Signal::RoundTrip(rtt) => {
                self.delay_sample(now, rtt.as_micros().min(i64::MAX as u128) as i64);
            }
            Signal::Jitter(jitter) => self.jitter = Some(jitter.as_secs_f64()),
            Signal::PeerEstimate(bps) => self.peer = Some(f64::from(bps)),
            Signal::FrameQueued { bytes } => {
                // A frame beyond the average (a keyframe) is paid back by the frames
                // after it; one below the average pays back what is owed.
                let budget = self.rate / 8.0 / f64::from(self.fps.max(1));
                self.debt =
                    (self.debt + bytes as f64 - budget).clamp(0.0, MAX_DEBT_FRAMES * budget);
                self.announce();
            }
            Signal::Report { loss } => self.update(now, loss.clamp(0.0, 1.0)),
        }
    }

    /// Takes one delay sample; returns its queueing delay, seconds.
    fn delay_sample(&mut self, now: Instant, delay: i64) -> f64 {
        self.delay_seen = true;
        match self.base.back_mut() {
            Some((start, min)) if now.saturating_duration_since(*start) < BASE_BUCKET => {
                *min = (*min).min(delay);
            }
            _ => {
                if self.base.len() == BASE_BUCKETS {
                    self.base.pop_front();
                }
                self.base.push_back((now, delay));
            }
        }
        let base = self.base.iter().map(|&(_, d)| d).min().unwrap_or(delay);
        let queue = delay.saturating_sub(base) as f64 / 1e6;
        // The smallest sample of a report: jitter and a frame's own burst add to
        // single samples, the queue underlies all of them (NADA's min filter).
        self.batch = Some(
            self.batch
                .map_or((queue, queue), |(lo, hi)| (lo.min(queue), hi.max(queue))),
        );
        queue
    }

    /// What got through over the last `window_us` (at most `RATE_WINDOW_US`) of the
    /// receiver's time, bits/s.
    fn delivered_bps(&self, window_us: u64) -> Option<f64> {
        let last = self.delivered.back()?.0;
        let from = last.saturating_sub(window_us);
        let mut recent = self.delivered.iter().skip_while(|&&(at, _)| at < from);
        let first = recent.next()?.0;
        let span = last.saturating_sub(first) as f64 / 1e6;
        if span < 0.015 {
            return None;
        }
        // The first sample opens the window; the bytes after it arrived within it.
        let bytes: usize = recent.map(|&(_, b)| b).sum();
        Some(bytes as f64 * 8.0 / span)
    }

    /// The encoder's rate: the reference less the repayment of what frames beyond the
    /// average left in the queue (NADA's `r_vin`), announced in steps.
    fn announce(&mut self) {
        let min = f64::from(self.config.min_bitrate);
        // A path without a queue carries a keyframe at once: nothing to pay back, and
        // no reason to change the encoder's rate around every keyframe.
        let debt = if self.path_clear { 0.0 } else { self.debt };
        let repay = BETA_V * debt * 8.0 * f64::from(self.fps.max(1));
        let rate = (self.rate - repay).max(self.rate / 2.0).max(min);
        let moved = (rate - f64::from(self.announced)).abs();
        if moved > ANNOUNCE_STEP * f64::from(self.announced)
            || rate <= min
            || rate >= self.ceiling()
        {
            self.announced =
                (rate.round() as u32).clamp(self.config.min_bitrate, self.config.max_bitrate);
        }
    }

    fn ceiling(&self) -> f64 {
        let (min, max) = (
            f64::from(self.config.min_bitrate),
            f64::from(self.config.max_bitrate),
        );
        self.peer.map_or(max, |p| p.clamp(min, max))
    }

    /// NADA's reference queue at the current rate, seconds.
    fn x_ref(&self) -> f64 {
        let max = f64::from(self.config.max_bitrate);
        // Round trips (RTCP sender reports, which leave right after a frame's last
        // packet) measure what a frame's last packet waits, as one-way delays do.
        (self.config.reference_queue.as_secs_f64() * max / self.rate.max(1.0))
            .min(self.config.max_reference_queue.as_secs_f64())
    }

    /// A fresh capacity drop (no brake within `DRAIN`), seen in the newest deliveries:
    /// they all queued (more than a full packet's own time at the rate would explain)
    /// while under half the rate got through, and the signal `x` is past half the
    /// reference. Checked on every report, so a drop is seen within one report after
    /// its effect reaches the receiver; a report that began before the drop holds
    /// samples from before it, so the report's own smallest would wait a whole report
    /// more. Returns what the path delivers.
    fn fresh_drop(&self, now: Instant, x: f64) -> Option<f64> {
        let fresh = self
            .last_brake
            .is_none_or(|t| now.saturating_duration_since(t).as_secs_f64() >= DRAIN);
        let delivering = self.delivered_bps(BRAKE_WINDOW_US)?;
        let standing_now = self.recent.iter().map(|&(_, q)| q).reduce(f64::min)?;
        let packet_time = PACKET_BITS / self.rate.max(1.0);
        (fresh
            && standing_now > BRAKE_STANDING.max(1.5 * packet_time)
            && x > (BRAKE_FACTOR * self.x_ref()).max(BRAKE_MIN)
            && delivering < BRAKE_DELIVERY * self.rate)
            .then_some(delivering)
    }

    fn update(&mut self, now: Instant, loss: f64) {
        let loss_signal = DLOSS * (loss / PLRREF).powi(2);
        // Reports may come more often than the gradual update runs (its gain is tuned
        // for `UPDATE_INTERVAL`, and a signal taken over shorter reports swings
        // more); between updates the samples gather and only a fresh drop is looked for.
        let early = self
            .last_update
            .is_some_and(|t| now.saturating_duration_since(t) < UPDATE_INTERVAL);
        if early {
            let x = self.batch.map_or(self.queue, |(_, hi)| hi) + loss_signal;
            if self.fresh_drop(now, x).is_none() {
                return;
            }
        }
        let delta = self.last_update.map_or(0.0, |t| {
            now.saturating_duration_since(t)
                .as_secs_f64()
                .min(MAX_DELTA)
        });
        self.last_update = Some(now);
        if let Some((lo, hi)) = self.batch.take() {
            (self.standing, self.queue) = (lo, hi);
        } else if !self.delay_seen {
            // Peers that echo no round trip: jitter stands in for the queue.
            self.queue = self.jitter.unwrap_or(0.0);
            self.standing = self.queue;
        }
        let min = f64::from(self.config.min_bitrate);
        let ceiling = self.ceiling();
        let x = self.queue + loss_signal;
        let x_diff = self.x_prev.map_or(0.0, |p| x - p);
        self.x_prev = Some(x);
        let x_ref = self.x_ref();
        // Ramp-up needs a path without a standing queue, and frames that cross it
        // faster than the reference.
        if self.standing > self.config.clear_queue.as_secs_f64() || x > x_ref || loss > 0.0 {
            self.last_queued = Some(now);
        }
        let delivered = self.delivered_bps(RATE_WINDOW_US);
        let braked = self
            .last_brake
            .is_some_and(|t| now.saturating_duration_since(t) < BRAKE_HOLD);
        let was_at_floor = self.rate <= min;
        self.path_clear = self
            .last_queued
            .is_none_or(|t| now.saturating_duration_since(t) >= LOGWIN);
        let ramp_due = self
            .last_ramp
            .is_none_or(|t| now.saturating_duration_since(t) >= RAMP_INTERVAL);
        // A drop that is still going on after a brake (the newest deliveries then
        // come from a queue that is draining by design, and at 1-2 Mbit/s a packet
        // alone takes 5-10 ms, so only a rise tells), or one on a wire without
        // delivered rates (RTCP): a standing queue that keeps rising far past the
        // equilibrium while under half the rate gets through.
        let short = if self.braked_within(now, Duration::from_secs_f64(DRAIN)) {
            BRAKE_SHORTFALL
        } else {
            BRAKE_DELIVERY
        };
        let rising_drop = || {
            let starved = self
                .delivered_bps(BRAKE_WINDOW_US)
                .map_or(self.delivered.is_empty(), |d| d < short * self.rate);
            (self.standing > BRAKE_STANDING_RISING
                && x_diff > 0.0
                && x > (BRAKE_FACTOR * x_ref).max(BRAKE_MIN)
                && starved)
                .then(|| self.delivered_bps(BRAKE_WINDOW_US).unwrap_or(self.rate))
        };
        let drop = if braked {
            None
        } else {
            self.fresh_drop(now, x).or_else(rising_drop)
        };
        let rate = if let Some(delivering) = drop {
            // Capacity dropped: straight to what got through, less the queue's drain.
            tracing::debug!(
                queue_ms = x * 1e3,
                delivered_bps = delivering,
                rate_bps = self.rate,
                "brake"
            );
            self.last_brake = Some(now);
            delivering.min(self.rate) * (1.0 - self.queue / DRAIN).max(0.5)
        } else if ramp_due && self.path_clear {
            // Accelerated ramp-up: no queue for a while, so the path has room; grow
            // from what it delivered (the encoder may not fill the target).
            self.last_ramp = Some(now);
            let through = delivered.unwrap_or(self.rate);
            self.rate.max((1.0 + GAMMA) * through.min(self.rate))
        } else {
            let offset = x - x_ref;
            // RFC 8698's factor `1 - a` taken as `exp(-a)`: the same for small steps,
            // but a signal that swings up and down between updates cancels out, where
            // (1 - a)(1 + a) = 1 - a^2 would drift the rate down with every swing.
            let exponent = -KAPPA * (delta / TAU) * (offset / TAU) - KAPPA * ETA * (x_diff / TAU);
            self.rate * exponent.exp().clamp(0.5, 1.5)
        };
        self.rate = rate.clamp(min, ceiling.max(min));
        self.announce();
        self.update_fps(now, was_at_floor && x > x_ref);
    }

    /// At the floor under congestion the frame rate goes down; it comes back first once
    /// the bitrate has room again.
    fn update_fps(&mut self, now: Instant, congested_at_floor: bool) {
        let due = self
            .last_fps_step
            .is_none_or(|t| now.saturating_duration_since(t) >= FPS_STEP_INTERVAL);
        if !due {
            return;
        }
        let min = f64::from(self.config.min_bitrate);
        if congested_at_floor && self.fps > self.config.min_fps {
            self.fps = (self.fps * 3 / 4).max(self.config.min_fps);
            self.last_fps_step = Some(now);
        } else if self.fps < self.config.max_fps && self.rate >= 1.5 * min {
            self.fps = (self.fps + (self.config.max_fps / 6).max(1)).min(self.config.max_fps);
            self.last_fps_step = Some(now);
        }
    }

    /// Asserts the controller's rules; for tests and fuzzers.
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
        assert!(self.rate.is_finite(), "rate not finite");
        assert!(
            self.base.len() <= BASE_BUCKETS && self.delivered.len() <= MAX_SAMPLES,
            "windows unbounded"
        );
    }
}

/// Appends `(at, value)` to a window of samples in receiver time: at most
/// `MAX_SAMPLES` (a flood) and none older than `window_us` before the newest.
fn push_windowed<T>(samples: &mut VecDeque<(u64, T)>, at: u64, value: T, window_us: u64) {
    if samples.len() >= MAX_SAMPLES {
        samples.pop_front();
    }
    samples.push_back((at, value));
    while samples
        .front()
        .is_some_and(|&(first, _)| first.saturating_add(window_us) < at)
    {
        samples.pop_front();
    }
}

#[cfg(test)]
mod tests;
