//! Camera buffers to the tightly packed I420 [`Picture`] the software encoder takes.
//! Each function checks the buffer's length against the format first: a short buffer
//! from the driver is an error, never a panic.

use ffmpeg_next as ffmpeg;
use media::Picture;

use super::formats::PixelFormat;

/// The layout of a captured buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Pixel format.
    pub format: PixelFormat,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// Bytes per line of the first plane (the driver's `bytesperline`).
    pub stride: u32,
}

impl Layout {
    /// Bytes a full frame needs (chroma strides follow the luma stride, as in V4L2's
    /// single-planar formats).
    pub fn needed(&self) -> usize {
        let (w, h, s) = (
            self.width as usize,
            self.height as usize,
            self.stride as usize,
        );
        match self.format {
            PixelFormat::Yuyv => s * h.saturating_sub(1) + w * 2,
            PixelFormat::Nv12 => s * h + s * (h / 2).saturating_sub(1) + w,
            PixelFormat::Yuv420 => s * h + 2 * (s / 2) * (h / 2),
            _ => 0,
        }
    }
}

/// Converts a raw buffer into `out` (of the same size). Errors say what is wrong.
pub fn to_i420(src: &[u8], layout: Layout, out: &mut Picture) -> Result<(), String> {
    let (w, h, s) = (
        layout.width as usize,
        layout.height as usize,
        layout.stride as usize,
    );
    if (out.width, out.height) != (layout.width, layout.height) || w == 0 || h < 2 {
        return Err(format!(
            "picture is {}x{}, buffer {}x{}",
            out.width, out.height, w, h
        ));
    }
    let min_stride = if layout.format == PixelFormat::Yuyv {
        w * 2
    } else {
        w
    };
    if s < min_stride {
        return Err(format!(
            "bytesperline {s} is less than the width needs ({min_stride})"
        ));
    }
    let needed = layout.needed();
    if src.len() < needed {
        return Err(format!(
            "{} bytes, a {}x{} {} frame needs {needed}",
            src.len(),
            w,
            h,
            layout.format
        ));
    }
    let cw = w / 2;
    match layout.format {
        PixelFormat::Yuyv => {
            for row in 0..h {
                let line = &src[row * s..row * s + w * 2];
                let y = &mut out.y[row * w..(row + 1) * w];
                for (px, pair) in y.chunks_exact_mut(2).zip(line.chunks_exact(4)) {
                    px[0] = pair[0];
                    px[1] = pair[2];
                }
                // 4:2:2 to 4:2:0: take the chroma of even rows.
                if row % 2 == 0 {
                    let c = row / 2 * cw;
                    for (i, pair) in line.chunks_exact(4).enumerate() {
                        out.u[c + i] = pair[1];
                        out.v[c + i] = pair[3];
                    }
                }
            }
        }
        PixelFormat::Nv12 => {
            for row in 0..h {
                out.y[row * w..(row + 1) * w].copy_from_slice(&src[row * s..row * s + w]);
            }
            let uv = &src[s * h..];
            for row in 0..h / 2 {
                let line = &uv[row * s..row * s + w];
                for (i, pair) in line.chunks_exact(2).enumerate() {
                    out.u[row * cw + i] = pair[0];
                    out.v[row * cw + i] = pair[1];
                }
            }
        }
        PixelFormat::Yuv420 => {
            for row in 0..h {
                out.y[row * w..(row + 1) * w].copy_from_slice(&src[row * s..row * s + w]);
            }
            let cs = s / 2;
            let (u, v) = src[s * h..].split_at(cs * (h / 2));
            for row in 0..h / 2 {
                out.u[row * cw..(row + 1) * cw].copy_from_slice(&u[row * cs..row * cs + cw]);
                out.v[row * cw..(row + 1) * cw].copy_from_slice(&v[row * cs..row * cs + cw]);
            }
        }
        other => return Err(format!("{other} is not a raw format picam converts")),
    }
    Ok(())
}

