//! One browser's WebRTC session, behind picam's machine shape.
//!
//! str0m does the WebRTC work (ICE-lite, DTLS-SRTP, RTP packetization of H.264, NACK
//! answers from its send buffer, TWCC bandwidth estimation); this type decides what is
//! written to it: which frames (the newest frame wins: a viewer that cannot keep up skips
//! frames on its own queue and waits for the next keyframe), when it wants a keyframe,
//! and what it reports upwards. str0m's `poll_output` is drained through ours, so the
//! driver never sees a str0m type.
//!
//! **Call-order rule** (str0m's and ours): after every input, call
//! [`WebViewer::poll_output`] until it returns [`ViewerOutput::Timeout`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::bwe::Bitrate;
use str0m::change::SdpOffer;
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, MediaTime, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::rtp::Extension;
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};

use crate::TransportError;

/// The RTP clock of video, Hz (RFC 6184).
const VIDEO_CLOCK_HZ: u64 = 90_000;
/// Our extension id for the playout-delay header extension; str0m answers with the
/// browser's id for the same URI, so this is only a local preference.
const PLAYOUT_DELAY_EXT_ID: u8 = 12;
/// Payload types we offer for H.264 and its retransmissions (RTX): str0m answers with
/// the browser's numbers for the matching codec.
const H264_PT: u8 = 108;
const H264_RTX_PT: u8 = 109;

/// Which congestion feedback a browser gives, and so how we send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CongestionFeedback {
    /// The browser estimates the bandwidth itself (its receive-side estimator over
    /// abs-send-time) and reports it in REMB; we send each frame at once, as picam's
    /// own wire sends an average frame. The default: measured in Chromium at 720p30,
    /// 4 Mbit/s on loopback, stamp to presented frame p50 7.6-9.6 ms, p95 11.7-15.1 ms, and
    /// about 1 ms of jitter-buffer delay (docs/BENCHMARKS.md).
    Remb,
    /// Transport-wide feedback (TWCC) into str0m's send-side estimator, whose pacer
    /// sends at 1.1 x its estimate; GCC keeps the estimate near 1.5 x the media rate,
    /// so every frame leaves over ~20 ms: p50 24-29 ms, p95 31-38 ms, 16-18 ms of jitter
    /// buffer in the same measurement. Kept for comparison (`PICAM_WEB_CONGESTION=twcc`).
    Twcc,
}

/// What a viewer needs to know to start.
#[derive(Clone, Debug)]
pub struct ViewerConfig {
    /// The profile-level-id (RFC 6184) of what the encoder emits, e.g. `0x42e01f`.
    pub profile_level_id: u32,
    /// The encoder's bitrate ceiling, bits/s: the bandwidth estimate starts here.
    pub max_bitrate: u32,
    /// RTP packets kept for NACK answers (str0m's send buffer): about a second of
    /// video at the ceiling; older losses are not worth repairing at this latency.
    pub history_packets: usize,
    /// How far a viewer's own queue may run behind its bandwidth estimate before its
    /// frames are skipped: beyond this a frame would be shown later than a fresh one.
    /// The last keyframe's own bytes do not count (see `FrameGate`).
    pub lag_budget: Duration,
    /// How the browser reports congestion.
    pub congestion: CongestionFeedback,
}

impl Default for ViewerConfig {
    fn default() -> Self {
        Self {
            profile_level_id: 0x42e01f,
            max_bitrate: 4_000_000,
            history_packets: 1024,
            lag_budget: Duration::from_millis(150),
            congestion: CongestionFeedback::Remb,
        }
    }
}

/// What goes into a viewer.
#[derive(Debug)]
pub enum ViewerInput<'a> {
    /// A datagram from the browser (ICE, DTLS, RTCP).
    Datagram {
        /// Who sent it.
        from: SocketAddr,
        /// Our address it arrived on (the candidate the browser was given).
        to: SocketAddr,
        /// Its bytes.
        bytes: &'a [u8],
    },
    /// An encoded frame to send.
    Frame(&'a WebFrame),
    /// A timer fired (or any time passes).
    Timeout,
}

