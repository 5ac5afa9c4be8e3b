//! All browser viewers of one sender: admission, the datagram demultiplexer, and the
//! policy that turns several viewers' wishes into one encoder's keyframes and bitrate.
//!
//! ## Policy when viewers disagree
//! - **Keyframes.** Any viewer that cannot decode (it joined, asked by PLI/FIR, lost
//!   the reference chain, or skipped frames to catch up) wants one. Wishes are
//!   coalesced: at most one encoder request per [`FanoutConfig::keyframe_interval`];
//!   a wish inside that interval is granted when it ends, unless a keyframe went out
//!   meanwhile. So a joining crowd or a PLI storm costs one keyframe per interval, and
//!   viewers that need nothing just receive it.
//! - **Bitrate.** The slowest viewer's bandwidth estimate (str0m's, from TWCC or
//!   REMB) is a signal to the crate's one rate controller ([`crate::congestion`]),
//!   whose target is the web side's vote; its floor is `floor_fraction` of the
//!   ceiling: a single slow phone may pull the picture's quality down that far and no
//!   further. A viewer slower than the floor is not served at the others' cost: its
//!   own queue runs behind, and it skips frames (newest wins) and waits for the next
//!   keyframe rather than starving or freezing the rest. A lone viewer has no others:
//!   the floor does not apply, and the encoder follows its estimate all the way down.
//! - **Leaving.** A viewer that says goodbye (WHEP DELETE), or whose ICE consent checks
//!   stop for a few seconds, or that never connects, frees its slot at once; the others
//!   do not notice. When the last viewer leaves, the web side stops voting on bitrate.
//!
//! Sans-IO: the driver (`io/web.rs`) feeds [`FanoutInput`]s with `now` and acts on
//! [`Output`]s (call-order rule of [`crate::Machine`]).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::viewer::{
    GoneReason, ViewerConfig, ViewerEvent, ViewerInput, ViewerOutput, ViewerStats, WebFrame,
    WebViewer,
};
use crate::congestion::{CongestionConfig, Controller, Signal};
use crate::{Machine, Output, Transmit, TransportError};

/// Settings of the fan-out.
#[derive(Clone, Debug)]
pub struct FanoutConfig {
    /// Viewers at once; offers beyond get "full" (WHEP 503).
    pub max_viewers: usize,
    /// Each viewer's settings.
    pub viewer: ViewerConfig,
    /// Least time between two keyframe requests to the encoder.
    pub keyframe_interval: Duration,
    /// With two viewers or more, the web side never asks for less than this fraction
    /// of the ceiling.
    pub floor_fraction: f64,
}

impl Default for FanoutConfig {
    fn default() -> Self {
        Self {
            max_viewers: 8,
            viewer: ViewerConfig::default(),
            keyframe_interval: Duration::from_millis(500),
            floor_fraction: 0.25,
        }
    }
}

/// The web side's rate controller: the viewers' estimate is its ceiling; the policy's
/// floor (with two viewers or more) is applied to its target in `revote`.
fn rate_config(config: &FanoutConfig) -> CongestionConfig {
    let ceiling = config.viewer.max_bitrate;
    CongestionConfig {
        ..CongestionConfig::for_stream(ceiling, 30)
    }
}

/// A viewer's handle: its WHEP resource name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ViewerId(pub u64);

impl std::fmt::Display for ViewerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl std::str::FromStr for ViewerId {
    type Err = std::num::ParseIntError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        u64::from_str_radix(s, 16).map(ViewerId)
    }
}

/// What goes in.
#[derive(Debug)]
pub enum FanoutInput<'a> {
    /// A datagram on the web UDP socket.
    Datagram {
        /// Sender.
        from: SocketAddr,
        /// Our address it arrived on.
        to: SocketAddr,
        /// Bytes.
        bytes: &'a [u8],
    },
    /// A frame from the encoder for every viewer.
    Frame(&'a WebFrame),
    /// A WHEP DELETE for this viewer.
    Leave(ViewerId),
    /// Time passes.
    Timeout,
}

/// What the fan-out tells the sender.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FanoutEvent {
    /// Ask the encoder for a keyframe now.
    ForceKeyframe,
    /// The web side's bitrate vote, bits/s (`None`: no viewers, no vote).
    SetBitrate(Option<u32>),
    /// A viewer's media started flowing.
    ViewerConnected(ViewerId),
    /// A viewer is gone and its slot free.
    ViewerLeft(ViewerId, GoneReason),
}

