//! The synthetic camera's picture: moving, textured, and exactly reproducible from the
//! frame number, so a receiver can regenerate what was sent and measure the damage.

use crate::Picture;

const WAVE_PERIOD: usize = 240;
const SQUARE_SHIFT: u32 = 6; // 64-pixel checker squares

/// Generates the test pattern at one size. Cheap: table lookups and adds per pixel.
#[derive(Clone, Debug)]
pub struct TestPattern {
    width: u32,
    height: u32,
    wave: Vec<i16>,
    grain: Vec<i8>,
}

impl TestPattern {
    /// A pattern for pictures of `width` x `height` (both even).
    pub fn new(width: u32, height: u32) -> Self {
        let wave = (0..WAVE_PERIOD)
            .map(|i| {
                let phase = i as f64 / WAVE_PERIOD as f64 * std::f64::consts::TAU;
                (phase.sin() * 40.0).round() as i16
            })
            .collect();
        // Fixed fine grain so the encoder has real texture to spend bits on.
        let mut state: u32 = 0x9E37_79B9;
        let grain = (0..4096)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                ((state >> 24) as i8) >> 4
            })
            .collect();
        Self {
            width,
            height,
            wave,
            grain,
        }
    }

    /// Picture width.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Picture height.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// A new picture holding frame `n`.
    pub fn picture(&self, n: u32) -> Picture {
        let mut p = Picture::new(self.width, self.height);
        self.fill(n, &mut p);
        p
    }

    /// Paints frame `n` into `p`, which must have this pattern's size.
    pub fn fill(&self, n: u32, p: &mut Picture) {
        assert_eq!(
            (p.width, p.height),
            (self.width, self.height),
            "pattern size mismatch"
        );
        let (w, h) = (self.width as usize, self.height as usize);
        let t = n as usize;
        let wave = |i: usize| self.wave[i % WAVE_PERIOD] as i32;
        for y in 0..h {
            let row_wave = wave(y + 2 * t);
            let sq_y = ((y + t) >> SQUARE_SHIFT) as u32;
            let row = &mut p.y[y * w..(y + 1) * w];
            for (x, px) in row.iter_mut().enumerate() {
                let sq_x = ((x + 5 * t) >> SQUARE_SHIFT) as u32;
                let checker = if (sq_x + sq_y) & 1 == 1 { 50 } else { 0 };
                let grain = self.grain[(y * 61 + x) & 4095] as i32;
                let value = 100 + wave(x + 3 * t) + row_wave + checker + grain;
                *px = value.clamp(16, 235) as u8;
            }
        }
        let (cw, ch) = (w / 2, h / 2);
        for y in 0..ch {
            for x in 0..cw {
                p.u[y * cw + x] = (128 + wave(2 * x + t) / 2) as u8;
                p.v[y * cw + x] = (128 + wave(3 * y + 2 * t) / 2) as u8;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_reproducible_and_moves() {
        let pattern = TestPattern::new(320, 240);
        let a = pattern.picture(10);
        assert_eq!(a.y, pattern.picture(10).y);
        let b = pattern.picture(11);
        assert_ne!(a.y, b.y);
        let psnr = a.luma_psnr(&b, 0).unwrap();
        assert!(
            psnr < 30.0,
            "consecutive frames should differ visibly, psnr {psnr}"
        );
    }

    #[test]
    fn stays_in_video_range() {
        let p = TestPattern::new(640, 480).picture(1234);
        assert!(p.y.iter().all(|&v| (16..=235).contains(&v)));
    }
}
