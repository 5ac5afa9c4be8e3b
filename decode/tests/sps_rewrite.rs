//! The "no reordering" SPS rewrite (`media::h264_sps`) against FFmpeg: a rewritten
//! stream decodes to the same pictures as the original (through this crate's decoder and
//! through the `ffmpeg` CLI), and FFmpeg's own SPS parser (`-bsf:v trace_headers`) reads
//! `bitstream_restriction_flag = 1` and `max_num_reorder_frames = 0` in it, with every
//! other field as it was.
//!
//! Streams come from libx264 through the `ffmpeg` CLI at test time, and from one
//! committed fixture for the SPS without a VUI (libx264 cannot write one; see
//! `fixtures/make.sh`).

use std::path::{Path, PathBuf};
use std::process::Command;

use decode::{Decoded, Decoder};
use media::annexb::{nal, nal_type, nal_units, AccessUnitSplitter};
use media::h264_sps::{rewrite_access_unit, sps_reorder_info};

const TOOLS: &[&str] = &["ffmpeg", "ffprobe"];
const HINT: &str = "apt-get install ffmpeg (with libx264)";

/// A directory of its own for one test, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("picam-sps-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `frames` frames of FFmpeg's test source at `size`, encoded by libx264 with `args`.
fn encode(dir: &Path, name: &str, size: &str, frames: u32, args: &[&str]) -> PathBuf {
    let path = dir.join(format!("{name}.h264"));
    run(Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
        ])
        .arg(format!("testsrc=size={size}:rate=30"))
        .args(["-frames:v", &frames.to_string(), "-c:v", "libx264"])
        .args(args)
        .args(["-f", "h264"])
        .arg(&path));
    path
}

fn access_units(stream: &[u8]) -> Vec<Vec<u8>> {
    let mut splitter = AccessUnitSplitter::new("test stream");
    splitter.push(stream);
    let mut units = Vec::new();
    while let Some(au) = splitter.pull().unwrap() {
        units.push(au.data);
    }
    units.extend(splitter.finish().map(|au| au.data));
    units
}

/// The stream with every SPS rewritten, and how many access units changed.
fn rewrite(units: &[Vec<u8>]) -> (Vec<u8>, usize) {
    let mut out = Vec::new();
    let mut changed = 0;
    for unit in units {
        match rewrite_access_unit(unit) {
            Some(new) => {
                changed += 1;
                out.extend_from_slice(&new);
            }
            None => out.extend_from_slice(unit),
        }
    }
    (out, changed)
}

/// The fields of each SPS as FFmpeg's `trace_headers` prints them: (name, value).
fn traced_sps(path: &Path) -> Vec<Vec<(String, String)>> {
    let out = run(Command::new("ffmpeg")
        .args(["-hide_banner", "-i"])
        .arg(path)
        .args(["-c", "copy", "-bsf:v", "trace_headers", "-f", "null", "-"]));
    let log = String::from_utf8_lossy(&out.stderr);
    let mut all = Vec::new();
    let mut current: Option<Vec<(String, String)>> = None;
    for line in log.lines() {
        // "[trace_headers @ 0x...] 160   bitstream_restriction_flag   1 = 1"
        let Some((_, text)) = line.split_once("] ") else {
            continue;
        };
        if text == "Sequence Parameter Set" {
            all.extend(current.take());
            current = Some(Vec::new());
            continue;
        }
        let words: Vec<&str> = text.split_whitespace().collect();
        let is_field =
            words.len() >= 4 && words[0].parse::<u64>().is_ok() && words[words.len() - 2] == "=";
        match (&mut current, is_field) {
            (Some(fields), true) => {
                fields.push((words[1].to_string(), words[words.len() - 1].to_string()))
            }
            (Some(_), false) => all.extend(current.take()),
            (None, _) => {}
        }
    }
    all.extend(current);
    all
}

fn field<'a>(sps: &'a [(String, String)], name: &str) -> Option<&'a str> {
    sps.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

/// Fields the rewrite may change or add; all others must read the same.
const RESTRICTION: &[&str] = &[
    "bitstream_restriction_flag",
    "motion_vectors_over_pic_boundaries_flag",
    "max_bytes_per_pic_denom",
    "max_bits_per_mb_denom",
    "log2_max_mv_length_horizontal",
    "log2_max_mv_length_vertical",
    "max_num_reorder_frames",
    "max_dec_frame_buffering",
    "rbsp_stop_one_bit",
    "rbsp_alignment_zero_bit",
];
/// The VUI's presence flags, added (all 0) with a VUI where there was none.
const VUI_FLAGS: &[&str] = &[
    "vui_parameters_present_flag",
    "aspect_ratio_info_present_flag",
    "overscan_info_present_flag",
    "video_signal_type_present_flag",
    "chroma_loc_info_present_flag",
    "timing_info_present_flag",
    "nal_hrd_parameters_present_flag",
    "vcl_hrd_parameters_present_flag",
    "pic_struct_present_flag",
];

