//! `rpicam-vid` (or the older `libcamera-vid`) as a child process: the modern Raspberry
//! Pi camera stack (libcamera) on Pi OS, including the Pi 5. It encodes H.264 itself
//! (the Pi 4's hardware encoder, libav on a Pi 5) and writes it to stdout; this source
//! splits that into access units.
//!
//! rpicam-vid takes no commands while it runs: keyframe requests, bitrate and frame rate
//! are fixed when it starts. A lost frame is therefore repaired by the next periodic
//! keyframe (`intra`), not at once; keep `intra` short (half a second) with this source.
//! A child that exits or stalls is restarted with backoff and each restart is logged.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use media::{wallclock_us, EncodedFrame};

use crate::annexb::{AccessUnitSplitter, ParameterSets};
use crate::file_source::{warn_once, Warned, IDLE_FLUSH};
use crate::pipe::{Chunk, ChunkReader};
use crate::retry::Backoff;
use crate::{CaptureError, Control, EncoderSettings, Source, Stop};

/// Programs tried, in order, when none is named.
pub const PROGRAMS: [&str; 2] = ["rpicam-vid", "libcamera-vid"];
/// A child that has produced nothing for this long after its first bytes is stuck.
const STALL: Duration = Duration::from_secs(5);
/// Camera start-up (sensor probe, tuning load) before the first bytes.
const FIRST_BYTES: Duration = Duration::from_secs(20);
/// Lines of the child's stderr kept for the report when it exits.
const STDERR_LINES: usize = 6;

/// The command line for `program` producing `settings` on stdout: Annex B with SPS/PPS
/// before every keyframe (`--inline`), each frame flushed as soon as it is encoded
/// (`--flush`), no preview window, running until stopped, and `extra` (the user's own
/// options, e.g. `--hflip --camera 1`) last so that they win.
pub fn rpicam_args(settings: EncoderSettings, extra: &[String]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--timeout",
        "0",
        "--nopreview",
        "--codec",
        "h264",
        "--inline",
        "--flush",
        "--profile",
        "high",
        "--level",
        level_for(settings),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for (key, value) in [
        ("--width", settings.width),
        ("--height", settings.height),
        ("--framerate", settings.fps),
        ("--bitrate", settings.bitrate),
        ("--intra", settings.intra),
    ] {
        args.push(key.to_string());
        args.push(value.to_string());
    }
    args.extend(extra.iter().cloned());
    args.extend(["--output".to_string(), "-".to_string()]);
    args
}

/// The H.264 level rpicam-vid is asked for: 4.0 carries 1080p30; faster or larger needs
/// 4.2 (the Pi's encoder refuses frames a level cannot hold).
pub fn level_for(settings: EncoderSettings) -> &'static str {
    let mbs = (settings.width as u64).div_ceil(16) * (settings.height as u64).div_ceil(16);
    if mbs * settings.fps as u64 > 245_760 {
        "4.2"
    } else {
        "4"
    }
}

/// Where the child's stderr goes: the last few lines, for the exit report.
struct Stderr {
    lines: Receiver<String>,
    tail: VecDeque<String>,
}

impl Stderr {
    fn drain(&mut self) {
        while let Ok(line) = self.lines.try_recv() {
            tracing::debug!(target: "rpicam", "{line}");
            if self.tail.len() == STDERR_LINES {
                self.tail.pop_front();
            }
            self.tail.push_back(line);
        }
    }
}

struct Running {
    child: Child,
    stdout: ChunkReader,
    stderr: Stderr,
    started: Instant,
    got_bytes: bool,
    /// Its output has ended.
    exited: bool,
}

/// Frames from an rpicam-vid child process.
pub struct RpicamSource {
    program: String,
    args: Vec<String>,
    settings: EncoderSettings,
    running: Option<Running>,
    splitter: AccessUnitSplitter,
    params: ParameterSets,
    backoff: Backoff,
    restarts: u32,
    frames: u64,
    warned: Warned,
    /// Fired by the owner: every wait below gives up at once.
    stop: Stop,
}

