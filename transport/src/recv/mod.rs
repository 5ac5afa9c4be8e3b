//! The receiving side's state machine: reassembly, in-order emission, the gap rule and
//! keyframe requests.
//!
//! It has the crate's one [`Machine`] shape: inputs are [`ReceiverInput`]s, outputs
//! [`Output`]s of [`ReceiverEvent`]. Call order: after **every** `handle_input`, drain
//! `poll_output` until it returns [`Output::Timeout`]. `now` is always an argument; the
//! machine never reads a clock.
//!
//! Rules it keeps:
//! 1. Frames leave in frame-number order, each newer than the last that left.
//! 2. A frame is given up when no fragment of it came for `frame_deadline` (or it is
//!    older than `max_frame_age`); a complete frame with an
//!    unseen frame before it waits at most `reorder_grace` for it.
//! 3. After any gap nothing leaves until a keyframe, and a keyframe request goes to the
//!    sender at once, repeated every `keyframe_retry` while the sender is heard.
//! 4. At most `max_in_flight` frames are held, each at most `max_frame_bytes`.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

mod config;
mod feedback;
mod ordering;
mod reassembly;

pub use config::{
    ReceivedFrame, ReceiverConfig, ReceiverEvent, ReceiverInput, ReceiverRepairConfig,
};
pub use feedback::FeedbackConfig;

use crate::machine::{Machine, Output, Transmit};
use crate::repair::nack::{Arrival, LossConfig, LossTracker, Seen};
use crate::secure::{self, Opened, Responder};
use crate::wire::{self, Packet, SequenceCounts};
use crate::TransportError;
use crate::{seq, ReceiverStats};
use feedback::Feedback;
use ordering::FrameOrder;
use reassembly::Added;

/// Nack packets one poll may send at most.
const NACK_PACKETS_PER_POLL: usize = 4;

/// A packet waiting for the sender.
#[derive(Debug)]
struct Queued {
    to: Option<SocketAddr>,
    payload: Vec<u8>,
}

#[derive(Debug)]
struct Session {
    id: u32,
    peer: Option<SocketAddr>,
    last_heard: Instant,
}

/// The receiving state machine: packets in, frames and feedback out.
#[derive(Debug)]
pub struct Receiver {
    config: ReceiverConfig,
    session: Option<Session>,
    /// The session replaced last; its late packets are refused rather than flapping back.
    retired: Option<u32>,
    /// Frames in flight and the order they leave in.
    order: FrameOrder,
    transmits: VecDeque<Queued>,
    last_request: Option<Instant>,
    highest_seen: Option<u32>,
    feedback: Feedback,
    /// Gaps in the packet sequence (for the loss figures in reports) and, with repair
    /// on, the nacks for them.
    tracker: LossTracker,
    /// The encrypted channel (`None`: `--insecure`).
    secure: Option<Responder>,
    stats: ReceiverStats,
}

impl Receiver {
    /// A receiver with no session yet.
    pub fn new(config: ReceiverConfig) -> Self {
        assert!(
            config.max_in_flight >= 1,
            "max_in_flight must be at least 1"
        );
        let feedback = Feedback::new(config.feedback);
        let tracker = LossTracker::new(LossConfig::default());
        let secure = config.secure.clone().map(Responder::new);
        let order = FrameOrder::new(config.max_in_flight);
        Self {
            config,
            session: None,
            retired: None,
            order,
            transmits: VecDeque::new(),
            last_request: None,
            highest_seen: None,
            feedback,
            tracker,
            secure,
            stats: ReceiverStats::default(),
        }
    }

    /// Counters since start.
    pub fn stats(&self) -> ReceiverStats {
        let mut repair = self.stats.repair;
        let c = self.tracker.counters();
        repair.packets_requested = c.nacks_sent;
        repair.spurious_nacks = c.spurious;
        repair.packets_lost = c.lost;
        ReceiverStats {
            secure: self.secure.as_ref().map(|s| s.stats()).unwrap_or_default(),
            clock_offset_us: self.feedback.offset_us(),
            rtt_us: self.feedback.rtt_us(),
            peer: self.session.as_ref().and_then(|s| s.peer),
            repair,
            ..self.stats
        }
    }

    /// Whether this receiver requires encryption.
    pub fn encrypted(&self) -> bool {
        self.secure.is_some()
    }

    /// The address of the sender that proved it holds the paired key (with encryption),
    /// for a stream driver to tell the real connection from others.
    pub fn authenticated_peer(&self) -> Option<SocketAddr> {
        self.secure.as_ref().and_then(|s| s.authenticated_peer())
    }

