//! Shared test support: a seeded RNG, a link model on simulated time, a synthetic frame
//! source, and two harnesses that keep the call-order rule (drain after every input) and
//! call `check_invariants()` after every step:
//!
//! * [`Pair`]: a `Sender` and a `Receiver` joined by a forward (data) and a backward
//!   (feedback) [`Link`], driven like quinn-proto's `Pair::drive`: jump to the earliest of
//!   every pending delivery, timer and frame, never sleeping.
//! * [`Rx`]: a lone `Receiver` fed hand-made packets, for the targeted scenarios.
//!
//! Time is `Instant` base plus `Duration`s; nothing reads the clock after the base.

#![allow(dead_code)]

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use media::EncodedFrame;
use transport::wire::{self, FragmentHeader, Packet};
use transport::{
    ReceivedFrame, Receiver, ReceiverConfig, Sender, SenderConfig, SenderEvent, Transmit,
};

/// Upper bound on simulation steps in one `drive`; hitting it means a busy loop.
pub const MAX_STEPS: usize = 2_000_000;

/// SplitMix64: tiny, seedable, good enough for test traffic.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0);
        self.next_u64() % n
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.unit() < p
    }

    /// Uniform in `[0, d)`.
    pub fn duration(&mut self, d: Duration) -> Duration {
        if d.is_zero() {
            return d;
        }
        Duration::from_nanos(self.below(d.as_nanos() as u64))
    }

    pub fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut v = vec![0; len];
        self.fill(&mut v);
        v
    }

    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

/// Impairments of one direction of the link.
#[derive(Clone, Debug)]
pub struct LinkConfig {
    /// Fixed one-way delay.
    pub delay: Duration,
    /// Extra delay uniform in `[0, jitter)`; order is kept (arrivals are clamped to be
    /// no earlier than the previous one) unless the packet is picked for reordering.
    pub jitter: Duration,
    /// Chance a packet starts a loss burst (Gilbert model, good state to bad).
    pub loss: f64,
    /// Chance the next packet is lost too once in a burst (bad state stays bad).
    pub burst: f64,
    /// Chance a packet is held back by `reorder_delay`, letting later ones pass it.
    pub reorder: f64,
    /// Extra delay of a reordered packet.
    pub reorder_delay: Duration,
    /// Chance a packet is delivered twice.
    pub duplicate: f64,
    /// Bottleneck rate in bytes per second; `None` is unlimited.
    pub rate: Option<u64>,
    /// Bytes the bottleneck queue holds before tail-dropping.
    pub max_queue: usize,
}

impl LinkConfig {
    /// A perfect link with a fixed delay.
    pub fn ideal(delay: Duration) -> Self {
        Self {
            delay,
            jitter: Duration::ZERO,
            loss: 0.0,
            burst: 0.0,
            reorder: 0.0,
            reorder_delay: Duration::ZERO,
            duplicate: 0.0,
            rate: None,
            max_queue: usize::MAX,
        }
    }
}

/// What a link did to the packets it was given.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    pub sent: u64,
    pub delivered: u64,
    pub lost: u64,
    pub filtered: u64,
    pub queue_drops: u64,
    pub duplicated: u64,
    pub reordered: u64,
}

/// Returns false to drop the packet (targeted loss).
pub type Filter = Box<dyn FnMut(Instant, &[u8]) -> bool>;

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Delivery {
    at: Instant,
    seq: u64,
    bytes: Vec<u8>,
}

/// One direction of a simulated network path.
pub struct Link {
    pub config: LinkConfig,
    rng: Rng,
    in_flight: BinaryHeap<Reverse<Delivery>>,
    seq: u64,
    bad: bool,
    busy_until: Option<Instant>,
    /// Departure time and size of each packet in the bottleneck queue.
    queue: VecDeque<(Instant, usize)>,
    queued_bytes: usize,
    last_arrival: Option<Instant>,
    pub filter: Option<Filter>,
    pub stats: LinkStats,
}

impl Link {
    pub fn new(config: LinkConfig, seed: u64) -> Self {
        Self {
            config,
            rng: Rng::new(seed),
            in_flight: BinaryHeap::new(),
            seq: 0,
            bad: false,
            busy_until: None,
            queue: VecDeque::new(),
            queued_bytes: 0,
            last_arrival: None,
            filter: None,
            stats: LinkStats::default(),
        }
    }

