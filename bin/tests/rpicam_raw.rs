//! `--source rpicam` on the raw path, end to end on loopback with the fake rpicam-vid
//! (`fake-rpicam-vid`: the stamped test pattern as raw I420 with rpicam-vid's row
//! padding): picam encodes (libx264 here), `picam recv` shows it, and what was shown
//! is checked against the pattern.

mod common;

use std::time::Duration;

use common::{free_port, json_records, key, read_y4m, spawn, Scratch};
use media::pattern::TestPattern;
use media::stamp;

const LIMIT: Duration = Duration::from_secs(40);
const FAKE: &str = env!("CARGO_BIN_EXE_fake-rpicam-vid");
/// Below this the picture is visibly damaged (a wrong stride shears every row).
const MIN_PSNR_DB: f64 = 30.0;

fn link(port: &str, key: &str) -> Vec<String> {
    ["--bind", "127.0.0.1", "--port", port, "--key", key]
        .map(String::from)
        .to_vec()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// `picam send --source SOURCE` at `width`x480, 30 fps, with `more` flags.
fn sender(source: &str, width: u32, port: &str, key: &str, more: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = ["send", "--remote", "127.0.0.1", "--source", source]
        .map(String::from)
        .to_vec();
    args.extend(["--width".into(), width.to_string()]);
    args.extend(
        ["--height", "480", "--fps", "30", "--bitrate", "1500000"]
            .into_iter()
            .chain(more.iter().copied())
            .map(String::from),
    );
    args.extend(link(port, key));
    args
}

fn receiver(port: &str, key: &str, seconds: &str, y4m: &std::path::Path) -> Vec<String> {
    let mut args: Vec<String> = [
        "recv",
        "--headless",
        "--stats",
        "json",
        "--duration",
        seconds,
    ]
    .map(String::from)
    .to_vec();
    args.extend(["--frames-out".into(), y4m.display().to_string()]);
    args.extend(link(port, key));
    args
}

/// Streams `source` at `width`x480 for 4 s; every picture shown must be the pattern's
/// frame its stamp names, in order.
fn shows_the_pattern(tag: &str, source: &str, width: u32) {
    let scratch = Scratch::new(tag);
    let port = free_port().to_string();
    let key = key(&scratch);
    let y4m = scratch.path("shown.y4m");
    let mut recv = spawn(&scratch, "recv", &strs(&receiver(&port, &key, "7", &y4m)));
    recv.wait_ready();
    let send = spawn(
        &scratch,
        "send",
        &strs(&sender(source, width, &port, &key, &["--duration", "4"])),
    );
    let (send_ok, _, send_err) = send.wait(LIMIT);
    let (recv_ok, recv_out, recv_err) = recv.wait(LIMIT);
    assert!(send_ok && recv_ok, "{send_err}\n{recv_err}");
    assert!(
        send_err.contains("gives raw I420") && send_err.contains("libx264"),
        "the raw path and its encoder are logged: {send_err}"
    );
    let pictures = read_y4m(&y4m);
    // 4 s at 30 fps, less the child's start-up.
    assert!(
        pictures.len() >= 75,
        "{} pictures shown; {send_err}",
        pictures.len()
    );
    assert_eq!((pictures[0].width, pictures[0].height), (width, 480));
    let pattern = TestPattern::new(width, 480);
    let band = stamp::band_height(width, 480).unwrap();
    let mut last = None;
    for (i, picture) in pictures.iter().enumerate() {
        let s = stamp::read(picture).unwrap_or_else(|| panic!("picture {i} has no stamp"));
        assert!(last.is_none_or(|l| s.frame > l), "picture {i} out of order");
        last = Some(s.frame);
        let psnr = picture.luma_psnr(&pattern.picture(s.frame), band).unwrap();
        assert!(
            psnr > MIN_PSNR_DB,
            "picture {i} (frame {}): {psnr:.1} dB, not the pattern (row padding mishandled?)",
            s.frame
        );
    }
    let summary = json_records(&recv_out).pop().expect("stats printed");
    let p95 = summary["latency_ms"]["p95"]
        .as_f64()
        .expect("stamp latency");
    assert!(p95 < 250.0, "p95 latency {p95} ms");
    eprintln!(
        "{tag}: {} pictures, latency {}",
        pictures.len(),
        summary["latency_ms"]
    );
}

/// 650 pixels wide: rpicam-vid pads rows to 704 bytes on a Pi 4 (VC4 ISP rule, which
/// picam applies off a Pi 5); the padding must be skipped, not shown.
#[test]
fn odd_width_raw_frames_are_shown_as_the_pattern() {
    shows_the_pattern("rpicam-raw-650", &format!("rpicam:{FAKE}"), 650);
}

/// A Pi 5's rows (PiSP rule: 768 bytes for 650 pixels) read through the `stride=`
/// override.
#[test]
fn stride_override_reads_another_isps_rows() {
    shows_the_pattern(
        "rpicam-raw-pisp",
        &format!("rpicam:{FAKE} stride=768 --fake-isp pisp"),
        650,
    );
}

/// A viewer that starts 2 s after the sender gets a picture within a second although
/// the keyframe period is 10 s (`--intra 300`): its keyframe request reaches picam's
/// encoder, which rpicam-vid's own H.264 could not do.
#[test]
fn late_viewer_gets_a_keyframe_on_request() {
    let scratch = Scratch::new("rpicam-raw-join");
    let port = free_port().to_string();
    let key = key(&scratch);
    let source = format!("rpicam:{FAKE}");
    let send = spawn(
        &scratch,
        "send",
        &strs(&sender(
            &source,
            640,
            &port,
            &key,
            &["--duration", "7", "--intra", "300"],
        )),
    );
    std::thread::sleep(Duration::from_millis(2000));
    let y4m = scratch.path("shown.y4m");
    let joined_us = media::wallclock_us();
    let recv = spawn(&scratch, "recv", &strs(&receiver(&port, &key, "3", &y4m)));
    let (recv_ok, _, recv_err) = recv.wait(LIMIT);
    let (send_ok, _, send_err) = send.wait(LIMIT);
    assert!(recv_ok && send_ok, "{recv_err}\n{send_err}");
    let pictures = read_y4m(&y4m);
    assert!(
        pictures.len() >= 45,
        "{} pictures in 3 s; {recv_err}",
        pictures.len()
    );
    let first = stamp::read(&pictures[0]).expect("stamp");
    // The first picture shown was captured less than a second after the viewer
    // started (its own start-up included); the periodic keyframe was 8 s away.
    let after_ms = first.time_us.saturating_sub(joined_us) as f64 / 1e3;
    assert!(
        after_ms < 1000.0,
        "first picture shown (frame {}) was captured {after_ms:.0} ms after the viewer started",
        first.frame
    );
    assert!(
        first.frame < 150,
        "first picture shown is frame {}: the periodic keyframe, not one on request",
        first.frame
    );
    eprintln!(
        "late viewer: first picture frame {}, captured {after_ms:.0} ms after the viewer started",
        first.frame
    );
}