    /// Addresses that sent an authentic HELLO whose handshake is still in progress.
    pub fn handshaking_peers(&self) -> Vec<SocketAddr> {
        self.secure
            .as_ref()
            .map(|s| s.handshaking_peers().collect())
            .unwrap_or_default()
    }

    /// The current sender's session id and address, if any.
    pub fn peer(&self) -> Option<(u32, Option<SocketAddr>)> {
        self.session.as_ref().map(|s| (s.id, s.peer))
    }

    /// True while nothing can be shown until a keyframe arrives.
    pub fn waiting_for_keyframe(&self) -> bool {
        self.order.waiting_keyframe()
    }

    /// Takes one packet (a datagram, or one TCP message) from `from`. Whatever is
    /// discarded is counted under one reason and logged at trace level with the peer.
    fn on_packet(&mut self, now: Instant, from: Option<SocketAddr>, packet: &[u8]) {
        self.stats.datagrams += 1;
        self.stats.bytes += packet.len() as u64;
        let Some(responder) = self.secure.as_mut() else {
            if secure::is_secure_packet(packet) {
                self.stats.dropped.encrypted += 1;
                if self.stats.dropped.encrypted == 1 {
                    tracing::warn!(peer = ?from, "the sender encrypts (it has a key) but this receiver runs with --insecure: drop --insecure here and give both sides the same key");
                }
                return;
            }
            return self.on_plain(now, from, packet, false);
        };
        match responder.open(now, from, packet) {
            Opened::Inner(inner) => self.on_plain(now, from, &inner, true),
            Opened::Handshake | Opened::Established => {}
            Opened::Dropped => {
                tracing::trace!(peer = ?from, len = packet.len(), "discarded: not authentic");
            }
        }
    }

