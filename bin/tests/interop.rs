//! The RTP wire against peers nobody here wrote (GStreamer 1.22 and the ffmpeg 5.1 CLI
//! from Debian): pictures must arrive, and be the pictures that were sent (PSNR against
//! the stamped test pattern, outside the stamp band). Every process is bounded. Where
//! `gst-launch-1.0` or `ffmpeg` is missing a test fails under `CI=true` naming it and
//! skips loudly elsewhere (`testkit`); CI installs them (`scripts/install-deps.sh --test`). Raw H.264 is in `interop_h264.rs`.

mod common;

use std::time::Duration;

use common::peers::*;
use common::{free_port, wait_for_port, Bound, Scratch};

/// The original project's Pi pipeline (x264enc here for the Pi's encoder), with
/// `config-interval=1 pt=96`, into `picam recv --wire rtp`.
#[test]
fn gstreamer_rtp_sender_to_picam_recv() {
    if !needs(
        "interop::gstreamer_rtp_sender_to_picam_recv",
        "gst-launch-1.0",
    ) {
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
    if !needs("interop::ffmpeg_rtp_sender_to_picam_recv", "ffmpeg") {
        return;
    }
    let _serial = serial();
    let scratch = Scratch::new("interop-ffmpeg-rtp");
    let raw = scratch.path("src.i420");
    raw_pattern(&raw, 90);
    let port = free_port().to_string();
    let url = format!("rtp://127.0.0.1:{port}");
    let args = ffmpeg_x264(
        &raw,
        &["-x264-params", "repeat-headers=1", "-f", "rtp", &url],
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut ff = None;
    let pictures = picam_recv(
        &scratch,
        &["--wire", "rtp", "--bind", "127.0.0.1", "--port", &port],
        "6",
        || ff = Some(peer("ffmpeg", &args)),
    );
    check_pictures("ffmpeg -f rtp -> picam recv --wire rtp", &pictures, 40);
}

/// `picam send --wire rtp` into the original receiver pipeline (`udpsrc ! rtph264depay !
/// avdec_h264`), its pictures written raw and checked.
#[test]
fn picam_rtp_sender_to_gstreamer() {
    if !needs("interop::picam_rtp_sender_to_gstreamer", "gst-launch-1.0") {
        return;
    }
    let _serial = serial();
    let scratch = Scratch::new("interop-picam-gst");
    let port_number = free_port();
    let port = port_number.to_string();
    let out = scratch.path("gst.i420");
    let pipeline = format!(
        "udpsrc port={port} caps=application/x-rtp,media=video,clock-rate=90000,encoding-name=H264,payload=96 \
         ! rtph264depay ! avdec_h264 max-threads=1 ! video/x-raw,format=I420 ! filesink location={}",
        out.display()
    );
    let args: Vec<&str> = pipeline.split_whitespace().collect();
    let gst = peer("gst-launch-1.0", &[&["-q"][..], &args].concat());
    wait_for_port("GStreamer udpsrc", Bound::Udp, port_number, READY);
    let send = picam_send(
        &scratch,
        &["--wire", "rtp", "--remote", "127.0.0.1", "--port", &port],
        "4",
    );
    finish_into_peer(
        send,
        gst,
        Duration::from_millis(500),
        &out,
        "picam send --wire rtp -> GStreamer",
        45,
    );
}

/// `picam send --wire rtp --sdp` into `ffmpeg -i stream.sdp`.
#[test]
fn picam_sdp_to_ffmpeg() {
    if !needs("interop::picam_sdp_to_ffmpeg", "ffmpeg") {
        return;
    }
    let _serial = serial();
    let scratch = Scratch::new("interop-picam-sdp");
    let port_number = free_port();
    let port = port_number.to_string();
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
            // Each picture once: a constant-rate output would repeat one across a
            // gap in the RTP timestamps, and the check wants rising frame numbers.
            "-fps_mode",
            "passthrough",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "yuv420p",
            "-y",
            out.to_str().unwrap(),
        ],
    );
    wait_for_port("ffmpeg -i stream.sdp", Bound::Udp, port_number, READY);
    let send = picam_send(
        &scratch,
        &["--wire", "rtp", "--remote", "127.0.0.1", "--port", &port],
        "4",
    );
    finish_into_peer(
        send,
        ff,
        Duration::from_millis(500),
        &out,
        "picam send --wire rtp --sdp -> ffmpeg",
        45,
    );
}

/// RTP over TCP (RFC 4571) both ways with GStreamer's rtpstreampay/rtpstreamdepay: the
/// sender listens, the receiver connects.
#[test]
fn rtp_over_tcp_with_gstreamer_both_ways() {
    if !needs(
        "interop::rtp_over_tcp_with_gstreamer_both_ways",
        "gst-launch-1.0",
    ) {
        return;
    }
    let _serial = serial();
    // GStreamer serves, picam connects.
    let scratch = Scratch::new("interop-tcp");
    let raw = scratch.path("src.i420");
    raw_pattern(&raw, 90);
    let port_number = free_port();
    let port = port_number.to_string();
    let pipeline = format!(
        "filesrc location={} ! {} ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 bitrate=2000 \
         ! video/x-h264,profile=constrained-baseline ! rtph264pay config-interval=1 pt=96 ! rtpstreampay \
         ! tcpserversink host=127.0.0.1 port={port}",
        raw.display(),
        raw_source_caps()
    );
    let args: Vec<&str> = pipeline.split_whitespace().collect();
    let _gst = peer("gst-launch-1.0", &[&["-q"][..], &args].concat());
    wait_for_port(
        "GStreamer tcpserversink",
        Bound::TcpListening,
        port_number,
        READY,
    );
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
    let mut send = picam_send(
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
    send.wait_ready();
    let pipeline = format!(
        "tcpclientsrc host=127.0.0.1 port={port} ! application/x-rtp-stream,media=video,clock-rate=90000,encoding-name=H264,payload=96 \
         ! rtpstreamdepay ! rtph264depay ! avdec_h264 max-threads=1 ! video/x-raw,format=I420 ! filesink location={}",
        out.display()
    );
    let args: Vec<&str> = pipeline.split_whitespace().collect();
    let gst = peer("gst-launch-1.0", &[&["-q"][..], &args].concat());
    finish_into_peer(
        send,
        gst,
        Duration::from_millis(300),
        &out,
        "picam send --wire rtp tcp -> GStreamer rtpstreamdepay",
        30,
    );
}
