//! `RpicamRawSource` against a tiny stand-in program (a shell script that writes a few
//! raw frames and exits): frames are encoded by picam, the child is restarted, and the
//! first frame after each restart is a keyframe although the period is long.

#![cfg(unix)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use capture::retry::Backoff;
use capture::rpicam::{RawEncoding, RawOptions};
use capture::{Control, EncoderSettings, RpicamRawSource, Source};

/// 64x64 frames: rows of 64 bytes, no padding on either ISP.
const SIDE: u32 = 64;
const FRAME_BYTES: usize = 64 * 64 * 3 / 2;

fn script(name: &str, body: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("picam-rawsrc-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("rpicam-vid");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn options(program: &Path) -> RawOptions {
    RawOptions {
        program: Some(program.display().to_string()),
        settings: EncoderSettings {
            width: SIDE,
            height: SIDE,
            fps: 30,
            bitrate: 500_000,
            intra: 1000,
        },
        extra: Vec::new(),
        encoding: RawEncoding::X264,
        stride: None,
    }
}

#[test]
fn restarted_child_starts_again_with_a_keyframe() {
    // Eight frames (and half of a ninth, dropped), paced a little, then exit.
    let program = script(
        "restart",
        &format!(
            "for i in 1 2 3 4 5 6 7 8; do head -c {FRAME_BYTES} /dev/zero; sleep 0.02; done\n\
             head -c {} /dev/zero\nexit 3",
            FRAME_BYTES / 2
        ),
    );
    let mut source = RpicamRawSource::start(options(&program))
        .unwrap()
        .with_backoff(Backoff::with(
            Duration::from_millis(10),
            Duration::from_millis(20),
        ));
    assert!(source.command_line().contains("--codec yuv420"));
    let begun = Instant::now();
    let mut restarts_seen = source.restarts();
    let mut after_restart = Vec::new();
    let mut frames = 0;
    while source.restarts() < 3 && begun.elapsed() < Duration::from_secs(20) && frames < 200 {
        let frame = source
            .next_frame()
            .unwrap()
            .expect("a live source never ends");
        assert!(!frame.data.is_empty());
        frames += 1;
        if source.restarts() != restarts_seen {
            restarts_seen = source.restarts();
            after_restart.push(frame.keyframe);
        }
    }
    assert!(source.restarts() >= 3, "{} restarts", source.restarts());
    assert!(frames >= 12, "{frames} frames");
    assert!(
        !after_restart.is_empty() && after_restart.iter().all(|&k| k),
        "first frames after restarts keyframes: {after_restart:?}"
    );
}

#[test]
fn keyframe_on_request_and_frames_skipped_for_a_lower_rate() {
    let program = script(
        "control",
        &format!("while true; do head -c {FRAME_BYTES} /dev/zero; sleep 0.01; done"),
    );
    let mut source = RpicamRawSource::start(options(&program)).unwrap();
    let first = source.next_frame().unwrap().unwrap();
    assert!(first.keyframe, "a fresh run starts with a keyframe");
    let plain = source.next_frame().unwrap().unwrap();
    assert!(!plain.keyframe, "then no keyframe for 1000 frames");
    source.control(Control::ForceKeyframe);
    assert!(
        source.next_frame().unwrap().unwrap().keyframe,
        "keyframe on request"
    );
    // A sixth of the rate: five of every six frames read are skipped unencoded. The
    // child sleeps 10 ms after each frame, so six kept frames take at least ~34 frames'
    // sleeps (a frame or two may be read ahead); without skipping, about 60 ms.
    source.control(Control::SetFps(5));
    source.control(Control::SetBitrate(200_000));
    let begun = Instant::now();
    for _ in 0..6 {
        let f = source.next_frame().unwrap().unwrap();
        assert!(!f.keyframe);
    }
    let took = begun.elapsed();
    assert!(
        took >= Duration::from_millis(250),
        "six frames at a sixth of the rate took only {took:?}: frames were not skipped"
    );
    assert!(
        source.describe().contains("libx264"),
        "{}",
        source.describe()
    );
}

#[test]
fn a_stride_narrower_than_the_picture_is_refused_before_starting() {
    let program = script("stride", "exit 0");
    let err = RpicamRawSource::start(RawOptions {
        stride: Some(32),
        ..options(&program)
    })
    .err()
    .expect("refused")
    .to_string();
    assert!(
        err.contains("64x64") && err.contains("32-byte rows"),
        "{err}"
    );
}
