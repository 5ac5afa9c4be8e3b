//! Shared by the interop tests (`interop.rs`: RTP, `interop_h264.rs`: raw H.264): the
//! stamped pattern as raw frames, peers bounded in time, and the check that what arrived
//! is the pattern that was sent.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use media::pattern::TestPattern;
use media::{stamp, Picture};

use super::{read_y4m, spawn, Picam, Scratch};

pub const W: u32 = 640;

pub const H: u32 = 480;

/// Below this the picture is visibly damaged; x264 at these settings gives 35-40 dB.
pub const MIN_PSNR_DB: f64 = 30.0;

/// How long a peer may take to bind its port: generous, since a loaded 2-core machine
/// starts GStreamer slowly; a ready peer is seen within milliseconds.
pub const READY: Duration = Duration::from_secs(20);

/// These tests run real encoders on a 2-core machine: one at a time, or a starved peer
/// misses its deadlines and the test measures the machine, not the wire.
pub static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether `test` may run its peer `program` (`gst-launch-1.0` or `ffmpeg`), through
/// `testkit`: under CI a missing peer fails the test naming it, elsewhere it skips loudly.
pub fn needs(test: &str, program: &str) -> bool {
    let packages = match program {
        "gst-launch-1.0" => {
            "gstreamer1.0-tools, gstreamer1.0-plugins-{base,good,bad,ugly}, gstreamer1.0-libav"
        }
        _ => "ffmpeg",
    };
    testkit::require_tools(
        test,
        &[program],
        &format!("{packages}: scripts/install-deps.sh --test"),
    )
}

/// Writes `n` stamped pattern pictures as raw I420 to `path`.
pub fn raw_pattern(path: &std::path::Path, n: u32) {
    let pattern = TestPattern::new(W, H);
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for i in 0..n {
        let mut p = pattern.picture(i);
        stamp::paint(
            &mut p,
            stamp::Stamp {
                frame: i,
                time_us: media::wallclock_us(),
            },
        );
        f.write_all(&p.y).unwrap();
        f.write_all(&p.u).unwrap();
        f.write_all(&p.v).unwrap();
    }
}

/// Checks that `pictures` are stamped pattern pictures, in order, undamaged; returns how
/// many.
/// Checks the pictures (order, stamps, PSNR) and that at least `at_least` came: the
/// floors are about a third of what 5 s at 30 fps gives, since a loaded 2-core CI
/// machine starts peers slowly; what matters is that pictures flow and are right.
pub fn check_pictures(what: &str, pictures: &[Picture], at_least: usize) -> usize {
    assert!(
        pictures.len() >= at_least,
        "{what}: only {} pictures (want {at_least})",
        pictures.len()
    );
    let pattern = TestPattern::new(W, H);
    let band = stamp::band_height(W, H).unwrap();
    let mut last = None;
    let mut worst = f64::INFINITY;
    for (i, p) in pictures.iter().enumerate() {
        let s = stamp::read(p).unwrap_or_else(|| panic!("{what}: picture {i} has no stamp"));
        if let Some(prev) = last {
            assert!(s.frame > prev, "{what}: frame {} after {prev}", s.frame);
        }
        last = Some(s.frame);
        let psnr = p.luma_psnr(&pattern.picture(s.frame), band).unwrap();
        worst = worst.min(psnr);
        assert!(psnr > MIN_PSNR_DB, "{what}: picture {i} psnr {psnr:.1} dB");
    }
    eprintln!(
        "{what}: {} pictures, worst psnr {worst:.1} dB",
        pictures.len()
    );
    pictures.len()
}

/// A peer process killed (and reaped) when the test ends, however it ends.
pub struct Peer(pub Child);

