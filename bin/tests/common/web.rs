//! Real browsers watching `picam send --web`: the sender on loopback, and Chromium
//! viewers driven by `scripts/web/measure.mjs` (node + playwright-core), which reads the
//! latency stamp of every frame the browser presents and reports one JSON line per
//! browser.
//!
//! Included by `web_browser.rs` only (`#[path]`), so other tests do not compile it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{spawn_in, Picam, Scratch};

/// What the sender prints once its web port is up: `picam: watch in a browser: URL`.
pub const WATCH_LINE: &str = "watch in a browser: http://";

/// Whether a line of the sender's log says a viewer's slot was freed (the viewer said
/// goodbye, or went silent and timed out): `browser viewer ID left: WHY; its slot is
/// free` (or a plain `viewer left`).
pub fn viewer_left(line: &str) -> bool {
    line.contains("viewer") && line.contains(" left")
}

/// How many lines of `log` say a viewer left.
pub fn viewers_left(log: &str) -> usize {
    log.lines().filter(|l| viewer_left(l)).count()
}

/// Browsers on a 2-core machine: one test at a time, or the tests measure each other.
pub static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Takes the lock that keeps these tests one at a time (a failed test poisons nothing).
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// `scripts/web` in the source tree.
pub fn web_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/web")
}

/// Whether `test` may run: Chromium, node and the harness's locked node modules. Under
/// CI a missing one fails the test, naming it (through `testkit`).
pub fn require_browser(test: &str) -> bool {
    testkit::require_tools(
        test,
        &["chromium", "node"],
        "chromium, nodejs: scripts/install-deps.sh --test",
    ) && testkit::require(
        test,
        web_dir().join("node_modules/playwright-core").is_dir(),
        "scripts/web/node_modules (playwright-core)",
        "npm ci --prefix scripts/web (scripts/test.sh does it)",
    )
}

/// A web sender and the URL it printed (with its token).
pub struct WebSender {
    /// The running `picam send --web`.
    pub picam: Picam,
    /// `http://127.0.0.1:PORT/#t=TOKEN`, as printed.
    pub url: String,
}

/// The test pattern's size and the bitrate asked for it.
#[derive(Clone, Copy, Debug)]
pub struct Video {
    pub width: u32,
    pub height: u32,
    pub bitrate: u32,
}

/// 720p30 at 4 Mbit/s: what a viewer watches, used where one browser runs at a time.
pub const HD: Video = Video {
    width: 1280,
    height: 720,
    bitrate: 4_000_000,
};

/// 640x360 at 1.5 Mbit/s, for tests that run two or more browsers at once. x264 at
/// 720p30 takes ~24 ms of CPU a frame, and every browser decodes in software and reads
/// the stamp of each frame it presents: on a loaded 2-core CI machine, two or three
/// browsers at 720p presented 9.6-16 frames a second while decoding every frame. A
/// quarter of the pixels keeps those tests about fan-out, tokens and keyframes rather
/// than the machine (the Janus test's steady load here: 70-78 % of two cores, against
/// 70-103 % at 720p); 720p with several viewers is measured on a quiet machine by
/// `scripts/bench-fanout.sh`.
pub const SMALL: Video = Video {
    width: 640,
    height: 360,
    bitrate: 1_500_000,
};

/// Starts `picam send --source test` at `video`'s size and bitrate, 30 fps, with `--web
/// 127.0.0.1:PORT`, keeping its token under `config_dir`, and waits for its URL.
pub fn start_sender(
    scratch: &Scratch,
    tag: &str,
    port: u16,
    config_dir: &Path,
    video: Video,
) -> WebSender {
    let web = format!("127.0.0.1:{port}");
    let (width, height, bitrate) = (
        video.width.to_string(),
        video.height.to_string(),
        video.bitrate.to_string(),
    );
    let mut picam = spawn_in(
        scratch,
        tag,
        &[
            "send",
            "--source",
            "test",
            "--width",
            &width,
            "--height",
            &height,
            "--fps",
            "30",
            "--bitrate",
            &bitrate,
            "--insecure",
            "--web",
            &web,
        ],
        config_dir,
    );
    let url = wait_for_url(&mut picam, Duration::from_secs(30));
    WebSender { picam, url }
}

