//! An H.264 Annex B elementary stream from a file or stdin, split into access units and
//! paced at the configured frame rate (or passed on as fast as it is read), optionally
//! looping. The frames are sent as they were encoded: keyframe requests and bitrate
//! changes cannot be honoured and are reported once.

use std::fs::File;
use std::io::Read;
use std::time::Duration;

use media::{wallclock_us, EncodedFrame};

use crate::annexb::{AccessUnit, AccessUnitSplitter, ParameterSets};
use crate::pipe::{Chunk, ChunkReader};
use crate::{CaptureError, Control, Pacer, Source, Stop};

/// How long a live pipe may stay quiet before the access unit it ended with is handed
/// out (instead of waiting for the next one to begin).
pub const IDLE_FLUSH: Duration = Duration::from_millis(3);

/// How an H.264 stream is consumed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamOptions {
    /// Frames per second to pace at; `None`: as fast as read.
    pub pace_fps: Option<u32>,
    /// Start again at the end (files only).
    pub looping: bool,
}

enum Input {
    File(File),
    Pipe(ChunkReader),
}

/// Frames from an H.264 file or stdin.
pub struct H264FileSource {
    path: String,
    input: Input,
    splitter: AccessUnitSplitter,
    params: ParameterSets,
    pacer: Option<Pacer>,
    fps: Option<u32>,
    looping: bool,
    buf: Vec<u8>,
    ended: bool,
    frames: u64,
    loops: u64,
    warned: Warned,
    stop: Stop,
}

/// Which unsupported commands have been reported already.
#[derive(Default)]
pub(crate) struct Warned {
    pub keyframe: bool,
    pub bitrate: bool,
    pub fps: bool,
}

impl H264FileSource {
    /// Opens `path`, or stdin for `-`.
    pub fn open(path: &str, options: StreamOptions) -> Result<Self, CaptureError> {
        let input = if path == "-" {
            if options.looping {
                tracing::warn!("--loop ignored: stdin cannot be read twice");
            }
            let reader = ChunkReader::spawn("stdin", std::io::stdin()).map_err(|source| {
                CaptureError::Read {
                    path: path.into(),
                    source,
                }
            })?;
            Input::Pipe(reader)
        } else {
            Input::File(File::open(path).map_err(|source| CaptureError::Read {
                path: path.into(),
                source,
            })?)
        };
        let looping = options.looping && path != "-";
        Ok(Self {
            path: path.to_string(),
            input,
            splitter: AccessUnitSplitter::new(path),
            params: ParameterSets::default(),
            pacer: options.pace_fps.map(Pacer::new),
            fps: options.pace_fps,
            looping,
            buf: vec![0; 256 * 1024],
            ended: false,
            frames: 0,
            loops: 0,
            warned: Warned::default(),
            stop: Stop::new(),
        })
    }

    /// How many times the file has been started again.
    pub fn loops(&self) -> u64 {
        self.loops
    }

    /// The next access unit from the input, not paced.
    fn next_unit(&mut self) -> Result<Option<AccessUnit>, CaptureError> {
        loop {
            if let Some(au) = self.splitter.pull()? {
                return Ok(Some(au));
            }
            if !self.ended && self.read_more()? {
                // A quiet pipe: the producer finished a frame.
                if let Some(au) = self.splitter.flush() {
                    return Ok(Some(au));
                }
            }
            if self.ended {
                if let Some(au) = self.splitter.finish() {
                    return Ok(Some(au));
                }
                if !self.looping || !self.rewind()? {
                    return Ok(None);
                }
            }
        }
    }

    /// Reads the next bytes into the splitter, or notes the end; true when a pipe has
    /// been quiet for [`IDLE_FLUSH`].
    fn read_more(&mut self) -> Result<bool, CaptureError> {
        {
            let read_err = |source| CaptureError::Read {
                path: self.path.clone(),
                source,
            };
            match &mut self.input {
                Input::File(file) => match file.read(&mut self.buf) {
                    Ok(0) => self.ended = true,
                    Ok(n) => self.splitter.push(&self.buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(read_err(e)),
                },
                Input::Pipe(reader) => {
                    let timeout = self.splitter.has_picture().then_some(IDLE_FLUSH);
                    match reader.next_unless(timeout, &self.stop) {
                        Chunk::Data(data) => self.splitter.push(&data),
                        Chunk::Idle => return Ok(true),
                        // Stopped: what was read so far is the last of the stream.
                        Chunk::End | Chunk::Stopped => self.ended = true,
                        Chunk::Failed(e) => return Err(read_err(e)),
                    }
                }
            }
        }
        Ok(false)
    }

    /// Starts the file again; false if it held no picture (looping would spin).
    fn rewind(&mut self) -> Result<bool, CaptureError> {
        if self.frames == 0 {
            return Ok(false);
        }
        let file = File::open(&self.path).map_err(|source| CaptureError::Read {
            path: self.path.clone(),
            source,
        })?;
        self.input = Input::File(file);
        self.splitter.reset();
        self.ended = false;
        self.loops += 1;
        tracing::debug!(path = %self.path, loops = self.loops, "looping");
        Ok(true)
    }
}

impl Source for H264FileSource {
    fn next_frame(&mut self) -> Result<Option<EncodedFrame>, CaptureError> {
        let Some(au) = self.next_unit()? else {
            return Ok(None);
        };
        if let Some(pacer) = &mut self.pacer {
            pacer.wait();
        }
        self.frames += 1;
        let au = self.params.complete(au);
        Ok(Some(EncodedFrame {
            data: au.data.into(),
            capture_us: wallclock_us(),
            keyframe: au.keyframe,
        }))
    }

    fn control(&mut self, command: Control) {
        match command {
            Control::ForceKeyframe => warn_once(
                &mut self.warned.keyframe,
                &self.path,
                "cannot make keyframes on request: a recorded stream has them where its encoder put them",
            ),
            Control::SetBitrate(_) => {
                warn_once(&mut self.warned.bitrate, &self.path, "cannot change the bitrate of a recorded stream")
            }
            Control::SetFps(fps) => match &mut self.pacer {
                Some(pacer) => {
                    pacer.set_fps(fps);
                    self.fps = Some(fps);
                }
                None => warn_once(&mut self.warned.fps, &self.path, "unpaced input: frame rate changes do not apply"),
            },
        }
    }

    fn set_stop(&mut self, stop: Stop) {
        self.stop = stop;
    }

    fn describe(&self) -> String {
        let what = if self.path == "-" {
            "H.264 from stdin".to_string()
        } else {
            format!("H.264 file {}", self.path)
        };
        let pace = match self.fps {
            Some(fps) => format!("paced at {fps} fps"),
            None => "unpaced".to_string(),
        };
        format!(
            "{what}, {pace}{}",
            if self.looping { ", looping" } else { "" }
        )
    }
}

/// Logs `what` about `origin` the first time only.
pub(crate) fn warn_once(flag: &mut bool, origin: &str, what: &str) {
    if !std::mem::replace(flag, true) {
        tracing::warn!("{origin}: {what} (reported once)");
    }
}
