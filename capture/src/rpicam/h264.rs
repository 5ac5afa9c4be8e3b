//! `--encoder rpicam`: rpicam-vid encodes H.264 itself (the Pi 4's hardware encoder,
//! libav on a Pi 5) and writes it to stdout; this source splits that into access units.
//!
//! rpicam-vid takes no commands while it runs: keyframe requests, bitrate and frame rate
//! are fixed when it starts. A lost frame is therefore repaired by the next periodic
//! keyframe (`intra`), not at once; keep `intra` short (half a second) with this source,
//! or use the raw path ([`super::RpicamRawSource`]), which has full run-time control.

use std::time::Duration;

use media::{wallclock_us, EncodedFrame};

use crate::annexb::{AccessUnit, AccessUnitSplitter, ParameterSets};
use crate::file_source::{warn_once, Warned, IDLE_FLUSH};
use crate::pipe::{Chunk, ChunkReader};
use crate::retry::Backoff;
use crate::{CaptureError, Control, EncoderSettings, Source, Stop};

use super::args::rpicam_args;
use super::child::{resolve_program, RpicamChild};

/// A child that has produced nothing for this long after its first bytes is stuck.
pub(crate) const STALL: Duration = Duration::from_secs(5);
/// Camera start-up (sensor probe, tuning load) before the first bytes.
pub(crate) const FIRST_BYTES: Duration = Duration::from_secs(20);

/// The current run's output.
struct Output {
    reader: ChunkReader,
    got_bytes: bool,
    /// Its output has ended.
    exited: bool,
}

/// Frames from an rpicam-vid child process that encodes H.264 itself.
pub struct RpicamSource {
    child: RpicamChild,
    output: Option<Output>,
    settings: EncoderSettings,
    splitter: AccessUnitSplitter,
    params: ParameterSets,
    frames: u64,
    warned: Warned,
}

impl RpicamSource {
    /// Starts `program` (a name on PATH or a path; `None`: the first of
    /// [`super::PROGRAMS`] found) with `settings` and the user's `extra` options.
    pub fn start(
        program: Option<&str>,
        settings: EncoderSettings,
        extra: &[String],
    ) -> Result<Self, CaptureError> {
        let program = resolve_program(program)?;
        let splitter = AccessUnitSplitter::new(program.clone());
        let (child, stdout) = RpicamChild::start(program, rpicam_args(settings, extra))?;
        let mut source = Self {
            child,
            output: None,
            settings,
            splitter,
            params: ParameterSets::default(),
            frames: 0,
            warned: Warned::default(),
        };
        source.attach(stdout)?;
        Ok(source)
    }

    /// Uses `backoff` between restarts (tests use short ones).
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.child.set_backoff(backoff);
        self
    }

    /// How many times the child has been restarted.
    pub fn restarts(&self) -> u32 {
        self.child.restarts()
    }

    /// The full command line.
    pub fn command_line(&self) -> String {
        self.child.command_line()
    }

    /// Reads a fresh run's stdout from the start.
    fn attach(&mut self, stdout: std::process::ChildStdout) -> Result<(), CaptureError> {
        let reader = ChunkReader::spawn(self.child.program(), stdout).map_err(|source| {
            CaptureError::Spawn {
                program: self.child.command_line(),
                source,
            }
        })?;
        self.splitter.reset();
        self.output = Some(Output {
            reader,
            got_bytes: false,
            exited: false,
        });
        Ok(())
    }

    fn restart(&mut self, why: &str) {
        self.output = None;
        if let Some(stdout) = self.child.restart(why) {
            if let Err(e) = self.attach(stdout) {
                tracing::warn!("{e}");
            }
        }
    }

    fn frame(&mut self, au: AccessUnit) -> EncodedFrame {
        self.frames += 1;
        let au = self.params.complete(au);
        EncodedFrame {
            data: au.data.into(),
            capture_us: wallclock_us(),
            keyframe: au.keyframe,
        }
    }
}

impl Source for RpicamSource {
    fn next_frame(&mut self) -> Result<Option<EncodedFrame>, CaptureError> {
        loop {
            if self.child.stop().is_fired() {
                return Ok(None);
            }
            if let Some(au) = self.splitter.pull()? {
                return Ok(Some(self.frame(au)));
            }
            self.child.drain_stderr();
            let Some(out) = &mut self.output else {
                self.restart("is not running");
                continue;
            };
            if out.exited {
                self.restart("exited");
                continue;
            }
            let timeout = if self.splitter.has_picture() {
                IDLE_FLUSH
            } else if out.got_bytes {
                STALL
            } else {
                FIRST_BYTES
            };
            match out.reader.next_unless(Some(timeout), self.child.stop()) {
                Chunk::Data(data) => {
                    out.got_bytes = true;
                    self.splitter.push(&data);
                }
                Chunk::Idle if self.splitter.has_picture() => {
                    if let Some(au) = self.splitter.flush() {
                        return Ok(Some(self.frame(au)));
                    }
                }
                Chunk::Idle => {
                    let why = format!("produced nothing for {} s", timeout.as_secs());
                    self.restart(&why);
                }
                Chunk::End => {
                    // The child closed its output: hand out the frame it ended with, then
                    // restart on the next call.
                    out.exited = true;
                    if let Some(au) = self.splitter.finish() {
                        return Ok(Some(self.frame(au)));
                    }
                }
                Chunk::Failed(e) => self.restart(&format!("could not be read ({e})")),
                Chunk::Stopped => return Ok(None),
            }
        }
    }

    fn control(&mut self, command: Control) {
        let (flag, what) = match command {
            Control::ForceKeyframe => (
                &mut self.warned.keyframe,
                "cannot make a keyframe on request (rpicam-vid takes no commands while running); \
                 receivers recover at the next periodic keyframe, so keep `intra` short \
                 (or leave `--encoder` at auto: picam then encodes rpicam-vid's raw frames)",
            ),
            Control::SetBitrate(_) => (
                &mut self.warned.bitrate,
                "cannot change the bitrate while running (fixed at start by --bitrate)",
            ),
            Control::SetFps(_) => (
                &mut self.warned.fps,
                "cannot change the frame rate while running (fixed at start by --framerate)",
            ),
        };
        warn_once(flag, self.child.program(), what);
    }

    fn set_stop(&mut self, stop: Stop) {
        self.child.set_stop(stop);
    }

    fn describe(&self) -> String {
        let s = self.settings;
        format!(
            "{} {}x{} @ {} fps, its own H.264 at {} kbit/s, keyframe every {} frames (no run-time control)",
            self.child.program(),
            s.width,
            s.height,
            s.fps,
            s.bitrate / 1000,
            s.intra
        )
    }
}
