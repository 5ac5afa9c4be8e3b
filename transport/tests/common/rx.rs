//! A lone receiver fed hand-made packets, and the packets to feed it.

use super::*;

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
                // Distinct per packet; these hand-made streams run with repair off, so
                // only parsing cares.
                seq: frame.wrapping_mul(1 << 16).wrapping_add(u32::from(index)),
                frame,
                index,
                count,
                keyframe,
                frame_len: data.len() as u32,
                capture_us: 1_000 + u64::from(frame),
                ..FragmentHeader::default()
            }
            .write(&mut out);
            let start = index as usize * payload;
            let end = (start + payload).min(data.len());
            out.extend_from_slice(&data[start..end]);
            out
        })
        .collect()
}

/// A packet the receiver handed out, and where to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sent {
    pub to: Option<SocketAddr>,
    pub payload: Vec<u8>,
}

/// A lone receiver fed hand-made packets on simulated time.
pub struct Rx {
    pub rx: Receiver,
    pub start: Instant,
    pub now: Instant,
    pub frames: Vec<(Instant, ReceivedFrame)>,
    pub transmits: Vec<(Instant, Sent)>,
    /// When the receiver next wants a timeout input (from its latest drain).
    pub timeout: Option<Instant>,
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
            timeout: None,
        }
    }

    /// Feeds one packet at the current time and drains.
    pub fn feed(&mut self, from: SocketAddr, packet: &[u8]) {
        self.input(ReceiverInput::Packet {
            from: Some(from),
            data: packet,
        });
    }

    /// Feeds any input at the current time and drains.
    pub fn input(&mut self, input: ReceiverInput<'_>) {
        self.rx.handle_input(self.now, input);
        self.drain();
    }

    pub fn drain(&mut self) {
        let out = transport::drain(&mut self.rx, self.now);
        for ReceiverEvent::Frame(frame) in out.events {
            self.frames.push((self.now, frame));
        }
        for (to, payload) in out.transmits {
            self.transmits.push((self.now, Sent { to, payload }));
        }
        self.timeout = out.timeout;
        self.rx.check_invariants();
    }

    /// Moves the clock forward by `d`, firing every timer on the way.
    pub fn advance(&mut self, d: Duration) {
        let until = self.now + d;
        for _ in 0..MAX_STEPS {
            match self.timeout {
                Some(t) if t <= until => {
                    self.now = self.now.max(t);
                    self.input(ReceiverInput::Timeout);
                    if let Some(next) = self.timeout {
                        assert!(
                            next > self.now,
                            "receiver timer not moved past now by a timeout input (busy loop)"
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
