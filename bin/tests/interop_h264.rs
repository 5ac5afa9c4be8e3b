//! The raw H.264 wire (`--wire h264`, what `rpicam-vid -o udp://` and `--listen -o
//! tcp://` send) against the ffmpeg 5.1 CLI from Debian, both ways and over UDP and TCP:
//! pictures must arrive and be the stamped pattern that was sent. Without `ffmpeg` a
//! test fails under `CI=true` naming it and skips loudly elsewhere (`testkit`).

mod common;

use std::time::Duration;

use common::peers::*;
use common::{free_port, wait_for_port, Bound, Scratch};

/// `ffmpeg -f h264 udp://`, as `rpicam-vid -o udp://` sends, into `picam recv --wire h264`.
#[test]
fn raw_h264_over_udp_to_picam_recv() {
    if !needs("interop_h264::raw_h264_over_udp_to_picam_recv", "ffmpeg") {
        return;
    }
    let _serial = serial();
    let scratch = Scratch::new("interop-ffmpeg-h264");
    let raw = scratch.path("src.i420");
    raw_pattern(&raw, 90);
    let port = free_port().to_string();
    let url = format!("udp://127.0.0.1:{port}?pkt_size=1316");
    let args = ffmpeg_x264(&raw, &["-f", "h264", &url]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut ff = None;
    let pictures = picam_recv(
        &scratch,
        &["--wire", "h264", "--bind", "127.0.0.1", "--port", &port],
        "6",
        || ff = Some(peer("ffmpeg", &args)),
    );
    check_pictures(
        "ffmpeg -f h264 udp:// -> picam recv --wire h264",
        &pictures,
        40,
    );
}

/// `rpicam-vid --listen -o tcp://0.0.0.0:PORT` serves raw H.264 to one TCP client; here
/// ffmpeg plays that server (`tcp://…?listen=1`) and `picam recv --wire h264 --protocol
/// tcp --remote` is the client.
#[test]
fn raw_h264_from_a_listening_tcp_server_to_picam_recv() {
    if !needs(
        "interop_h264::raw_h264_from_a_listening_tcp_server_to_picam_recv",
        "ffmpeg",
    ) {
        return;
    }
    let _serial = serial();
    let scratch = Scratch::new("interop-h264-tcp-client");
    let raw = scratch.path("src.i420");
    raw_pattern(&raw, 150);
    let port_number = free_port();
    let port = port_number.to_string();
    let url = format!("tcp://127.0.0.1:{port}?listen=1");
    let args = ffmpeg_x264(&raw, &["-f", "h264", &url]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let _ff = peer("ffmpeg", &args);
    // picam connects with a backoff: a first attempt before ffmpeg listens would cost it.
    wait_for_port(
        "ffmpeg tcp://?listen=1",
        Bound::TcpListening,
        port_number,
        READY,
    );
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

/// `picam send --wire h264` is what `rpicam-vid -o udp://` sends: ffmpeg (ffplay's
/// demuxer and decoder) reads it from UDP.
#[test]
fn picam_raw_h264_over_udp_to_ffmpeg() {
    if !needs("interop_h264::picam_raw_h264_over_udp_to_ffmpeg", "ffmpeg") {
        return;
    }
    let _serial = serial();
    let scratch = Scratch::new("interop-picam-h264-udp");
    let port_number = free_port();
    let port = port_number.to_string();
    let out = scratch.path("ff.i420");
    let ff = ffmpeg_h264_reader(&format!("udp://127.0.0.1:{port}"), &out);
    wait_for_port("ffmpeg -i udp://", Bound::Udp, port_number, READY);
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
    finish_into_peer(
        send,
        ff,
        Duration::from_millis(800),
        &out,
        "picam send --wire h264 udp -> ffmpeg -f h264 -i udp://",
        45,
    );
}

/// `picam send --wire h264 --protocol tcp` serves like `rpicam-vid --listen`: ffmpeg
/// connects as a client.
#[test]
fn picam_raw_h264_tcp_server_to_ffmpeg() {
    if !needs(
        "interop_h264::picam_raw_h264_tcp_server_to_ffmpeg",
        "ffmpeg",
    ) {
        return;
    }
    let _serial = serial();
    let scratch = Scratch::new("interop-picam-h264-tcp");
    let port = free_port().to_string();
    let out = scratch.path("ff-tcp.i420");
    let mut send = picam_send(
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
    send.wait_ready();
    let ff = ffmpeg_h264_reader(&format!("tcp://127.0.0.1:{port}"), &out);
    finish_into_peer(
        send,
        ff,
        Duration::from_millis(800),
        &out,
        "picam send --wire h264 tcp (as rpicam-vid --listen) -> ffmpeg -i tcp://",
        30,
    );
}