/// Motion JPEG frames to I420 with FFmpeg's decoder and scaler.
pub struct MjpegDecoder {
    decoder: ffmpeg::decoder::Video,
    decoded: ffmpeg::frame::Video,
    scaled: ffmpeg::frame::Video,
    scaler: Option<ffmpeg::software::scaling::Context>,
}

// SAFETY of Send: owned exclusively; FFmpeg contexts may move between threads.
unsafe impl Send for MjpegDecoder {}

impl MjpegDecoder {
    /// An MJPEG decoder.
    pub fn new() -> Result<Self, String> {
        ffmpeg::init().map_err(|e| e.to_string())?;
        let codec =
            ffmpeg::decoder::find(ffmpeg::codec::Id::MJPEG).ok_or("FFmpeg has no MJPEG decoder")?;
        let decoder = ffmpeg::codec::context::Context::new_with_codec(codec)
            .decoder()
            .video()
            .map_err(|e| format!("opening the MJPEG decoder: {e}"))?;
        Ok(Self {
            decoder,
            decoded: ffmpeg::frame::Video::empty(),
            scaled: ffmpeg::frame::Video::empty(),
            scaler: None,
        })
    }

    /// Decodes one JPEG into `out`.
    pub fn decode(&mut self, jpeg: &[u8], out: &mut Picture) -> Result<(), String> {
        self.decoder
            .send_packet(&ffmpeg::Packet::copy(jpeg))
            .map_err(|e| format!("bad JPEG: {e}"))?;
        self.decoder
            .receive_frame(&mut self.decoded)
            .map_err(|e| format!("bad JPEG: {e}"))?;
        let (w, h) = (self.decoded.width(), self.decoded.height());
        if (w, h) != (out.width, out.height) {
            return Err(format!(
                "JPEG is {w}x{h}, expected {}x{}",
                out.width, out.height
            ));
        }
        let format = self.decoded.format();
        let stale = self
            .scaler
            .as_ref()
            .is_none_or(|s| s.input().format != format);
        if stale {
            self.scaler = Some(
                ffmpeg::software::scaling::Context::get(
                    format,
                    w,
                    h,
                    ffmpeg::format::Pixel::YUV420P,
                    w,
                    h,
                    ffmpeg::software::scaling::Flags::POINT,
                )
                .map_err(|e| format!("no conversion from {format:?}: {e}"))?,
            );
        }
        if let Some(scaler) = &mut self.scaler {
            scaler
                .run(&self.decoded, &mut self.scaled)
                .map_err(|e| format!("converting: {e}"))?;
        }
        let cw = out.chroma_width();
        for (plane, dst, width) in [
            (0, &mut out.y, w as usize),
            (1, &mut out.u, cw),
            (2, &mut out.v, cw),
        ] {
            let stride = self.scaled.stride(plane);
            let src = self.scaled.data(plane);
            for (row, line) in dst.chunks_exact_mut(width).enumerate() {
                line.copy_from_slice(&src[row * stride..row * stride + width]);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(format: PixelFormat, width: u32, height: u32, stride: u32) -> Layout {
        Layout {
            format,
            width,
            height,
            stride,
        }
    }

    #[test]
    fn yuyv_takes_luma_and_even_row_chroma_with_padding() {
        // 4x2 pixels, stride 12 (4 bytes of padding per line).
        let src = [
            10, 100, 11, 200, 12, 101, 13, 201, 0, 0, 0, 0, //
            20, 102, 21, 202, 22, 103, 23, 203, 0, 0, 0, 0,
        ];
        let mut p = Picture::new(4, 2);
        to_i420(&src, layout(PixelFormat::Yuyv, 4, 2, 12), &mut p).unwrap();
        assert_eq!(p.y, vec![10, 11, 12, 13, 20, 21, 22, 23]);
        assert_eq!((p.u.clone(), p.v.clone()), (vec![100, 101], vec![200, 201]));
    }

    #[test]
    fn nv12_and_yu12_deinterleave_and_unpad() {
        let (w, h, s) = (4u32, 2u32, 6u32);
        let mut nv12 = vec![0u8; (s * h + s * h / 2) as usize];
        nv12[..4].copy_from_slice(&[1, 2, 3, 4]);
        nv12[6..10].copy_from_slice(&[5, 6, 7, 8]);
        nv12[12..16].copy_from_slice(&[50, 60, 51, 61]);
        let mut p = Picture::new(w, h);
        to_i420(&nv12, layout(PixelFormat::Nv12, w, h, s), &mut p).unwrap();
        assert_eq!(p.y, vec![1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!((p.u.clone(), p.v.clone()), (vec![50, 51], vec![60, 61]));

        let mut yu12 = vec![0u8; (s * h + 2 * (s / 2) * (h / 2)) as usize];
        yu12[..4].copy_from_slice(&[1, 2, 3, 4]);
        yu12[6..10].copy_from_slice(&[5, 6, 7, 8]);
        yu12[12..14].copy_from_slice(&[70, 71]);
        yu12[15..17].copy_from_slice(&[80, 81]);
        to_i420(&yu12, layout(PixelFormat::Yuv420, w, h, s), &mut p).unwrap();
        assert_eq!((p.u.clone(), p.v.clone()), (vec![70, 71], vec![80, 81]));
    }

    #[test]
    fn short_or_odd_buffers_are_errors_not_panics() {
        let mut p = Picture::new(64, 48);
        for format in [PixelFormat::Yuyv, PixelFormat::Nv12, PixelFormat::Yuv420] {
            let l = layout(format, 64, 48, 128);
            let err = to_i420(&vec![0; l.needed() - 1], l, &mut p).unwrap_err();
            assert!(err.contains("needs"), "{err}");
            assert!(to_i420(&vec![0; l.needed()], l, &mut p).is_ok(), "{format}");
            assert!(to_i420(&[0; 10], layout(format, 64, 48, 2), &mut p).is_err());
        }
        assert!(
            to_i420(&[0; 10_000], layout(PixelFormat::Yuyv, 32, 48, 64), &mut p).is_err(),
            "size mismatch"
        );
        assert!(to_i420(&[0; 10_000], layout(PixelFormat::H264, 64, 48, 64), &mut p).is_err());
    }

    #[test]
    fn mjpeg_decodes_to_i420() {
        // Encode a grey-ish picture with FFmpeg's MJPEG encoder, then decode it back.
        ffmpeg::init().unwrap();
        let codec = ffmpeg::encoder::find(ffmpeg::codec::Id::MJPEG).expect("mjpeg encoder");
        let mut enc = ffmpeg::codec::context::Context::new_with_codec(codec)
            .encoder()
            .video()
            .unwrap();
        enc.set_width(64);
        enc.set_height(48);
        enc.set_format(ffmpeg::format::Pixel::YUVJ420P);
        enc.set_time_base(ffmpeg::Rational(1, 30));
        let mut enc = enc.open_as(codec).unwrap();
        let mut frame = ffmpeg::frame::Video::new(ffmpeg::format::Pixel::YUVJ420P, 64, 48);
        for plane in 0..3 {
            frame
                .data_mut(plane)
                .fill(if plane == 0 { 200 } else { 128 });
        }
        enc.send_frame(&frame).unwrap();
        let mut packet = ffmpeg::Packet::empty();
        enc.receive_packet(&mut packet).unwrap();
        let mut dec = MjpegDecoder::new().unwrap();
        let mut p = Picture::new(64, 48);
        dec.decode(packet.data().unwrap(), &mut p).unwrap();
        // Full-range JPEG 200 is limited-range 16 + 200 * 219 / 255 = 188.
        assert!(
            p.y.iter().all(|&y| (184..=192).contains(&y)),
            "luma {:?}",
            &p.y[..8]
        );
        assert!(
            dec.decode(&[0xff, 0xd8, 1, 2, 3], &mut p).is_err(),
            "broken JPEG is an error"
        );
        let mut small = Picture::new(32, 24);
        assert!(
            dec.decode(packet.data().unwrap(), &mut small).is_err(),
            "size mismatch is an error"
        );
    }
}
