//! `picam demo`: sender and viewer in one process on loopback, headless and in a real
//! window on a virtual X server (Xvfb), checked from screenshots.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, json_records, Scratch};

/// The headless demo streams the test pattern to its own viewer and reports latency.
#[test]
fn headless_demo_shows_pictures_and_measures_latency() {
    let scratch = Scratch::new("demo-headless");
    let port = free_port().to_string();
    let demo = common::spawn(
        &scratch,
        "demo",
        &[
            "demo",
            "--headless",
            "--duration",
            "3",
            "--stats",
            "json",
            "--port",
            &port,
        ],
    );
    let (ok, out, err) = demo.wait(Duration::from_secs(30));
    assert!(ok, "demo failed: {err}");
    let records = json_records(&out);
    assert!(
        records.len() >= 3,
        "one record a second and a summary expected: {out}"
    );
    assert!(
        records.iter().all(|r| r.get("frames_shown").is_some()),
        "only the viewer's records are printed: {out}"
    );
    let summary = records.last().unwrap();
    assert_eq!(summary["last"], true);
    let shown = summary["frames_shown"].as_u64().unwrap();
    assert!(shown >= 30, "{shown} pictures shown in 3 s: {summary}");
    let p50 = summary["latency_ms"]["p50"]
        .as_f64()
        .expect("latency measured from stamps");
    assert!(p50 > 0.0 && p50 < 250.0, "p50 latency {p50} ms");
    assert!(
        summary["present_ms"].is_null(),
        "no present timing headless: {summary}"
    );
}

/// A virtual X server on a free display number, killed at drop.
struct Xvfb {
    child: Child,
    display: String,
}

impl Xvfb {
    /// Starts `Xvfb -displayfd 1 -screen 0 1280x720x24`: Xvfb picks a free display
    /// number itself and writes it to the pipe once it accepts connections, so the
    /// line read here is the readiness signal (no guessing at numbers, no sleep).
    fn start(scratch: &Scratch) -> Result<Xvfb, String> {
        let log_path = scratch.path("xvfb.log");
        let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
        let mut child = Command::new("Xvfb")
            .args([
                "-displayfd",
                "1",
                "-screen",
                "0",
                "1280x720x24",
                "-nolisten",
                "tcp",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("Xvfb: {e}"))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let (number_tx, number_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = number_tx.send(line);
            // Keep draining until Xvfb exits, so it never writes into a closed pipe.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let line = number_rx.recv_timeout(Duration::from_secs(10));
        match line.as_deref().map(str::trim).map(str::parse::<u32>) {
            Ok(Ok(n)) => Ok(Xvfb {
                child,
                display: format!(":{n}"),
            }),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                Err(format!(
                    "Xvfb named no display within 10 s ({line:?}); its log: {}",
                    log.trim()
                ))
            }
        }
    }
}

impl Drop for Xvfb {
    /// SIGTERM first, so Xvfb removes its socket and lock file; SIGKILL (and removing
    /// them here) if it has not gone within 3 s. Stale ones would use up display numbers.
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = run_bounded(
            Command::new("kill").args(["-TERM", &pid]),
            Duration::from_secs(5),
        );
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline && self.child.try_wait().ok().flatten().is_none() {
            std::thread::sleep(Duration::from_millis(20));
        }
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
            let n = self.display.trim_start_matches(':');
            let _ = std::fs::remove_file(format!("/tmp/.X11-unix/X{n}"));
            let _ = std::fs::remove_file(format!("/tmp/.X{n}-lock"));
        }
    }
}

/// Runs `command`, killing it after `limit`; true when it exited successfully.
fn run_bounded(command: &mut Command, limit: Duration) -> bool {
    let Ok(mut child) = command.stdin(Stdio::null()).stdout(Stdio::null()).spawn() else {
        return false;
    };
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status.success(),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
        }
    }
}

/// An RGB screenshot of the whole X screen.
struct Shot {
    width: usize,
    height: usize,
    rgb: Vec<u8>,
}

