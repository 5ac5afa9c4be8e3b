//! Shared by the security tests (`security.rs`: keys and pairing; `security_attacks.rs`:
//! floods, stray connections, replays): a keyed receiver and sender on loopback, their
//! final stats, and the pictures shown.

use std::path::Path;
use std::time::{Duration, Instant};

use media::stamp;
use serde_json::Value;

use super::{json_records, read_y4m, spawn, Picam, Scratch};

pub const LIMIT: Duration = Duration::from_secs(60);

/// The streams here run one at a time: the flood's bar (95% shown) is about the
/// receiver, not about two test streams sharing a 2-core machine's CPU.
pub static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// `picam recv --headless` on 127.0.0.1, JSON stats, pictures to `y4m`.
pub fn recv_args(
    port: &str,
    protocol: &str,
    secs: &str,
    y4m: &Path,
    extra: &[&str],
) -> Vec<String> {
    let mut v: Vec<String> = [
        "recv",
        "--headless",
        "--stats",
        "json",
        "--bind",
        "127.0.0.1",
    ]
    .map(String::from)
    .to_vec();
    v.extend(["--port", port, "--protocol", protocol, "--duration", secs].map(String::from));
    v.extend(["--frames-out".to_string(), y4m.display().to_string()]);
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

/// `picam send` of the 640x480 test pattern at 30 fps to 127.0.0.1.
pub fn send_args(port: &str, protocol: &str, secs: &str, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = ["send", "--remote", "127.0.0.1", "--width", "640"]
        .map(String::from)
        .to_vec();
    v.extend(["--height", "480", "--fps", "30", "--bitrate", "1500000"].map(String::from));
    v.extend(["--stats", "json", "--port", port, "--protocol", protocol].map(String::from));
    v.extend(["--duration", secs].map(String::from));
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

/// One run: `picam recv` on `port` (`recv_extra`, pictures to `y4m`), then, once its
/// socket is bound, `picam send` to it (`send_extra`); each for its number of seconds.
pub fn start_pair(
    scratch: &Scratch,
    (port, protocol, y4m): (&str, &str, &Path),
    (recv_secs, recv_extra): (&str, &[&str]),
    (send_secs, send_extra): (&str, &[&str]),
) -> (Picam, Picam) {
    let mut recv = spawn(
        scratch,
        "recv",
        &strs(&recv_args(port, protocol, recv_secs, y4m, recv_extra)),
    );
    recv.wait_ready();
    let send = spawn(
        scratch,
        "send",
        &strs(&send_args(port, protocol, send_secs, send_extra)),
    );
    (recv, send)
}

pub fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Pictures in a frames-out file that may not exist (nothing was ever shown).
pub fn pictures(y4m: &Path) -> Vec<media::Picture> {
    match std::fs::metadata(y4m) {
        Ok(m) if m.len() > 0 => read_y4m(y4m),
        _ => Vec::new(),
    }
}

pub fn last_record(stdout: &str) -> Value {
    json_records(stdout)
        .into_iter()
        .rfind(|r| r["last"] == true)
        .unwrap_or_else(|| panic!("no final stats record in:\n{stdout}"))
}

pub fn num(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

/// Shown pictures carry increasing stamps (nothing forged or replayed got shown).
pub fn assert_in_order(pictures: &[media::Picture]) {
    let frames: Vec<u32> = pictures
        .iter()
        .enumerate()
        .map(|(i, p)| {
            stamp::read(p)
                .unwrap_or_else(|| panic!("picture {i} has no stamp"))
                .frame
        })
        .collect();
    assert!(
        frames.windows(2).all(|w| w[1] > w[0]),
        "pictures out of order: {frames:?}"
    );
}

/// Waits until `picam`'s stderr contains `needle`, up to `limit`.
pub fn wait_for(p: &Picam, needle: &str, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let err = p.stderr_now();
        if err.contains(needle) || Instant::now() > deadline {
            return err;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
