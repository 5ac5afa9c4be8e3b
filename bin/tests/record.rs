//! `--record` as real processes on loopback, checked from outside with FFmpeg's own
//! tools: the file holds H.264 at the stream's size, every picture the viewer showed is
//! in it, in order, at capture-clock times; a SIGKILLed recorder leaves a file that
//! plays up to the kill; a full disk is named and leaves the picture alone; a new
//! picture size makes a second file; segments rotate and the ring keeps N.
//!
//! The test pattern's stamp (docs/STAMP.md) names each frame, so "which frames are in
//! the file" is read from the decoded pictures themselves.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{free_port, json_records, key, read_y4m, spawn, Picam, Scratch};
use media::{stamp, Picture};

/// One stream at a time: each run encodes and decodes 640x480 at 30 fps, and the kill
/// test's frame count must not depend on another test's load on a 2-core machine.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn need_ffmpeg(test: &str) -> bool {
    testkit::require_tools(test, &["ffmpeg", "ffprobe"], "Debian package ffmpeg")
}

/// `--key`, `--bind`, `--port` for both sides.
fn link(scratch: &Scratch, port: &str) -> Vec<String> {
    [
        "--bind",
        "127.0.0.1",
        "--port",
        port,
        "--key",
        &key(scratch),
    ]
    .map(String::from)
    .to_vec()
}

fn start_recv(scratch: &Scratch, port: &str, extra: &[&str]) -> Picam {
    let mut args: Vec<String> = ["recv", "--headless", "--stats", "json"]
        .map(String::from)
        .to_vec();
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend(link(scratch, port));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut recv = spawn(scratch, "recv", &args);
    recv.wait_ready();
    recv
}

fn start_send(scratch: &Scratch, tag: &str, port: &str, size: (u32, u32), extra: &[&str]) -> Picam {
    let (w, h) = (size.0.to_string(), size.1.to_string());
    let mut args: Vec<String> = [
        "send",
        "--remote",
        "127.0.0.1",
        "--width",
        &w,
        "--height",
        &h,
        "--fps",
        "30",
        "--bitrate",
        "2000000",
        "--stats",
        "json",
    ]
    .map(String::from)
    .to_vec();
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend(link(scratch, port));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    spawn(scratch, tag, &args)
}