impl Shot {
    /// `import -window root` into a binary PPM, then parsed.
    fn take(display: &str, path: &Path) -> Shot {
        let ok = run_bounded(
            Command::new("import")
                .args(["-display", display, "-window", "root", "-depth", "8"])
                .arg(path),
            Duration::from_secs(20),
        );
        assert!(
            ok,
            "import (ImageMagick) could not take a screenshot of {display}"
        );
        Shot::parse_ppm(&std::fs::read(path).unwrap())
    }

    fn parse_ppm(bytes: &[u8]) -> Shot {
        // "P6" w h maxval, separated by single whitespace, then the pixels.
        let mut fields = Vec::new();
        let mut at = 0;
        while fields.len() < 4 {
            while bytes[at].is_ascii_whitespace() {
                at += 1;
            }
            let begin = at;
            while !bytes[at].is_ascii_whitespace() {
                at += 1;
            }
            fields.push(String::from_utf8_lossy(&bytes[begin..at]).into_owned());
        }
        assert_eq!(fields[0], "P6", "binary PPM expected");
        assert_eq!(fields[3], "255", "8-bit PPM expected");
        let (width, height) = (fields[1].parse().unwrap(), fields[2].parse().unwrap());
        let rgb = bytes[at + 1..].to_vec();
        assert_eq!(rgb.len(), width * height * 3, "PPM size");
        Shot { width, height, rgb }
    }

