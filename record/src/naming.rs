//! File names and the segment ring: which name a new file gets, which old segments go.
//!
//! Recordings are evidence: a file that exists is never overwritten. A name in use gets
//! the next free `-1`, `-2`, ... (the file is created with `create_new`, so two picams
//! recording to the same name cannot both take it). The pure parts (names, the ring's
//! choice) are separate from the few calls that touch the directory.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};

use time::OffsetDateTime;

/// How many numbered alternatives are tried before giving up on a name.
const MAX_SUFFIX: u32 = 10_000;

fn stem_ext(path: &Path) -> (String, String) {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = path
        .extension()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    (stem, ext)
}

fn with_name(path: &Path, name: String) -> PathBuf {
    path.with_file_name(OsString::from(name))
}

/// The file for a picture size other than the first file's: `out.mkv` ->
/// `out.640x480.mkv`.
pub fn sized(path: &Path, size: (u32, u32)) -> PathBuf {
    let (stem, ext) = stem_ext(path);
    with_name(path, format!("{stem}.{}x{}.{ext}", size.0, size.1))
}

/// The `n`th alternative to a name in use: `out.mkv` -> `out-2.mkv` (`n` = 0 is the
/// name itself).
pub fn numbered(path: &Path, n: u32) -> PathBuf {
    if n == 0 {
        return path.to_path_buf();
    }
    let (stem, ext) = stem_ext(path);
    with_name(path, format!("{stem}-{n}.{ext}"))
}

/// `YYYYmmdd-HHMMSS` in UTC for a capture time in µs since the epoch. UTC: a camera's
/// segments must sort by name across daylight-saving changes and time zones.
pub fn utc_stamp(capture_us: u64) -> String {
    let secs = (capture_us / 1_000_000) as i64;
    let t = OffsetDateTime::from_unix_timestamp(secs).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let format = time::macros::format_description!("[year][month][day]-[hour][minute][second]");
    t.format(&format)
        .unwrap_or_else(|_| "00000000-000000".to_string())
}

/// A segment's name: `STEM-YYYYmmdd-HHMMSS.EXT` beside `path`, from its first frame's
/// capture time.
pub fn segment(path: &Path, start_us: u64) -> PathBuf {
    let (stem, ext) = stem_ext(path);
    with_name(path, format!("{stem}-{}.{ext}", utc_stamp(start_us)))
}

/// Whether `name` is a segment of `path`'s pattern (`STEM-YYYYmmdd-HHMMSS[-N].EXT`);
/// if so, its sort key: the stamp, then the number (earlier runs' segments count too).
pub fn segment_key(path: &Path, name: &str) -> Option<(String, u32)> {
    let (stem, ext) = stem_ext(path);
    let rest = name.strip_prefix(&stem)?.strip_prefix('-')?;
    let rest = rest.strip_suffix(&ext)?.strip_suffix('.')?;
    // `get`, not indexing: a name in the directory may have multi-byte characters
    // where the stamp would be.
    let (stamp, n) = match rest.len() {
        15 => (rest, 0),
        l if l > 16 && rest.as_bytes()[15] == b'-' => {
            (rest.get(..15)?, rest.get(16..)?.parse().ok()?)
        }
        _ => return None,
    };
    let b = stamp.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    (digits(0..8) && b[8] == b'-' && digits(9..15)).then(|| (stamp.to_string(), n))
}

/// A segment file found in the directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Its path.
    pub path: PathBuf,
    /// Its sort key (see [`segment_key`]).
    pub key: (String, u32),
    /// Its size in bytes.
    pub bytes: u64,
}

/// The segments to delete, oldest first, so that at most `keep` files and at most
/// `max_bytes` bytes remain; `current` (the file being written) is never chosen.
pub fn ring_victims(
    mut segments: Vec<Segment>,
    current: Option<&Path>,
    keep: Option<u32>,
    max_bytes: Option<u64>,
) -> Vec<PathBuf> {
    segments.sort_by(|a, b| a.key.cmp(&b.key));
    let mut count = segments.len() as u64;
    let mut total: u64 = segments.iter().map(|s| s.bytes).sum();
    let mut victims = Vec::new();
    for s in segments {
        let too_many = keep.is_some_and(|k| count > u64::from(k));
        let too_big = max_bytes.is_some_and(|m| total > m);
        if !too_many && !too_big {
            break;
        }
        if Some(s.path.as_path()) == current {
            continue;
        }
        count -= 1;
        total = total.saturating_sub(s.bytes);
        victims.push(s.path);
    }
    victims
}

/// The disk is full: the oldest segments to delete (never `keep_safe`, the file that
/// just failed) until at least `need` bytes are freed, at least one if there is one.
/// Returns them and the bytes the remaining segments hold.
pub fn make_room(
    mut segments: Vec<Segment>,
    keep_safe: Option<&Path>,
    need: u64,
) -> (Vec<PathBuf>, u64) {
    segments.sort_by(|a, b| a.key.cmp(&b.key));
    let mut total: u64 = segments.iter().map(|s| s.bytes).sum();
    let mut freed = 0;
    let mut victims = Vec::new();
    for s in segments {
        if !victims.is_empty() && freed >= need {
            break;
        }
        if Some(s.path.as_path()) == keep_safe {
            continue;
        }
        freed += s.bytes;
        total -= s.bytes;
        victims.push(s.path);
    }
    (victims, total)
}