/// Rewrites `original` into `dir`, checks FFmpeg reads the promise and every other field
/// unchanged, and returns the rewritten file.
fn rewrite_and_trace(dir: &Path, original: &Path, rewrites: usize) -> PathBuf {
    let units = access_units(&std::fs::read(original).unwrap());
    let (stream, changed) = rewrite(&units);
    assert_eq!(
        changed,
        rewrites,
        "{}: access units rewritten",
        original.display()
    );
    let path = dir.join("rewritten.h264");
    std::fs::write(&path, &stream).unwrap();

    let (before, after) = (traced_sps(original), traced_sps(&path));
    assert_eq!(before.len(), after.len(), "SPS count");
    assert!(!after.is_empty(), "no SPS traced");
    for (old, new) in before.iter().zip(&after) {
        assert_eq!(field(new, "vui_parameters_present_flag"), Some("1"));
        assert_eq!(field(new, "bitstream_restriction_flag"), Some("1"));
        assert_eq!(field(new, "max_num_reorder_frames"), Some("0"));
        let refs: u32 = field(old, "max_num_ref_frames").unwrap().parse().unwrap();
        assert_eq!(
            field(new, "max_dec_frame_buffering"),
            Some(refs.max(1).to_string().as_str())
        );
        let had_vui = field(old, "vui_parameters_present_flag") == Some("1");
        let kept = |sps: &[(String, String)]| -> Vec<(String, String)> {
            sps.iter()
                .filter(|(n, _)| {
                    !RESTRICTION.contains(&n.as_str())
                        && (had_vui || !VUI_FLAGS.contains(&n.as_str()))
                })
                .cloned()
                .collect()
        };
        assert!(field(old, "profile_idc").is_some() && kept(old).len() > 20);
        assert_eq!(kept(old), kept(new), "{}", original.display());
        if had_vui && field(old, "bitstream_restriction_flag") == Some("1") {
            for name in &RESTRICTION[1..6] {
                assert_eq!(field(old, name), field(new, name), "{name}");
            }
        }
    }
    // And the rewritten stream needs nothing more.
    assert_eq!(rewrite(&access_units(&stream)).1, 0);
    path
}

/// Decodes both files to raw I420 with the `ffmpeg` CLI, and both streams access unit by
/// access unit with this crate's low-delay decoder: the same pictures, `frames` of them.
fn decodes_the_same(original: &Path, rewritten: &Path, frames: usize) {
    let raw = |path: &Path| {
        run(Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-i"])
            .arg(path)
            // Each decoded picture once (not resampled to a constant frame rate).
            .args(["-fps_mode", "passthrough"])
            .args(["-f", "rawvideo", "-pix_fmt", "yuv420p", "-"]))
        .stdout
    };
    let (a, b) = (raw(original), raw(rewritten));
    assert!(!a.is_empty());
    assert!(a == b, "ffmpeg decodes the rewritten stream differently");

    let pictures = |path: &Path| {
        let mut decoder = Decoder::new(1).unwrap();
        let mut out = Vec::new();
        for (n, unit) in access_units(&std::fs::read(path).unwrap())
            .iter()
            .enumerate()
        {
            match decoder.decode(unit) {
                Ok(Decoded::Picture(p)) => out.push(p),
                other => panic!("{}: access unit {n}: {other:?}", path.display()),
            }
        }
        out
    };
    let (a, b) = (pictures(original), pictures(rewritten));
    assert_eq!(a.len(), frames);
    assert_eq!(b.len(), frames);
    for (n, (a, b)) in a.iter().zip(&b).enumerate() {
        assert_eq!((a.width, a.height), (b.width, b.height), "picture {n}");
        assert!(
            a.y == b.y && a.u == b.u && a.v == b.v,
            "picture {n} differs"
        );
    }
}

fn probe(path: &Path) -> String {
    String::from_utf8(
        run(Command::new("ffprobe")
            .args(["-v", "error", "-show_streams"])
            .arg(path))
        .stdout,
    )
    .unwrap()
}

