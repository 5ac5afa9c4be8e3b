//! The interop wires against peers nobody here wrote (GStreamer 1.22 and the ffmpeg 5.1
//! CLI from Debian): pictures must arrive, and be the pictures that were sent (PSNR
//! against the stamped test pattern, outside the stamp band). Every process is bounded.
//! Skipped (with a message) where `gst-launch-1.0` or `ffmpeg` is missing; CI installs
//! them (`scripts/install-deps.sh --test`).

mod common;

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{free_port, read_y4m, spawn, Scratch};
use media::pattern::TestPattern;
use media::{stamp, Picture};

const W: u32 = 640;
const H: u32 = 480;
/// Below this the picture is visibly damaged; x264 at these settings gives 35-40 dB.
const MIN_PSNR_DB: f64 = 30.0;

/// These tests run real encoders on a 2-core machine: one at a time, or a starved peer
/// misses its deadlines and the test measures the machine, not the wire.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn have(program: &str) -> bool {
    let ok = Command::new(program)
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !ok {
        eprintln!("skipped: {program} not installed (scripts/install-deps.sh --test)");
    }
    ok
}

/// Writes `n` stamped pattern pictures as raw I420 to `path`.
fn raw_pattern(path: &std::path::Path, n: u32) {
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
fn check_pictures(what: &str, pictures: &[Picture], at_least: usize) -> usize {
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
struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn peer(program: &str, args: &[&str]) -> Peer {
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
fn picam_recv(
    scratch: &Scratch,
    args: &[&str],
    secs: &str,
    start_peer: impl FnOnce(),
) -> Vec<Picture> {
    let y4m = scratch.path("shown.y4m");
    let recv = spawn(
        scratch,
        "recv",
        &[
            &["recv", "--headless", "--stats", "json", "--duration", secs][..],
            &["--frames-out", y4m.to_str().unwrap()],
            args,
        ]
        .concat(),
    );
    std::thread::sleep(Duration::from_millis(400));
    start_peer();
    let (ok, _, err) = recv.wait(Duration::from_secs(40));
    assert!(ok, "picam recv failed: {err}");
    read_y4m(&y4m)
}

fn raw_source_caps() -> String {
    format!("rawvideoparse width={W} height={H} format=i420 framerate=30/1")
}

/// The original project's Pi pipeline (x264enc here for the Pi's encoder), with
/// `config-interval=1 pt=96`, into `picam recv --wire rtp`.
#[test]
fn gstreamer_rtp_sender_to_picam_recv() {
    if !have("gst-launch-1.0") {
        return;
    }
    let _serial = serial();
    let scratch = Scratch::new("interop-gst-rtp");
    let raw = scratch.path("src.i420");
    raw_pattern(&raw, 90);
    let port = free_port().to_string();
    let mut gst = None;
    let pictures = picam_recv(
        &scratch,
        &["--wire", "rtp", "--bind", "127.0.0.1", "--port", &port],
        "6",
        || {
            let pipeline = format!(
                "filesrc location={} ! {} ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 bitrate=2000 \
                 ! video/x-h264,profile=constrained-baseline ! rtph264pay config-interval=1 pt=96 \
                 ! udpsink host=127.0.0.1 port={port}",
                raw.display(),
                raw_source_caps()
            );
            let args: Vec<&str> = pipeline.split_whitespace().collect();
            gst = Some(peer("gst-launch-1.0", &[&["-q"][..], &args].concat()));
        },
    );
    check_pictures(
        "GStreamer rtph264pay -> picam recv --wire rtp",
        &pictures,
        40,
    );
}

/// `ffmpeg -f rtp` into `picam recv --wire rtp` (ffmpeg sends RTCP to port + 1).
#[test]
fn ffmpeg_rtp_sender_to_picam_recv() {
    if !have("ffmpeg") {
        return;
    }
    let _serial = serial();
    let scratch = Scratch::new("interop-ffmpeg-rtp");
    let raw = scratch.path("src.i420");
    raw_pattern(&raw, 90);
    let port = free_port().to_string();
    let mut ff = None;
    let size = format!("{W}x{H}");
    let url = format!("rtp://127.0.0.1:{port}");
    let pictures = picam_recv(
        &scratch,
        &["--wire", "rtp", "--bind", "127.0.0.1", "--port", &port],
        "6",
        || {
            ff = Some(peer(
                "ffmpeg",
                &[
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
                    "-x264-params",
                    "repeat-headers=1",
                    "-f",
                    "rtp",
                    &url,
                ],
            ));
        },
    );
    check_pictures("ffmpeg -f rtp -> picam recv --wire rtp", &pictures, 40);
}

/// `ffmpeg -f h264 udp://`, as `rpicam-vid -o udp://` sends, into `picam recv --wire h264`.
#[test]
fn raw_h264_over_udp_to_picam_recv() {
    if !have("ffmpeg") {
        return;
    }
    let _serial = serial();
    let scratch = Scratch::new("interop-ffmpeg-h264");
    let raw = scratch.path("src.i420");
    raw_pattern(&raw, 90);
    let port = free_port().to_string();
    let mut ff = None;
    let size = format!("{W}x{H}");
    let url = format!("udp://127.0.0.1:{port}?pkt_size=1316");
    let pictures = picam_recv(
        &scratch,
        &["--wire", "h264", "--bind", "127.0.0.1", "--port", &port],
        "6",
        || {
            ff = Some(peer(
                "ffmpeg",
                &[
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
                    "-f",
                    "h264",
                    &url,
                ],
            ));
        },
    );
    check_pictures(
        "ffmpeg -f h264 udp:// -> picam recv --wire h264",
        &pictures,
        40,
    );
}

/// Decodes what a peer receives into raw I420 pictures of W x H.
fn read_i420(path: &std::path::Path) -> Vec<Picture> {
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
fn picam_send(scratch: &Scratch, args: &[&str], secs: &str) -> common::Picam {
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

/// `picam send --wire rtp` into the original receiver pipeline (`udpsrc ! rtph264depay !
/// avdec_h264`), its pictures written raw and checked.
#[test]
fn picam_rtp_sender_to_gstreamer() {
    if !have("gst-launch-1.0") {
        return;
    }
    let _serial = serial();
    let scratch = Scratch::new("interop-picam-gst");
    let port = free_port().to_string();
    let out = scratch.path("gst.i420");
    let pipeline = format!(
        "udpsrc port={port} caps=application/x-rtp,media=video,clock-rate=90000,encoding-name=H264,payload=96 \
         ! rtph264depay ! avdec_h264 max-threads=1 ! video/x-raw,format=I420 ! filesink location={}",
        out.display()
    );
    let args: Vec<&str> = pipeline.split_whitespace().collect();
    let gst = peer("gst-launch-1.0", &[&["-q"][..], &args].concat());
    std::thread::sleep(Duration::from_millis(500));
    let send = picam_send(
        &scratch,
        &["--wire", "rtp", "--remote", "127.0.0.1", "--port", &port],
        "4",
    );
    let (ok, _, err) = send.wait(Duration::from_secs(30));
    assert!(ok, "picam send failed: {err}");
    std::thread::sleep(Duration::from_millis(500));
    drop(gst);
    check_pictures("picam send --wire rtp -> GStreamer", &read_i420(&out), 45);
}

/// `picam send --wire rtp --sdp` into `ffmpeg -i stream.sdp`.
#[test]
fn picam_sdp_to_ffmpeg() {
    if !have("ffmpeg") {
        return;
    }
    let _serial = serial();
    let scratch = Scratch::new("interop-picam-sdp");
    let port = free_port().to_string();
    let sdp = scratch.path("stream.sdp");
    let out = scratch.path("ff.i420");
    // The SDP is written before streaming starts; write it first with a short run.
    let send = picam_send(
        &scratch,
        &[
            "--wire",
            "rtp",
            "--remote",
            "127.0.0.1",
            "--port",
            &port,
            "--sdp",
            sdp.to_str().unwrap(),
        ],
        "0.2",
    );
    let _ = send.wait(Duration::from_secs(10));
    let ff = peer(
        "ffmpeg",
        &[
            "-loglevel",
            "error",
            "-protocol_whitelist",
            "file,udp,rtp",
            "-i",
            sdp.to_str().unwrap(),
            "-f",
            "rawvideo",
            "-pix_fmt",
            "yuv420p",
            "-y",
            out.to_str().unwrap(),
        ],
    );
    std::thread::sleep(Duration::from_millis(800));
    let send = picam_send(
        &scratch,
        &["--wire", "rtp", "--remote", "127.0.0.1", "--port", &port],
        "4",
    );
    let (ok, _, err) = send.wait(Duration::from_secs(30));
    assert!(ok, "picam send failed: {err}");
    std::thread::sleep(Duration::from_millis(500));
    drop(ff);
    check_pictures(
        "picam send --wire rtp --sdp -> ffmpeg",
        &read_i420(&out),
        45,
    );
}

/// RTP over TCP (RFC 4571) both ways with GStreamer's rtpstreampay/rtpstreamdepay: the
/// sender listens, the receiver connects.
#[test]
fn rtp_over_tcp_with_gstreamer_both_ways() {
    if !have("gst-launch-1.0") {
        return;
    }
    let _serial = serial();
    // GStreamer serves, picam connects.
    let scratch = Scratch::new("interop-tcp");
    let raw = scratch.path("src.i420");
    raw_pattern(&raw, 90);
    let port = free_port().to_string();
    let pipeline = format!(
        "filesrc location={} ! {} ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 bitrate=2000 \
         ! video/x-h264,profile=constrained-baseline ! rtph264pay config-interval=1 pt=96 ! rtpstreampay \
         ! tcpserversink host=127.0.0.1 port={port}",
        raw.display(),
        raw_source_caps()
    );
    let args: Vec<&str> = pipeline.split_whitespace().collect();
    let _gst = peer("gst-launch-1.0", &[&["-q"][..], &args].concat());
    std::thread::sleep(Duration::from_millis(300));
    let pictures = picam_recv(
        &scratch,
        &[
            "--wire",
            "rtp",
            "--protocol",
            "tcp",
            "--remote",
            "127.0.0.1",
            "--port",
            &port,
        ],
        "5",
        || {},
    );
    check_pictures(
        "GStreamer rtpstreampay tcpserversink -> picam recv --wire rtp tcp",
        &pictures,
        30,
    );

    // picam serves, GStreamer connects.
    let port = free_port().to_string();
    let out = scratch.path("gst-tcp.i420");
    let send = picam_send(
        &scratch,
        &[
            "--wire",
            "rtp",
            "--protocol",
            "tcp",
            "--bind",
            "127.0.0.1",
            "--port",
            &port,
        ],
        "5",
    );
    std::thread::sleep(Duration::from_millis(500));
    let pipeline = format!(
        "tcpclientsrc host=127.0.0.1 port={port} ! application/x-rtp-stream,media=video,clock-rate=90000,encoding-name=H264,payload=96 \
         ! rtpstreamdepay ! rtph264depay ! avdec_h264 max-threads=1 ! video/x-raw,format=I420 ! filesink location={}",
        out.display()
    );
    let args: Vec<&str> = pipeline.split_whitespace().collect();
    let gst = peer("gst-launch-1.0", &[&["-q"][..], &args].concat());
    let (ok, _, err) = send.wait(Duration::from_secs(30));
    assert!(ok, "picam send failed: {err}");
    std::thread::sleep(Duration::from_millis(300));
    drop(gst);
    check_pictures(
        "picam send --wire rtp tcp -> GStreamer rtpstreamdepay",
        &read_i420(&out),
        30,
    );
}

/// The ffmpeg arguments that encode the stamped pattern in `raw` as x264 would on a Pi,
/// in real time, to raw H.264 at `url`.
fn ffmpeg_h264_to(raw: &std::path::Path, url: &str) -> Vec<String> {
    let size = format!("{W}x{H}");
    [
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
        "-f",
        "h264",
        url,
    ]
    .map(String::from)
    .to_vec()
}

/// `rpicam-vid --listen -o tcp://0.0.0.0:PORT` serves raw H.264 to one TCP client; here
/// ffmpeg plays that server (`tcp://…?listen=1`) and `picam recv --wire h264 --protocol
/// tcp --remote` is the client.
#[test]
fn raw_h264_from_a_listening_tcp_server_to_picam_recv() {
    if !have("ffmpeg") {
        return;
    }
    let _serial = serial();
    let scratch = Scratch::new("interop-h264-tcp-client");
    let raw = scratch.path("src.i420");
    raw_pattern(&raw, 150);
    let port = free_port().to_string();
    let args = ffmpeg_h264_to(&raw, &format!("tcp://127.0.0.1:{port}?listen=1"));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let _ff = peer("ffmpeg", &args);
    let pictures = picam_recv(
        &scratch,
        &[
            "--wire",
            "h264",
            "--protocol",
            "tcp",
            "--remote",
            "127.0.0.1",
            "--port",
            &port,
        ],
        "6",
        || {},
    );
    check_pictures(
        "ffmpeg -f h264 tcp://?listen=1 (as rpicam-vid --listen) -> picam recv --wire h264 tcp",
        &pictures,
        40,
    );
}

/// ffmpeg reading raw H.264 (as `ffplay` would, same demuxer and decoder) from `input`,
/// its pictures written raw to `out`.
fn ffmpeg_h264_reader(input: &str, out: &std::path::Path) -> Peer {
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
            "-f",
            "rawvideo",
            "-pix_fmt",
            "yuv420p",
            "-y",
            out.to_str().unwrap(),
        ],
    )
}

/// `picam send --wire h264` is what `rpicam-vid -o udp://` sends: ffmpeg (ffplay's
/// demuxer and decoder) reads it from UDP.
#[test]
fn picam_raw_h264_over_udp_to_ffmpeg() {
    if !have("ffmpeg") {
        return;
    }
    let _serial = serial();
    let scratch = Scratch::new("interop-picam-h264-udp");
    let port = free_port().to_string();
    let out = scratch.path("ff.i420");
    let ff = ffmpeg_h264_reader(&format!("udp://127.0.0.1:{port}"), &out);
    std::thread::sleep(Duration::from_millis(800));
    let send = picam_send(
        &scratch,
        &[
            "--wire",
            "h264",
            "--remote",
            "127.0.0.1",
            "--port",
            &port,
            "--intra",
            "30",
        ],
        "4",
    );
    let (ok, _, err) = send.wait(Duration::from_secs(30));
    assert!(ok, "picam send failed: {err}");
    std::thread::sleep(Duration::from_millis(800));
    drop(ff);
    check_pictures(
        "picam send --wire h264 udp -> ffmpeg -f h264 -i udp://",
        &read_i420(&out),
        45,
    );
}

/// `picam send --wire h264 --protocol tcp` serves like `rpicam-vid --listen`: ffmpeg
/// connects as a client.
#[test]
fn picam_raw_h264_tcp_server_to_ffmpeg() {
    if !have("ffmpeg") {
        return;
    }
    let _serial = serial();
    let scratch = Scratch::new("interop-picam-h264-tcp");
    let port = free_port().to_string();
    let out = scratch.path("ff-tcp.i420");
    let send = picam_send(
        &scratch,
        &[
            "--wire",
            "h264",
            "--protocol",
            "tcp",
            "--bind",
            "127.0.0.1",
            "--port",
            &port,
        ],
        "5",
    );
    std::thread::sleep(Duration::from_millis(500));
    let ff = ffmpeg_h264_reader(&format!("tcp://127.0.0.1:{port}"), &out);
    let (ok, _, err) = send.wait(Duration::from_secs(30));
    assert!(ok, "picam send failed: {err}");
    std::thread::sleep(Duration::from_millis(800));
    drop(ff);
    check_pictures(
        "picam send --wire h264 tcp (as rpicam-vid --listen) -> ffmpeg -i tcp://",
        &read_i420(&out),
        30,
    );
}