    /// Takes one authentic (or, with `--insecure`, any) packet.
    fn on_plain(
        &mut self,
        now: Instant,
        from: Option<SocketAddr>,
        packet: &[u8],
        authenticated: bool,
    ) {
        let (header, payload) = match wire::parse(packet) {
            Ok(Packet::Fragment(header, payload)) => (header, payload),
            Ok(Packet::Pong {
                session,
                t1,
                t2,
                t3,
                ..
            }) if self.session.as_ref().is_some_and(|s| s.id == session) => {
                self.feedback.on_pong(now, t1, t2, t3);
                return;
            }
            // Feedback kinds are for senders; a receiver has no use for them.
            Ok(other) => {
                tracing::trace!(peer = ?from, kind = other.kind_name(), session = format_args!("{:08x}", other.session()), "discarded: not for a receiver, or another session's");
                self.stats.dropped.malformed += 1;
                return;
            }
            Err(
                error @ (TransportError::OlderVersion(_) | TransportError::UnsupportedVersion(_)),
            ) => {
                self.stats.dropped.wrong_version += 1;
                // Said at once, then now and then: a black screen must have a reason.
                if self.stats.dropped.wrong_version.is_power_of_two() {
                    tracing::warn!(peer = ?from, count = self.stats.dropped.wrong_version, "refused: {error}");
                }
                return;
            }
            Err(error) => {
                tracing::trace!(peer = ?from, %error, len = packet.len(), "discarded: malformed");
                self.stats.dropped.malformed += 1;
                return;
            }
        };
        if header.frame_len as usize > self.config.max_frame_bytes {
            tracing::trace!(peer = ?from, frame = header.frame, frame_len = header.frame_len, max = self.config.max_frame_bytes, "discarded: frame over the size limit");
            self.stats.dropped.malformed += 1;
            return;
        }
        // Non-last fragments share one payload size, so the count bounds the frame size.
        let smallest_whole = (header.count as usize - 1).saturating_mul(payload.len().max(1));
        if (header.count > 1
            && header.index + 1 < header.count
            && smallest_whole > self.config.max_frame_bytes)
            || payload.len() > self.config.max_frame_bytes
        {
            tracing::trace!(peer = ?from, frame = header.frame, index = header.index, count = header.count, len = payload.len(), max = self.config.max_frame_bytes, "discarded: the fragment implies a frame over the size limit");
            self.stats.dropped.malformed += 1;
            return;
        }
        if !self.accept_session(now, from, header.session, authenticated) {
            tracing::trace!(peer = ?from, session = format_args!("{:08x}", header.session), "discarded: another sender while this one is active");
            self.stats.dropped.other_sender += 1;
            return;
        }
        self.feedback.resume(now);
        let arrival = if header.retransmit {
            Arrival::Resend
        } else {
            Arrival::Original
        };
        match self
            .tracker
            .on_packet(now, u64::from(header.seq), header.frame, arrival)
        {
            Seen::New | Seen::Late => self.stats.repair.packets_received += 1,
            Seen::Repaired => {
                self.stats.repair.packets_retransmitted += 1;
                self.stats.repair.retransmit_bytes += packet.len() as u64;
            }
            Seen::Duplicate | Seen::Unrequested if header.retransmit => {
                self.stats.repair.retransmits_unneeded += 1
            }
            Seen::Duplicate | Seen::Unrequested => {}
            // Only for `Arrival::Unknown`, which this wire never gives.
            Seen::Filled { .. } => self.stats.repair.packets_received += 1,
        }
        if header.is_parity {
            self.stats.repair.parity_received += 1;
            self.stats.repair.parity_bytes += packet.len() as u64;
            if self.config.repair.is_none() {
                // Repair is off here: parity is only overhead.
                self.stats.repair.parity_unused += 1;
                return;
            }
        }
        if !header.retransmit && !header.is_parity {
            // Data fragments of a frame go out in order with consecutive seqs (parity
            // after them): how many follow this one says where its frame ends.
            self.tracker.expect_tail(
                now,
                u64::from(header.seq),
                header.frame,
                header.count.saturating_sub(header.index + 1),
            );
            self.feedback.on_fragment(
                now,
                header.frame,
                header.index,
                header.index + 1 == header.count,
            );
        }
        if self.order.is_stale(header.frame) {
            tracing::trace!(peer = ?from, frame = header.frame, index = header.index, "discarded: frame already emitted or given up");
            if header.is_parity {
                self.stats.repair.parity_unused += 1;
            } else {
                self.stats.dropped.stale += 1;
            }
            return;
        }
        if let Some(oldest) = self.order.is_too_far(header.frame) {
            tracing::trace!(peer = ?from, frame = header.frame, oldest, "discarded: frame number half a range away from those held");
            self.stats.dropped.malformed += 1;
            return;
        }
        if self
            .highest_seen
            .is_none_or(|h| seq::after(header.frame, h))
        {
            self.highest_seen = Some(header.frame);
        }
        let session = self.session_id();
        let partial = self.order.frame_for(
            now,
            &header,
            self.config.frame_deadline,
            self.config.max_frame_age,
            session,
            &mut self.stats.dropped,
        );
        let Some(partial) = partial else {
            tracing::trace!(peer = ?from, frame = header.frame, "discarded: older than every held frame, and no room");
            self.keyframe_if_asked(now);
            return;
        };
        let added = partial.add(
            now,
            &header,
            payload,
            self.config.max_frame_bytes,
            self.config.frame_deadline,
        );
        let repaired = partial.repaired;
        match added {
            Added::Stored | Added::ParityStored => {}
            Added::Completed => {
                self.stats.frames_complete += 1;
                if repaired {
                    self.stats.repair.frames_repaired += 1;
                }
            }
            Added::Rebuilt(n) => {
                self.stats.frames_complete += 1;
                self.stats.repair.frames_repaired += 1;
                self.stats.repair.packets_rebuilt += u64::from(n);
            }
            Added::ParityUnused => self.stats.repair.parity_unused += 1,
            Added::Duplicate if header.is_parity => self.stats.repair.parity_unused += 1,
            Added::Duplicate => self.stats.dropped.duplicate += 1,
            Added::Inconsistent => {
                tracing::trace!(peer = ?from, frame = header.frame, index = header.index, count = header.count, "discarded: fragment contradicts its frame's others, or overflows the size limit");
                self.stats.dropped.malformed += 1;
            }
        }
        self.emit_ready(now);
        // A keyframe in progress will end the wait by itself; otherwise ask for one now.
        if self.order.waiting_keyframe() && !header.keyframe {
            self.maybe_request_keyframe(now);
        }
        self.poll_feedback(now);
    }

    /// Time has passed: deadlines and retries.
    fn on_timeout(&mut self, now: Instant) {
        self.emit_ready(now);
        if self.order.waiting_keyframe() && !self.order.keyframe_in_progress() {
            self.maybe_request_keyframe(now);
        }
        self.poll_feedback(now);
    }

    /// Sends the reports, pings and nacks that are due, while the sender is heard.
    /// Giving up on missing packets can shorten the wait of a complete frame (its grace
    /// no longer covers a repair), so frames are looked at again afterwards: otherwise
    /// the next timeout could name a time already past (found by fuzzing).
    fn poll_feedback(&mut self, now: Instant) {
        let missing = self.tracker.missing_len();
        self.poll_feedback_due(now);
        if self.tracker.missing_len() < missing {
            self.emit_ready(now);
        }
    }