/// The segments of `path`'s pattern in its directory, with their sizes.
pub fn list_segments(path: &Path) -> io::Result<Vec<Segment>> {
    let dir = parent(path);
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(key) = name.to_str().and_then(|n| segment_key(path, n)) else {
            continue;
        };
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_file() {
            out.push(Segment {
                path: entry.path(),
                key,
                bytes: meta.len(),
            });
        }
    }
    Ok(out)
}

/// The directory `path` is in (`.` for a bare file name).
pub fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// The first number worth trying for a new segment named `wanted`: one past the
/// highest number a segment of the same second has (0 if there is none). A ring may
/// have deleted `wanted` itself already; taking its name again would make the newest
/// segment sort as the oldest, and the ring would delete it next.
pub fn first_segment_number(path: &Path, wanted: &Path) -> u32 {
    let Some(want) = wanted
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| segment_key(path, n))
    else {
        return 0;
    };
    list_segments(path)
        .unwrap_or_default()
        .into_iter()
        .filter(|s| s.key.0 == want.0)
        .map(|s| s.key.1 + 1)
        .max()
        .unwrap_or(0)
}

/// Creates the first free name of `wanted`, `wanted-1`, `wanted-2`, ... (never
/// overwriting), starting at number `first`, and returns it.
pub fn create_free(wanted: &Path, first: u32) -> io::Result<PathBuf> {
    let mut last = None;
    for n in first..first + MAX_SUFFIX {
        let candidate = numbered(wanted, n);
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&candidate)
        {
            Ok(_) => return Ok(candidate),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no free name")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let p = Path::new("/rec/out.mkv");
        assert_eq!(sized(p, (640, 480)), Path::new("/rec/out.640x480.mkv"));
        assert_eq!(numbered(p, 0), p);
        assert_eq!(numbered(p, 2), Path::new("/rec/out-2.mkv"));
        // 2026-12-06 01:02:03 UTC.
        let us = 1_796_518_923_000_000;
        assert_eq!(utc_stamp(us), "20261206-010203");
        assert_eq!(segment(p, us), Path::new("/rec/out-20261206-010203.mkv"));
        assert_eq!(
            numbered(&segment(p, us), 1),
            Path::new("/rec/out-20261206-010203-1.mkv")
        );
        assert_eq!(sized(Path::new("cam.ts"), (1, 2)), Path::new("cam.1x2.ts"));
    }

    #[test]
    fn segment_keys() {
        let p = Path::new("out.mp4");
        assert_eq!(
            segment_key(p, "out-20261206-010203.mp4"),
            Some(("20261206-010203".into(), 0))
        );
        assert_eq!(
            segment_key(p, "out-20261206-010203-12.mp4"),
            Some(("20261206-010203".into(), 12))
        );
        for other in [
            "out.mp4",
            "out-1.mp4",
            "out-20261206-010203.mkv",
            "other-20261206-010203.mp4",
            "out-2026120x-010203.mp4",
            "out-20261206-010203-.mp4",
            "out-20261206-010203-x.mp4",
            "out-20261206-0102031.mp4",
            "out.640x480.mp4",
            "out-ééééééé-é.mp4",
            "out-éééééééé.mp4",
            "out-20261206-01020é-1.mp4",
        ] {
            assert_eq!(segment_key(p, other), None, "{other}");
        }
    }

    fn seg(name: &str, bytes: u64) -> Segment {
        let p = Path::new("out.ts");
        Segment {
            path: PathBuf::from(name),
            key: segment_key(p, name).unwrap(),
            bytes,
        }
    }

    #[test]
    fn the_ring_deletes_the_oldest_and_never_the_current() {
        let all = vec![
            seg("out-20260101-000003.ts", 10),
            seg("out-20260101-000001.ts", 10),
            seg("out-20260101-000002-1.ts", 10),
            seg("out-20260101-000002.ts", 10),
        ];
        assert_eq!(
            ring_victims(all.clone(), None, Some(2), None),
            vec![
                PathBuf::from("out-20260101-000001.ts"),
                PathBuf::from("out-20260101-000002.ts")
            ]
        );
        assert_eq!(
            ring_victims(all.clone(), None, None, Some(25)),
            ring_victims(all.clone(), None, Some(2), None)
        );
        assert!(ring_victims(all.clone(), None, Some(4), Some(40)).is_empty());
        // The file being written is skipped even when it is the oldest by name (a
        // sender clock behind an earlier run's).
        let current = Path::new("out-20260101-000001.ts");
        assert_eq!(
            ring_victims(all.clone(), Some(current), Some(1), None),
            vec![
                PathBuf::from("out-20260101-000002.ts"),
                PathBuf::from("out-20260101-000002-1.ts"),
                PathBuf::from("out-20260101-000003.ts"),
            ]
        );
        let (room, left) = make_room(all.clone(), Some(current), 15);
        assert_eq!(
            room,
            vec![
                PathBuf::from("out-20260101-000002.ts"),
                PathBuf::from("out-20260101-000002-1.ts"),
            ]
        );
        assert_eq!(left, 20);
        assert_eq!(make_room(all.clone(), None, 0).0.len(), 1);
        // A byte limit below the current file alone deletes every other one.
        assert_eq!(ring_victims(all, Some(current), None, Some(1)).len(), 3);
    }
}
