/// Lowers a source's frame rate by skipping frames before the encoder: a skipped frame
/// costs no decodability (the encoder never references it), unlike a frame dropped
/// after encoding. Spreads the kept frames evenly (a Bresenham accumulator).
#[derive(Clone, Debug)]
pub struct Decimator {
    source_fps: u32,
    target_fps: u32,
    credit: u32,
}

impl Decimator {
    /// Keeps every frame of a `source_fps` source until told otherwise.
    pub fn new(source_fps: u32) -> Self {
        let source_fps = source_fps.max(1);
        Self {
            source_fps,
            target_fps: source_fps,
            credit: 0,
        }
    }

    /// Keeps about `fps` frames a second (never more than the source has).
    pub fn set_target(&mut self, fps: u32) {
        self.target_fps = fps.clamp(1, self.source_fps);
    }

    /// The frame rate kept.
    pub fn target(&self) -> u32 {
        self.target_fps
    }

    /// Whether the next source frame is kept.
    pub fn keep(&mut self) -> bool {
        self.credit += self.target_fps;
        if self.credit >= self.source_fps {
            self.credit -= self.source_fps;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_asked_share_evenly() {
        let mut d = Decimator::new(30);
        assert!((0..30).all(|_| d.keep()));
        d.set_target(10);
        let kept: Vec<bool> = (0..30).map(|_| d.keep()).collect();
        assert_eq!(kept.iter().filter(|&&k| k).count(), 10);
        // Never two kept frames in a row at a third of the rate.
        assert!(kept.windows(2).all(|w| !(w[0] && w[1])));
        d.set_target(500);
        assert_eq!(d.target(), 30);
    }
}