impl RpicamSource {
    /// Starts `program` (a name on PATH or a path; `None`: the first of [`PROGRAMS`]
    /// found) with `settings` and the user's `extra` options.
    pub fn start(
        program: Option<&str>,
        settings: EncoderSettings,
        extra: &[String],
    ) -> Result<Self, CaptureError> {
        let program = match program {
            Some(p) => p.to_string(),
            None => PROGRAMS
                .iter()
                .find(|p| find_on_path(p).is_some())
                .map(|p| p.to_string())
                .ok_or_else(|| CaptureError::Spawn {
                    program: PROGRAMS.join(" or "),
                    source: std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "not on PATH (install rpicam-apps: `sudo apt install rpicam-apps`)",
                    ),
                })?,
        };
        let mut source = Self {
            splitter: AccessUnitSplitter::new(program.clone()),
            args: rpicam_args(settings, extra),
            program,
            settings,
            running: None,
            params: ParameterSets::default(),
            backoff: Backoff::new(),
            restarts: 0,
            frames: 0,
            warned: Warned::default(),
            stop: Stop::new(),
        };
        // A program that cannot start at all is a configuration error, said at once.
        source.spawn()?;
        Ok(source)
    }

    /// Uses `backoff` between restarts (tests use short ones).
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// How many times the child has been restarted.
    pub fn restarts(&self) -> u32 {
        self.restarts
    }

    /// The full command line.
    pub fn command_line(&self) -> String {
        std::iter::once(self.program.as_str())
            .chain(self.args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn spawn(&mut self) -> Result<(), CaptureError> {
        let spawn_err = |source| CaptureError::Spawn {
            program: self.command_line(),
            source,
        };
        let mut child = Command::new(&self.program)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(spawn_err)?;
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            let _ = child.kill();
            return Err(spawn_err(std::io::Error::other("no stdout/stderr pipe")));
        };
        let stdout = ChunkReader::spawn(&self.program, stdout).map_err(spawn_err)?;
        let (tx, rx) = channel();
        std::thread::Builder::new()
            .name(format!("{} stderr", self.program))
            .spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        return;
                    }
                }
            })
            .map_err(spawn_err)?;
        tracing::info!(pid = child.id(), "started {}", self.command_line());
        self.splitter.reset();
        self.running = Some(Running {
            child,
            stdout,
            stderr: Stderr {
                lines: rx,
                tail: VecDeque::new(),
            },
            started: Instant::now(),
            got_bytes: false,
            exited: false,
        });
        Ok(())
    }

    /// Ends the child (if still running), reports why, waits the backoff and starts it
    /// again; keeps trying until it starts or the stop flag fires (then nothing runs).
    fn restart(&mut self, why: &str) {
        if let Some(mut run) = self.running.take() {
            let _ = run.child.kill();
            let status = run
                .child
                .wait()
                .map(|s| s.to_string())
                .unwrap_or_else(|e| e.to_string());
            // Give the stderr thread a moment to pass on the last words.
            std::thread::sleep(Duration::from_millis(20));
            run.stderr.drain();
            let ran = run.started.elapsed();
            let delay = self.backoff.delay(ran);
            let tail: Vec<_> = run.stderr.tail.iter().map(String::as_str).collect();
            tracing::warn!(
                "{} {why} ({status}) after {:.1} s; restarting in {:.1} s (restart {}){}{}",
                self.program,
                ran.as_secs_f64(),
                delay.as_secs_f64(),
                self.restarts + 1,
                if tail.is_empty() {
                    ""
                } else {
                    "; its last words: "
                },
                tail.join(" | "),
            );
            if self.stop.sleep(delay) {
                return;
            }
        }
        while !self.stop.is_fired() {
            self.restarts += 1;
            match self.spawn() {
                Ok(()) => return,
                Err(e) => {
                    let delay = self.backoff.delay(Duration::ZERO);
                    tracing::warn!("{e}; trying again in {:.1} s", delay.as_secs_f64());
                    self.stop.sleep(delay);
                }
            }
        }
    }
}