/// ffprobe's codec name, width and height of the file's video stream.
fn probe(path: &Path) -> (String, u32, u32) {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
        .args(["stream=codec_name,width,height", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    let text = String::from_utf8_lossy(&out.stdout);
    // MPEG-TS lists the stream under its program too: the first line is the stream.
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let fields: Vec<&str> = first.trim().split(',').collect();
    assert_eq!(
        fields.len(),
        3,
        "ffprobe {}: {text:?} {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    (
        fields[0].to_string(),
        fields[1].parse().unwrap(),
        fields[2].parse().unwrap(),
    )
}

/// What FFmpeg decodes from the file: each picture's stamp and presentation time (s),
/// and what FFmpeg said about errors.
struct Decoded {
    stamps: Vec<stamp::Stamp>,
    pts: Vec<f64>,
    errors: String,
}

fn decode(path: &Path, width: u32, height: u32) -> Decoded {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        // Every decoded picture once, at its own time: ffmpeg's default for raw
        // output is a constant frame rate, which repeats a picture across any gap in
        // the file's timestamps (and a recording keeps capture gaps, by design).
        .args(["-fps_mode", "passthrough"])
        .args(["-f", "rawvideo", "-pix_fmt", "yuv420p", "-"])
        .stdin(Stdio::null())
        .output()
        .expect("ffmpeg runs");
    let size = (width * height * 3 / 2) as usize;
    let mut stamps = Vec::new();
    for (i, chunk) in out.stdout.chunks_exact(size).enumerate() {
        let luma = (width * height) as usize;
        let mut p = Picture::new(width, height);
        p.y.copy_from_slice(&chunk[..luma]);
        p.u.copy_from_slice(&chunk[luma..luma + luma / 4]);
        p.v.copy_from_slice(&chunk[luma + luma / 4..]);
        let s = stamp::read(&p).unwrap_or_else(|| {
            panic!(
                "{}: decoded picture {i} has no readable stamp",
                path.display()
            )
        });
        stamps.push(s);
    }
    let probe = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
        .args(["frame=pts_time", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    let pts = String::from_utf8_lossy(&probe.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .collect();
    Decoded {
        stamps,
        pts,
        errors: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The stamps' frame numbers rise, and each picture's time in the file follows its
/// capture time (the stamp's clock), not its arrival: gaps stay gaps.
fn assert_in_order_at_capture_times(path: &Path, d: &Decoded) {
    let frames: Vec<u32> = d.stamps.iter().map(|s| s.frame).collect();
    assert!(
        frames.windows(2).all(|w| w[1] > w[0]),
        "{}: frames out of order or repeated: {frames:?}",
        path.display()
    );
    assert_eq!(
        d.pts.len(),
        d.stamps.len(),
        "{}: ffprobe saw {} frames, ffmpeg decoded {}",
        path.display(),
        d.pts.len(),
        d.stamps.len()
    );
    let (t0, s0) = (d.pts[0], d.stamps[0].time_us);
    for (pts, s) in d.pts.iter().zip(&d.stamps) {
        let in_file_ms = (pts - t0) * 1e3;
        let captured_ms = s.time_us.saturating_sub(s0) as f64 / 1e3;
        assert!(
            (in_file_ms - captured_ms).abs() < 5.0,
            "{}: frame {} at {in_file_ms:.1} ms in the file, captured at {captured_ms:.1} ms",
            path.display(),
            s.frame
        );
    }
}

fn record_summary(stdout: &str) -> serde_json::Value {
    let records = json_records(stdout);
    let last = records
        .iter()
        .rev()
        .find(|r| r["last"] == true)
        .expect("a summary record");
    last["record"].clone()
}

/// A clean run: `recv --record` keeps every frame the viewer showed (and the frames it
/// decoded but replaced before showing), `send --record` every frame it captured.
fn every_frame(recv_ext: &str, send_ext: &str) {
    let test = format!("every_frame_{recv_ext}");
    if !need_ffmpeg(&test) {
        return;
    }
    let _one = serial();
    let scratch = Scratch::new(&format!("rec-{recv_ext}"));
    let port = free_port().to_string();
    let shown = scratch.path("shown.y4m");
    let recv_file = scratch.path(&format!("recv.{recv_ext}"));
    let send_file = scratch.path(&format!("send.{send_ext}"));
    let recv = start_recv(
        &scratch,
        &port,
        &[
            "--duration",
            "8",
            "--frames-out",
            shown.to_str().unwrap(),
            "--record",
            recv_file.to_str().unwrap(),
        ],
    );
    let send = start_send(
        &scratch,
        "send",
        &port,
        (640, 480),
        &["--duration", "5", "--record", send_file.to_str().unwrap()],
    );
    let (sent_ok, send_out, send_err) = send.wait(Duration::from_secs(30));
    let (recv_ok, recv_out, recv_err) = recv.wait(Duration::from_secs(30));
    assert!(sent_ok, "sender failed: {send_err}");
    assert!(recv_ok, "receiver failed: {recv_err}");

    for file in [&recv_file, &send_file] {
        assert_eq!(
            probe(file),
            ("h264".to_string(), 640, 480),
            "{}",
            file.display()
        );
    }
    let recorded = decode(&recv_file, 640, 480);
    assert!(recorded.errors.is_empty(), "ffmpeg: {}", recorded.errors);
    assert_in_order_at_capture_times(&recv_file, &recorded);
    let in_file: BTreeSet<u32> = recorded.stamps.iter().map(|s| s.frame).collect();
    let pictures = read_y4m(&shown);
    assert!(
        pictures.len() >= 120,
        "only {} frames shown",
        pictures.len()
    );
    let missing: Vec<u32> = pictures
        .iter()
        .map(|p| stamp::read(p).expect("stamp").frame)
        .filter(|f| !in_file.contains(f))
        .collect();
    assert!(
        missing.is_empty(),
        "frames shown but not recorded: {missing:?}"
    );
    let summary = record_summary(&recv_out);
    assert_eq!(
        summary["frames"].as_u64(),
        Some(recorded.stamps.len() as u64),
        "{summary}"
    );
    assert_eq!(summary["files"].as_u64(), Some(1), "{summary}");
    assert!(summary["error"].is_null(), "{summary}");

    // The sender's own copy: every frame it captured after its first keyframe.
    let sent = decode(&send_file, 640, 480);
    assert!(sent.errors.is_empty(), "ffmpeg: {}", sent.errors);
    assert_in_order_at_capture_times(&send_file, &sent);
    let summary = record_summary(&send_out);
    assert_eq!(
        summary["frames"].as_u64(),
        Some(sent.stamps.len() as u64),
        "{summary}"
    );
    assert!(
        sent.stamps.len() >= 140,
        "only {} frames",
        sent.stamps.len()
    );
    // A frame the recording dropped would show as a gap in the stamps.
    let first = sent.stamps[0].frame;
    let last = sent.stamps.last().unwrap().frame;
    assert_eq!(
        (last - first + 1) as usize,
        sent.stamps.len(),
        "the sender's recording has gaps"
    );
}

#[test]
fn recv_mkv_and_send_ts_hold_every_frame() {
    every_frame("mkv", "ts");
}

#[test]
fn recv_ts_and_send_mp4_hold_every_frame() {
    every_frame("ts", "mp4");
}

#[test]
fn recv_mp4_and_send_mkv_hold_every_frame() {
    every_frame("mp4", "mkv");
}

/// Waits until the process's stderr says its first picture was shown.
fn wait_first_picture(recv: &mut Picam) {
    recv.wait_for_line("first picture shown", Duration::from_secs(20));
}

fn kill9(p: &Picam) {
    let status = Command::new("kill")
        .args(["-KILL", &p.child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

/// SIGKILL of both recording processes ~7 s into the stream: each file plays up to
/// (nearly) the kill, with no trailer or index ever written.
fn killed(recv_ext: &str, send_ext: &str) {
    let test = format!("killed_{recv_ext}");
    if !need_ffmpeg(&test) {
        return;
    }
    let _one = serial();
    let scratch = Scratch::new(&format!("rec-kill-{recv_ext}"));
    let port = free_port().to_string();
    let recv_file = scratch.path(&format!("recv.{recv_ext}"));
    let send_file = scratch.path(&format!("send.{send_ext}"));
    let mut recv = start_recv(&scratch, &port, &["--record", recv_file.to_str().unwrap()]);
    let send = start_send(
        &scratch,
        "send",
        &port,
        (640, 480),
        &["--record", send_file.to_str().unwrap()],
    );
    wait_first_picture(&mut recv);
    std::thread::sleep(Duration::from_secs(7));
    kill9(&recv);
    kill9(&send);
    let (_, _, recv_err) = recv.wait(Duration::from_secs(10));
    let (_, _, send_err) = send.wait(Duration::from_secs(10));
    for (file, log) in [(&recv_file, &recv_err), (&send_file, &send_err)] {
        assert_eq!(
            probe(file),
            ("h264".to_string(), 640, 480),
            "{}: {log}",
            file.display()
        );
        let d = decode(file, 640, 480);
        assert!(
            d.stamps.len() >= 150,
            "{}: only {} frames play after SIGKILL at ~7 s; ffmpeg: {}",
            file.display(),
            d.stamps.len(),
            d.errors
        );
        let frames: Vec<u32> = d.stamps.iter().map(|s| s.frame).collect();
        assert!(
            frames.windows(2).all(|w| w[1] > w[0]),
            "{}: frame numbers do not rise: {frames:?}",
            file.display()
        );
    }
}

#[test]
fn killed_mkv_and_ts_still_play() {
    killed("mkv", "ts");
}

#[test]
fn killed_ts_and_mp4_still_play() {
    killed("ts", "mp4");
}

#[test]
fn killed_mp4_and_mkv_still_play() {
    killed("mp4", "mkv");
}

/// A tmpfs mounted for the test and unmounted (and removed) at drop.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(dir: PathBuf, size: &str) -> Self {
        std::fs::create_dir_all(&dir).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .expect("mount runs");
        assert!(status.success(), "mounting a tmpfs on {}", dir.display());
        Self(dir)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// A disk that fills: the error names the file and the cause, once; the viewer keeps
/// showing every frame; once space is freed the recording resumes in a new file.
#[test]
fn a_full_disk_is_named_once_and_spares_the_picture() {
    let test = "a_full_disk_is_named_once_and_spares_the_picture";
    if !need_ffmpeg(test) || !testkit::require_root(test, "mounting a small tmpfs") {
        return;
    }
    let _one = serial();
    let scratch = Scratch::new("rec-full");
    let disk = SmallDisk::mount(scratch.path("disk"), "1m");
    let port = free_port().to_string();
    let file = disk.0.join("out.mkv");
    let mut recv = start_recv(
        &scratch,
        &port,
        &["--duration", "12", "--record", file.to_str().unwrap()],
    );
    // 2 Mbit/s fills 1 MB in about 4 s.
    let send = start_send(&scratch, "send", &port, (640, 480), &["--duration", "9"]);
    recv.wait_for_line("No space left on device", Duration::from_secs(15));
    // Free the space: the recording must find its way back by itself.
    std::fs::remove_file(&file).unwrap();
    let (sent_ok, _, send_err) = send.wait(Duration::from_secs(30));
    let (recv_ok, recv_out, recv_err) = recv.wait(Duration::from_secs(30));
    assert!(sent_ok, "sender failed: {send_err}");
    assert!(
        recv_ok,
        "receiver failed (a full disk must not stop it): {recv_err}"
    );
    let named = recv_err
        .lines()
        .filter(|l| l.contains("No space left on device"))
        .collect::<Vec<_>>();
    let dir = disk.0.display().to_string();
    assert!(
        named.iter().all(|l| l.contains(&dir)),
        "the error must name the file in {dir}: {named:?}"
    );
    // Once per episode: the disk filled again after the freed space ran out, at most.
    assert!(
        (1..=3).contains(&named.len()),
        "the error should be said once per episode, not per frame: {named:#?}"
    );
    let records = json_records(&recv_out);
    let summary = records.iter().rev().find(|r| r["last"] == true).unwrap();
    let shown = summary["frames_shown"].as_u64().unwrap();
    assert!(
        shown >= 240,
        "the viewer showed only {shown} of ~270 frames"
    );
    // While the disk was full, the picture went on at the full rate.
    for r in records
        .iter()
        .filter(|r| r["last"] == false && !r["record"]["error"].is_null())
    {
        let fps = r["fps_out"].as_f64().unwrap();
        assert!(
            fps >= 25.0,
            "viewer at {fps} fps while the disk was full: {r}"
        );
    }
    let record = &summary["record"];
    assert!(record["dropped"].as_u64().unwrap() > 0, "{record}");
    assert!(
        record["files"].as_u64().unwrap() >= 2,
        "no new file after space was freed: {record}"
    );
    assert!(
        recv_err.contains("recording resumed"),
        "no word that recording resumed: {recv_err}"
    );
}

/// The sender restarted at another size: a second file, named after the new size, and
/// one line saying so.
#[test]
fn a_new_picture_size_makes_a_second_file() {
    let test = "a_new_picture_size_makes_a_second_file";
    if !need_ffmpeg(test) {
        return;
    }
    let _one = serial();
    let scratch = Scratch::new("rec-size");
    let port = free_port().to_string();
    let file = scratch.path("out.mkv");
    let recv = start_recv(
        &scratch,
        &port,
        &["--duration", "12", "--record", file.to_str().unwrap()],
    );
    let first = start_send(&scratch, "send1", &port, (640, 480), &["--duration", "3"]);
    let (ok, _, err) = first.wait(Duration::from_secs(30));
    assert!(ok, "first sender: {err}");
    let second = start_send(&scratch, "send2", &port, (320, 240), &["--duration", "3"]);
    let (ok, _, err) = second.wait(Duration::from_secs(30));
    assert!(ok, "second sender: {err}");
    recv.terminate();
    let (ok, _, recv_err) = recv.wait(Duration::from_secs(30));
    assert!(ok, "receiver: {recv_err}");
    let second_file = scratch.path("out.320x240.mkv");
    assert_eq!(probe(&file), ("h264".into(), 640, 480));
    assert_eq!(probe(&second_file), ("h264".into(), 320, 240));
    for (path, (w, h)) in [(&file, (640, 480)), (&second_file, (320, 240))] {
        let d = decode(path, w, h);
        assert!(
            d.stamps.len() >= 60,
            "{}: {} frames",
            path.display(),
            d.stamps.len()
        );
        assert!(d.errors.is_empty(), "{}", d.errors);
    }
    let said = recv_err.matches("320x240").count();
    assert!(said >= 1, "the new file was not announced: {recv_err}");
}

/// One-second segments named by start time, each starting on a keyframe, and a ring
/// of three.
#[test]
fn segments_rotate_and_the_ring_keeps_three() {
    let test = "segments_rotate_and_the_ring_keeps_three";
    if !need_ffmpeg(test) {
        return;
    }
    let _one = serial();
    let scratch = Scratch::new("rec-ring");
    let port = free_port().to_string();
    let dir = scratch.path("ring");
    std::fs::create_dir_all(&dir).unwrap();
    // A segment left by an earlier run counts in the ring too.
    let old = dir.join("cam-20200101-000000.ts");
    std::fs::write(&old, b"old").unwrap();
    let file = dir.join("cam.ts");
    let recv = start_recv(
        &scratch,
        &port,
        &[
            "--duration",
            "9",
            "--record",
            file.to_str().unwrap(),
            "--record-segment",
            "1",
            "--record-keep",
            "3",
        ],
    );
    let send = start_send(&scratch, "send", &port, (640, 480), &["--duration", "7"]);
    let started = Instant::now();
    let (ok, _, err) = send.wait(Duration::from_secs(30));
    assert!(ok, "sender: {err}");
    let (ok, recv_out, recv_err) = recv.wait(Duration::from_secs(30));
    assert!(ok, "receiver: {recv_err}");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 3, "the ring keeps 3, found {names:?}");
    assert!(
        !old.exists(),
        "the oldest (an earlier run's) was not deleted"
    );
    for name in &names {
        // cam-YYYYmmdd-HHMMSS.ts (a clash in one second adds -N).
        let stem = name
            .strip_prefix("cam-")
            .and_then(|n| n.strip_suffix(".ts"));
        let stem = stem.unwrap_or_else(|| panic!("unexpected file {name}"));
        let (date, time) = (&stem[..8], &stem[9..15]);
        assert!(
            date.bytes().all(|b| b.is_ascii_digit()) && time.bytes().all(|b| b.is_ascii_digit()),
            "{name}"
        );
        let path = dir.join(name);
        assert_eq!(probe(&path), ("h264".into(), 640, 480), "{name}");
        let d = decode(&path, 640, 480);
        assert!(d.errors.is_empty(), "{name}: {}", d.errors);
        assert!(!d.stamps.is_empty(), "{name} holds no frame");
    }
    let summary = record_summary(&recv_out);
    let files = summary["files"].as_u64().unwrap();
    assert!(
        files >= 4,
        "{files} files in {:?}: segments did not rotate: {summary}",
        started.elapsed()
    );
}