/// The URL from the sender's `watch in a browser:` line (stderr or stdout), waiting at
/// most `limit`; panics with what it printed if it exits or stays silent.
fn wait_for_url(picam: &mut Picam, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let err = picam.stderr_now();
        let out = std::fs::read_to_string(&picam.stdout).unwrap_or_default();
        for text in [&err, &out] {
            if let Some(at) = text.find(WATCH_LINE) {
                let rest = &text[at + WATCH_LINE.len() - "http://".len()..];
                let url = rest.split_whitespace().next().unwrap_or_default();
                return url.to_string();
            }
        }
        if let Some(status) = picam.child.try_wait().unwrap() {
            panic!("picam exited ({status}) before printing its URL: {err}{out}");
        }
        assert!(
            Instant::now() < deadline,
            "picam printed no URL within {limit:?}: {err}{out}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running `measure.mjs`: several Chromium viewers of one URL.
pub struct Measure {
    child: Option<Child>,
    stdout: PathBuf,
    stderr: PathBuf,
}

/// Starts `measure.mjs` with `browsers` viewers of `url`: `warmup` seconds, then
/// `seconds` of counting. Output goes to files named after `tag` in the scratch dir.
pub fn measure(
    scratch: &Scratch,
    tag: &str,
    url: &str,
    browsers: u32,
    warmup: u32,
    seconds: u32,
) -> Measure {
    let stdout = scratch.path(&format!("{tag}.measure.out"));
    let stderr = scratch.path(&format!("{tag}.measure.err"));
    let child = Command::new("node")
        .arg(web_dir().join("measure.mjs"))
        .args(["--url", url])
        .args(["--browsers", &browsers.to_string()])
        .args(["--warmup", &warmup.to_string()])
        .args(["--seconds", &seconds.to_string()])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .expect("node starts");
    Measure {
        child: Some(child),
        stdout,
        stderr,
    }
}

impl Measure {
    /// What it wrote to stderr so far (progress lines, errors).
    pub fn stderr_now(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits (at most `limit`) for a stderr line containing `needle`; returns it.
    pub fn wait_for(&mut self, needle: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let err = self.stderr_now();
            if let Some(line) = err.lines().find(|l| l.contains(needle)) {
                return line.to_string();
            }
            let child = self.child.as_mut().expect("still running");
            if let Some(status) = child.try_wait().unwrap() {
                panic!("measure.mjs exited ({status}) before printing {needle:?}: {err}");
            }
            assert!(
                Instant::now() < deadline,
                "measure.mjs printed no {needle:?} within {limit:?}: {err}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The pid of browser `index`'s Chromium (from its `browser I pid P` line).
    pub fn browser_pid(&mut self, index: u32, limit: Duration) -> u32 {
        let line = self.wait_for(&format!("browser {index} pid "), limit);
        line.rsplit(' ')
            .next()
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("no pid in {line:?}"))
    }

    /// Waits for it to end (killing it after `limit`) and returns one report per
    /// browser; panics with its stderr unless it exited 0 with a report for each.
    pub fn finish(mut self, browsers: u32, limit: Duration) -> Vec<Report> {
        let mut child = self.child.take().expect("still running");
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "measure.mjs still running after {limit:?}: {}",
                    self.stderr_now()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let out = std::fs::read_to_string(&self.stdout).unwrap_or_default();
        assert!(
            status.success(),
            "measure.mjs failed ({status}): {}",
            self.stderr_now()
        );
        let reports: Vec<Report> = crate::common::json_records(&out)
            .into_iter()
            .map(Report)
            .collect();
        assert_eq!(
            reports.len(),
            browsers as usize,
            "one report per browser expected: {out}{}",
            self.stderr_now()
        );
        for (i, r) in reports.iter().enumerate() {
            eprintln!(
                "{}: browser {i}: {:.1} fps presented, p95 {:?} ms, first picture {:?} ms",
                self.stdout.display(),
                r.fps(),
                r.p95_ms(),
                r.first_frame_ms()
            );
        }
        reports
    }
}

impl Drop for Measure {
    fn drop(&mut self) {
        // SIGTERM first: playwright then closes its browsers (and their temp profiles).
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One browser's JSON line from `measure.mjs`.
#[derive(Debug)]
pub struct Report(pub serde_json::Value);

impl Report {
    fn number(&self, key: &str) -> Option<f64> {
        self.0.get(key).and_then(serde_json::Value::as_f64)
    }

    /// Frames presented while counting.
    pub fn presented(&self) -> u64 {
        self.number("presented").unwrap_or(0.0) as u64
    }

    /// Presented frames whose stamp read back with a good CRC.
    pub fn stamped(&self) -> u64 {
        self.number("stamped").unwrap_or(0.0) as u64
    }

    /// Stamped frames presented after a frame with a newer stamp (out of order).
    #[allow(dead_code)] // fanout_janus.rs; web_browser.rs does not ask
    pub fn backwards(&self) -> u64 {
        self.number("backwards").unwrap_or(0.0) as u64
    }

    /// Presented frames per second while counting.
    pub fn fps(&self) -> f64 {
        self.number("fps").unwrap_or(0.0)
    }

    /// 95th percentile of stamp-to-presentation latency, if any frame was stamped.
    pub fn p95_ms(&self) -> Option<f64> {
        self.number("p95_ms")
    }

    /// Milliseconds from navigation to the first presented frame; `None` if none came.
    pub fn first_frame_ms(&self) -> Option<f64> {
        self.number("first_frame_ms")
    }

    /// Frames presented in each second of the counting window.
    pub fn per_second(&self) -> Vec<u64> {
        self.0
            .get("per_second")
            .and_then(serde_json::Value::as_array)
            .map(|a| a.iter().map(|v| v.as_u64().unwrap_or(0)).collect())
            .unwrap_or_default()
    }

    /// The page's status text when counting ended ("" while live).
    pub fn status(&self) -> &str {
        self.0
            .get("status")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("")
    }
}

/// Sends `request` to 127.0.0.1:`port` over a fresh TCP connection and returns the
/// status code of the answer (read until the server closes, at most 5 s).
pub fn http_status(port: u16, request: &str) -> u16 {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("web port accepts");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    // Connection: close, so the answer ends at EOF; a timeout leaves what came.
    let _ = stream.take(64 * 1024).read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    text.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status line in {text:?}"))
}
