use std::time::Instant;

use ffmpeg::{codec, format::Pixel, frame, Packet};
use ffmpeg_next as ffmpeg;
use media::Picture;

use crate::DecodeError;

/// What one access unit gave.
#[derive(Debug)]
pub enum Decoded {
    /// A picture, ready to show.
    Picture(Picture),
    /// The decoder took the data but has no picture yet (parameter sets only).
    Nothing,
}

/// The largest picture side accepted by [`Decoder::new`]: 8K. A forged SPS declaring
/// more (up to 65536 x 65536 by the format) would otherwise make FFmpeg allocate
/// gigabytes before a single byte of picture data is checked.
pub const MAX_SIDE: u32 = 8192;

/// A low-delay H.264 decoder: one access unit in, its picture out.
pub struct Decoder {
    decoder: ffmpeg::decoder::Video,
    frame: frame::Video,
    max: (u32, u32),
}

// SAFETY of Send: the decoder and frame are owned exclusively by this value; FFmpeg
// codec contexts may move between threads (they must not be shared).
unsafe impl Send for Decoder {}

impl Decoder {
    /// Opens a decoder with `threads` slice threads (1 for none), accepting pictures up
    /// to [`MAX_SIDE`] x [`MAX_SIDE`].
    pub fn new(threads: usize) -> Result<Self, DecodeError> {
        Self::with_max_size(threads, MAX_SIDE, MAX_SIDE)
    }

    /// As [`Decoder::new`], refusing pictures wider than `max_width` or taller than
    /// `max_height`. FFmpeg's `max_pixels` stops a larger stream at its parameter sets,
    /// before the picture buffers are allocated; a picture that still comes out larger on
    /// one side is refused here.
    pub fn with_max_size(
        threads: usize,
        max_width: u32,
        max_height: u32,
    ) -> Result<Self, DecodeError> {
        ffmpeg::init().map_err(DecodeError::Open)?;
        ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Fatal);
        let codec = ffmpeg::decoder::find(codec::Id::H264).ok_or(DecodeError::NoDecoder)?;
        let mut context = codec::context::Context::new_with_codec(codec);
        // Replacing the flags also clears OUTPUT_CORRUPT: concealed pictures stay inside.
        context.set_flags(codec::Flags::LOW_DELAY);
        context.set_threading(ffmpeg::threading::Config {
            kind: ffmpeg::threading::Type::Slice,
            count: threads.max(1),
            ..Default::default()
        });
        let mut options = ffmpeg::Dictionary::new();
        let max_pixels = u64::from(max_width) * u64::from(max_height);
        options.set("max_pixels", &max_pixels.to_string());
        let decoder = context
            .decoder()
            .open_as_with(codec, options)
            .and_then(|opened| opened.video())
            .map_err(DecodeError::Open)?;
        Ok(Self {
            decoder,
            frame: frame::Video::empty(),
            max: (max_width, max_height),
        })
    }

    /// Decodes one access unit (Annex B). A picture flagged corrupt is an error, never
    /// returned: the caller drops it and asks for a keyframe.
    pub fn decode(&mut self, access_unit: &[u8]) -> Result<Decoded, DecodeError> {
        let packet = Packet::copy(access_unit);
        self.decoder
            .send_packet(&packet)
            .map_err(|source| DecodeError::Frame {
                bytes: access_unit.len(),
                source,
            })?;
        let mut out = Decoded::Nothing;
        loop {
            match self.decoder.receive_frame(&mut self.frame) {
                Ok(()) => {
                    if self.frame.is_corrupt() || self.frame.has_decode_errors() {
                        return Err(DecodeError::Corrupt);
                    }
                    let size = (self.frame.width(), self.frame.height());
                    if size.0 > self.max.0 || size.1 > self.max.1 {
                        return Err(DecodeError::TooLarge {
                            width: size.0,
                            height: size.1,
                            max_width: self.max.0,
                            max_height: self.max.1,
                        });
                    }
                    out = Decoded::Picture(to_picture(&self.frame)?);
                }
                Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::util::error::EAGAIN => {
                    break
                }
                Err(ffmpeg::Error::Eof) => break,
                Err(source) => {
                    return Err(DecodeError::Frame {
                        bytes: access_unit.len(),
                        source,
                    })
                }
            }
        }
        Ok(out)
    }
}

fn to_picture(frame: &frame::Video) -> Result<Picture, DecodeError> {
    match frame.format() {
        Pixel::YUV420P | Pixel::YUVJ420P => {}
        other => return Err(DecodeError::PixelFormat(other)),
    }
    let (width, height) = (frame.width() & !1, frame.height() & !1);
    let mut picture = Picture::new(width, height);
    copy_plane(frame, 0, &mut picture.y, width as usize);
    copy_plane(frame, 1, &mut picture.u, width as usize / 2);
    copy_plane(frame, 2, &mut picture.v, width as usize / 2);
    picture.decoded_at = Instant::now();
    Ok(picture)
}

fn copy_plane(frame: &frame::Video, plane: usize, dst: &mut [u8], width: usize) {
    let stride = frame.stride(plane);
    let src = frame.data(plane);
    for (row, line) in dst.chunks_exact_mut(width).enumerate() {
        line.copy_from_slice(&src[row * stride..row * stride + width]);
    }
}
