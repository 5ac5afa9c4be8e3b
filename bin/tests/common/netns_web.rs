//! Browser viewers in network namespaces: a WHEP sender (`picam send --web`, or the
//! aiortc baseline `scripts/web/aiortc_whep.py`) in one namespace, real Chromium driven
//! by `scripts/web/measure.mjs --netns` in another, and what the browsers measured.
//!
//! Included by `web_netns.rs` only (`#[path]`), beside `common/web.rs` (the loopback
//! browser tests' helpers), whose prerequisites check and reports it reuses.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::netns::start_logged;
use crate::common::{json_records, Picam, Scratch};
use crate::web::Report;

/// The repository's root (the `bin` crate sits one level below it).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bin/ has a parent")
        .to_path_buf()
}

/// The harness (`scripts/web/measure.mjs`).
pub fn measure_script() -> PathBuf {
    repo_root().join("scripts/web/measure.mjs")
}

/// The aiortc baseline's virtualenv python, made by `scripts/bench-web.sh`.
pub fn aiortc_python() -> PathBuf {
    repo_root().join("target/web-venv/bin/python")
}

/// Which WHEP sender a test runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WebSender {
    /// `picam send --web`.
    Picam,
    /// `scripts/web/aiortc_whep.py`, the untuned baseline.
    Aiortc,
}

impl WebSender {
    /// `PICAM_WEB_SENDER=aiortc` runs the baseline instead of picam (to compare, or to
    /// check the namespaces and the harness without picam's server).
    pub fn from_env() -> Self {
        match std::env::var("PICAM_WEB_SENDER").as_deref() {
            Ok("aiortc") => WebSender::Aiortc,
            _ => WebSender::Picam,
        }
    }
}

/// Whether Chromium, node and the harness with its npm dependencies are here (through
/// `testkit`: under CI a missing one fails the test), and for the aiortc baseline its
/// virtualenv.
pub fn require_browser(test: &str, sender: WebSender) -> bool {
    let hint =
        "scripts/install-deps.sh --test (chromium, nodejs, npm), then npm ci --prefix scripts/web";
    if !testkit::require_tools(test, &["chromium", "node"], hint) {
        return false;
    }
    let deps = repo_root().join("scripts/web/node_modules/playwright-core");
    if !testkit::require(
        test,
        measure_script().is_file() && deps.is_dir(),
        "scripts/web/measure.mjs and its npm dependencies",
        "npm ci --prefix scripts/web",
    ) {
        return false;
    }
    sender == WebSender::Picam
        || testkit::require(
            test,
            aiortc_python().is_file(),
            "the aiortc baseline's virtualenv (target/web-venv)",
            "scripts/bench-web.sh makes it: python3 -m venv target/web-venv && target/web-venv/bin/pip install -r scripts/web/requirements-bench.txt",
        )
}

/// Starts `sender` in namespace `ns`, serving on `addr:port` (720p30, 4 Mbit/s, the
/// stamped test pattern), and returns it with the viewer URL it printed (token in the
/// fragment). `extra` goes to picam's command line.
pub fn start_sender(
    scratch: &Scratch,
    name: &str,
    sender: WebSender,
    ns: &str,
    addr: &str,
    port: u16,
    extra: &[&str],
) -> (Picam, String) {
    let listen = format!("{addr}:{port}");
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns]);
    match sender {
        WebSender::Picam => {
            cmd.arg(env!("CARGO_BIN_EXE_picam"))
                .args([
                    "send", "--source", "test", "--width", "1280", "--height", "720",
                ])
                .args(["--fps", "30", "--bitrate", "4000000", "--insecure"])
                .args(["--web", &listen])
                .args(extra);
        }
        WebSender::Aiortc => {
            cmd.arg(aiortc_python())
                .arg(repo_root().join("scripts/web/aiortc_whep.py"))
                .args(["--bind", addr, "--port", &port.to_string()]);
        }
    }
    let mut process = start_logged(scratch, name, cmd);
    process.wait_for_line("watch in a browser: http://", Duration::from_secs(30));
    let err = process.stderr_now();
    let url = err
        .split("watch in a browser: ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("{name}: no viewer URL in:\n{err}"))
        .to_string();
    (process, url)
}

/// Runs `measure.mjs` against `url` with `browsers` Chromium processes (in namespace
/// `netns` if given) for `seconds` after `warmup` seconds; one record per browser.
/// Bounded: the harness is killed if it overruns by a minute.
pub fn measure(
    scratch: &Scratch,
    name: &str,
    url: &str,
    (warmup, seconds): (u64, u64),
    browsers: u32,
    netns: Option<&str>,
) -> Vec<Report> {
    let out_path = scratch.path(&format!("{name}.measure.out"));
    let err_path = scratch.path(&format!("{name}.measure.err"));
    let mut cmd = Command::new("node");
    cmd.arg(measure_script())
        .args(["--url", url, "--seconds", &seconds.to_string()])
        .args(["--browsers", &browsers.to_string()])
        .args(["--warmup", &warmup.to_string()]);
    if let Some(ns) = netns {
        cmd.args(["--netns", ns]);
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("{name}: start node {}: {e}", measure_script().display()));
    let deadline = Instant::now() + Duration::from_secs(warmup + seconds + 60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = std::fs::read_to_string(&out_path).unwrap_or_default();
    let err = std::fs::read_to_string(&err_path).unwrap_or_default();
    assert!(
        status.is_some_and(|s| s.success()),
        "{name}: measure.mjs failed ({status:?}):\n{err}"
    );
    let viewers: Vec<Report> = json_records(&out)
        .into_iter()
        .filter(|r| r.get("browser").is_some())
        .map(Report)
        .collect();
    assert_eq!(
        viewers.len(),
        browsers as usize,
        "{name}: expected one record per browser from measure.mjs:\n{out}\n{err}"
    );
    viewers
}
