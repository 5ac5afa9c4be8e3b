//! `picam send` and `picam recv --headless` as real processes on loopback, over UDP and
//! TCP: what the viewer was shown must be the pattern that was sent, in order, on time.

mod common;

use std::time::Duration;

use common::{free_port, json_records, key, read_y4m, spawn, Scratch};
use media::pattern::TestPattern;
use media::stamp;

/// Below this the picture is visibly damaged; x264 at these settings gives 35-40 dB.
const MIN_PSNR_DB: f64 = 30.0;

fn stream(protocol: &str) {
    let scratch = Scratch::new(&format!("e2e-{protocol}"));
    let port = free_port().to_string();
    let y4m = scratch.path("shown.y4m");
    let key = key(&scratch);
    let common = [
        "--bind",
        "127.0.0.1",
        "--port",
        &port,
        "--protocol",
        protocol,
        "--key",
        &key,
    ];
    let mut recv = spawn(
        &scratch,
        "recv",
        &[
            &[
                "recv",
                "--headless",
                "--stats",
                "json",
                "--duration",
                "8",
                "--frames-out",
                y4m.to_str().unwrap(),
            ][..],
            &common,
        ]
        .concat(),
    );
    recv.wait_ready();
    let send = spawn(
        &scratch,
        "send",
        &[
            &[
                "send",
                "--remote",
                "127.0.0.1",
                "--width",
                "640",
                "--height",
                "480",
                "--fps",
                "30",
            ][..],
            &["--bitrate", "2000000", "--duration", "5"],
            &common,
        ]
        .concat(),
    );
    let (sent_ok, _, send_err) = send.wait(Duration::from_secs(30));
    let (recv_ok, recv_out, recv_err) = recv.wait(Duration::from_secs(30));
    assert!(sent_ok, "sender failed: {send_err}");
    assert!(recv_ok, "receiver failed: {recv_err}");

    let pictures = read_y4m(&y4m);
    assert!(
        pictures.len() >= 130,
        "only {} of ~150 frames shown; {recv_err}",
        pictures.len()
    );
    let pattern = TestPattern::new(640, 480);
    let band = stamp::band_height(640, 480).unwrap();
    let mut last: Option<u32> = None;
    let mut worst = f64::INFINITY;
    for (i, picture) in pictures.iter().enumerate() {
        let s = stamp::read(picture).unwrap_or_else(|| panic!("picture {i} has no readable stamp"));
        if let Some(prev) = last {
            assert!(
                s.frame > prev,
                "picture {i}: frame {} shown after {prev}",
                s.frame
            );
        }
        last = Some(s.frame);
        let psnr = picture.luma_psnr(&pattern.picture(s.frame), band).unwrap();
        worst = worst.min(psnr);
        assert!(
            psnr > MIN_PSNR_DB,
            "picture {i} (frame {}) psnr {psnr:.1} dB: corrupt picture shown",
            s.frame
        );
    }
    let records = json_records(&recv_out);
    let summary = records.last().expect("stats records printed");
    assert_eq!(summary["last"], true);
    for key in [
        "frames_received",
        "frames_decoded",
        "frames_shown",
        "keyframe_requests",
        "bitrate_bps",
    ] {
        assert!(summary[key].is_u64(), "missing {key} in {summary}");
    }
    assert_eq!(
        summary["frames_shown"].as_u64().unwrap(),
        pictures.len() as u64
    );
    assert!(summary["frames_dropped"].is_object());
    let p95 = summary["latency_ms"]["p95"]
        .as_f64()
        .expect("latency measured from stamps");
    // Generous: loopback latency is a few ms; this only catches queues that grow.
    assert!(p95 < 250.0, "p95 latency {p95} ms");
    eprintln!(
        "{protocol}: {} pictures, worst psnr {worst:.1} dB, latency {}",
        pictures.len(),
        summary["latency_ms"]
    );
}

#[test]
fn udp_stream_shows_every_frame_in_order_uncorrupted() {
    stream("udp");
}

#[test]
fn tcp_stream_shows_every_frame_in_order_uncorrupted() {
    stream("tcp");
}

/// Raw video from another program (the ffmpeg CLI) through `--source y4m:-`, stamped.
#[test]
fn y4m_from_stdin_is_encoded_stamped_and_shown() {
    use std::process::{Command, Stdio};
    if !testkit::require_tools(
        "end_to_end::y4m_from_stdin_is_encoded_stamped_and_shown",
        &["ffmpeg"],
        "ffmpeg: scripts/install-deps.sh --test",
    ) {
        return;
    }
    let scratch = Scratch::new("e2e-y4m");
    let port = free_port().to_string();
    let y4m = scratch.path("shown.y4m");
    let key = key(&scratch);
    let common = ["--bind", "127.0.0.1", "--port", &port, "--key", &key];
    let mut recv = spawn(
        &scratch,
        "recv",
        &[
            &[
                "recv",
                "--headless",
                "--stats",
                "json",
                "--duration",
                "6",
                "--frames-out",
                y4m.to_str().unwrap(),
            ][..],
            &common,
        ]
        .concat(),
    );
    recv.wait_ready();
    let mut ffmpeg = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-re",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=480x320:rate=25",
        ])
        .args(["-t", "3", "-pix_fmt", "yuv420p", "-f", "yuv4mpegpipe", "-"])
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .expect("ffmpeg CLI installed (scripts/install-deps.sh --test)");
    let send = Command::new(env!("CARGO_BIN_EXE_picam"))
        .args([
            "send",
            "--source",
            "y4m:-",
            "--stamp",
            "--remote",
            "127.0.0.1",
            "--bitrate",
            "1000000",
        ])
        .args(common)
        .env("PICAM_CONFIG_DIR", scratch.path("config"))
        .stdin(ffmpeg.stdout.take().unwrap())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let send_out = send.wait_with_output().unwrap();
    let _ = ffmpeg.wait();
    assert!(
        send_out.status.success(),
        "{}",
        String::from_utf8_lossy(&send_out.stderr)
    );
    let (ok, _, err) = recv.wait(Duration::from_secs(30));
    assert!(ok, "{err}");
    let pictures = read_y4m(&y4m);
    assert!(
        pictures.len() >= 60,
        "{} of 75 pictures shown",
        pictures.len()
    );
    assert_eq!(
        (pictures[0].width, pictures[0].height),
        (480, 320),
        "the stream's own size is kept"
    );
    let frames: Vec<u32> = pictures
        .iter()
        .map(|p| stamp::read(p).expect("stamp").frame)
        .collect();
    assert!(
        frames.windows(2).all(|w| w[1] > w[0]),
        "in order: {frames:?}"
    );
}