    pub fn send(&mut self, now: Instant, bytes: Vec<u8>) {
        self.stats.sent += 1;
        if let Some(filter) = &mut self.filter {
            if !filter(now, &bytes) {
                self.stats.filtered += 1;
                return;
            }
        }
        // Bottleneck: a FIFO serializer at `rate`, tail-dropping past `max_queue`.
        let mut depart = now;
        if let Some(rate) = self.config.rate {
            while let Some(&(at, len)) = self.queue.front() {
                if at > now {
                    break;
                }
                self.queue.pop_front();
                self.queued_bytes -= len;
            }
            if self.queued_bytes + bytes.len() > self.config.max_queue {
                self.stats.queue_drops += 1;
                return;
            }
            let start = self.busy_until.map_or(now, |b| b.max(now));
            let serialize = Duration::from_nanos(bytes.len() as u64 * 1_000_000_000 / rate.max(1));
            depart = start + serialize;
            self.busy_until = Some(depart);
            self.queue.push_back((depart, bytes.len()));
            self.queued_bytes += bytes.len();
        }
        // Gilbert loss: bursts start with `loss` and continue with `burst`.
        self.bad = if self.bad {
            self.rng.chance(self.config.burst)
        } else {
            self.rng.chance(self.config.loss)
        };
        if self.bad {
            self.stats.lost += 1;
            return;
        }
        let mut at = depart + self.config.delay + self.rng.duration(self.config.jitter);
        if let Some(last) = self.last_arrival {
            at = at.max(last);
        }
        self.last_arrival = Some(at);
        if self.rng.chance(self.config.reorder) {
            self.stats.reordered += 1;
            at += self.config.reorder_delay;
        }
        if self.rng.chance(self.config.duplicate) {
            self.stats.duplicated += 1;
            let extra = self.rng.duration(Duration::from_millis(5));
            self.push(at + extra, bytes.clone());
        }
        self.push(at, bytes);
    }

    fn push(&mut self, at: Instant, bytes: Vec<u8>) {
        self.seq += 1;
        self.in_flight.push(Reverse(Delivery {
            at,
            seq: self.seq,
            bytes,
        }));
    }

    pub fn next_delivery(&self) -> Option<Instant> {
        self.in_flight.peek().map(|d| d.0.at)
    }

    pub fn pop_due(&mut self, now: Instant) -> Option<Vec<u8>> {
        if self.next_delivery()? > now {
            return None;
        }
        self.stats.delivered += 1;
        self.in_flight.pop().map(|d| d.0.bytes)
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }
}

/// Deterministic frame contents: a header with the source index, then seeded bytes.
pub fn frame_bytes(index: u64, len: usize) -> Bytes {
    let mut rng = Rng::new(index ^ 0x5EED_0000_0000);
    let mut data = rng.bytes(len);
    for (d, s) in data.iter_mut().zip(index.to_be_bytes()) {
        *d = s;
    }
    Bytes::from(data)
}

/// A synthetic encoder: a frame every `interval`, a keyframe every `gop` frames (0: only
/// the first), and a keyframe as the next frame whenever the sender asks for one.
#[derive(Clone, Debug)]
pub struct SourceConfig {
    pub interval: Duration,
    pub gop: u64,
    pub key_size: usize,
    pub p_size: usize,
    /// Sizes vary by up to this fraction either way (seeded per frame).
    pub size_spread: f64,
    /// Stop after this many frames.
    pub limit: Option<u64>,
}

impl Default for SourceConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_micros(33_333),
            gop: 60,
            key_size: 20_000,
            p_size: 3_000,
            size_spread: 0.0,
            limit: None,
        }
    }
}

pub struct FrameSource {
    pub config: SourceConfig,
    pub next_at: Instant,
    pub index: u64,
    pub force: bool,
}

impl FrameSource {
    pub fn new(config: SourceConfig, start: Instant) -> Self {
        Self {
            config,
            next_at: start,
            index: 0,
            force: false,
        }
    }

    pub fn next_at(&self) -> Option<Instant> {
        match self.config.limit {
            Some(limit) if self.index >= limit => None,
            _ => Some(self.next_at),
        }
    }