/// One encoded frame, shared by every viewer without copying.
#[derive(Clone, Debug)]
pub struct WebFrame {
    /// Annex B access unit.
    pub data: Arc<[u8]>,
    /// Sender wall-clock time at capture, µs since the Unix epoch.
    pub capture_us: u64,
    /// Decodes on its own.
    pub keyframe: bool,
    /// Frames lost before this one on the way here: the reference chain is broken.
    pub skipped_before: u32,
}

/// What a viewer tells its owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ViewerEvent {
    /// ICE and DTLS are up: media flows from now on.
    Connected,
    /// The viewer cannot decode until it gets a keyframe (it joined, lost one, asked
    /// by PLI/FIR, or skipped frames to catch up).
    KeyframeWanted,
    /// The browser's congestion feedback (TWCC) gives this estimate, bits/s.
    Estimate(u32),
    /// The session is over (left, timed out, or failed); the slot can be freed.
    Gone(GoneReason),
}

/// Why a viewer ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GoneReason {
    /// ICE lost the browser: no consent checks for several seconds.
    Disconnected,
    /// It never connected within the setup time.
    NeverConnected,
    /// The WebRTC session failed (DTLS or SRTP error).
    Failed,
    /// It left (WHEP DELETE) or was dropped by its owner.
    Left,
}

impl std::fmt::Display for GoneReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            GoneReason::Disconnected => "the browser went quiet",
            GoneReason::NeverConnected => "it never connected",
            GoneReason::Failed => "its WebRTC session failed",
            GoneReason::Left => "it left",
        })
    }
}

/// What comes out of a viewer.
#[derive(Debug, PartialEq)]
pub enum ViewerOutput {
    /// The caller's buffer holds a datagram for this address.
    Transmit(SocketAddr),
    /// Something for the owner.
    Event(ViewerEvent),
    /// Nothing more until this instant (or the next input).
    Timeout(Instant),
}

/// Counters of one viewer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ViewerStats {
    /// Frames handed to str0m.
    pub frames_sent: u64,
    /// Frames skipped because the viewer waited for a keyframe.
    pub frames_skipped_for_keyframe: u64,
    /// Frames skipped because its queue ran behind its estimate.
    pub frames_skipped_lagging: u64,
    /// Keyframe requests (PLI/FIR) from the browser.
    pub keyframe_requests: u64,
    /// Keyframes it asked for after skipping frames to let its queue drain.
    pub catch_up_requests: u64,
    /// Datagrams sent.
    pub datagrams_sent: u64,
}

/// How long ICE and DTLS may take before a viewer that never connected is dropped.
const SETUP_TIMEOUT: Duration = Duration::from_secs(15);
/// A connected browser sends RTCP (receiver reports, TWCC feedback) many times a
/// second and ICE consent checks every few seconds; this long without a datagram means
/// it is gone (closed lid, lost Wi-Fi, killed tab). str0m's ICE-lite side does not time
/// out by itself, so the slot is freed here.
const QUIET_LIMIT: Duration = Duration::from_secs(5);
/// Least time between two keyframes one viewer asks for after catching up: a viewer on
/// a link slower than the stream costs the others at most a keyframe a second.
const CATCH_UP_INTERVAL: Duration = Duration::from_secs(1);

/// With TWCC: where str0m's estimate starts and what it probes for, well above the
/// encoder's ceiling, since its pacer sends at 1.1 x the estimate. It does not stay
/// there: the estimate settles near 1.5 x the media rate, so each frame is still
/// spread over most of a frame interval (see [`CongestionFeedback`]).
fn pacing_start(max_bitrate: u32) -> u64 {
    (u64::from(max_bitrate) * 4).max(10_000_000)
}

/// What a viewer is taken to carry before its browser's first estimate: the native
/// controller's start (1.5 Mbit/s), or the ceiling when lower. Starting at the ceiling
/// filled a 3 Mbit/s router queue before the first REMB arrived (losses, keyframe
/// requests, a stall); from here the browser's estimate lifts it within seconds on a
/// link that has room.
fn start_estimate(max_bitrate: u32) -> u32 {
    max_bitrate.min(1_500_000)
}

