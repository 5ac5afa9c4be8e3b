//! Raw YUV4MPEG2 video (a file or stdin) encoded like the synthetic camera, so picam can
//! carry any raw video and be compared with other pipelines on the same input.

use std::io::{BufRead, BufReader, Read};

use media::y4m::{Y4mHeader, FRAME_MAGIC};
use media::{EncodedFrame, Picture};

use crate::raw_encode::RawEncoder;
use crate::{CaptureError, Control, Decimator, EncoderSettings, Pacer, Source, X264Encoder};

/// Reads `FRAME`s from a YUV4MPEG2 stream and encodes them.
pub struct Y4mSource {
    path: String,
    reader: Box<dyn BufRead + Send>,
    header: Y4mHeader,
    picture: Picture,
    encoder: RawEncoder,
    pacer: Option<Pacer>,
    decimator: Decimator,
    frame: u32,
}

impl Y4mSource {
    /// Opens `path` (`-` for stdin). A file is paced at the frame rate in its header; a
    /// pipe is taken as fast as it arrives (its producer sets the pace). The encoder takes
    /// the stream's size; `settings` supplies bitrate, keyframe period and frame rate
    /// (the header's rate wins when present).
    pub fn open(path: &str, settings: EncoderSettings, stamp: bool) -> Result<Self, CaptureError> {
        let read_err = |source| CaptureError::Read {
            path: path.to_string(),
            source,
        };
        let (reader, paced): (Box<dyn Read + Send>, bool) = if path == "-" {
            (Box::new(std::io::stdin()), false)
        } else {
            (Box::new(std::fs::File::open(path).map_err(read_err)?), true)
        };
        Self::from_reader(
            path,
            BufReader::with_capacity(1 << 20, reader),
            settings,
            stamp,
            paced,
        )
    }

    /// Reads from any byte stream.
    pub fn from_reader(
        path: &str,
        mut reader: impl BufRead + Send + 'static,
        settings: EncoderSettings,
        stamp: bool,
        paced: bool,
    ) -> Result<Self, CaptureError> {
        let mut line = String::new();
        reader
            .read_line(&mut line)
            .map_err(|source| CaptureError::Read {
                path: path.to_string(),
                source,
            })?;
        let header = Y4mHeader::parse(line.trim_end()).map_err(|source| CaptureError::Media {
            path: path.to_string(),
            source,
        })?;
        let fps = (header.fps_num / header.fps_den).max(1);
        let settings = EncoderSettings {
            width: header.width,
            height: header.height,
            fps,
            ..settings
        };
        Ok(Self {
            path: path.to_string(),
            reader: Box::new(reader),
            header,
            picture: Picture::new(header.width, header.height),
            encoder: RawEncoder::new(X264Encoder::new(settings)?, stamp),
            pacer: paced.then(|| Pacer::new(fps)),
            decimator: Decimator::new(fps),
            frame: 0,
        })
    }

    /// The stream's parameters.
    pub fn header(&self) -> Y4mHeader {
        self.header
    }

    /// Reads the next frame's planes; false at a clean end of stream.
    fn read_frame(&mut self) -> Result<bool, CaptureError> {
        let read_err = |source| CaptureError::Read {
            path: self.path.clone(),
            source,
        };
        let mut line = Vec::with_capacity(64);
        let n = self.reader.read_until(b'\n', &mut line).map_err(read_err)?;
        if n == 0 {
            return Ok(false);
        }
        if !line.starts_with(FRAME_MAGIC) || line.len() > 1024 {
            return Err(CaptureError::Media {
                path: self.path.clone(),
                source: media::MediaError::Y4mHeader(format!(
                    "frame {} does not start with FRAME",
                    self.frame
                )),
            });
        }
        for plane in [
            &mut self.picture.y,
            &mut self.picture.u,
            &mut self.picture.v,
        ] {
            match self.reader.read_exact(plane) {
                Ok(()) => {}
                // A stream cut mid-frame (producer killed) ends the source cleanly.
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(false),
                Err(e) => {
                    return Err(CaptureError::Read {
                        path: self.path.clone(),
                        source: e,
                    })
                }
            }
        }
        Ok(true)
    }
}

impl Source for Y4mSource {
    fn next_frame(&mut self) -> Result<Option<EncodedFrame>, CaptureError> {
        loop {
            if let Some(pacer) = &mut self.pacer {
                pacer.wait();
            }
            if !self.read_frame()? {
                return Ok(None);
            }
            let n = self.frame;
            self.frame = self.frame.wrapping_add(1);
            // Frames the congestion controller cannot afford are skipped unencoded.
            if self.decimator.keep() {
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
        let h = self.header;
        format!(
            "y4m {} {}x{} @ {}/{} fps",
            self.path, h.width, h.height, h.fps_num, h.fps_den
        )
    }
}
