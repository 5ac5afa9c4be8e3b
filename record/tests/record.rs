//! The record stage on real frames: the test pattern encoded by libx264, recorded to
//! each container, checked with ffprobe and ffmpeg (codec, size, every frame decodes),
//! size changes, clock restarts, segments and the ring, bad directories, a flood, a full
//! disk. A writer killed with SIGKILL: bin/tests/record.rs, on real picam processes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use capture::{EncoderSettings, Source, TestPatternSource};
use media::EncodedFrame;
use record::{RecordConfig, RecordStats, RecordTap, Recorder};

const HINT: &str = "apt-get install ffmpeg";
/// 2026-12-06 01:02:03 UTC: segment names are predictable.
const T0: u64 = 1_796_518_923_000_000;
const FRAME_US: u64 = 33_333;

fn tools(test: &str) -> bool {
    testkit::require_tools(test, &["ffmpeg", "ffprobe"], HINT)
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("picam-record-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `n` frames of the test pattern at `w`x`h`, a keyframe every `intra` frames (the
/// first is one), stamped from `start_us` at 30 fps.
fn frames(w: u32, h: u32, n: usize, intra: u32, start_us: u64) -> Vec<EncodedFrame> {
    let mut source = TestPatternSource::new(EncoderSettings {
        width: w,
        height: h,
        fps: 30,
        bitrate: 400_000,
        intra,
    })
    .unwrap()
    .unpaced();
    (0..n)
        .map(|i| {
            let mut f = source.next_frame().unwrap().unwrap();
            f.capture_us = start_us + i as u64 * FRAME_US;
            f
        })
        .collect()
}

fn config(path: &Path) -> RecordConfig {
    RecordConfig {
        path: path.to_path_buf(),
        segment: None,
        keep: None,
        max_bytes: None,
    }
}

fn start(config: RecordConfig) -> (Recorder, RecordTap, Arc<AtomicU32>) {
    let requests = Arc::new(AtomicU32::new(0));
    let r = requests.clone();
    let (rec, tap) = Recorder::start(
        config,
        Box::new(move || {
            r.fetch_add(1, Ordering::Relaxed);
        }),
    )
    .unwrap();
    (rec, tap, requests)
}

/// Offers each frame and waits (bounded) until the writer has taken it, so that the
/// queue never fills: these tests are about the files, the flood test about the queue.
fn offer_all(rec: &Recorder, tap: &mut RecordTap, frames: &[EncodedFrame]) {
    for f in frames {
        let before = handled(&rec.stats());
        tap.offer(f);
        let deadline = Instant::now() + Duration::from_secs(10);
        while handled(&rec.stats()) == before {
            assert!(
                Instant::now() < deadline,
                "the writer took no frame in 10 s"
            );
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

fn handled(s: &RecordStats) -> u64 {
    s.frames + s.dropped
}

fn run(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd.output().expect("the tool runs");
    (
        out.status.success(),
        // MPEG-TS lists its stream twice (in the program and alone): the first will do.
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim()
            .to_string(),
        String::from_utf8_lossy(&out.stderr).trim().to_string(),
    )
}

/// `codec,width,height` of the first video stream.
fn probe(file: &Path) -> String {
    let (ok, out, err) = run(Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=codec_name,width,height",
            "-of",
            "csv=p=0",
        ])
        .arg(file));
    assert!(ok, "ffprobe {}: {err}", file.display());
    out
}

/// Pictures decoded from the file (ffprobe decodes every frame to count them).
fn decoded_frames(file: &Path) -> u64 {
    let (ok, out, err) = run(Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=nb_read_frames",
            "-of",
            "csv=p=0",
        ])
        .arg(file));
    assert!(ok, "ffprobe -count_frames {}: {err}", file.display());
    out.parse()
        .unwrap_or_else(|_| panic!("frame count {out:?} for {}", file.display()))
}

/// The file decodes from start to end without a single error.
fn decodes_cleanly(file: &Path) {
    let (ok, _, err) = run(Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-xerror", "-i"])
        .arg(file)
        .args(["-f", "null", "-"]));
    assert!(
        ok && err.is_empty(),
        "ffmpeg -f null {}: {err}",
        file.display()
    );
}

/// Packet timestamps in seconds.
fn pts(file: &Path) -> Vec<f64> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=pts_time",
            "-of",
            "csv=p=0",
        ])
        .arg(file)
        .output()
        .unwrap();
    assert!(out.status.success(), "ffprobe packets {}", file.display());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(',').next()?.trim().parse().ok())
        .collect()
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn each_container_holds_every_frame_with_capture_timestamps() {
    if !tools("each_container_holds_every_frame_with_capture_timestamps") {
        return;
    }
    let dir = temp("containers");
    let mut all = frames(320, 240, 90, 30, T0);
    // Frames 40..45 never arrived: a gap in time, not a duplicated picture. Frame 45
    // references frame 44, so the gap is made of timestamps only.
    for f in &mut all[45..] {
        f.capture_us += 5 * FRAME_US;
    }
    for ext in ["mkv", "ts", "mp4"] {
        let path = dir.join(format!("out.{ext}"));
        let (rec, mut tap, requests) = start(config(&path));
        assert!(
            requests.load(Ordering::Relaxed) >= 1,
            "asks for a keyframe at the start"
        );
        offer_all(&rec, &mut tap, &all);
        let s = rec.finish();
        assert_eq!((s.frames, s.dropped, s.files), (90, 0, 1), "{ext}: {s:?}");
        assert!(s.bytes > 10_000 && s.error.is_none(), "{ext}: {s:?}");
        assert_eq!(s.file, None, "{ext}: closed");
        assert_eq!(probe(&path), "h264,320,240", "{ext}");
        assert_eq!(decoded_frames(&path), 90, "{ext}");
        decodes_cleanly(&path);
        let t = pts(&path);
        assert_eq!(t.len(), 90, "{ext}");
        let rel: Vec<f64> = t.iter().map(|x| x - t[0]).collect();
        assert!(
            (rel[44] - 44.0 * 0.033333).abs() < 0.002,
            "{ext}: {}",
            rel[44]
        );
        assert!(
            (rel[45] - 50.0 * 0.033333).abs() < 0.002,
            "{ext}: {}",
            rel[45]
        );
        assert!(rel.windows(2).all(|w| w[1] > w[0]), "{ext}: in order");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_start_waits_for_a_keyframe() {
    if !tools("the_start_waits_for_a_keyframe") {
        return;
    }
    let dir = temp("keyframe");
    let path = dir.join("out.mkv");
    // 40 frames, a keyframe at 0 and 30; the recording is offered from frame 5.
    let all = frames(320, 240, 40, 30, T0);
    let (rec, mut tap, _) = start(config(&path));
    offer_all(&rec, &mut tap, &all[5..]);
    let s = rec.finish();
    assert_eq!((s.frames, s.dropped), (10, 25), "{s:?}");
    assert_eq!(decoded_frames(&path), 10);
    decodes_cleanly(&path);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_size_change_makes_a_second_file_named_after_the_size() {
    if !tools("a_size_change_makes_a_second_file_named_after_the_size") {
        return;
    }
    let dir = temp("size");
    let path = dir.join("out.mkv");
    let (rec, mut tap, _) = start(config(&path));
    offer_all(&rec, &mut tap, &frames(320, 240, 30, 30, T0));
    offer_all(
        &rec,
        &mut tap,
        &frames(160, 120, 20, 30, T0 + 30 * FRAME_US),
    );
    let s = rec.finish();
    assert_eq!((s.frames, s.files, s.dropped), (50, 2, 0), "{s:?}");
    assert_eq!(files_in(&dir), ["out.160x120.mkv", "out.mkv"]);
    assert_eq!(probe(&path), "h264,320,240");
    assert_eq!(decoded_frames(&path), 30);
    let second = dir.join("out.160x120.mkv");
    assert_eq!(probe(&second), "h264,160,120");
    assert_eq!(decoded_frames(&second), 20);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_existing_file_is_never_overwritten() {
    if !tools("an_existing_file_is_never_overwritten") {
        return;
    }
    let dir = temp("exists");
    let path = dir.join("out.ts");
    std::fs::write(&path, b"an earlier recording").unwrap();
    std::fs::write(dir.join("out-1.ts"), b"another").unwrap();
    let (rec, mut tap, _) = start(config(&path));
    offer_all(&rec, &mut tap, &frames(320, 240, 30, 30, T0));
    // The sender restarts with a clock an hour behind: a new file, a new name.
    offer_all(
        &rec,
        &mut tap,
        &frames(320, 240, 30, 30, T0 - 3_600_000_000),
    );
    let s = rec.finish();
    assert_eq!((s.frames, s.files), (60, 2), "{s:?}");
    assert_eq!(std::fs::read(&path).unwrap(), b"an earlier recording");
    assert_eq!(std::fs::read(dir.join("out-1.ts")).unwrap(), b"another");
    assert_eq!(decoded_frames(&dir.join("out-2.ts")), 30);
    assert_eq!(decoded_frames(&dir.join("out-3.ts")), 30);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn segments_rotate_on_keyframes_and_the_ring_keeps_the_newest() {
    if !tools("segments_rotate_on_keyframes_and_the_ring_keeps_the_newest") {
        return;
    }
    let dir = temp("segments");
    let path = dir.join("cam.mp4");
    // An earlier run's segments count too; other files are never touched.
    std::fs::write(dir.join("cam-20200101-000000.mp4"), b"old").unwrap();
    std::fs::write(dir.join("cam.mp4"), b"not a segment").unwrap();
    std::fs::write(dir.join("cam-notes.mp4"), b"not a segment").unwrap();
    let mut c = config(&path);
    c.segment = Some(Duration::from_secs(1));
    c.keep = Some(3);
    let (rec, mut tap, requests) = start(c);
    // 5 s at 30 fps with a keyframe every 45 frames (1.5 s): cuts wait for keyframes.
    let all = frames(320, 240, 150, 45, T0);
    offer_all(&rec, &mut tap, &all[..1]);
    // The start's keyframe request was just made; requests are at most one a second
    // (in real time): wait that out once to see the boundary's.
    std::thread::sleep(Duration::from_millis(1100));
    let before = requests.load(Ordering::Relaxed);
    offer_all(&rec, &mut tap, &all[1..]);
    let s = rec.finish();
    assert_eq!((s.frames, s.dropped, s.files), (150, 0, 4), "{s:?}");
    assert!(
        requests.load(Ordering::Relaxed) > before,
        "a boundary asks for a keyframe"
    );
    // Keyframes at 0, 1.5, 3, 4.5 s: four segments, the ring keeps three of them.
    assert_eq!(
        files_in(&dir),
        [
            "cam-20261206-010204.mp4",
            "cam-20261206-010205.mp4",
            "cam-20261206-010207.mp4",
            "cam-notes.mp4",
            "cam.mp4",
        ]
    );
    for name in ["cam-20261206-010204.mp4", "cam-20261206-010205.mp4"] {
        let f = dir.join(name);
        assert_eq!(probe(&f), "h264,320,240");
        assert_eq!(decoded_frames(&f), 45, "{name}");
        decodes_cleanly(&f);
    }
    assert_eq!(decoded_frames(&dir.join("cam-20261206-010207.mp4")), 15);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_byte_ring_and_a_name_clash_in_the_same_second() {
    if !tools("the_byte_ring_and_a_name_clash_in_the_same_second") {
        return;
    }
    let dir = temp("bytes");
    let path = dir.join("cam.mkv");
    let mut c = config(&path);
    c.segment = Some(Duration::from_millis(200));
    c.max_bytes = Some(1);
    let (rec, mut tap, _) = start(c);
    // Keyframes every 10 frames (0.33 s): four segments start within 01:02:03.
    let all = frames(320, 240, 40, 10, T0);
    offer_all(&rec, &mut tap, &all);
    let s = rec.finish();
    assert_eq!((s.frames, s.files), (40, 4), "{s:?}");
    // Each new segment deletes all the others (1 byte allowed, the current one is
    // never deleted); the numbers keep counting up although `-0` was freed: a newer
    // segment never takes a name that sorts older.
    assert_eq!(files_in(&dir), ["cam-20261206-010203-3.mkv"]);
    assert_eq!(decoded_frames(&dir.join("cam-20261206-010203-3.mkv")), 10);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn segment_names_in_the_same_second_are_numbered() {
    if !tools("segment_names_in_the_same_second_are_numbered") {
        return;
    }
    let dir = temp("clash");
    let path = dir.join("cam.ts");
    let mut c = config(&path);
    c.segment = Some(Duration::from_millis(200));
    let (rec, mut tap, _) = start(c);
    offer_all(&rec, &mut tap, &frames(320, 240, 30, 10, T0));
    let s = rec.finish();
    assert_eq!((s.frames, s.files), (30, 3), "{s:?}");
    assert_eq!(
        files_in(&dir),
        [
            "cam-20261206-010203-1.ts",
            "cam-20261206-010203-2.ts",
            "cam-20261206-010203.ts",
        ]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_missing_or_unwritable_directory_fails_at_start_naming_it() {
    let missing = std::env::temp_dir().join("picam-record-no-such-dir/out.mkv");
    let e = Recorder::start(config(&missing), Box::new(|| {}))
        .err()
        .expect("a missing directory is refused")
        .to_string();
    assert!(e.contains("picam-record-no-such-dir"), "{e}");
    // Root writes through permission bits: use a file system that refuses everyone.
    let unwritable = if testkit::is_root() {
        PathBuf::from("/sys/picam-record-test.mkv")
    } else {
        let dir = temp("readonly");
        let mut p = std::fs::metadata(&dir).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut p, 0o555);
        std::fs::set_permissions(&dir, p).unwrap();
        dir.join("out.mkv")
    };
    let e = Recorder::start(config(&unwritable), Box::new(|| {}))
        .err()
        .expect("an unwritable directory is refused")
        .to_string();
    let dir = unwritable.parent().unwrap().display().to_string();
    assert!(e.contains(&dir), "{e}");
    let e = Recorder::start(config(Path::new("out.avi")), Box::new(|| {}))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains(".mkv, .ts or .mp4"), "{e}");
}

#[test]
fn a_flood_never_blocks_the_producer_and_the_queue_stays_bounded() {
    if !tools("a_flood_never_blocks_the_producer_and_the_queue_stays_bounded") {
        return;
    }
    let dir = temp("flood");
    let path = dir.join("out.mkv");
    let base = frames(320, 240, 60, 30, T0);
    let (rec, mut tap, requests) = start(config(&path));
    // 3000 frames offered as fast as possible (the frames repeat; their timestamps
    // advance): far faster than any disk, the queue must fill.
    let t = Instant::now();
    let mut slowest = Duration::ZERO;
    for i in 0..3000u64 {
        let mut f = base[(i % 60) as usize].clone();
        f.capture_us = T0 + i * FRAME_US;
        let o = Instant::now();
        tap.offer(&f);
        slowest = slowest.max(o.elapsed());
    }
    let offering = t.elapsed();
    let s = rec.finish();
    assert_eq!(s.frames + s.dropped, 3000, "{s:?}");
    assert!(s.frames > 0, "{s:?}");
    assert!(
        slowest < Duration::from_millis(50),
        "an offer took {slowest:?}"
    );
    assert!(
        offering < Duration::from_secs(5),
        "offering took {offering:?}"
    );
    if s.dropped > 0 {
        assert!(requests.load(Ordering::Relaxed) >= 1);
    }
    // Whatever was dropped, the file decodes: drops end at keyframes.
    assert_eq!(decoded_frames(&path), s.frames);
    decodes_cleanly(&path);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn finish_returns_while_a_producer_still_offers() {
    if !tools("finish_returns_while_a_producer_still_offers") {
        return;
    }
    let dir = temp("finish");
    let path = dir.join("out.mp4");
    let base = frames(320, 240, 30, 30, T0);
    let (rec, mut tap, _) = start(config(&path));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    // The tap lives on in another thread, offering 1000 frames a second.
    let producer = std::thread::spawn(move || {
        for i in 0..30_000u64 {
            if stop2.load(Ordering::Relaxed) {
                break;
            }
            let mut f = base[(i % 30) as usize].clone();
            f.capture_us = T0 + i * FRAME_US;
            tap.offer(&f);
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    let s = rec.finish();
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "finish took {:?}",
        t.elapsed()
    );
    stop.store(true, Ordering::Relaxed);
    producer.join().unwrap();
    assert!(s.frames > 0, "{s:?}");
    // Closed properly while the tap was alive: the trailer is there, all frames play.
    assert_eq!(decoded_frames(&path), s.frames);
    decodes_cleanly(&path);
    let _ = std::fs::remove_dir_all(&dir);
}

// A recording process killed with SIGKILL is tested on real `picam send` and `picam recv`
// processes, for each container on each side: bin/tests/record.rs (`killed_*`).

#[test]
fn a_failed_open_is_an_error_until_a_keyframe_a_second_later_opens_a_new_file() {
    if !tools("a_failed_open_is_an_error_until_a_keyframe_a_second_later_opens_a_new_file") {
        return;
    }
    let dir = temp("vanished");
    let sub = dir.join("sub");
    std::fs::create_dir(&sub).unwrap();
    let mut c = config(&sub.join("cam.ts"));
    c.segment = Some(Duration::from_secs(1));
    let (rec, mut tap, _) = start(c);
    let all = frames(320, 240, 90, 15, T0);
    offer_all(&rec, &mut tap, &all[..20]);
    // The directory vanishes (an unmounted card): the open file still takes writes,
    // the next segment cannot be created.
    std::fs::remove_dir_all(&sub).unwrap();
    offer_all(&rec, &mut tap, &all[20..60]);
    let s = rec.stats();
    let error = s.error.clone().expect("the failure is reported");
    assert!(
        error.contains("sub/cam-20261206-010204.ts") && error.contains("No such file"),
        "{error}"
    );
    assert_eq!(s.file, None, "{s:?}");
    // Frame 45 (the first keyframe past the boundary) could not open a file; 46-59
    // wait for a keyframe at least a second later.
    assert_eq!((s.frames, s.dropped), (45, 15), "{s:?}");
    std::fs::create_dir(&sub).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    offer_all(&rec, &mut tap, &all[60..]);
    let s = rec.finish();
    assert_eq!((s.frames, s.dropped, s.files, s.error), (75, 15, 2, None));
    let resumed = sub.join("cam-20261206-010204.ts");
    assert_eq!(decoded_frames(&resumed), 30);
    decodes_cleanly(&resumed);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A small tmpfs, unmounted when dropped (also when the test fails).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        let (ok, _, err) = run(Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir));
        assert!(ok, "mount tmpfs: {err}");
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_with_a_ring_deletes_the_oldest_segment_and_resumes() {
    let name = "a_full_disk_with_a_ring_deletes_the_oldest_segment_and_resumes";
    if !tools(name) || !testkit::require_root(name, "mounts a small tmpfs to fill") {
        return;
    }
    let dir = temp("full");
    let disk = dir.join("disk");
    std::fs::create_dir(&disk).unwrap();
    let _mount = Tmpfs::mount(&disk, "512k");
    let mut c = config(&disk.join("cam.mkv"));
    c.segment = Some(Duration::from_secs(1));
    c.keep = Some(100);
    let (rec, mut tap, _) = start(c);
    // 20 s at 30 fps, about 50 kB a second: twice what the disk holds.
    let all = frames(320, 240, 600, 30, T0);
    let mut errors = Vec::new();
    for f in all.chunks(1) {
        offer_all(&rec, &mut tap, f);
        if let Some(e) = rec.stats().error {
            if errors.last() != Some(&e) {
                errors.push(e);
            }
        }
        assert!(errors.len() < 20, "bounded: {errors:?}");
    }
    let s = rec.finish();
    eprintln!("{s:?}\n{errors:#?}\n{:?}", files_in(&disk));
    assert!(!errors.is_empty(), "the disk filled: {s:?}");
    assert!(
        errors[0].contains("cam-2026") && errors[0].contains("No space left"),
        "{errors:?}"
    );
    assert_eq!(s.frames + s.dropped, 600, "{s:?}");
    assert!(s.bytes > 400_000, "went on after deleting: {s:?}");
    let left = files_in(&disk);
    assert!(
        !left.contains(&"cam-20261206-010203.mkv".to_string()),
        "the oldest segment was deleted: {left:?}"
    );
    // Once: from then on the ring keeps below what fitted, minus two segments.
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(left.len() >= 3, "{left:?}");
    // The newest segment was closed properly: it decodes from start to end.
    let newest = disk.join(left.last().unwrap());
    assert!(decoded_frames(&newest) > 0);
    decodes_cleanly(&newest);
    drop(_mount);
    let _ = std::fs::remove_dir_all(&dir);
}