/// One browser.
pub struct WebViewer {
    rtc: Rtc,
    candidate: SocketAddr,
    mid: Option<Mid>,
    pt: Option<Pt>,
    connected: bool,
    created: Instant,
    last_heard: Instant,
    /// Which frames go out and when a keyframe is wanted.
    gate: FrameGate,
    estimate_bps: u32,
    gone: Option<GoneReason>,
    pending: std::collections::VecDeque<ViewerEvent>,
    config: ViewerConfig,
    stats: ViewerStats,
}

impl std::fmt::Debug for WebViewer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebViewer")
            .field("candidate", &self.candidate)
            .field("mid", &self.mid)
            .field("connected", &self.connected)
            .field("estimate_bps", &self.estimate_bps)
            .field("gone", &self.gone)
            .finish_non_exhaustive()
    }
}

impl WebViewer {
    /// Answers a browser's SDP offer: the viewer and the SDP answer. `candidate` is our
    /// address as the browser reaches it (the UDP socket's port on the IP its HTTP
    /// request arrived at): the one ICE-lite host candidate.
    pub fn accept_offer(
        now: Instant,
        offer: &str,
        candidate: SocketAddr,
        crypto: Arc<str0m::config::CryptoProvider>,
        config: ViewerConfig,
    ) -> Result<(Self, String), TransportError> {
        let bad = |why: String| TransportError::BadOffer(why);
        let offer_text = offer;
        let offer = SdpOffer::from_sdp_string(offer).map_err(|e| bad(e.to_string()))?;
        let mut rtc_config = Rtc::builder()
            .set_ice_lite(true)
            .set_crypto_provider(crypto)
            .clear_codecs()
            .clear_extension_map()
            // abs-send-time feeds the browser's receive-side estimator (REMB); mid
            // names the section in every packet, as BUNDLE expects.
            .set_extension(2, Extension::AbsoluteSendTime)
            .set_extension(4, Extension::RtpMid)
            .set_extension(PLAYOUT_DELAY_EXT_ID, Extension::PlayoutDelay)
            .set_send_buffer_video(config.history_packets);
        if config.congestion == CongestionFeedback::Twcc {
            rtc_config = rtc_config
                .set_extension(3, Extension::TransportSequenceNumber)
                .enable_bwe(Some(Bitrate::bps(pacing_start(config.max_bitrate))));
        }
        rtc_config.codec_config().add_h264(
            H264_PT.into(),
            Some(H264_RTX_PT.into()),
            true,
            config.profile_level_id,
        );
        let mut rtc = rtc_config.build(now);
        if config.congestion == CongestionFeedback::Twcc {
            rtc.bwe()
                .set_desired_bitrate(Bitrate::bps(pacing_start(config.max_bitrate)));
        }
        let host = Candidate::host(candidate, "udp")
            .map_err(|e| bad(format!("candidate {candidate}: {e}")))?;
        rtc.add_local_candidate(host);
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| bad(e.to_string()))?;
        let mut viewer = Self {
            rtc,
            candidate,
            mid: None,
            pt: None,
            connected: false,
            created: now,
            last_heard: now,
            gate: FrameGate::new(now, config.lag_budget),
            estimate_bps: start_estimate(config.max_bitrate),
            gone: None,
            pending: Default::default(),
            config,
            stats: ViewerStats::default(),
        };
        // The video section the browser offered is known now; find it and the payload
        // type it agreed to, or refuse the offer with the reason.
        viewer.find_video_section(offer_text)?;
        Ok((viewer, answer.to_sdp_string()))
    }

    fn find_video_section(&mut self, offer: &str) -> Result<(), TransportError> {
        // The first video section the browser offered, by its mid (str0m reports the
        // media it created only later, as an event; the answer must be checked now).
        let mut in_video = false;
        let mut found = None;
        for line in offer.lines() {
            let line = line.trim_end();
            if let Some(media) = line.strip_prefix("m=") {
                in_video = media.starts_with("video ");
            } else if let Some(mid) = line.strip_prefix("a=mid:").filter(|_| in_video) {
                found = Some(Mid::from(mid));
                break;
            }
        }
        let sends = found.and_then(|mid| self.rtc.media(mid)).is_some_and(|m| {
            m.kind() == MediaKind::Video
                && matches!(m.direction(), Direction::SendOnly | Direction::SendRecv)
        });
        let (Some(mid), true) = (found, sends) else {
            return Err(TransportError::BadOffer(
                "the offer has no video section that receives (recvonly or sendrecv)".into(),
            ));
        };
        let pt = self.rtc.writer(mid).and_then(|w| {
            w.payload_params()
                .find(|p| {
                    p.spec().codec == Codec::H264 && p.spec().format.packetization_mode == Some(1)
                })
                .map(|p| p.pt())
        });
        let Some(pt) = pt else {
            return Err(TransportError::BadOffer(format!(
                "the browser offers no H.264 matching the camera's profile-level-id {:06x} \
                 with packetization-mode 1",
                self.config.profile_level_id
            )));
        };
        self.mid = Some(mid);
        self.pt = Some(pt);
        Ok(())
    }

    /// The address the browser was told to reach us at.
    pub fn candidate(&self) -> SocketAddr {
        self.candidate
    }

    /// Whether this viewer takes the datagram (ICE credentials or a known 5-tuple).
    pub fn accepts(&self, from: SocketAddr, to: SocketAddr, bytes: &[u8]) -> bool {
        match Receive::new(Protocol::Udp, from, to, bytes) {
            Ok(receive) => self
                .rtc
                .accepts(&Input::Receive(self.gate.backlog_at, receive)),
            Err(_) => false,
        }
    }

    /// Whether the session has ended.
    pub fn gone(&self) -> Option<GoneReason> {
        self.gone
    }

    /// Whether media flows.
    pub fn connected(&self) -> bool {
        self.connected
    }

    /// The latest bandwidth estimate, bits/s (a cautious start until one comes).
    pub fn estimate_bps(&self) -> u32 {
        self.estimate_bps
    }

    /// Counters.
    pub fn stats(&self) -> ViewerStats {
        self.stats
    }

    /// Ends the session (WHEP DELETE, or its owner drops it).
    pub fn leave(&mut self) {
        if self.gone.is_none() {
            self.rtc.disconnect();
            self.end(GoneReason::Left);
        }
    }

    fn end(&mut self, why: GoneReason) {
        if self.gone.is_none() {
            self.gone = Some(why);
            self.pending.push_back(ViewerEvent::Gone(why));
        }
    }

    /// Feeds one input at `now`.
    pub fn handle_input(&mut self, now: Instant, input: ViewerInput<'_>) {
        if self.gone.is_some() {
            return;
        }
        let result = match input {
            ViewerInput::Datagram { from, to, bytes } => {
                self.last_heard = self.last_heard.max(now);
                match Receive::new(Protocol::Udp, from, to, bytes) {
                    Ok(receive) => self.rtc.handle_input(Input::Receive(now, receive)),
                    // Not STUN, DTLS, RTP or RTCP: nothing to do with us.
                    Err(_) => Ok(()),
                }
            }
            ViewerInput::Frame(frame) => {
                self.write_frame(now, frame);
                Ok(())
            }
            ViewerInput::Timeout => {
                if !self.connected && now.saturating_duration_since(self.created) > SETUP_TIMEOUT {
                    self.rtc.disconnect();
                    self.end(GoneReason::NeverConnected);
                    return;
                }
                if self.connected && now.saturating_duration_since(self.last_heard) > QUIET_LIMIT {
                    self.rtc.disconnect();
                    self.end(GoneReason::Disconnected);
                    return;
                }
                self.rtc.handle_input(Input::Timeout(now))
            }
        };
        if let Err(e) = result {
            tracing::debug!(candidate = %self.candidate, "viewer session failed: {e}");
            self.rtc.disconnect();
            self.end(GoneReason::Failed);
        }
    }

    fn write_frame(&mut self, now: Instant, frame: &WebFrame) {
        let (Some(mid), Some(pt)) = (self.mid, self.pt) else {
            return;
        };
        if !self.connected {
            // str0m drops media written before ICE connects: wait for a keyframe, which
            // the Connected event asks for.
            self.gate.waiting_for_keyframe = true;
            return;
        }
        let verdict = self.gate.on_frame(
            now,
            self.estimate_bps,
            frame.keyframe,
            frame.skipped_before > 0,
        );
        if verdict.ask_keyframe {
            self.pending.push_back(ViewerEvent::KeyframeWanted);
        }
        match verdict.action {
            FrameAction::Send => {}
            FrameAction::SkipForKeyframe => {
                self.stats.frames_skipped_for_keyframe += 1;
                if verdict.catch_up {
                    self.stats.catch_up_requests += 1;
                    tracing::trace!(candidate = %self.candidate, "caught up: asking for a keyframe");
                }
                return;
            }
            FrameAction::SkipLagging => {
                self.stats.frames_skipped_lagging += 1;
                return;
            }
        }
        let rtp_time = MediaTime::new(
            frame.capture_us.wrapping_mul(VIDEO_CLOCK_HZ) / 1_000_000,
            str0m::media::Frequency::NINETY_KHZ,
        );
        let Some(writer) = self.rtc.writer(mid) else {
            return;
        };
        // Playout delay min = max = 0: the browser's jitter buffer renders each frame as
        // soon as it is decoded.
        let written = writer
            .playout_delay(MediaTime::ZERO, MediaTime::ZERO)
            .write(pt, now, rtp_time, frame.data.clone());
        match written {
            Ok(()) => {
                self.stats.frames_sent += 1;
                self.gate.sent(frame.data.len(), frame.keyframe);
            }
            Err(e) => {
                tracing::debug!(candidate = %self.candidate, "writing a frame failed: {e}");
                self.wait_for_keyframe();
            }
        }
    }

    fn wait_for_keyframe(&mut self) {
        self.gate.waiting_for_keyframe = true;
        self.pending.push_back(ViewerEvent::KeyframeWanted);
    }

    /// Whether this viewer waits for a keyframe before it can show anything.
    pub fn waiting_for_keyframe(&self) -> bool {
        self.gate.waiting_for_keyframe
    }

    /// The next output; `buf` receives a datagram's bytes.
    pub fn poll_output(&mut self, now: Instant, buf: &mut Vec<u8>) -> ViewerOutput {
        if let Some(event) = self.pending.pop_front() {
            return ViewerOutput::Event(event);
        }
        let idle = now + Duration::from_secs(1);
        if self.gone.is_some() {
            return ViewerOutput::Timeout(idle);
        }
        // Bounded: every str0m output consumes queued work; the bound only guards
        // against a broken invariant turning into a busy loop.
        for _ in 0..4096 {
            let output = match self.rtc.poll_output() {
                Ok(output) => output,
                Err(e) => {
                    tracing::debug!(candidate = %self.candidate, "viewer session failed: {e}");
                    self.rtc.disconnect();
                    self.end(GoneReason::Failed);
                    return self.poll_output(now, buf);
                }
            };
            match output {
                Output::Transmit(t) => {
                    buf.clear();
                    buf.extend_from_slice(&t.contents);
                    self.stats.datagrams_sent += 1;
                    return ViewerOutput::Transmit(t.destination);
                }
                Output::Timeout(at) => {
                    if !self.rtc.is_alive() {
                        self.end(GoneReason::Disconnected);
                        return self.poll_output(now, buf);
                    }
                    // Wake for the setup deadline or the quiet limit too.
                    let at = if self.connected {
                        at.min(self.last_heard + QUIET_LIMIT + Duration::from_millis(1))
                    } else {
                        at.min(self.created + SETUP_TIMEOUT)
                    };
                    return ViewerOutput::Timeout(at);
                }
                Output::Event(event) => {
                    if let Some(ours) = self.on_event(event) {
                        return ViewerOutput::Event(ours);
                    }
                }
            }
        }
        ViewerOutput::Timeout(now)
    }

    fn on_event(&mut self, event: Event) -> Option<ViewerEvent> {
        match event {
            Event::Connected => {
                self.connected = true;
                self.gate.waiting_for_keyframe = true;
                self.pending.push_back(ViewerEvent::KeyframeWanted);
                Some(ViewerEvent::Connected)
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                self.rtc.disconnect();
                self.end(GoneReason::Disconnected);
                None
            }
            Event::KeyframeRequest(_) => {
                self.stats.keyframe_requests += 1;
                self.gate.waiting_for_keyframe = true;
                Some(ViewerEvent::KeyframeWanted)
            }
            Event::EgressBitrateEstimate(estimate) => {
                let bps = match estimate {
                    str0m::bwe::BweKind::Twcc { estimate, .. } => estimate.as_u64(),
                    str0m::bwe::BweKind::Remb { estimate, .. } => estimate.as_u64(),
                    _ => return None,
                };
                let bps = u32::try_from(bps).unwrap_or(u32::MAX).max(1);
                self.estimate_bps = bps;
                tracing::debug!(candidate = %self.candidate, bps, "bandwidth estimate");
                Some(ViewerEvent::Estimate(bps))
            }
            _ => None,
        }
    }
}

