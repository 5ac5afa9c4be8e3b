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

/// A low-delay H.264 decoder: one access unit in, its picture out.
pub struct Decoder {
    decoder: ffmpeg::decoder::Video,
    frame: frame::Video,
}

// SAFETY of Send: the decoder and frame are owned exclusively by this value; FFmpeg
// codec contexts may move between threads (they must not be shared).
unsafe impl Send for Decoder {}

impl Decoder {
    /// Opens a decoder with `threads` slice threads (1 for none).
    pub fn new(threads: usize) -> Result<Self, DecodeError> {
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
        let decoder = context.decoder().video().map_err(DecodeError::Open)?;
        Ok(Self {
            decoder,
            frame: frame::Video::empty(),
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
