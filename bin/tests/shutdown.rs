//! Shutdown always finishes: a source that never delivers a frame (an `rpicam-vid`
//! that exits at once, or starts and stays silent) must not hold `--duration` or
//! SIGTERM up. Fake rpicam-vid programs stand in for the camera.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{free_port, key, spawn, Scratch};

/// Far above a clean stop (about `--duration` plus a second), far below a hang.
const LIMIT: Duration = Duration::from_secs(15);

fn fake_rpicam(scratch: &Scratch, name: &str, body: &str) -> PathBuf {
    let path = scratch.path(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn send_for_a_second(tag: &str, body: &str) {
    let scratch = Scratch::new(&format!("shutdown-{tag}"));
    let program = fake_rpicam(&scratch, "rpicam-vid", body);
    let source = format!("rpicam:{}", program.display());
    let port = free_port().to_string();
    let key = key(&scratch);
    let begun = Instant::now();
    let send = spawn(
        &scratch,
        tag,
        &[
            "send",
            "--source",
            &source,
            "--remote",
            "127.0.0.1",
            "--port",
            &port,
            "--key",
            &key,
            "--duration",
            "1",
        ],
    );
    let (ok, _out, err) = send.wait(LIMIT);
    let took = begun.elapsed();
    assert!(
        ok,
        "picam send failed or was killed after {took:?}; stderr:\n{err}"
    );
    assert!(
        took < Duration::from_secs(6),
        "picam send took {took:?} to stop after --duration 1; stderr:\n{err}"
    );
}

/// The child exits at once, again and again: the restart loop's backoff sleeps end on
/// shutdown.
#[test]
fn send_stops_on_duration_when_rpicam_exits_at_once() {
    send_for_a_second("exits", "exit 0");
}

/// The child runs but never writes: the wait for its first bytes (20 s) ends on
/// shutdown.
#[test]
fn send_stops_on_duration_when_rpicam_never_writes() {
    send_for_a_second("silent", "exec sleep 600");
}

/// SIGTERM (systemd's stop) ends a sender whose camera never delivers, exit code 0.
#[test]
fn sigterm_stops_a_sender_waiting_on_a_silent_rpicam() {
    let scratch = Scratch::new("shutdown-term");
    let program = fake_rpicam(&scratch, "rpicam-vid", "exec sleep 600");
    let source = format!("rpicam:{}", program.display());
    let port = free_port().to_string();
    let key = key(&scratch);
    let send = spawn(
        &scratch,
        "term",
        &[
            "send",
            "--source",
            &source,
            "--remote",
            "127.0.0.1",
            "--port",
            &port,
            "--key",
            &key,
        ],
    );
    std::thread::sleep(Duration::from_millis(1500));
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &send.child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let begun = Instant::now();
    let (ok, _out, err) = send.wait(LIMIT);
    let took = begun.elapsed();
    assert!(
        ok,
        "picam send failed or was killed after {took:?}; stderr:\n{err}"
    );
    assert!(
        took < Duration::from_secs(4),
        "took {took:?} after SIGTERM; stderr:\n{err}"
    );
}