/// What a viewer does with one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FrameAction {
    /// Write it to the browser.
    Send,
    /// Skip it: the browser cannot decode it before the next keyframe.
    SkipForKeyframe,
    /// Skip it: the viewer's own queue is too long to send it now.
    SkipLagging,
}

/// [`FrameGate::on_frame`]'s answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Verdict {
    action: FrameAction,
    /// Ask the encoder for a keyframe (the chain broke, or the queue drained after a
    /// lag skip).
    ask_keyframe: bool,
    /// The request is a catch-up: the queue drained after a lag skip.
    catch_up: bool,
}

/// One viewer's frame policy, sans-IO: which frames go out, which are skipped, and
/// when a keyframe is wanted. It keeps a leaky bucket of the bytes written but, by the
/// browser's estimate, not yet through the link (what str0m's pacer or the path's
/// queue holds).
///
/// A keyframe is big by nature (the encoder's VBV lets it take a quarter second of
/// the bitrate): the frames right behind it wait for it, once, and that wait is the
/// keyframe's price. So the lag check leaves the last keyframe's own bytes out and
/// counts only what piled up besides it: a frame is skipped only when the link does not
/// keep up with the stream. Counting them made every keyframe whose drain took longer
/// than the lag budget (a 62 KB keyframe at 2 Mbit/s: 250 ms against 150) push the
/// next frame into a skip, so the viewer waited for another keyframe, which did the
/// same: about one frame a second, and the browser's REMB estimate (at most 1.5 x what
/// it receives) sank with it, so the viewer never got out (issue 22's step runs).
#[derive(Debug)]
struct FrameGate {
    lag_budget: Duration,
    waiting_for_keyframe: bool,
    /// When it began skipping frames to let its queue drain (until a keyframe is sent).
    lagging_since: Option<Instant>,
    last_catch_up_request: Option<Instant>,
    /// Bytes written but, by the estimate, not yet on the wire.
    backlog_bytes: f64,
    /// The part of the backlog that is the last keyframe (at most the backlog).
    keyframe_bytes: f64,
    backlog_at: Instant,
}

