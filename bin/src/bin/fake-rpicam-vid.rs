//! A stand-in for `rpicam-vid` in tests and benchmarks: a camera that shows picam's
//! moving test pattern with the latency stamp painted at capture, so latency and
//! picture correctness can be checked end to end without a Pi.
//!
//! It takes the options picam passes to the real one and refuses any other loudly (exit
//! status 2), so a change in picam's command line cannot go unnoticed:
//! `--codec yuv420|h264`, `--width`, `--height`, `--framerate`, `--output -` (`-o`),
//! `--timeout MS` (`-t`, 0: until killed), `--nopreview` (`-n`), `--flush`, and for
//! H.264 `--inline`, `--profile`, `--level`, `--bitrate`, `--intra`. `--key=value` works
//! as with the real one.
//!
//! Raw frames (`--codec yuv420`) are written with rpicam-vid's row padding
//! (`capture::rpicam::layout`). H.264 is encoded here with libx264, as rpicam-vid does on
//! a Pi 5, so its cost shows in this process rather than in picam.
//!
//! Options of the fake itself:
//! - `--fake-isp vc4|pisp`: whose row padding rule to follow (default vc4);
//! - `--fake-frames N`: exit (status 0) after N frames;
//! - `--fake-log FILE`: append the command line to FILE;
//! - `--fake-report FILE`: every 30 frames, rewrite FILE with the frames written and
//!   this process's CPU time (`frames=N cpu_ms=X`), for benchmarks (picam ends the fake
//!   with SIGKILL, so the figure is at most a second old).

#[path = "../cpu.rs"]
mod cpu;

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use capture::rpicam::{I420Layout, Isp};
use capture::{EncoderSettings, Pacer, X264Encoder};
use media::pattern::TestPattern;
use media::stamp::{self, Stamp};
use media::{wallclock_us, Picture};

#[derive(Debug)]
struct Options {
    raw: bool,
    settings: EncoderSettings,
    timeout_ms: u64,
    isp: Isp,
    frames: Option<u64>,
    report: Option<String>,
}

fn number<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("{key} takes a number, got {value:?}"))
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        raw: false,
        settings: EncoderSettings {
            width: 640,
            height: 480,
            fps: 30,
            bitrate: 2_000_000,
            intra: 30,
        },
        timeout_ms: 5000,
        isp: Isp::Vc4,
        frames: None,
        report: None,
    };
    let mut output = None;
    let mut words = args.iter().flat_map(|a| match a.split_once('=') {
        Some((k, v)) if a.starts_with("--") => vec![k.to_string(), v.to_string()],
        _ => vec![a.clone()],
    });
    while let Some(key) = words.next() {
        let mut value = || words.next().ok_or(format!("{key} needs a value"));
        match key.as_str() {
            "-n" | "--nopreview" | "--flush" | "--inline" => {}
            "--codec" => match value()?.as_str() {
                "yuv420" => o.raw = true,
                "h264" => o.raw = false,
                other => return Err(format!("--codec {other:?}: the fake knows yuv420 and h264")),
            },
            "--width" => o.settings.width = number(&key, &value()?)?,
            "--height" => o.settings.height = number(&key, &value()?)?,
            "--framerate" => o.settings.fps = number(&key, &value()?)?,
            "--bitrate" => o.settings.bitrate = number(&key, &value()?)?,
            "--intra" => o.settings.intra = number(&key, &value()?)?,
            "--profile" | "--level" => {
                value()?;
            }
            "-t" | "--timeout" => o.timeout_ms = number(&key, &value()?)?,
            "-o" | "--output" => output = Some(value()?),
            "--fake-isp" => {
                o.isp = match value()?.as_str() {
                    "vc4" => Isp::Vc4,
                    "pisp" => Isp::Pisp,
                    other => return Err(format!("--fake-isp {other:?}: vc4 or pisp")),
                }
            }
            "--fake-frames" => o.frames = Some(number(&key, &value()?)?),
            "--fake-report" => o.report = Some(value()?),
            "--fake-log" => {
                let path = value()?;
                let mut log = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .map_err(|e| format!("--fake-log {path}: {e}"))?;
                writeln!(log, "{}", args.join(" ")).map_err(|e| format!("{path}: {e}"))?;
            }
            other => return Err(format!("unknown option {other:?} (the fake refuses what the real rpicam-vid would not be given)")),
        }
    }
    if output.as_deref() != Some("-") {
        return Err(format!(
            "the fake writes to stdout only (`--output -`), got {output:?}"
        ));
    }
    let s = o.settings;
    if s.width < 16 || s.height < 16 || s.width % 2 != 0 || s.height % 2 != 0 || s.fps == 0 {
        return Err(format!(
            "impossible mode {}x{} @ {} fps",
            s.width, s.height, s.fps
        ));
    }
    Ok(o)
}

/// Writes frames until the time, the frame count or the reader runs out.
fn run(o: &Options) -> Result<(), String> {
    let s = o.settings;
    let pattern = TestPattern::new(s.width, s.height);
    let mut picture = Picture::new(s.width, s.height);
    let layout = I420Layout::for_isp(o.isp, s.width, s.height).map_err(|e| e.to_string())?;
    let mut encoder = if o.raw {
        None
    } else {
        Some(X264Encoder::new(s).map_err(|e| e.to_string())?)
    };
    eprintln!(
        "fake rpicam-vid: {}x{} @ {} fps, {}",
        s.width,
        s.height,
        s.fps,
        if o.raw {
            format!(
                "yuv420 with {}-byte rows ({})",
                layout.y_stride,
                o.isp.name()
            )
        } else {
            format!("h264 at {} bit/s", s.bitrate)
        }
    );
    let mut pacer = Pacer::new(s.fps);
    let mut stdout = std::io::stdout().lock();
    let mut frame = Vec::new();
    let begun = Instant::now();
    let until = (o.timeout_ms > 0).then(|| begun + Duration::from_millis(o.timeout_ms));
    let mut n: u32 = 0;
    loop {
        if until.is_some_and(|t| Instant::now() >= t) || o.frames.is_some_and(|f| n as u64 >= f) {
            return Ok(());
        }
        pacer.wait();
        pattern.fill(n, &mut picture);
        let now = wallclock_us();
        stamp::paint(
            &mut picture,
            Stamp {
                frame: n,
                time_us: now,
            },
        );
        let bytes: &[u8] = match &mut encoder {
            None => {
                layout.pad_into(&picture, &mut frame);
                &frame
            }
            Some(enc) => {
                let out = enc
                    .encode(&picture, now, false)
                    .map_err(|e| e.to_string())?;
                frame = out.map(|f| f.data.to_vec()).unwrap_or_default();
                &frame
            }
        };
        // The reader going away (picam stopped or restarting us) ends the fake quietly.
        if stdout
            .write_all(bytes)
            .and_then(|()| stdout.flush())
            .is_err()
        {
            return Ok(());
        }
        n = n.wrapping_add(1);
        if let Some(path) = o.report.as_deref().filter(|_| n % 30 == 0) {
            let cpu_ms = cpu::process_cpu_time().as_secs_f64() * 1e3;
            std::fs::write(path, format!("frames={n} cpu_ms={cpu_ms:.1}\n"))
                .map_err(|e| format!("--fake-report {path}: {e}"))?;
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match parse(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("fake rpicam-vid: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fake rpicam-vid: {e}");
            ExitCode::from(1)
        }
    }
}
