//! The synthetic camera: the moving test pattern, stamped and encoded with libx264.

use media::pattern::TestPattern;
use media::{EncodedFrame, Picture};

use crate::raw_encode::RawEncoder;
use crate::{CaptureError, Control, Decimator, EncoderSettings, Pacer, Source, X264Encoder};

/// A live source painting the test pattern at the configured rate.
pub struct TestPatternSource {
    pattern: TestPattern,
    picture: Picture,
    encoder: RawEncoder,
    pacer: Option<Pacer>,
    decimator: Decimator,
    frame: u32,
}

impl TestPatternSource {
    /// A paced source (real time) with the given encoder settings; the latency stamp is
    /// always painted.
    pub fn new(settings: EncoderSettings) -> Result<Self, CaptureError> {
        Ok(Self {
            pattern: TestPattern::new(settings.width, settings.height),
            picture: Picture::new(settings.width, settings.height),
            encoder: RawEncoder::new(X264Encoder::new(settings)?, true),
            pacer: Some(Pacer::new(settings.fps)),
            decimator: Decimator::new(settings.fps),
            frame: 0,
        })
    }

    /// Produces frames as fast as the encoder allows (benches and tests).
    pub fn unpaced(mut self) -> Self {
        self.pacer = None;
        self
    }
}

impl Source for TestPatternSource {
    fn next_frame(&mut self) -> Result<Option<EncodedFrame>, CaptureError> {
        loop {
            if let Some(pacer) = &mut self.pacer {
                pacer.wait();
            }
            let n = self.frame;
            self.frame = self.frame.wrapping_add(1);
            // The camera keeps its rate; frames the congestion controller cannot afford
            // are skipped before the encoder.
            if self.decimator.keep() {
                self.pattern.fill(n, &mut self.picture);
                return self.encoder.encode(&mut self.picture, n).map(Some);
            }
        }
    }

    fn control(&mut self, command: Control) {
        if let Some(Control::SetFps(fps)) = self.encoder.control(command) {
            self.decimator.set_target(fps);
        }
    }

    fn describe(&self) -> String {
        let s = self.encoder.encoder().settings();
        format!(
            "test pattern {}x{} @ {} fps, libx264 {} kbit/s",
            s.width,
            s.height,
            s.fps,
            s.bitrate / 1000
        )
    }
}
