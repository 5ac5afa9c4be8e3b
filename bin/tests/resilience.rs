//! Real processes on loopback: peers come and go, and nobody needs restarting.

mod common;

use std::time::Duration;

use common::{free_port, json_records, key, read_y4m, spawn, Scratch};
use media::stamp;

const LIMIT: Duration = Duration::from_secs(40);

/// The link flags; `key` is the scratch directory's key file, given to both sides.
fn link_args(port: &str, protocol: &'static str, key: &str) -> Vec<String> {
    [
        "--bind",
        "127.0.0.1",
        "--port",
        port,
        "--protocol",
        protocol,
        "--key",
        key,
    ]
    .map(String::from)
    .to_vec()
}

fn sender_args(
    port: &str,
    protocol: &'static str,
    key: &str,
    duration: &str,
    intra: &str,
) -> Vec<String> {
    let mut args: Vec<String> = [
        "send",
        "--remote",
        "127.0.0.1",
        "--width",
        "640",
        "--height",
        "480",
    ]
    .map(String::from)
    .to_vec();
    args.extend(
        [
            "--bitrate",
            "1500000",
            "--duration",
            duration,
            "--intra",
            intra,
        ]
        .map(String::from),
    );
    args.extend(link_args(port, protocol, key));
    args
}

fn receiver_args(
    port: &str,
    protocol: &'static str,
    key: &str,
    duration: &str,
    y4m: &std::path::Path,
) -> Vec<String> {
    let mut args: Vec<String> = [
        "recv",
        "--headless",
        "--stats",
        "json",
        "--duration",
        duration,
    ]
    .map(String::from)
    .to_vec();
    args.extend(["--frames-out".to_string(), y4m.display().to_string()]);
    args.extend(link_args(port, protocol, key));
    args
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// A viewer that starts after the sender gets a picture at once (keyframe on request),
/// not after the keyframe period (10 s here).
fn late_join(protocol: &'static str) {
    let scratch = Scratch::new(&format!("join-{protocol}"));
    let port = free_port().to_string();
    let key = key(&scratch);
    let send = spawn(
        &scratch,
        "send",
        &strs(&sender_args(&port, protocol, &key, "7", "300")),
    );
    std::thread::sleep(Duration::from_millis(2000));
    let y4m = scratch.path("shown.y4m");
    let recv = spawn(
        &scratch,
        "recv",
        &strs(&receiver_args(&port, protocol, &key, "3", &y4m)),
    );
    let (recv_ok, _, recv_err) = recv.wait(LIMIT);
    let (send_ok, _, send_err) = send.wait(LIMIT);
    assert!(recv_ok && send_ok, "{recv_err}\n{send_err}");
    let pictures = read_y4m(&y4m);
    assert!(
        pictures.len() >= 45,
        "{} pictures in 3 s; {recv_err}",
        pictures.len()
    );
    let first = stamp::read(&pictures[0]).expect("stamp").frame;
    // Joined ~2 s (~60 frames) in; start-up of the process takes some more. Waiting for
    // the periodic keyframe would mean frame 300.
    assert!(
        (40..150).contains(&first),
        "first picture shown is frame {first}"
    );
}

#[test]
fn udp_viewer_joining_late_gets_a_keyframe_at_once() {
    late_join("udp");
}

#[test]
fn tcp_viewer_joining_late_gets_a_keyframe_at_once() {
    late_join("tcp");
}

/// The receiver keeps running across a sender restart and shows both sessions.
fn sender_restart(protocol: &'static str) {
    let scratch = Scratch::new(&format!("restart-{protocol}"));
    let port = free_port().to_string();
    let key = key(&scratch);
    let y4m = scratch.path("shown.y4m");
    let mut recv = spawn(
        &scratch,
        "recv",
        &strs(&receiver_args(&port, protocol, &key, "7", &y4m)),
    );
    recv.wait_ready();
    for round in 0..2 {
        let send = spawn(
            &scratch,
            &format!("send{round}"),
            &strs(&sender_args(&port, protocol, &key, "2", "60")),
        );
        let (ok, _, err) = send.wait(LIMIT);
        assert!(ok, "sender {round}: {err}");
    }
    let (ok, out, err) = recv.wait(LIMIT);
    assert!(ok, "{err}");
    let last = json_records(&out).pop().expect("stats");
    assert_eq!(last["sessions"], 2, "{last}");
    let pictures = read_y4m(&y4m);
    let restarts = pictures
        .windows(2)
        .filter(|w| stamp::read(&w[1]).unwrap().frame < stamp::read(&w[0]).unwrap().frame)
        .count();
    assert_eq!(
        restarts, 1,
        "the second session's pictures follow the first's"
    );
    assert!(
        pictures.len() >= 90,
        "{} pictures from two 2 s sessions",
        pictures.len()
    );
}

#[test]
fn udp_receiver_survives_a_sender_restart() {
    sender_restart("udp");
}

#[test]
fn tcp_receiver_survives_a_sender_restart() {
    sender_restart("tcp");
}

#[test]
fn tcp_sender_survives_the_viewer_leaving_and_coming_back() {
    let scratch = Scratch::new("tcp-viewer-back");
    let port = free_port().to_string();
    let key = key(&scratch);
    let send = spawn(
        &scratch,
        "send",
        &strs(&sender_args(&port, "tcp", &key, "8", "300")),
    );
    for round in 0..2 {
        let y4m = scratch.path(&format!("shown{round}.y4m"));
        let recv = spawn(
            &scratch,
            &format!("recv{round}"),
            &strs(&receiver_args(&port, "tcp", &key, "2.5", &y4m)),
        );
        let (ok, _, err) = recv.wait(LIMIT);
        assert!(ok, "{err}");
        let pictures = read_y4m(&y4m);
        // Reconnect backoff is at most 2 s; the rest of the 2.5 s must show pictures.
        assert!(
            pictures.len() >= 10,
            "viewer {round} saw {} pictures; {err}",
            pictures.len()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let (ok, out, err) = send.wait(LIMIT);
    assert!(ok, "sender must outlive its viewers: {err}");
    assert!(out.contains("send total"), "{out}");
}

#[test]
fn bad_configuration_is_refused_before_anything_starts() {
    let scratch = Scratch::new("bad-config");
    for (args, want) in [
        (
            &["send", "--port", "70000"][..],
            "invalid `port` = 70000 from the command line: allowed 1..=65535",
        ),
        (&["send", "--bitrate", "0"], "invalid `bitrate` = 0"),
        (&["send", "--width", "641"], "invalid `width` = 641"),
        (
            &["recv", "--protocol", "quic"],
            "invalid `protocol` = \"quic\"",
        ),
        (
            &["send", "--source", "webcam9"],
            "invalid `source` = \"webcam9\"",
        ),
        (
            &["recv", "--config", "/nonexistent.toml"],
            "cannot read config file /nonexistent.toml",
        ),
    ] {
        let (ok, _, err) = spawn(&scratch, "bad", args).wait(Duration::from_secs(20));
        assert!(!ok, "{args:?} was accepted");
        assert!(
            err.contains(want),
            "{args:?}: stderr {err:?} lacks {want:?}"
        );
    }
}