impl Drop for Peer {
    fn drop(&mut self) {
        // The child is `timeout`: SIGKILL would end it alone and orphan the peer, which
        // would then run on forever (ffmpeg's UDP input never ends by itself). SIGTERM
        // makes `timeout` pass the signal on and, with `-k 2`, SIGKILL a peer that
        // ignores it two seconds later; then `timeout` exits.
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if !matches!(self.0.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn peer(program: &str, args: &[&str]) -> Peer {
    // `timeout -k 2` bounds peers that ignore SIGTERM (ffmpeg's UDP input does).
    let mut cmd = Command::new("timeout");
    cmd.args(["-k", "2", "30", program]).args(args);
    Peer(
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("peer starts"),
    )
}

/// Runs `picam recv --headless` with `args`, for `secs`, and returns the pictures shown.
pub fn picam_recv(
    scratch: &Scratch,
    args: &[&str],
    secs: &str,
    start_peer: impl FnOnce(),
) -> Vec<Picture> {
    let y4m = scratch.path("shown.y4m");
    let mut recv = spawn(
        scratch,
        "recv",
        &[
            &["recv", "--headless", "--stats", "json", "--duration", secs][..],
            &["--frames-out", y4m.to_str().unwrap()],
            args,
        ]
        .concat(),
    );
    // A sender started before the socket is bound loses its first keyframe.
    recv.wait_ready();
    start_peer();
    let (ok, _, err) = recv.wait(Duration::from_secs(40));
    assert!(ok, "picam recv failed: {err}");
    read_y4m(&y4m)
}

pub fn raw_source_caps() -> String {
    format!("rawvideoparse width={W} height={H} format=i420 framerate=30/1")
}

/// Decodes what a peer receives into raw I420 pictures of W x H.
pub fn read_i420(path: &std::path::Path) -> Vec<Picture> {
    let bytes = std::fs::read(path).unwrap_or_default();
    let size = (W * H * 3 / 2) as usize;
    bytes
        .chunks_exact(size)
        .map(|c| {
            let mut p = Picture::new(W, H);
            let (y, uv) = c.split_at((W * H) as usize);
            let (u, v) = uv.split_at((W * H / 4) as usize);
            p.y.copy_from_slice(y);
            p.u.copy_from_slice(u);
            p.v.copy_from_slice(v);
            p
        })
        .collect()
}

/// Runs `picam send` (test pattern, 640x480) with `args` for `secs` seconds.
pub fn picam_send(scratch: &Scratch, args: &[&str], secs: &str) -> Picam {
    spawn(
        scratch,
        "send",
        &[
            &[
                "send", "--source", "test", "--width", "640", "--height", "480", "--fps", "30",
            ][..],
            &["--bitrate", "2000000", "--duration", secs],
            args,
        ]
        .concat(),
    )
}

/// The ffmpeg arguments that encode the stamped pattern in `raw` as x264 would on a Pi,
/// in real time, followed by `output` (the muxer options and the URL).
pub fn ffmpeg_x264(raw: &std::path::Path, output: &[&str]) -> Vec<String> {
    let size = format!("{W}x{H}");
    let input = [
        "-loglevel",
        "error",
        "-re",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "yuv420p",
        "-s",
        &size,
        "-r",
        "30",
        "-i",
        raw.to_str().unwrap(),
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-tune",
        "zerolatency",
        "-g",
        "30",
    ];
    input.iter().chain(output).map(|s| s.to_string()).collect()
}

/// ffmpeg reading raw H.264 (as `ffplay` would, same demuxer and decoder) from `input`,
/// its pictures written raw to `out`.
pub fn ffmpeg_h264_reader(input: &str, out: &std::path::Path) -> Peer {
    peer(
        "ffmpeg",
        &[
            "-loglevel",
            "error",
            // As the README tells ffplay users: probe only a little (a short stream
            // would otherwise be spent probing) and do not buffer.
            "-probesize",
            "32768",
            "-fflags",
            "nobuffer",
            "-flags",
            "low_delay",
            "-f",
            "h264",
            "-i",
            input,
            // Each picture once, never repeated to keep a constant output rate.
            "-fps_mode",
            "passthrough",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "yuv420p",
            "-y",
            out.to_str().unwrap(),
        ],
    )
}

/// The end of a run into a peer: `send` (a `picam send`) must end well; then `peer` gets
/// `settle` to write its last pictures, is ended, and the raw pictures it wrote to `out`
/// are checked (at least `at_least`).
pub fn finish_into_peer(
    send: Picam,
    peer: Peer,
    settle: Duration,
    out: &std::path::Path,
    what: &str,
    at_least: usize,
) -> usize {
    let (ok, _, err) = send.wait(Duration::from_secs(30));
    assert!(ok, "{what}: picam send failed: {err}");
    std::thread::sleep(settle);
    drop(peer);
    check_pictures(what, &read_i420(out), at_least)
}
