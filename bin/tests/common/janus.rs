//! `scripts/fanout-janus.sh` run by a test: Janus Gateway between one `picam send
//! --wire rtp` and any number of browsers, on loopback, stopped at drop.
//!
//! Included by `fanout_janus.rs` only (`#[path]`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{free_port, json_records, Scratch};

/// What the script prints once everything is up: `viewer: URL`.
pub const VIEWER_LINE: &str = "viewer: http://";

/// Whether `test` may run: Janus and python3 (the page server), besides the browsers.
/// Under CI a missing one fails the test, naming it.
pub fn require_janus(test: &str) -> bool {
    testkit::require_tools(
        test,
        &["janus", "python3"],
        "janus: scripts/install-deps.sh --test",
    )
}

/// The running script and what it printed.
pub struct Fanout {
    child: Option<Child>,
    stdout: PathBuf,
    stderr: PathBuf,
    /// picam's output (its `--stats json` lines).
    pub picam_log: PathBuf,
    /// Janus's log.
    pub janus_log: PathBuf,
    /// The viewer page's URL, as printed.
    pub url: String,
    /// Janus's pid, from the script's `janus pid N` line.
    pub janus_pid: u32,
    /// picam's and the page server's pids, from the same line.
    pub other_pids: Vec<u32>,
}

/// Starts the fan-out on free loopback ports with the debug picam and `picam_args`
/// (given to `picam send`), for at most `seconds`; waits for its viewer URL.
pub fn start(scratch: &Scratch, seconds: u32, picam_args: &[&str]) -> Fanout {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/fanout-janus.sh");
    let stdout = scratch.path("fanout.out");
    let stderr = scratch.path("fanout.err");
    let picam_log = scratch.path("picam.log");
    let janus_log = scratch.path("janus.log");
    let (api, page, rtp) = (free_port(), free_port(), free_port());
    let child = Command::new("bash")
        .arg(&script)
        .args(["--picam", env!("CARGO_BIN_EXE_picam")])
        .args(["--seconds", &seconds.to_string()])
        .args(["--api-port", &api.to_string()])
        .args(["--page-port", &page.to_string()])
        .args(["--rtp-port", &rtp.to_string()])
        .arg("--picam-log")
        .arg(&picam_log)
        .arg("--janus-log")
        .arg(&janus_log)
        .args(picam_args)
        .env("PICAM_CONFIG_DIR", scratch.path("config"))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .expect("bash starts");
    let mut fanout = Fanout {
        child: Some(child),
        stdout,
        stderr,
        picam_log,
        janus_log,
        url: String::new(),
        janus_pid: 0,
        other_pids: Vec::new(),
    };
    fanout.wait_for_url(Duration::from_secs(40));
    fanout
}

impl Fanout {
    fn wait_for_url(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let out = std::fs::read_to_string(&self.stdout).unwrap_or_default();
            let err = std::fs::read_to_string(&self.stderr).unwrap_or_default();
            if let Some(at) = out.find(VIEWER_LINE) {
                let rest = &out[at + "viewer: ".len()..];
                self.url = rest.split_whitespace().next().unwrap_or_default().into();
                // `fanout-janus.sh: janus pid J, picam pid P, page pid Q`
                let pid = |name: &str| -> Option<u32> {
                    err.split(&format!("{name} pid "))
                        .nth(1)?
                        .split([',', '\n'])
                        .next()?
                        .trim()
                        .parse()
                        .ok()
                };
                self.janus_pid = pid("janus").unwrap_or_else(|| panic!("no janus pid in {err:?}"));
                self.other_pids = ["picam", "page"].into_iter().filter_map(pid).collect();
                return;
            }
            let child = self.child.as_mut().expect("running");
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "fanout-janus.sh exited ({status}) before its URL: {out}{err}{}",
                    self.janus_log_now()
                );
            }
            assert!(
                Instant::now() < deadline,
                "fanout-janus.sh printed no URL within {limit:?}: {out}{err}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Janus's log so far.
    pub fn janus_log_now(&self) -> String {
        std::fs::read_to_string(&self.janus_log).unwrap_or_default()
    }

    /// picam's newest `--stats json` record, if any.
    pub fn picam_stats(&self) -> Option<serde_json::Value> {
        let log = std::fs::read_to_string(&self.picam_log).unwrap_or_default();
        json_records(&log).pop()
    }

    /// Stops it (SIGTERM, as a user's Ctrl-C would) and waits at most `limit`; returns
    /// whether it exited by itself, with its stderr.
    pub fn stop(&mut self, limit: Duration) -> (bool, String) {
        let Some(mut child) = self.child.take() else {
            return (true, String::new());
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + limit;
        let exited = loop {
            if child.try_wait().unwrap().is_some() {
                break true;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break false;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        (
            exited,
            std::fs::read_to_string(&self.stderr).unwrap_or_default(),
        )
    }
}

impl Fanout {
    /// The processes the script started that are still running (zombies aside).
    pub fn still_running(&self) -> Vec<u32> {
        std::iter::once(self.janus_pid)
            .chain(self.other_pids.iter().copied())
            .filter(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                    !stat
                        .rsplit(')')
                        .next()
                        .unwrap_or("")
                        .trim_start()
                        .starts_with('Z')
                })
            })
            .collect()
    }

    /// Whether the Janus this fan-out started is still running (its pid is a `janus`).
    pub fn janus_alive(&self) -> bool {
        self.janus_pid != 0
            && std::fs::read_to_string(format!("/proc/{}/comm", self.janus_pid))
                .is_ok_and(|comm| comm.trim() == "janus")
    }
}

impl Drop for Fanout {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(10));
        // The script stops Janus itself; if the script was killed, Janus is ours to end.
        if self.janus_alive() {
            let _ = Command::new("kill")
                .args(["-KILL", &self.janus_pid.to_string()])
                .status();
        }
    }
}
