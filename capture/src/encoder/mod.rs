//! Software H.264 encoding for sources that deliver raw pictures.

#[allow(unsafe_code)]
mod x264;

pub use x264::X264Encoder;

/// An I420 picture in someone else's memory, rows possibly padded: the encoder copies
/// it into its own frame in one pass, skipping the padding (no intermediate picture).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StridedI420<'a> {
    /// Picture width, pixels.
    pub width: u32,
    /// Picture height, pixels.
    pub height: u32,
    /// Luma rows, `y_stride` bytes apart.
    pub y: &'a [u8],
    /// Cb rows, `c_stride` bytes apart.
    pub u: &'a [u8],
    /// Cr rows, `c_stride` bytes apart.
    pub v: &'a [u8],
    /// Bytes from one luma row to the next (>= width).
    pub y_stride: usize,
    /// Bytes from one chroma row to the next (>= width / 2).
    pub c_stride: usize,
}

impl<'a> StridedI420<'a> {
    /// A tightly packed picture.
    pub fn from_picture(p: &'a media::Picture) -> Self {
        Self {
            width: p.width,
            height: p.height,
            y: &p.y,
            u: &p.u,
            v: &p.v,
            y_stride: p.width as usize,
            c_stride: p.chroma_width(),
        }
    }

    /// Whether every row the planes claim is within them.
    pub fn is_complete(&self) -> bool {
        let (w, h) = (self.width as usize, self.height as usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let fits = |plane: &[u8], row: usize, stride: usize, rows: usize| {
            stride >= row && (rows == 0 || plane.len() >= stride * (rows - 1) + row)
        };
        fits(self.y, w, self.y_stride, h)
            && fits(self.u, cw, self.c_stride, ch)
            && fits(self.v, cw, self.c_stride, ch)
    }
}

/// What an encoder is asked to produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncoderSettings {
    /// Picture width (even).
    pub width: u32,
    /// Picture height (even).
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// Target and ceiling bitrate, bits per second.
    pub bitrate: u32,
    /// Keyframe interval in frames.
    pub intra: u32,
}

impl EncoderSettings {
    /// Lowest bitrate accepted, bits/s.
    pub const MIN_BITRATE: u32 = 100_000;
    /// Highest bitrate accepted, bits/s (H.264 level 5.1 High).
    pub const MAX_BITRATE: u32 = 50_000_000;
}