    fn poll_feedback_due(&mut self, now: Instant) {
        let Some(session) = &self.session else { return };
        if now >= session.last_heard + self.config.session_idle {
            // Quiet sender: stop the timers rather than leave them due and unserved
            // (found by fuzzing: a driver waking late then spun on a past timeout).
            self.feedback.pause();
            if let Some(repair) = self.config.repair {
                let _ = self
                    .tracker
                    .poll_nacks(now, repair.initial_rtt, self.order.last_emitted());
            }
            return;
        }
        let (id, to) = (session.id, session.peer);
        let transmits = &mut self.transmits;
        let sequence = self.tracker.highest().map(|highest| {
            let c = self.tracker.counters();
            SequenceCounts {
                highest,
                received: c.originals_received,
                loss_events: c.loss_events,
            }
        });
        self.feedback
            .poll(now, id, self.highest_seen, sequence, |payload| {
                transmits.push_back(Queued { to, payload })
            });
        let rtt = self.feedback.rtt_us().map(Duration::from_micros);
        if let Some(repair) = self.config.repair {
            let rtt = rtt.unwrap_or(repair.initial_rtt);
            let last_emitted = self.order.last_emitted();
            // The extended numbers' low 32 bits are the wire's.
            let mut missing: Vec<u32> = self
                .tracker
                .poll_nacks(now, rtt, last_emitted)
                .into_iter()
                .map(|ext| ext as u32)
                .collect();
            // A few nack packets per poll at most: the rest are asked for on the next
            // retry (a flood of holes must not flood the sender).
            missing.truncate(NACK_PACKETS_PER_POLL * wire::MAX_NACK_ENTRIES);
            if !missing.is_empty() {
                for payload in wire::write_nacks(id, last_emitted, &missing) {
                    self.stats.repair.nacks_sent += 1;
                    self.transmits.push_back(Queued { to, payload });
                }
            }
        }
    }

    /// How long a complete frame waits for an unseen earlier one: longer while packets
    /// are missing and asked for, since the unseen frame may be among them.
    fn grace(&self) -> Duration {
        match self.config.repair {
            Some(repair) if self.tracker.missing_len() > 0 => {
                repair.repair_wait.max(self.config.reorder_grace)
            }
            _ => self.config.reorder_grace,
        }
    }

    /// Nothing more can be decoded until a keyframe: wait for one and ask for it.
    fn request_keyframe(&mut self, now: Instant) {
        self.order.lose_handed_out(&mut self.stats.dropped);
        self.maybe_request_keyframe(now);
    }

    /// The followed session's id (0 before any).
    fn session_id(&self) -> u32 {
        self.session.as_ref().map_or(0, |s| s.id)
    }

    /// Hands out what may leave (see [`FrameOrder::emit_ready`]), asking for a
    /// keyframe if that gave something up.
    fn emit_ready(&mut self, now: Instant) {
        let (grace, session) = (self.grace(), self.session_id());
        self.order
            .emit_ready(now, grace, session, &mut self.stats.dropped);
        self.keyframe_if_asked(now);
    }

    /// Asks for a keyframe if frame order gave something up since it was last asked.
    fn keyframe_if_asked(&mut self, now: Instant) {
        if self.order.take_keyframe_ask() {
            self.maybe_request_keyframe(now);
        }
    }

    /// Whether a packet of session `id` from `from` belongs to the session followed; a
    /// new one is adopted when the old is idle or comes from the same host or, with
    /// encryption, at once: it proved it holds the paired key.
    fn accept_session(
        &mut self,
        now: Instant,
        from: Option<SocketAddr>,
        id: u32,
        authenticated: bool,
    ) -> bool {
        if let Some(s) = &mut self.session {
            if s.id == id {
                s.last_heard = now;
                s.peer = from.or(s.peer);
                return true;
            }
            if self.retired == Some(id) {
                return false;
            }
            let idle = authenticated
                || now.saturating_duration_since(s.last_heard) >= self.config.session_idle;
            // A sender restarted on the same host comes back with a new id at once.
            let same_host = matches!((s.peer, from), (Some(a), Some(b)) if a.ip() == b.ip());
            if !idle && !same_host {
                return false;
            }
            self.retired = Some(s.id);
        }
        self.session = Some(Session {
            id,
            peer: from,
            last_heard: now,
        });
        self.order.reset();
        self.last_request = None;
        self.highest_seen = None;
        self.feedback.reset(now);
        self.tracker.reset();
        self.stats.sessions += 1;
        true
    }