    pub fn next_frame(&mut self, now: Instant) -> EncodedFrame {
        let index = self.index;
        let keyframe =
            self.force || index == 0 || (self.config.gop != 0 && index % self.config.gop == 0);
        self.force = false;
        let size = if keyframe {
            self.config.key_size
        } else {
            self.config.p_size
        };
        let spread = (size as f64 * self.config.size_spread) as u64;
        let len = if spread == 0 {
            size
        } else {
            let mut rng = Rng::new(index);
            size - spread as usize + rng.below(2 * spread + 1) as usize
        };
        self.index += 1;
        self.next_at += self.config.interval;
        EncodedFrame {
            data: frame_bytes(index, len),
            capture_us: 1_700_000_000_000_000
                + now.saturating_duration_since(base()).as_micros() as u64,
            keyframe,
        }
    }
}

thread_local! {
    static BASE: Instant = Instant::now();
}

/// The simulated epoch of this test thread.
pub fn base() -> Instant {
    BASE.with(|b| *b)
}

/// A frame the source produced and what became of it at the sender.
#[derive(Clone, Debug)]
pub struct SentFrame {
    pub number: u32,
    pub keyframe: bool,
    pub data: Bytes,
    pub at: Instant,
    pub accepted: bool,
}

/// Everything a `Pair` is built from.
#[derive(Clone, Debug)]
pub struct PairConfig {
    pub sender: SenderConfig,
    pub receiver: ReceiverConfig,
    pub forward: LinkConfig,
    pub backward: LinkConfig,
    pub source: SourceConfig,
    pub session: u32,
}

impl Default for PairConfig {
    fn default() -> Self {
        Self {
            sender: SenderConfig::default(),
            receiver: ReceiverConfig::default(),
            forward: LinkConfig::ideal(Duration::from_millis(10)),
            backward: LinkConfig::ideal(Duration::from_millis(10)),
            source: SourceConfig::default(),
            session: 0xC0FF_EE01,
        }
    }
}

/// A sender and a receiver joined by two links, on simulated time.
pub struct Pair {
    pub now: Instant,
    pub start: Instant,
    pub sender: Sender,
    pub receiver: Receiver,
    pub forward: Link,
    pub backward: Link,
    pub source: FrameSource,
    pub sender_addr: SocketAddr,
    first_frame: u32,
    pub sent: Vec<SentFrame>,
    pub emitted: Vec<(Instant, ReceivedFrame)>,
    pub events: Vec<(Instant, SenderEvent)>,
    /// When each receiver transmit was handed out, and its bytes.
    pub feedback: Vec<(Instant, Vec<u8>)>,
    /// When each fragment first reached the receiver: (time, frame number).
    pub arrivals: Vec<(Instant, u32)>,
    pub steps: usize,
    buf: Vec<u8>,
}

impl Pair {
    pub fn new(config: PairConfig, seed: u64) -> Self {
        let start = base();
        Self {
            now: start,
            start,
            first_frame: config.sender.first_frame,
            sender: Sender::new(config.sender, config.session),
            receiver: Receiver::new(config.receiver),
            forward: Link::new(config.forward, seed.wrapping_mul(2).wrapping_add(1)),
            backward: Link::new(config.backward, seed.wrapping_mul(2).wrapping_add(2)),
            source: FrameSource::new(config.source, start),
            sender_addr: "192.0.2.10:5000".parse().unwrap(),
            sent: Vec::new(),
            emitted: Vec::new(),
            events: Vec::new(),
            feedback: Vec::new(),
            arrivals: Vec::new(),
            steps: 0,
            buf: Vec::new(),
        }
    }

    /// Source index of a wire frame number (valid for fewer than 2^32 frames).
    pub fn index_of(&self, number: u32) -> u64 {
        u64::from(number.wrapping_sub(self.first_frame))
    }

