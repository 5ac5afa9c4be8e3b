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

// Each test crate uses a different part of this support module.
#![allow(dead_code, unused_imports)]

mod link;
mod pair;
mod rx;
mod source;

pub use link::*;
pub use pair::*;
pub use rx::*;
pub use source::*;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use media::EncodedFrame;
use transport::wire::{self, FragmentHeader, Packet};
use transport::{
    Machine, ReceivedFrame, Receiver, ReceiverConfig, ReceiverEvent, ReceiverInput, Sender,
    SenderConfig, SenderEvent, SenderInput,
};

/// One millisecond, the tests' unit of simulated time.
pub const MS: Duration = Duration::from_millis(1);

/// `n` milliseconds.
pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

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

thread_local! {
    static BASE: Instant = Instant::now();
}

/// The simulated epoch of this test thread.
pub fn base() -> Instant {
    BASE.with(|b| *b)
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