/// Why an offer was not taken.
#[derive(Debug)]
pub enum OfferRefused {
    /// All slots are taken.
    Full,
    /// The offer cannot be answered.
    Bad(TransportError),
}

/// Counters of the whole web side.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FanoutStats {
    /// Viewers now.
    pub viewers: usize,
    /// Viewers ever admitted.
    pub joined: u64,
    /// Offers refused because all slots were taken.
    pub refused_full: u64,
    /// Keyframe requests passed to the encoder.
    pub keyframes_requested: u64,
    /// Datagrams no viewer took.
    pub stray_datagrams: u64,
    /// Summed counters of the viewers present and past.
    pub frames_sent: u64,
    /// Frames skipped by viewers waiting for a keyframe.
    pub frames_skipped_for_keyframe: u64,
    /// Frames skipped by viewers running behind.
    pub frames_skipped_lagging: u64,
}

struct Slot {
    id: ViewerId,
    viewer: WebViewer,
    /// This viewer reached its timeout in the current drain.
    idle_until: Option<Instant>,
}

/// The browser viewers of one sender.
pub struct WebFanout {
    config: FanoutConfig,
    crypto: Arc<str0m::config::CryptoProvider>,
    slots: Vec<Slot>,
    next_id: u64,
    events: VecDeque<FanoutEvent>,
    /// A viewer wants a keyframe that has not been asked for yet.
    keyframe_wanted: bool,
    last_keyframe_request: Option<Instant>,
    voted_bitrate: Option<u32>,
    /// The rate controller the viewers' estimates feed.
    rate: Controller,
    /// Counters of viewers that have left, so totals stay monotonic.
    past: ViewerStats,
    stats: FanoutStats,
}

impl std::fmt::Debug for WebFanout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebFanout")
            .field("viewers", &self.slots.len())
            .field("voted_bitrate", &self.voted_bitrate)
            .finish_non_exhaustive()
    }
}

impl WebFanout {
    /// A fan-out with no viewers. `id_seed` makes viewer ids unguessable across runs
    /// (they name WHEP resources; the token still guards every request).
    pub fn new(config: FanoutConfig, id_seed: u64) -> Self {
        Self {
            rate: Controller::new(rate_config(&config)),
            config,
            crypto: Arc::new(str0m::crypto::from_feature_flags()),
            slots: Vec::new(),
            next_id: id_seed,
            events: VecDeque::new(),
            keyframe_wanted: false,
            last_keyframe_request: None,
            voted_bitrate: None,
            past: ViewerStats::default(),
            stats: FanoutStats::default(),
        }
    }

    /// Admits a viewer for a WHEP offer: its id and the SDP answer. `candidate` is our
    /// UDP address as this browser reaches us.
    pub fn offer(
        &mut self,
        now: Instant,
        sdp: &str,
        candidate: SocketAddr,
    ) -> Result<(ViewerId, String), OfferRefused> {
        // Viewers already gone free their slots before counting.
        self.reap(now);
        if self.slots.len() >= self.config.max_viewers {
            self.stats.refused_full += 1;
            return Err(OfferRefused::Full);
        }
        let (viewer, answer) = WebViewer::accept_offer(
            now,
            sdp,
            candidate,
            self.crypto.clone(),
            self.config.viewer.clone(),
        )
        .map_err(OfferRefused::Bad)?;
        // Ids step by an odd constant from a random seed: distinct for 2^64 joins.
        self.next_id = self.next_id.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let id = ViewerId(self.next_id);
        self.slots.push(Slot {
            id,
            viewer,
            idle_until: None,
        });
        self.stats.joined += 1;
        Ok((id, answer))
    }

    /// Whether a viewer with this id is present.
    pub fn has_viewer(&self, id: ViewerId) -> bool {
        self.slots.iter().any(|s| s.id == id)
    }

    /// Viewers allowed at once.
    pub fn max_viewers(&self) -> usize {
        self.config.max_viewers
    }

    /// Viewers present.
    pub fn viewers(&self) -> usize {
        self.slots.len()
    }