    pub fn next_event(&self) -> Option<Instant> {
        [
            self.forward.next_delivery(),
            self.backward.next_delivery(),
            self.receiver.poll_timeout(),
            self.sender.poll_timeout(),
            self.source.next_at(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub fn drive_for(&mut self, d: Duration) {
        self.drive_until(self.now + d);
    }

    /// Runs every event up to and including `until`, then sets the clock to `until`.
    pub fn drive_until(&mut self, until: Instant) {
        for _ in 0..MAX_STEPS {
            match self.next_event() {
                Some(t) if t <= until => {
                    self.now = self.now.max(t);
                    self.step();
                }
                _ => {
                    self.now = self.now.max(until);
                    return;
                }
            }
        }
        panic!("simulation did not settle in {MAX_STEPS} steps (busy loop?)");
    }

    /// Handles everything due at `self.now`, draining after every input.
    fn step(&mut self) {
        self.steps += 1;
        let now = self.now;
        if self.source.next_at().is_some_and(|t| t <= now) {
            let frame = self.source.next_frame(now);
            let record = SentFrame {
                number: self.first_frame.wrapping_add(self.sent.len() as u32),
                keyframe: frame.keyframe,
                data: frame.data.clone(),
                at: now,
                accepted: false,
            };
            self.sent.push(record);
            let accepted = self.sender.handle_frame(now, frame);
            self.sent.last_mut().unwrap().accepted = accepted;
            self.drain_sender();
        }
        while let Some(bytes) = self.forward.pop_due(now) {
            if let Ok(Packet::Fragment(h, _)) = wire::parse(&bytes) {
                self.arrivals.push((now, h.frame));
            }
            self.receiver
                .handle_packet(now, Some(self.sender_addr), &bytes);
            self.drain_receiver();
        }
        while let Some(bytes) = self.backward.pop_due(now) {
            self.sender.handle_packet(now, &bytes);
            self.drain_sender();
        }
        if self.receiver.poll_timeout().is_some_and(|t| t <= now) {
            self.receiver.handle_timeout(now);
            self.drain_receiver();
            if let Some(t) = self.receiver.poll_timeout() {
                assert!(
                    t > now,
                    "receiver timer not moved past now by handle_timeout (busy loop)"
                );
            }
        }
        if self.sender.poll_timeout().is_some_and(|t| t <= now) {
            self.sender.handle_timeout(now);
            self.drain_sender();
            if let Some(t) = self.sender.poll_timeout() {
                assert!(t > now, "sender timer not moved past now (busy loop)");
            }
        }
    }

    fn drain_sender(&mut self) {
        let now = self.now;
        let mut n = 0;
        while self.sender.poll_transmit(now, &mut self.buf) {
            n += 1;
            assert!(n <= 1 << 20, "sender transmit loop unbounded");
            self.forward.send(now, self.buf.clone());
        }
        while let Some(event) = self.sender.poll_event() {
            if event == SenderEvent::ForceKeyframe {
                self.source.force = true;
            }
            self.events.push((now, event));
        }
        self.sender.check_invariants();
        self.receiver.check_invariants();
    }

    fn drain_receiver(&mut self) {
        let now = self.now;
        for _ in 0..=1 << 16 {
            let Some(frame) = self.receiver.poll_frame() else {
                break;
            };
            self.emitted.push((now, frame));
        }
        for _ in 0..=1 << 16 {
            let Some(Transmit { to, payload }) = self.receiver.poll_transmit() else {
                break;
            };
            assert_eq!(to, Some(self.sender_addr), "feedback addressed elsewhere");
            self.feedback.push((now, payload.clone()));
            self.backward.send(now, payload);
        }
        self.sender.check_invariants();
        self.receiver.check_invariants();
    }

    /// Frame numbers emitted, in emission order.
    pub fn emitted_numbers(&self) -> Vec<u32> {
        self.emitted.iter().map(|(_, f)| f.number).collect()
    }

    /// Keyframe requests the receiver sent: (time, highest_seen).
    pub fn keyframe_requests(&self) -> Vec<(Instant, Option<u32>)> {
        keyframe_requests(self.feedback.iter().map(|(t, p)| (*t, p.as_slice())))
    }

    /// The decodability and integrity rules on everything emitted so far:
    /// frames leave in increasing order; each carries exactly the bytes sent; a P-frame
    /// leaves only if the frame it references (the one before it) left before it, so
    /// every emitted frame's chain back to its keyframe was emitted. Returns the number
    /// of frames emitted after a gap (each of which must be a keyframe).
    pub fn check_decodable(&self) -> usize {
        let mut emitted: HashSet<u64> = HashSet::new();
        let mut previous: Option<u64> = None;
        let mut restarts = 0;
        for (_, f) in &self.emitted {
            let index = self.index_of(f.number);
            let sent = &self.sent[index as usize];
            assert!(sent.accepted, "frame {} was refused yet emitted", f.number);
            assert_eq!(
                f.frame.keyframe, sent.keyframe,
                "keyframe flag of {}",
                f.number
            );
            assert!(
                f.frame.data == sent.data,
                "bytes of frame {} differ",
                f.number
            );
            assert_eq!(f.session, self.sender.session());
            if let Some(p) = previous {
                assert!(index > p, "frame {} emitted after {}", f.number, p);
                if index != p + 1 {
                    restarts += 1;
                    assert!(f.frame.keyframe, "frame {} emitted after a gap", f.number);
                }
            }
            if !f.frame.keyframe {
                assert!(
                    index > 0 && emitted.contains(&(index - 1)),
                    "P-frame {} emitted but its reference {} was not",
                    f.number,
                    f.number.wrapping_sub(1)
                );
            }
            emitted.insert(index);
            previous = Some(index);
        }
        restarts
    }
}

/// Parses keyframe requests out of (time, packet) pairs, ignoring anything else.
pub fn keyframe_requests<'a>(
    packets: impl Iterator<Item = (Instant, &'a [u8])>,
) -> Vec<(Instant, Option<u32>)> {
    packets
        .filter_map(|(t, p)| match wire::parse(p) {
            Ok(Packet::KeyframeRequest { highest_seen, .. }) => Some((t, highest_seen)),
            _ => None,
        })
        .collect()
}

/// The fragments of one frame, as a sender with `max_packet` would cut them.
pub fn fragments(
    session: u32,
    frame: u32,
    keyframe: bool,
    data: &[u8],
    max_packet: usize,
) -> Vec<Vec<u8>> {
    let payload = max_packet - wire::FRAGMENT_HEADER;
    let count = data.len().div_ceil(payload).max(1);
    let count = u16::try_from(count).expect("frame too large for the wire");
    (0..count)
        .map(|index| {
            let mut out = Vec::new();
            FragmentHeader {
                session,
                frame,
                index,
                count,
                keyframe,
                capture_us: 1_000 + u64::from(frame),
            }
            .write(&mut out);
            let start = index as usize * payload;
            let end = (start + payload).min(data.len());
            out.extend_from_slice(&data[start..end]);
            out
        })
        .collect()
}

/// A lone receiver fed hand-made packets on simulated time.
pub struct Rx {
    pub rx: Receiver,
    pub start: Instant,
    pub now: Instant,
    pub frames: Vec<(Instant, ReceivedFrame)>,
    pub transmits: Vec<(Instant, Transmit)>,
}

impl Rx {
    pub fn new(config: ReceiverConfig) -> Self {
        let start = base();
        Self {
            rx: Receiver::new(config),
            start,
            now: start,
            frames: Vec::new(),
            transmits: Vec::new(),
        }
    }

    /// Feeds one packet at the current time and drains.
    pub fn feed(&mut self, from: SocketAddr, packet: &[u8]) {
        self.rx.handle_packet(self.now, Some(from), packet);
        self.drain();
    }

    pub fn drain(&mut self) {
        for _ in 0..=1 << 16 {
            let Some(frame) = self.rx.poll_frame() else {
                break;
            };
            self.frames.push((self.now, frame));
        }
        for _ in 0..=1 << 16 {
            let Some(t) = self.rx.poll_transmit() else {
                break;
            };
            self.transmits.push((self.now, t));
        }
        self.rx.check_invariants();
    }

    /// Moves the clock forward by `d`, firing every timer on the way.
    pub fn advance(&mut self, d: Duration) {
        let until = self.now + d;
        for _ in 0..MAX_STEPS {
            match self.rx.poll_timeout() {
                Some(t) if t <= until => {
                    self.now = self.now.max(t);
                    self.rx.handle_timeout(self.now);
                    self.drain();
                    if let Some(next) = self.rx.poll_timeout() {
                        assert!(
                            next > self.now,
                            "receiver timer not moved past now by handle_timeout (busy loop)"
                        );
                    }
                }
                _ => {
                    self.now = until;
                    return;
                }
            }
        }
        panic!("receiver timers did not settle in {MAX_STEPS} steps");
    }

    pub fn numbers(&self) -> Vec<u32> {
        self.frames.iter().map(|(_, f)| f.number).collect()
    }

    pub fn keyframe_requests(&self) -> Vec<(Instant, Option<u32>)> {
        keyframe_requests(
            self.transmits
                .iter()
                .map(|(t, x)| (*t, x.payload.as_slice())),
        )
    }
}

/// A socket address for tests: `10.0.0.<host>:<port>`.
pub fn addr(host: u8, port: u16) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, host], port))
}

/// Feedback whose reports and pings are an hour apart: for tests that time other
/// things exactly.
pub fn quiet_feedback() -> transport::FeedbackConfig {
    transport::FeedbackConfig {
        report_interval: Duration::from_secs(3600),
        ping_interval: Duration::from_secs(3600),
        ..Default::default()
    }
}
