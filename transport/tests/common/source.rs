//! A synthetic encoder for the simulations.

use super::*;

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