impl Source for RpicamSource {
    fn next_frame(&mut self) -> Result<Option<EncodedFrame>, CaptureError> {
        loop {
            if self.stop.is_fired() {
                return Ok(None);
            }
            if let Some(au) = self.splitter.pull()? {
                self.frames += 1;
                let au = self.params.complete(au);
                return Ok(Some(EncodedFrame {
                    data: au.data.into(),
                    capture_us: wallclock_us(),
                    keyframe: au.keyframe,
                }));
            }
            let Some(run) = &mut self.running else {
                self.restart("is not running");
                continue;
            };
            if run.exited {
                self.restart("exited");
                continue;
            }
            run.stderr.drain();
            let timeout = if self.splitter.has_picture() {
                IDLE_FLUSH
            } else if run.got_bytes {
                STALL
            } else {
                FIRST_BYTES
            };
            match run.stdout.next_unless(Some(timeout), &self.stop) {
                Chunk::Data(data) => {
                    run.got_bytes = true;
                    self.splitter.push(&data);
                }
                Chunk::Idle if self.splitter.has_picture() => {
                    if let Some(au) = self.splitter.flush() {
                        self.frames += 1;
                        let au = self.params.complete(au);
                        return Ok(Some(EncodedFrame {
                            data: au.data.into(),
                            capture_us: wallclock_us(),
                            keyframe: au.keyframe,
                        }));
                    }
                }
                Chunk::Idle => {
                    let why = format!("produced nothing for {} s", timeout.as_secs());
                    self.restart(&why);
                }
                Chunk::End => {
                    // The child closed its output: hand out the frame it ended with, then
                    // restart on the next call.
                    run.exited = true;
                    if let Some(au) = self.splitter.finish() {
                        self.frames += 1;
                        let au = self.params.complete(au);
                        return Ok(Some(EncodedFrame {
                            data: au.data.into(),
                            capture_us: wallclock_us(),
                            keyframe: au.keyframe,
                        }));
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
                 receivers recover at the next periodic keyframe, so keep `intra` short",
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
        warn_once(flag, &self.program, what);
    }

    fn set_stop(&mut self, stop: Stop) {
        self.stop = stop;
    }

    fn describe(&self) -> String {
        let s = self.settings;
        format!(
            "{} {}x{} @ {} fps, {} kbit/s, keyframe every {} frames (no run-time control)",
            self.program,
            s.width,
            s.height,
            s.fps,
            s.bitrate / 1000,
            s.intra
        )
    }
}

impl Drop for RpicamSource {
    fn drop(&mut self) {
        if let Some(mut run) = self.running.take() {
            let _ = run.child.kill();
            let _ = run.child.wait();
        }
    }
}

/// The full path of `name` on PATH, if it is there.
pub fn find_on_path(name: &str) -> Option<std::path::PathBuf> {
    if name.contains('/') {
        return Some(std::path::PathBuf::from(name)).filter(|p| p.is_file());
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> EncoderSettings {
        EncoderSettings {
            width: 1280,
            height: 720,
            fps: 30,
            bitrate: 4_000_000,
            intra: 15,
        }
    }

    #[test]
    fn command_line_carries_every_setting_and_user_options_last() {
        let args = rpicam_args(settings(), &["--hflip".into()]);
        let line = args.join(" ");
        for want in [
            "--timeout 0",
            "--nopreview",
            "--codec h264",
            "--inline",
            "--flush",
            "--width 1280",
            "--height 720",
            "--framerate 30",
            "--bitrate 4000000",
            "--intra 15",
            "--level 4",
        ] {
            assert!(line.contains(want), "{want:?} missing from {line}");
        }
        assert!(line.ends_with("--hflip --output -"), "{line}");
    }

    #[test]
    fn level_follows_the_macroblock_rate() {
        let at = |w, h, fps| {
            level_for(EncoderSettings {
                width: w,
                height: h,
                fps,
                ..settings()
            })
        };
        assert_eq!(at(1920, 1080, 30), "4");
        assert_eq!(at(1920, 1080, 50), "4.2");
        assert_eq!(at(1280, 720, 60), "4");
        assert_eq!(at(1280, 720, 120), "4.2");
    }
}
