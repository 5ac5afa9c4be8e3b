use std::time::Instant;

/// A decoded picture in planar I420 (YUV 4:2:0), planes tightly packed.
///
/// Tight packing (stride == plane width) keeps every consumer simple: the YUV4MPEG2
/// writer writes planes as they are and the SDL texture takes them with known pitches.
#[derive(Clone, Debug)]
pub struct Picture {
    /// Width of the luma plane in pixels (even).
    pub width: u32,
    /// Height of the luma plane in pixels (even).
    pub height: u32,
    /// Luma, `width * height` bytes.
    pub y: Vec<u8>,
    /// Cb, `(width / 2) * (height / 2)` bytes.
    pub u: Vec<u8>,
    /// Cr, `(width / 2) * (height / 2)` bytes.
    pub v: Vec<u8>,
    /// When the decoder handed this picture out, for measuring the display path.
    pub decoded_at: Instant,
}

impl Picture {
    /// A mid-grey picture of the given even size.
    pub fn new(width: u32, height: u32) -> Self {
        debug_assert!(width % 2 == 0 && height % 2 == 0, "I420 needs even sizes");
        let luma = width as usize * height as usize;
        Self {
            width,
            height,
            y: vec![128; luma],
            u: vec![128; luma / 4],
            v: vec![128; luma / 4],
            decoded_at: Instant::now(),
        }
    }

    /// Width of each chroma plane.
    pub fn chroma_width(&self) -> usize {
        self.width as usize / 2
    }

    /// Peak signal-to-noise ratio of the luma planes in dB, over rows `from_row..`.
    ///
    /// Returns `None` when sizes differ; identical planes give `f64::INFINITY`.
    pub fn luma_psnr(&self, other: &Picture, from_row: u32) -> Option<f64> {
        if self.width != other.width || self.height != other.height || from_row >= self.height {
            return None;
        }
        let start = from_row as usize * self.width as usize;
        let (a, b) = (&self.y[start..], &other.y[start..]);
        let sse: u64 = a
            .iter()
            .zip(b)
            .map(|(&p, &q)| {
                let d = p as i64 - q as i64;
                (d * d) as u64
            })
            .sum();
        if sse == 0 {
            return Some(f64::INFINITY);
        }
        let mse = sse as f64 / a.len() as f64;
        Some(10.0 * (255.0 * 255.0 / mse).log10())
    }
}