impl FrameGate {
    fn new(now: Instant, lag_budget: Duration) -> Self {
        Self {
            lag_budget,
            waiting_for_keyframe: true,
            lagging_since: None,
            last_catch_up_request: None,
            backlog_bytes: 0.0,
            keyframe_bytes: 0.0,
            backlog_at: now,
        }
    }

    /// Bytes per second the backlog leaves at: str0m's pacer sends at 1.1 x the
    /// estimate.
    fn rate(estimate_bps: u32) -> f64 {
        (f64::from(estimate_bps) * 1.1 / 8.0).max(1.0)
    }

    /// Drains the leaky bucket to `now`.
    fn drain(&mut self, now: Instant, estimate_bps: u32) {
        let elapsed = now.saturating_duration_since(self.backlog_at).as_secs_f64();
        self.backlog_at = now.max(self.backlog_at);
        self.backlog_bytes = (self.backlog_bytes - elapsed * Self::rate(estimate_bps)).max(0.0);
        self.keyframe_bytes = self.keyframe_bytes.min(self.backlog_bytes);
    }

    /// How long the whole backlog takes to leave.
    fn delay(&self, estimate_bps: u32) -> Duration {
        Duration::from_secs_f64(self.backlog_bytes / Self::rate(estimate_bps))
    }

