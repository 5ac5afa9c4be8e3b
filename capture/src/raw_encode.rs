//! What every raw-picture source shares: stamp the picture, honour a pending keyframe
//! request, encode.

use media::stamp::{self, Stamp};
use media::{wallclock_us, EncodedFrame, Picture};

use crate::{CaptureError, Control, X264Encoder};

/// An encoder with the keyframe flag and the optional latency stamp in front of it.
pub struct RawEncoder {
    encoder: X264Encoder,
    force_keyframe: bool,
    stamp: bool,
}

impl RawEncoder {
    /// Wraps `encoder`; with `stamp`, every picture gets the latency stamp painted in.
    pub fn new(encoder: X264Encoder, stamp: bool) -> Self {
        Self {
            encoder,
            force_keyframe: false,
            stamp,
        }
    }

    /// The encoder inside.
    pub fn encoder(&self) -> &X264Encoder {
        &self.encoder
    }

    /// Stamps (if enabled) and encodes picture number `n`, captured now.
    pub fn encode(&mut self, picture: &mut Picture, n: u32) -> Result<EncodedFrame, CaptureError> {
        let now = wallclock_us();
        if self.stamp {
            stamp::paint(
                picture,
                Stamp {
                    frame: n,
                    time_us: now,
                },
            );
        }
        let keyframe = std::mem::take(&mut self.force_keyframe);
        match self.encoder.encode(picture, now, keyframe)? {
            Some(frame) if !frame.data.is_empty() => Ok(frame),
            // zerolatency emits one access unit per picture; anything else is a bug in
            // the encoder setup, reported rather than papered over.
            _ => Err(CaptureError::NoOutput { frame: n }),
        }
    }

    /// Applies the encoder-side commands; returns the command back if it is the
    /// caller's to apply (frame rate).
    pub fn control(&mut self, command: Control) -> Option<Control> {
        match command {
            Control::ForceKeyframe => self.force_keyframe = true,
            Control::SetBitrate(bps) => self.encoder.set_bitrate(bps),
            Control::SetFps(_) => return Some(command),
        }
        None
    }
}
