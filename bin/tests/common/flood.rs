//! Floods for the attack tests: forged bytes and a fixed pace, so a flood's rate is the
//! test's choice and not the speed of the machine.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// A small fast generator for forged bytes (no dependency needed).
pub struct XorShift(pub u64);

impl XorShift {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let r = self.next().to_le_bytes();
            chunk.copy_from_slice(&r[..chunk.len()]);
        }
    }
}

/// Calls `tick` every millisecond until `stop` or `limit`; returns how many ticks ran. A
/// fixed pace, spread evenly (no idle gaps between bursts for a handshake to slip
/// through); a late tick is not made up by a burst.
pub fn every_ms(stop: &AtomicBool, limit: Duration, mut tick: impl FnMut()) -> u64 {
    let start = Instant::now();
    let mut next = start;
    let mut ticks = 0;
    while !stop.load(Ordering::Relaxed) && start.elapsed() < limit {
        tick();
        ticks += 1;
        next += Duration::from_millis(1);
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            next = now;
        }
    }
    ticks
}