    /// Counters.
    pub fn stats(&self) -> FanoutStats {
        let mut stats = self.stats;
        stats.viewers = self.slots.len();
        let mut sum = self.past;
        for slot in &self.slots {
            add_stats(&mut sum, slot.viewer.stats());
        }
        stats.frames_sent = sum.frames_sent;
        stats.frames_skipped_for_keyframe = sum.frames_skipped_for_keyframe;
        stats.frames_skipped_lagging = sum.frames_skipped_lagging;
        stats
    }

    /// Checks the invariants (tests and fuzzers).
    pub fn check_invariants(&self) {
        assert!(
            self.slots.len() <= self.config.max_viewers,
            "too many viewers"
        );
        for (i, a) in self.slots.iter().enumerate() {
            assert!(
                self.slots[i + 1..].iter().all(|b| b.id != a.id),
                "duplicate viewer id"
            );
        }
    }

    /// Removes viewers that are gone (their Gone event was already handed out).
    fn reap(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.slots.len() {
            if let Some(why) = self.slots[i].viewer.gone() {
                let slot = self.slots.swap_remove(i);
                add_stats(&mut self.past, slot.viewer.stats());
                self.events.push_back(FanoutEvent::ViewerLeft(slot.id, why));
                self.revote(now);
            } else {
                i += 1;
            }
        }
    }

    fn on_viewer_event(&mut self, now: Instant, id: ViewerId, event: ViewerEvent) {
        match event {
            ViewerEvent::Connected => {
                self.events.push_back(FanoutEvent::ViewerConnected(id));
                // Its cautious start estimate votes until its browser reports.
                self.revote(now);
            }
            ViewerEvent::KeyframeWanted => self.keyframe_wanted = true,
            ViewerEvent::Estimate(_) => self.revote(now),
            // Reaped (and reported) at the end of this drain.
            ViewerEvent::Gone(_) => {}
        }
    }

    /// Recomputes the web side's bitrate vote; an event when it moved enough.
    fn revote(&mut self, now: Instant) {
        let ceiling = self.config.viewer.max_bitrate;
        let live = || {
            self.slots
                .iter()
                .filter(|s| s.viewer.gone().is_none() && s.viewer.connected())
        };
        // The floor keeps one slow viewer from costing the others their picture; a lone
        // viewer has no others, and held above its estimate its queue could only run
        // behind: its frames skipped, one keyframe a second (issue 22's step).
        let floor = if live().count() > 1 {
            (f64::from(ceiling) * self.config.floor_fraction.clamp(0.0, 1.0)) as u32
        } else {
            0
        };
        let slowest = live().map(|s| s.viewer.estimate_bps()).min();
        let vote = slowest.map(|bps| {
            // The estimate already folds the browser path's delay and loss in (str0m's
            // delay-based estimator over TWCC, or the browser's REMB): it is the
            // controller's ceiling, and a report with no loss of its own.
            self.rate.on_signal(now, Signal::PeerEstimate(bps));
            self.rate.on_signal(now, Signal::Report { loss: 0.0 });
            self.rate.target_bitrate().max(floor)
        });
        if vote != self.voted_bitrate {
            self.voted_bitrate = vote;
            self.events.push_back(FanoutEvent::SetBitrate(vote));
        }
    }

    /// Grants a pending keyframe wish when the rate limit allows.
    fn maybe_request_keyframe(&mut self, now: Instant) {
        if !self.keyframe_wanted {
            return;
        }
        let allowed = self
            .last_keyframe_request
            .is_none_or(|at| now.saturating_duration_since(at) >= self.config.keyframe_interval);
        if allowed {
            self.keyframe_wanted = false;
            self.last_keyframe_request = Some(now);
            self.stats.keyframes_requested += 1;
            self.events.push_back(FanoutEvent::ForceKeyframe);
        }
    }

    fn next_keyframe_slot(&self) -> Option<Instant> {
        if !self.keyframe_wanted {
            return None;
        }
        // With no request made yet the wish was granted at once, so a pending wish
        // always has a previous request to count from.
        self.last_keyframe_request
            .map(|at| at + self.config.keyframe_interval)
    }
}

