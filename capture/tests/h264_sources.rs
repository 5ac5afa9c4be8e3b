//! The H.264 sources on the recorded fixture: splitting into access units, decoding
//! each one, pacing, looping, and the rpicam-vid child process (a fake that writes the
//! fixture) with its restarts.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use capture::annexb::{nal, nal_type, nal_units, AccessUnitSplitter};
use capture::retry::Backoff;
use capture::{EncoderSettings, H264FileSource, RpicamSource, Source, StreamOptions};
use ffmpeg_next as ffmpeg;

const FIXTURE_FRAMES: usize = 60;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/testsrc-320x240-60f.h264")
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("picam-capture-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Decodes access units one packet each; returns how many pictures came out.
fn decode_count(units: &[Vec<u8>]) -> usize {
    ffmpeg::init().unwrap();
    let codec = ffmpeg::decoder::find(ffmpeg::codec::Id::H264).expect("h264 decoder");
    let mut dec = ffmpeg::codec::context::Context::new_with_codec(codec)
        .decoder()
        .video()
        .unwrap();
    let mut frame = ffmpeg::frame::Video::empty();
    let mut n = 0;
    for u in units {
        dec.send_packet(&ffmpeg::Packet::copy(u))
            .expect("every access unit decodes");
        while dec.receive_frame(&mut frame).is_ok() {
            assert_eq!((frame.width(), frame.height()), (320, 240));
            n += 1;
        }
    }
    dec.send_eof().unwrap();
    while dec.receive_frame(&mut frame).is_ok() {
        n += 1;
    }
    n
}

fn collect(source: &mut dyn Source, max: usize) -> Vec<media::EncodedFrame> {
    let mut out = Vec::new();
    while out.len() < max {
        match source.next_frame().expect("source works") {
            Some(f) => out.push(f),
            None => break,
        }
    }
    out
}

fn unpaced(looping: bool) -> StreamOptions {
    StreamOptions {
        pace_fps: None,
        looping,
    }
}

#[test]
fn the_fixture_splits_into_one_decodable_picture_per_access_unit() {
    let data = std::fs::read(fixture()).unwrap();
    assert!(data.len() < 200_000, "fixture must stay small");
    let mut s = AccessUnitSplitter::new("fixture");
    let mut units = Vec::new();
    // Odd chunk size: boundaries fall inside start codes.
    for chunk in data.chunks(4093) {
        s.push(chunk);
        while let Some(au) = s.pull().unwrap() {
            units.push(au);
        }
    }
    units.extend(s.finish());
    assert_eq!(units.len(), FIXTURE_FRAMES);
    let keys: Vec<_> = units
        .iter()
        .enumerate()
        .filter(|(_, u)| u.keyframe)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(keys, vec![0, 30]);
    for u in &units {
        // zerolatency's sliced threads: several slices per picture, exactly one of them
        // (the first) with first_mb_in_slice = 0.
        let firsts: Vec<bool> = nal_units(&u.data)
            .filter(|n| matches!(nal_type(n), Some(nal::SLICE | nal::IDR)))
            .map(|n| n[1] & 0x80 != 0)
            .collect();
        assert!(firsts.len() >= 2, "the fixture has multi-slice pictures");
        assert_eq!(firsts.iter().filter(|&&f| f).count(), 1);
        assert!(firsts[0]);
    }
    let total: usize = units.iter().map(|u| u.data.len()).sum();
    assert_eq!(total, data.len(), "no byte lost or added");
    let data: Vec<_> = units.into_iter().map(|u| u.data).collect();
    assert_eq!(decode_count(&data), FIXTURE_FRAMES);
}

#[test]
fn file_source_ends_loops_and_paces() {
    let path = fixture();
    let path = path.to_str().unwrap();

    let mut once = H264FileSource::open(path, unpaced(false)).unwrap();
    let frames = collect(&mut once, 1000);
    assert_eq!(frames.len(), FIXTURE_FRAMES);
    assert!(frames[0].keyframe && frames[30].keyframe && !frames[1].keyframe);
    assert!(once.describe().contains("unpaced"), "{}", once.describe());

    let mut looped = H264FileSource::open(path, unpaced(true)).unwrap();
    let frames = collect(&mut looped, 150);
    assert_eq!(frames.len(), 150);
    assert_eq!(looped.loops(), 2);
    let keys: Vec<_> = frames
        .iter()
        .enumerate()
        .filter(|(_, f)| f.keyframe)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(keys, vec![0, 30, 60, 90, 120]);

    let mut paced = H264FileSource::open(
        path,
        StreamOptions {
            pace_fps: Some(60),
            looping: false,
        },
    )
    .unwrap();
    let start = Instant::now();
    let frames = collect(&mut paced, 31);
    let took = start.elapsed();
    // 31 frames at 60 fps: 30 intervals of 16.7 ms.
    assert_eq!(frames.len(), 31);
    assert!(
        took >= Duration::from_millis(480),
        "paced too fast: {took:?}"
    );
    assert!(
        took < Duration::from_millis(2000),
        "paced too slow: {took:?}"
    );
    let spread = frames[30].capture_us - frames[0].capture_us;
    assert!(
        (480_000..2_000_000).contains(&spread),
        "capture times follow the pace: {spread} us"
    );
}

#[test]
fn keyframes_without_parameter_sets_get_them_from_earlier_ones() {
    // Keep only the first SPS/PPS, as a camera that sends them once would.
    let data = std::fs::read(fixture()).unwrap();
    let mut stripped = Vec::new();
    let mut seen = 0;
    for n in nal_units(&data) {
        let t = nal_type(n).unwrap();
        if t == nal::SPS {
            seen += 1;
        }
        if seen > 1 && matches!(t, nal::SPS | nal::PPS) {
            continue;
        }
        stripped.extend_from_slice(&[0, 0, 0, 1]);
        stripped.extend_from_slice(n);
    }
    let dir = temp("strip");
    let path = dir.join("once.h264");
    std::fs::write(&path, &stripped).unwrap();
    let mut source = H264FileSource::open(path.to_str().unwrap(), unpaced(false)).unwrap();
    let frames = collect(&mut source, 1000);
    assert_eq!(frames.len(), FIXTURE_FRAMES);
    let types = |i: usize| {
        nal_units(&frames[i].data)
            .filter_map(nal_type)
            .collect::<Vec<_>>()
    };
    assert!(
        types(30).starts_with(&[nal::SPS, nal::PPS]),
        "{:?}",
        types(30)
    );
    // The second keyframe alone starts a decoder.
    let tail: Vec<_> = frames[30..].iter().map(|f| f.data.to_vec()).collect();
    assert_eq!(decode_count(&tail), 30);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_missing_file_names_the_path() {
    let err = H264FileSource::open("/nonexistent/x.h264", unpaced(false))
        .err()
        .expect("fails")
        .to_string();
    assert!(err.contains("/nonexistent/x.h264"), "{err}");
}

fn fake_rpicam(mode: &str, log: &std::path::Path) -> RpicamSource {
    let fake = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fake-rpicam-vid");
    let settings = EncoderSettings {
        width: 320,
        height: 240,
        fps: 30,
        bitrate: 400_000,
        intra: 30,
    };
    let extra: Vec<String> = [
        "--fake-fixture",
        fixture().to_str().unwrap(),
        "--fake-mode",
        mode,
        "--fake-log",
        log.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    RpicamSource::start(Some(fake.to_str().unwrap()), settings, &extra)
        .unwrap()
        .with_backoff(Backoff::with(
            Duration::from_millis(10),
            Duration::from_millis(40),
        ))
}

#[test]
fn rpicam_child_is_restarted_when_it_exits_and_its_frames_decode() {
    let dir = temp("rpicam-exit");
    let log = dir.join("starts.log");
    let mut source = fake_rpicam("exit", &log);
    let frames = collect(&mut source, 150);
    assert_eq!(frames.len(), 150, "the source keeps going across restarts");
    assert_eq!(source.restarts(), 2);
    let keys: Vec<_> = frames
        .iter()
        .enumerate()
        .filter(|(_, f)| f.keyframe)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(keys, vec![0, 30, 60, 90, 120]);
    let starts = std::fs::read_to_string(&log).unwrap();
    assert_eq!(starts.lines().count(), 3);
    for line in starts.lines() {
        for want in [
            "--inline",
            "--flush",
            "--width 320",
            "--height 240",
            "--framerate 30",
            "--intra 30",
            "--output -",
        ] {
            assert!(line.contains(want), "{want} missing from {line}");
        }
    }
    let data: Vec<_> = frames[..60].iter().map(|f| f.data.to_vec()).collect();
    assert_eq!(decode_count(&data), 60);
    drop(source);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn rpicam_child_that_crashes_mid_frame_is_restarted() {
    let dir = temp("rpicam-crash");
    let log = dir.join("starts.log");
    let mut source = fake_rpicam("crash", &log);
    let frames = collect(&mut source, 80);
    assert_eq!(frames.len(), 80);
    assert!(source.restarts() >= 2, "restarts: {}", source.restarts());
    // Every restart begins with the fixture's first keyframe.
    let keys = frames.iter().filter(|f| f.keyframe).count();
    assert!(keys >= 3, "keyframes: {keys}");
    drop(source);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn rpicam_that_does_not_exist_fails_at_once_naming_it() {
    let settings = EncoderSettings {
        width: 320,
        height: 240,
        fps: 30,
        bitrate: 400_000,
        intra: 30,
    };
    let err = RpicamSource::start(Some("/nonexistent/rpicam-vid"), settings, &[])
        .err()
        .expect("fails")
        .to_string();
    assert!(
        err.contains("/nonexistent/rpicam-vid") && err.contains("--inline"),
        "{err}"
    );
}