#[test]
fn an_sps_without_vui_gets_one_and_the_stream_decodes_the_same() {
    if !testkit::require_tools("an_sps_without_vui_gets_one", TOOLS, HINT) {
        return;
    }
    let dir = TempDir::new("no-vui");
    let original =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/x264-no-vui-176x144.h264");
    let data = std::fs::read(&original).unwrap();
    for sps in nal_units(&data).filter(|n| nal_type(n) == Some(nal::SPS)) {
        let info = sps_reorder_info(sps).unwrap();
        assert_eq!((info.width, info.height), (176, 144));
        assert_eq!(info.max_num_reorder_frames, None);
    }
    // Two IDRs, each with its SPS.
    let rewritten = rewrite_and_trace(&dir.0, &original, 2);
    decodes_the_same(&original, &rewritten, 12);
    let streams = probe(&rewritten);
    for line in ["width=176", "height=144", "profile=High", "has_b_frames=0"] {
        assert!(streams.lines().any(|l| l == line), "{line} in {streams}");
    }
}

#[test]
fn a_vui_without_restriction_keeps_its_timing_and_the_stream_decodes_the_same() {
    if !testkit::require_tools("a_vui_without_restriction", TOOLS, HINT) {
        return;
    }
    let dir = TempDir::new("intra");
    // All intra: libx264 sets constraint_set3 and writes no bitstream restriction.
    let args = ["-preset", "fast", "-pix_fmt", "yuv420p", "-g", "1"];
    let original = encode(&dir.0, "intra", "320x240", 6, &args);
    let before = traced_sps(&original);
    assert_eq!(field(&before[0], "bitstream_restriction_flag"), Some("0"));
    assert_eq!(field(&before[0], "timing_info_present_flag"), Some("1"));
    // Every picture is an IDR with its SPS in front.
    let rewritten = rewrite_and_trace(&dir.0, &original, 6);
    decodes_the_same(&original, &rewritten, 6);
}

#[test]
fn hrd_and_interlaced_high_profile_fields_read_the_same_after_the_rewrite() {
    if !testkit::require_tools("hrd_and_interlaced_high_profile", TOOLS, HINT) {
        return;
    }
    // These have B-frames: the promise would be false for their slices, so only FFmpeg's
    // reading of the SPS is compared, not the pictures.
    let cases: [(&str, &str, &[&str]); 3] = [
        (
            "nal-hrd",
            "320x240",
            &[
                "-preset",
                "fast",
                "-pix_fmt",
                "yuv420p",
                "-b:v",
                "300k",
                "-maxrate",
                "300k",
                "-bufsize",
                "300k",
                "-x264-params",
                "nal-hrd=cbr",
            ],
        ),
        (
            "interlaced-422",
            "352x288",
            &["-preset", "fast", "-pix_fmt", "yuv422p", "-flags", "+ildct"],
        ),
        (
            "cropped-444",
            "320x180",
            &["-preset", "medium", "-pix_fmt", "yuv444p"],
        ),
    ];
    for (name, size, args) in cases {
        let dir = TempDir::new(name);
        let original = encode(&dir.0, name, size, 3, args);
        let before = traced_sps(&original);
        if name == "nal-hrd" {
            assert_eq!(
                field(&before[0], "nal_hrd_parameters_present_flag"),
                Some("1")
            );
        }
        assert_ne!(
            field(&before[0], "max_num_reorder_frames"),
            Some("0"),
            "{name}"
        );
        rewrite_and_trace(&dir.0, &original, 1);
    }
}

#[test]
fn a_zerolatency_stream_is_not_touched() {
    if !testkit::require_tools("a_zerolatency_stream_is_not_touched", TOOLS, HINT) {
        return;
    }
    let dir = TempDir::new("zerolatency");
    let args = [
        "-preset",
        "ultrafast",
        "-tune",
        "zerolatency",
        "-pix_fmt",
        "yuv420p",
        "-g",
        "4",
        "-x264-params",
        "repeat-headers=1",
    ];
    let original = encode(&dir.0, "zl", "320x240", 8, &args);
    let units = access_units(&std::fs::read(&original).unwrap());
    assert_eq!(units.len(), 8);
    assert_eq!(rewrite(&units).1, 0);
    let sps: Vec<_> = units
        .iter()
        .flat_map(|u| nal_units(u).filter(|n| nal_type(n) == Some(nal::SPS)))
        .map(|n| sps_reorder_info(n).unwrap())
        .collect();
    assert_eq!(sps.len(), 2);
    assert!(sps.iter().all(|i| i.reorder_free()));
    assert_eq!(sps[0].profile_level_id(), "42c00d");
}
