//! How rpicam-vid lays out a raw I420 frame on its stdout (`--codec yuv420`).
//!
//! rpicam-vid's null encoder writes the camera buffer as libcamera filled it: the Y
//! plane, then U, then V, back to back, each row padded to the ISP's stride. The rows
//! are therefore wider than the picture for some widths, and the rule depends on the
//! ISP:
//!
//! - **VC4 (Pi 4 and earlier, `bcm2835-isp`)**: the luma stride is the width rounded up
//!   to 64 bytes and the chroma stride is half of it (Linux commit "isp: Set the
//!   YUV420/YVU420 format stride to 64 bytes", raspberrypi/linux pull 4419: 32-byte
//!   aligned U and V planes need a 64-byte luma stride). rpicam-apps issue 188 shows it:
//!   780 pixels wide gives 832-byte rows.
//! - **PiSP (Pi 5)**: libcamera's `computeOptimalStride` (pipeline/rpi/pisp/pisp.cpp)
//!   aligns the chroma stride to 64 bytes (libpisp `compute_optimal_stride`) and makes
//!   the luma stride twice that, so all three planes stay 64-byte aligned: the width
//!   rounded up to 128.
//!
//! Both keep the chroma stride half the luma stride, and neither pads the height. A
//! libcamera that changes its mind can be followed without a new picam:
//! `--source "rpicam stride=N"` names the luma stride.

use crate::encoder::StridedI420;
use crate::CaptureError;

/// The image signal processor that fills the frames, which decides the row padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isp {
    /// The Pi 4's (and earlier models') VideoCore IV ISP: rows padded to 64 bytes.
    Vc4,
    /// The Pi 5's PiSP: rows padded to 128 bytes (chroma to 64).
    Pisp,
}

impl Isp {
    /// The ISP of this machine: PiSP on a BCM2712 (Pi 5), else VC4 (also the rule the
    /// test fake follows on a PC).
    pub fn detect() -> Self {
        let compatible = std::fs::read("/proc/device-tree/compatible").unwrap_or_default();
        Self::from_compatible(&compatible)
    }

    /// The ISP for a device tree `compatible` list (NUL-separated strings).
    pub fn from_compatible(compatible: &[u8]) -> Self {
        let is_bcm2712 = compatible
            .split(|&b| b == 0)
            .any(|entry| entry == b"brcm,bcm2712");
        if is_bcm2712 {
            Self::Pisp
        } else {
            Self::Vc4
        }
    }

    /// Its name as `--fake-isp` and the logs spell it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Vc4 => "vc4",
            Self::Pisp => "pisp",
        }
    }

    /// The luma stride this ISP gives a row of `width` pixels.
    pub fn luma_stride(self, width: u32) -> u32 {
        match self {
            Self::Vc4 => width.next_multiple_of(64),
            Self::Pisp => (width / 2).next_multiple_of(64) * 2,
        }
    }
}

/// Where each plane of one raw frame sits in the bytes read from the pipe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct I420Layout {
    /// Picture width, pixels (even).
    pub width: u32,
    /// Picture height, pixels (even).
    pub height: u32,
    /// Bytes from one luma row to the next.
    pub y_stride: u32,
    /// Bytes from one chroma row to the next (half the luma stride).
    pub c_stride: u32,
}

impl I420Layout {
    /// The layout `isp` gives a `width` x `height` frame.
    pub fn for_isp(isp: Isp, width: u32, height: u32) -> Result<Self, CaptureError> {
        Self::with_stride(width, height, isp.luma_stride(width.max(2)))
    }