    /// Sends a keyframe request, unless one went within `keyframe_retry`.
    fn maybe_request_keyframe(&mut self, now: Instant) {
        let Some(session) = &self.session else { return };
        if self
            .last_request
            .is_some_and(|at| now < at + self.config.keyframe_retry)
        {
            return;
        }
        let mut payload = Vec::with_capacity(wire::KEYFRAME_REQUEST_LEN);
        wire::write_keyframe_request(&mut payload, session.id, self.highest_seen);
        self.transmits.push_back(Queued {
            to: session.peer,
            payload,
        });
        self.last_request = Some(now);
        self.stats.keyframe_requests += 1;
    }

    /// A frame handed out could not be queued downstream and was dropped.
    fn note_downstream_full(&mut self, now: Instant) {
        self.stats.dropped.queue_full += 1;
        // poll_output counted it as emitted; it never got past the queue.
        self.stats.frames_emitted = self.stats.frames_emitted.saturating_sub(1);
        self.request_keyframe(now);
    }

    /// Queues a bye for the sender (the viewer is leaving).
    fn close(&mut self) {
        if let Some(s) = &self.session {
            let mut payload = Vec::with_capacity(wire::COMMON_HEADER);
            wire::write_bye(&mut payload, s.id);
            self.transmits.push_back(Queued {
                to: s.peer,
                payload,
            });
        }
    }

    /// When a timeout input is wanted.
    fn next_timeout(&self) -> Option<Instant> {
        let first = self.order.next_due(self.grace());
        let heard = |due: Instant| {
            self.session
                .as_ref()
                .is_some_and(|s| due < s.last_heard + self.config.session_idle)
        };
        let feedback = self.feedback.next_due().filter(|&due| heard(due));
        // Without repair the tracker only counts; its timers would wake us for nothing.
        let nacks = self
            .config
            .repair
            .and_then(|_| self.tracker.next_timeout())
            .filter(|&due| heard(due));
        [first, self.retry_due(), feedback, nacks]
            .into_iter()
            .flatten()
            .min()
    }

    fn retry_due(&self) -> Option<Instant> {
        let session = self.session.as_ref()?;
        // A keyframe in progress suppresses the retry (as in `handle_timeout`); its
        // deadline is the timer then. Without this the retry time stays due and unacted
        // on, and a driver sleeping until the timeout spins.
        if !self.order.waiting_keyframe() || self.order.keyframe_in_progress() {
            return None;
        }
        let due = self.last_request? + self.config.keyframe_retry;
        // Stop asking a sender that has gone quiet; its next packet restarts the asking.
        (due < session.last_heard + self.config.session_idle).then_some(due)
    }

    /// Asserts the machine's internal rules; for tests and fuzzers.
    pub fn check_invariants(&self) {
        if let Some(secure) = &self.secure {
            secure.check_invariants();
        }
        self.order.check_invariants(self.config.max_frame_bytes);
        assert!(self.transmits.len() <= 64, "transmits not drained");
        self.tracker.check_invariants();
    }
}

impl Machine for Receiver {
    type Input<'a> = ReceiverInput<'a>;
    type Event = ReceiverEvent;

    fn handle_input(&mut self, now: Instant, input: ReceiverInput<'_>) {
        match input {
            ReceiverInput::Packet { from, data } => self.on_packet(now, from, data),
            ReceiverInput::Timeout => self.on_timeout(now),
            ReceiverInput::RequestKeyframe => self.request_keyframe(now),
            ReceiverInput::DownstreamFull => self.note_downstream_full(now),
            ReceiverInput::Close => self.close(),
        }
    }

    /// Frames first (they are what the viewer waits for), then packets for the sender,
    /// then the timeout.
    fn poll_output(&mut self, _now: Instant, buf: &mut Vec<u8>) -> Output<ReceiverEvent> {
        if let Some(frame) = self.order.pop_ready() {
            self.stats.frames_emitted += 1;
            return Output::Event(ReceiverEvent::Frame(frame));
        }
        if let Some(to) = self.secure.as_mut().and_then(|s| s.poll_handshake(buf)) {
            return Output::Transmit(Transmit::media(to));
        }
        while let Some(queued) = self.transmits.pop_front() {
            buf.clear();
            buf.extend_from_slice(&queued.payload);
            let Some(secure) = self.secure.as_mut() else {
                return Output::Transmit(Transmit::media(queued.to));
            };
            // Sealed for, and sent to, the authenticated sender only.
            if let Some(to) = secure.seal(buf) {
                return Output::Transmit(Transmit::media(to));
            }
        }
        Output::Timeout(self.next_timeout())
    }
}