/// The profile-level-id (RFC 6184 §8.1) of the first SPS in an Annex B access unit:
/// the three bytes after the NAL header (profile_idc, constraint flags, level_idc).
/// They cannot hold an emulation-prevention byte (profile_idc and level_idc are
/// never zero, so no `00 00` pair precedes them).
pub fn profile_level_id(annexb: &[u8]) -> Option<u32> {
    use media::annexb::{nal_type, nal_units};
    let sps = nal_units(annexb).find(|nal| nal_type(nal) == Some(7))?;
    match sps {
        [_, profile, constraints, level, ..] => {
            Some(u32::from_be_bytes([0, *profile, *constraints, *level]))
        }
        _ => None,
    }
}

fn add_stats(sum: &mut ViewerStats, s: ViewerStats) {
    sum.frames_sent += s.frames_sent;
    sum.frames_skipped_for_keyframe += s.frames_skipped_for_keyframe;
    sum.frames_skipped_lagging += s.frames_skipped_lagging;
    sum.keyframe_requests += s.keyframe_requests;
    sum.catch_up_requests += s.catch_up_requests;
    sum.datagrams_sent += s.datagrams_sent;
}

impl Machine for WebFanout {
    type Input<'a> = FanoutInput<'a>;
    type Event = FanoutEvent;

    fn handle_input(&mut self, now: Instant, input: FanoutInput<'_>) {
        for slot in &mut self.slots {
            slot.idle_until = None;
        }
        match input {
            FanoutInput::Datagram { from, to, bytes } => {
                // A socket bound to the unspecified address does not know which of our
                // addresses a datagram came to: take the one this viewer was given.
                let dest = |slot: &Slot| {
                    if to.ip().is_unspecified() {
                        slot.viewer.candidate()
                    } else {
                        to
                    }
                };
                match self
                    .slots
                    .iter_mut()
                    .find(|s| s.viewer.accepts(from, dest(s), bytes))
                {
                    Some(slot) => {
                        let to = dest(slot);
                        slot.viewer
                            .handle_input(now, ViewerInput::Datagram { from, to, bytes })
                    }
                    None => self.stats.stray_datagrams += 1,
                }
            }
            FanoutInput::Frame(frame) => {
                if let Some(id) = frame
                    .keyframe
                    .then(|| profile_level_id(&frame.data))
                    .flatten()
                {
                    if id != self.config.viewer.profile_level_id {
                        tracing::info!(
                            "the camera sends H.264 profile-level-id {id:06x}: browsers are offered that"
                        );
                        self.config.viewer.profile_level_id = id;
                    }
                }
                if frame.keyframe {
                    // The encoder's keyframe (asked for or planned) answers every wish
                    // made before it.
                    self.keyframe_wanted = false;
                }
                for slot in &mut self.slots {
                    slot.viewer.handle_input(now, ViewerInput::Frame(frame));
                }
            }
            FanoutInput::Leave(id) => {
                if let Some(slot) = self.slots.iter_mut().find(|s| s.id == id) {
                    slot.viewer.leave();
                }
            }
            FanoutInput::Timeout => {
                for slot in &mut self.slots {
                    slot.viewer.handle_input(now, ViewerInput::Timeout);
                }
            }
        }
    }

    fn poll_output(&mut self, now: Instant, buf: &mut Vec<u8>) -> Output<FanoutEvent> {
        loop {
            if let Some(event) = self.events.pop_front() {
                return Output::Event(event);
            }
            // Each viewer in turn until it reaches its timeout.
            let mut progressed = false;
            for i in 0..self.slots.len() {
                if self.slots[i].idle_until.is_some() {
                    continue;
                }
                match self.slots[i].viewer.poll_output(now, buf) {
                    ViewerOutput::Transmit(to) => {
                        return Output::Transmit(Transmit::media(Some(to)))
                    }
                    ViewerOutput::Event(event) => {
                        let id = self.slots[i].id;
                        self.on_viewer_event(now, id, event);
                        progressed = true;
                        break;
                    }
                    ViewerOutput::Timeout(at) => self.slots[i].idle_until = Some(at),
                }
            }
            if progressed {
                continue;
            }
            let before = self.events.len();
            self.reap(now);
            self.maybe_request_keyframe(now);
            if self.events.len() > before {
                continue;
            }
            let viewers = self.slots.iter().filter_map(|s| s.idle_until).min();
            let keyframe = self.next_keyframe_slot();
            let at = match (viewers, keyframe) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            return Output::Timeout(at);
        }
    }
}