    /// How long the backlog besides the last keyframe takes to leave.
    fn lag(&self, estimate_bps: u32) -> Duration {
        let bytes = self.backlog_bytes - self.keyframe_bytes;
        Duration::from_secs_f64(bytes.max(0.0) / Self::rate(estimate_bps))
    }

    /// A frame from the encoder at `now`; `chain_broken`: frames were lost before it
    /// on the way here. A frame let through is reported back by [`Self::sent`] once
    /// written.
    fn on_frame(
        &mut self,
        now: Instant,
        estimate_bps: u32,
        keyframe: bool,
        chain_broken: bool,
    ) -> Verdict {
        self.drain(now, estimate_bps);
        let mut ask_keyframe = false;
        if chain_broken && !keyframe && !self.waiting_for_keyframe {
            self.waiting_for_keyframe = true;
            ask_keyframe = true;
        }
        if self.waiting_for_keyframe && !keyframe {
            // A viewer that skipped to catch up asks for a keyframe once its queue has
            // drained (its link can take one now), at most once a second. Waiting for
            // the encoder's planned keyframe alone could freeze it for several
            // seconds: that keyframe may come while its queue is still full and be
            // skipped too (seen through a 3 Mbit/s router queue).
            let mut catch_up = false;
            if self.lagging_since.is_some() {
                // The whole queue, the last keyframe too: a new one would wait behind it.
                let drained = self.delay(estimate_bps) <= self.lag_budget / 2;
                let due = self
                    .last_catch_up_request
                    .is_none_or(|at| now.saturating_duration_since(at) >= CATCH_UP_INTERVAL);
                if drained && due {
                    self.last_catch_up_request = Some(now);
                    ask_keyframe = true;
                    catch_up = true;
                }
            }
            return Verdict {
                action: FrameAction::SkipForKeyframe,
                ask_keyframe,
                catch_up,
            };
        }
        // A viewer whose own queue already holds more than the budget (besides the last
        // keyframe) skips this frame: sent now it would arrive later than the budget
        // allows, and skipping lets the queue drain. A keyframe gets twice the room,
        // since it ends the wait.
        let budget = if keyframe {
            self.lag_budget * 2
        } else {
            self.lag_budget
        };
        if self.lag(estimate_bps) > budget {
            // It does not ask for a keyframe now: one now would only lengthen the queue
            // that made it skip (and cost every other viewer a big frame). It asks once
            // the queue has drained (above), or takes the next planned one.
            self.waiting_for_keyframe = true;
            self.lagging_since.get_or_insert(now);
            return Verdict {
                action: FrameAction::SkipLagging,
                ask_keyframe,
                catch_up: false,
            };
        }
        Verdict {
            action: FrameAction::Send,
            ask_keyframe,
            catch_up: false,
        }
    }

    /// The frame [`Self::on_frame`] let through was written.
    fn sent(&mut self, len: usize, keyframe: bool) {
        self.backlog_bytes += len as f64;
        if keyframe {
            self.keyframe_bytes = len as f64;
            self.waiting_for_keyframe = false;
            self.lagging_since = None;
        }
    }
}

#[cfg(test)]
#[path = "viewer_step_tests.rs"]
mod step_tests;
