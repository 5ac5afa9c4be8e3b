//! The rpicam-vid child process, whichever output it gives: start it, keep the last
//! lines of its stderr for the report when it dies, and restart it with backoff.
//! Reading its stdout is the caller's (H.264 chunks or whole raw frames).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use crate::retry::Backoff;
use crate::{CaptureError, Stop};

use super::{find_on_path, PROGRAMS};

/// Lines of the child's stderr kept for the report when it exits.
const STDERR_LINES: usize = 6;

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
    stderr: Stderr,
    started: Instant,
}

/// One rpicam-vid (or a stand-in) run after another.
pub(crate) struct RpicamChild {
    program: String,
    args: Vec<String>,
    running: Option<Running>,
    backoff: Backoff,
    restarts: u32,
    /// Fired by the owner: every wait below gives up at once.
    stop: Stop,
}

/// The program to run: the one named, else the first of [`PROGRAMS`] on PATH.
pub(crate) fn resolve_program(program: Option<&str>) -> Result<String, CaptureError> {
    match program {
        Some(p) => Ok(p.to_string()),
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
            }),
    }
}

impl RpicamChild {
    /// Starts `program` with `args`; a program that cannot start at all is a
    /// configuration error, said at once. Returns the child and its stdout.
    pub fn start(program: String, args: Vec<String>) -> Result<(Self, ChildStdout), CaptureError> {
        let mut child = Self {
            program,
            args,
            running: None,
            backoff: Backoff::new(),
            restarts: 0,
            stop: Stop::new(),
        };
        let stdout = child.spawn()?;
        Ok((child, stdout))
    }

    pub fn set_backoff(&mut self, backoff: Backoff) {
        self.backoff = backoff;
    }

    pub fn set_stop(&mut self, stop: Stop) {
        self.stop = stop;
    }

    pub fn stop(&self) -> &Stop {
        &self.stop
    }

    pub fn program(&self) -> &str {
        &self.program
    }

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

    /// Passes on what the child said on stderr since the last look.
    pub fn drain_stderr(&mut self) {
        if let Some(run) = &mut self.running {
            run.stderr.drain();
        }
    }

    fn spawn(&mut self) -> Result<ChildStdout, CaptureError> {
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
        self.running = Some(Running {
            child,
            stderr: Stderr {
                lines: rx,
                tail: VecDeque::new(),
            },
            started: Instant::now(),
        });
        Ok(stdout)
    }

    /// Ends the child (if still running), reports why, waits the backoff and starts it
    /// again; keeps trying until it starts (its stdout is returned) or the stop flag
    /// fires (then nothing runs and `None` is returned).
    pub fn restart(&mut self, why: &str) -> Option<ChildStdout> {
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
                return None;
            }
        }
        while !self.stop.is_fired() {
            self.restarts += 1;
            match self.spawn() {
                Ok(stdout) => return Some(stdout),
                Err(e) => {
                    let delay = self.backoff.delay(Duration::ZERO);
                    tracing::warn!("{e}; trying again in {:.1} s", delay.as_secs_f64());
                    self.stop.sleep(delay);
                }
            }
        }
        None
    }
}

impl Drop for RpicamChild {
    fn drop(&mut self) {
        if let Some(mut run) = self.running.take() {
            let _ = run.child.kill();
            let _ = run.child.wait();
        }
    }
}
