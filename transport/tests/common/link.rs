//! One direction of a simulated network path: delay, jitter, loss, reordering,
//! duplication and a rate-limited FIFO.

use super::*;

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
