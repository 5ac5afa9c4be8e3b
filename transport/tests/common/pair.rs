//! A sender and a receiver joined by two links, on simulated time.

use super::*;

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
    /// Keep the sender's and receiver's wall clocks as given; otherwise both are tied
    /// to simulated time (the defaults read the system's at construction, and its
    /// sub-microsecond phase made seeded runs differ from run to run).
    pub keep_clocks: bool,
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
            keep_clocks: false,
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
    /// When each machine last asked for a timeout input (from its latest drain).
    rx_timeout: Option<Instant>,
    tx_timeout: Option<Instant>,
}

impl Pair {
    pub fn new(mut config: PairConfig, seed: u64) -> Self {
        let start = base();
        if !config.keep_clocks {
            config.sender.clock = transport::clock::WallClock::new(start, 1_000_000_000_000);
            config.receiver.feedback.clock =
                transport::clock::WallClock::new(start, 2_000_000_000_000);
        }
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
            rx_timeout: None,
            tx_timeout: None,
        }
    }

    /// When the receiver next wants a timeout input.
    pub fn receiver_timeout(&self) -> Option<Instant> {
        self.rx_timeout
    }

    /// When the sender next wants a timeout input.
    pub fn sender_timeout(&self) -> Option<Instant> {
        self.tx_timeout
    }

    /// Source index of a wire frame number (valid for fewer than 2^32 frames).
    pub fn index_of(&self, number: u32) -> u64 {
        u64::from(number.wrapping_sub(self.first_frame))
    }

    pub fn next_event(&self) -> Option<Instant> {
        [
            self.forward.next_delivery(),
            self.backward.next_delivery(),
            self.rx_timeout,
            self.tx_timeout,
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
            let too_large = self.sender.stats().frames_too_large;
            self.sender
                .handle_input(now, SenderInput::Frame(frame.into()));
            self.sent.last_mut().unwrap().accepted =
                self.sender.stats().frames_too_large == too_large;
            self.drain_sender();
        }
        while let Some(bytes) = self.forward.pop_due(now) {
            if let Ok(Packet::Fragment(h, _)) = wire::parse(&bytes) {
                self.arrivals.push((now, h.frame));
            }
            self.receiver.handle_input(
                now,
                ReceiverInput::Packet {
                    from: Some(self.sender_addr),
                    data: &bytes,
                },
            );
            self.drain_receiver();
        }
        while let Some(bytes) = self.backward.pop_due(now) {
            self.sender.handle_input(now, SenderInput::Packet(&bytes));
            self.drain_sender();
        }
        if self.rx_timeout.is_some_and(|t| t <= now) {
            self.receiver.handle_input(now, ReceiverInput::Timeout);
            self.drain_receiver();
            if let Some(t) = self.rx_timeout {
                assert!(
                    t > now,
                    "receiver timer not moved past now by a timeout input (busy loop)"
                );
            }
        }
        if self.tx_timeout.is_some_and(|t| t <= now) {
            self.sender.handle_input(now, SenderInput::Timeout);
            self.drain_sender();
            if let Some(t) = self.tx_timeout {
                assert!(t > now, "sender timer not moved past now (busy loop)");
            }
        }
    }

    /// Feeds one input to the sender at the current time and drains it.
    pub fn sender_input(&mut self, input: SenderInput<'_>) {
        self.sender.handle_input(self.now, input);
        self.drain_sender();
    }

    /// Feeds one input to the receiver at the current time and drains it.
    pub fn receiver_input(&mut self, input: ReceiverInput<'_>) {
        self.receiver.handle_input(self.now, input);
        self.drain_receiver();
    }

    fn drain_sender(&mut self) {
        let now = self.now;
        let out = transport::drain(&mut self.sender, now);
        for (to, packet) in out.transmits {
            assert_eq!(to, None, "the sender sends to its one remote");
            self.forward.send(now, packet);
        }
        for event in out.events {
            if event == SenderEvent::ForceKeyframe {
                self.source.force = true;
            }
            self.events.push((now, event));
        }
        self.tx_timeout = out.timeout;
        self.sender.check_invariants();
        self.receiver.check_invariants();
    }

    fn drain_receiver(&mut self) {
        let now = self.now;
        let out = transport::drain(&mut self.receiver, now);
        for ReceiverEvent::Frame(frame) in out.events {
            self.emitted.push((now, frame));
        }
        for (to, payload) in out.transmits {
            assert_eq!(to, Some(self.sender_addr), "feedback addressed elsewhere");
            self.feedback.push((now, payload.clone()));
            self.backward.send(now, payload);
        }
        self.rx_timeout = out.timeout;
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