    /// A layout with the luma stride given (the `stride=N` override); chroma rows are
    /// half as wide, as with both of the Pi's ISPs.
    pub fn with_stride(width: u32, height: u32, y_stride: u32) -> Result<Self, CaptureError> {
        let refuse = |what: &'static str| CaptureError::RawLayout {
            width,
            height,
            stride: y_stride,
            what,
        };
        if width < 2 || height < 2 || width % 2 != 0 || height % 2 != 0 {
            return Err(refuse("the width and height must be even and at least 2"));
        }
        if y_stride < width {
            return Err(refuse("the stride is narrower than the picture"));
        }
        if y_stride % 2 != 0 {
            return Err(refuse(
                "the stride must be even (chroma rows are half of it)",
            ));
        }
        let layout = Self {
            width,
            height,
            y_stride,
            c_stride: y_stride / 2,
        };
        // A frame must fit a 32-bit size and a sane allocation (16K x 16K).
        if layout.frame_bytes() > 16_384 * 16_384 * 3 / 2 {
            return Err(refuse("the frame is larger than picam handles"));
        }
        Ok(layout)
    }

    /// Bytes of one whole frame on the pipe, padding included.
    pub fn frame_bytes(&self) -> usize {
        let (h, ys, cs) = (
            self.height as usize,
            self.y_stride as usize,
            self.c_stride as usize,
        );
        ys * h + 2 * cs * (h / 2)
    }

    /// Whether rows carry padding (the encoder then skips it while copying).
    pub fn is_padded(&self) -> bool {
        self.y_stride != self.width
    }

    /// The planes of `frame` (exactly [`I420Layout::frame_bytes`] long), as the encoder
    /// takes them; `None` if `frame` has another length.
    pub fn view<'a>(&self, frame: &'a [u8]) -> Option<StridedI420<'a>> {
        if frame.len() != self.frame_bytes() {
            return None;
        }
        let luma = self.y_stride as usize * self.height as usize;
        let chroma = self.c_stride as usize * (self.height as usize / 2);
        let (y, rest) = frame.split_at(luma);
        let (u, v) = rest.split_at(chroma);
        Some(StridedI420 {
            width: self.width,
            height: self.height,
            y,
            u,
            v,
            y_stride: self.y_stride as usize,
            c_stride: self.c_stride as usize,
        })
    }

    /// Writes `picture` (of this layout's size) into `frame` with this layout's row
    /// padding (zeros), as rpicam-vid would: the test fake's side.
    pub fn pad_into(&self, picture: &media::Picture, frame: &mut Vec<u8>) {
        frame.clear();
        frame.resize(self.frame_bytes(), 0);
        let (w, cw) = (self.width as usize, self.width as usize / 2);
        let (ys, cs) = (self.y_stride as usize, self.c_stride as usize);
        let luma = ys * self.height as usize;
        let chroma = cs * (self.height as usize / 2);
        let planes = [
            (&picture.y, w, ys, 0),
            (&picture.u, cw, cs, luma),
            (&picture.v, cw, cs, luma + chroma),
        ];
        for (plane, row, stride, start) in planes {
            for (i, line) in plane.chunks_exact(row).enumerate() {
                let at = start + i * stride;
                frame[at..at + row].copy_from_slice(line);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vc4_pads_rows_to_64_bytes_and_pisp_to_128() {
        // (width, VC4 luma stride, PiSP luma stride)
        let cases = [
            (1280, 1280, 1280),
            (1920, 1920, 1920),
            (640, 640, 640),
            (780, 832, 896), // rpicam-apps issue 188: 780 wide gives 832-byte rows (Pi 4)
            (1296, 1344, 1408),
            (1332, 1344, 1408),
            (650, 704, 768),
            (2028, 2048, 2048),
            (64, 64, 128),
        ];
        for (width, vc4, pisp) in cases {
            assert_eq!(Isp::Vc4.luma_stride(width), vc4, "vc4 {width}");
            assert_eq!(Isp::Pisp.luma_stride(width), pisp, "pisp {width}");
            let l = I420Layout::for_isp(Isp::Pisp, width, 480).unwrap();
            assert_eq!(l.c_stride % 64, 0, "pisp chroma rows 64-byte aligned");
            assert_eq!(l.c_stride * 2, l.y_stride);
        }
    }

    #[test]
    fn frame_size_counts_padding_of_every_plane_and_no_extra_rows() {
        let l = I420Layout::for_isp(Isp::Vc4, 1296, 972).unwrap();
        assert_eq!((l.y_stride, l.c_stride), (1344, 672));
        assert_eq!(l.frame_bytes(), 1344 * 972 + 2 * 672 * 486);
        assert!(l.is_padded());
        let tight = I420Layout::for_isp(Isp::Vc4, 1280, 720).unwrap();
        assert_eq!(tight.frame_bytes(), 1280 * 720 * 3 / 2);
        assert!(!tight.is_padded());
    }

    #[test]
    fn the_pi_5_is_told_by_its_device_tree() {
        assert_eq!(
            Isp::from_compatible(b"raspberrypi,5-model-b\0brcm,bcm2712\0"),
            Isp::Pisp
        );
        assert_eq!(
            Isp::from_compatible(b"raspberrypi,4-model-b\0brcm,bcm2711\0"),
            Isp::Vc4
        );
        assert_eq!(Isp::from_compatible(b""), Isp::Vc4);
        // A prefix is not the SoC.
        assert_eq!(Isp::from_compatible(b"brcm,bcm27120\0"), Isp::Vc4);
    }

    #[test]
    fn impossible_layouts_are_refused_naming_the_values() {
        for (w, h, stride, want) in [
            (1296, 972, 1200, "narrower"),
            (1296, 972, 1345, "even"),
            (1295, 972, 1344, "even and at least 2"),
            (0, 0, 64, "at least 2"),
        ] {
            let err = I420Layout::with_stride(w, h, stride)
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{w}x{h} stride {stride}: {err}");
            assert!(err.contains(&format!("{w}x{h}")), "{err}");
            assert!(err.contains(&stride.to_string()), "{err}");
        }
    }

    #[test]
    fn padding_written_by_the_fake_is_skipped_by_the_view() {
        let (w, h) = (650u32, 4u32);
        let mut picture = media::Picture::new(w, h);
        for (i, b) in picture.y.iter_mut().enumerate() {
            *b = (i % 251) as u8;
        }
        picture.u.fill(7);
        picture.v.fill(9);
        let l = I420Layout::for_isp(Isp::Vc4, w, h).unwrap();
        let mut frame = Vec::new();
        l.pad_into(&picture, &mut frame);
        assert_eq!(frame.len(), l.frame_bytes());
        let view = l.view(&frame).unwrap();
        for row in 0..h as usize {
            let want = &picture.y[row * w as usize..(row + 1) * w as usize];
            assert_eq!(
                &view.y[row * view.y_stride..][..w as usize],
                want,
                "row {row}"
            );
            // The padding is not picture.
            assert!(
                view.y[row * view.y_stride + w as usize..(row + 1) * view.y_stride]
                    .iter()
                    .all(|&b| b == 0)
            );
        }
        assert!(view.u.len() == view.c_stride * 2 && view.v.len() == view.c_stride * 2);
        assert_eq!(view.v[0], 9);
        assert_eq!(l.view(&frame[1..]), None, "a short frame has no view");
    }
}