    fn pixel(&self, x: usize, y: usize) -> [u8; 3] {
        let i = (y * self.width + x) * 3;
        [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
    }

    fn luma(&self, x: usize, y: usize) -> f64 {
        let [r, g, b] = self.pixel(x, y).map(f64::from);
        0.299 * r + 0.587 * g + 0.114 * b
    }

    /// Mean and standard deviation of the luma.
    fn luma_stats(&self) -> (f64, f64) {
        let n = (self.width * self.height) as f64;
        let (mut sum, mut sq) = (0.0, 0.0);
        for y in 0..self.height {
            for x in 0..self.width {
                let l = self.luma(x, y);
                sum += l;
                sq += l * l;
            }
        }
        let mean = sum / n;
        (mean, (sq / n - mean * mean).max(0.0).sqrt())
    }

    /// Pixels of the overlay graph's bright green line (90, 230, 120) in a region. The
    /// test pattern's colours stay near grey, far from it.
    fn graph_green(&self, xs: std::ops::Range<usize>, ys: std::ops::Range<usize>) -> usize {
        let mut n = 0;
        for y in ys {
            for x in xs.clone() {
                let [r, g, b] = self.pixel(x, y).map(i32::from);
                if g >= 180 && g - r >= 90 && g - b >= 60 {
                    n += 1;
                }
            }
        }
        n
    }
}

/// Fraction of pixels whose luma differs by more than 8 between two screenshots.
fn changed_fraction(a: &Shot, b: &Shot) -> f64 {
    let mut changed = 0usize;
    for y in 0..a.height {
        for x in 0..a.width {
            if (a.luma(x, y) - b.luma(x, y)).abs() > 8.0 {
                changed += 1;
            }
        }
    }
    changed as f64 / (a.width * a.height) as f64
}

/// `picam demo` in a real X window: the screen shows the moving test pattern (not
/// black, not frozen) with the stats overlay, and the demo ends cleanly on its own.
/// Set `PICAM_SCREENSHOT_OUT=docs/screenshot.png` to keep a screenshot.
#[test]
fn demo_window_under_xvfb_shows_the_live_pattern_and_overlay() {
    let scratch = Scratch::new("demo-xvfb");
    const TEST: &str = "demo::demo_window_under_xvfb_shows_the_live_pattern_and_overlay";
    let hint = "xvfb, imagemagick: scripts/install-deps.sh --test";
    if !testkit::require_tools(TEST, &["Xvfb", "import"], hint) {
        return;
    }
    // Installed but unable to start (no /tmp/.X11-unix, say): a missing prerequisite
    // too, so a failure under CI.
    let xvfb = match Xvfb::start(&scratch) {
        Ok(xvfb) => xvfb,
        Err(e) => {
            testkit::require(TEST, false, "a running Xvfb", &e);
            return;
        }
    };
    let port = free_port().to_string();
    let stdout = scratch.path("demo.out");
    let stderr = scratch.path("demo.err");
    let child = Command::new(env!("CARGO_BIN_EXE_picam"))
        .args([
            "demo",
            "--duration",
            "6",
            "--stats",
            "json",
            "--port",
            &port,
        ])
        .env("DISPLAY", &xvfb.display)
        .env_remove("WAYLAND_DISPLAY")
        .env_remove("SDL_VIDEODRIVER") // scripts/test.sh sets offscreen
        .env("PICAM_LOG", "info")
        .env("PICAM_CONFIG_DIR", scratch.path("config"))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .expect("picam starts");
    let demo = common::Picam {
        child,
        stdout: stdout.clone(),
        stderr: stderr.clone(),
    };

    // Wait until pictures are being shown.
    let deadline = Instant::now() + Duration::from_secs(5);
    let live = loop {
        let out = std::fs::read_to_string(&stdout).unwrap_or_default();
        if json_records(&out)
            .iter()
            .any(|r| r["fps_out"].as_f64().is_some_and(|f| f > 0.0))
        {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        live,
        "no pictures shown within 5 s: {}",
        std::fs::read_to_string(&stderr).unwrap_or_default()
    );
    std::thread::sleep(Duration::from_millis(300));
    let first = Shot::take(&xvfb.display, &scratch.path("first.ppm"));
    std::thread::sleep(Duration::from_secs(1));
    let second_path = scratch.path("second.ppm");
    let second = Shot::take(&xvfb.display, &second_path);

    let (ok, out, err) = demo.wait(Duration::from_secs(30));
    drop(xvfb);
    assert!(ok, "demo failed: {err}");
    assert!(
        err.contains("overlay on"),
        "the demo opens its window with the overlay: {err}"
    );

    assert_eq!((first.width, first.height), (1280, 720));
    for (name, shot) in [("first", &first), ("second", &second)] {
        let (mean, sd) = shot.luma_stats();
        // The pattern's luma is ~100 of 255 with +-80 of waves, checkers and grain; a
        // black, dimmed ("waiting", "no frames") or blank screen fails here.
        assert!(
            (50.0..200.0).contains(&mean),
            "{name} screenshot mean luma {mean:.1}"
        );
        assert!(
            sd > 15.0,
            "{name} screenshot luma deviation {sd:.1}: no pattern"
        );
    }
    let changed = changed_fraction(&first, &second);
    assert!(
        changed > 0.2,
        "only {:.1}% of pixels changed in 1 s: frozen",
        changed * 100.0
    );
    // The overlay (top left) draws a latency graph in a green the pattern never has.
    let overlay = first.graph_green(0..640, 0..360) + second.graph_green(0..640, 0..360);
    let elsewhere =
        first.graph_green(640..1280, 360..720) + second.graph_green(640..1280, 360..720);
    assert!(
        overlay >= 20,
        "no overlay graph in the top-left corner ({overlay} green pixels)"
    );
    assert!(
        elsewhere < 5,
        "{elsewhere} graph-green pixels outside the overlay"
    );

    let summary = json_records(&out).pop().expect("stats printed");
    assert_eq!(summary["last"], true);
    assert!(
        summary["frames_shown"].as_u64().unwrap_or(0) >= 60,
        "{summary}"
    );
    let present = summary["present_ms"]["p50"]
        .as_f64()
        .expect("present timing in a window");
    eprintln!(
        "xvfb: {:.1}% of pixels changed, {overlay} overlay graph pixels, latency {}, decoded to presented {}",
        changed * 100.0,
        summary["latency_ms"],
        summary["present_ms"]
    );
    assert!(present < 250.0, "decoded to presented p50 {present} ms");

    if let Some(keep) = std::env::var_os("PICAM_SCREENSHOT_OUT") {
        let ok = run_bounded(
            // 256 colours keep it small enough to commit (the grain defeats PNG).
            Command::new("convert")
                .arg(&second_path)
                .args(["-strip", "-colors", "256"])
                .arg(format!("PNG8:{}", Path::new(&keep).display())),
            Duration::from_secs(20),
        );
        assert!(ok, "convert could not write {}", Path::new(&keep).display());
    }
}
