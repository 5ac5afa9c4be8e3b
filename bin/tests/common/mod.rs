//! Running real `picam` processes on loopback, bounded in time, and reading what they
//! recorded.

#![allow(dead_code)]

pub mod flood;
pub mod keyed;
pub mod netns;
pub mod peers;

use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use media::y4m::Y4mHeader;
use media::Picture;

/// A port on 127.0.0.1, free for both UDP and TCP, handed to no other caller of this
/// run.
///
/// Binding port 0 and releasing it races: the kernel hands ephemeral ports round
/// robin, and the next socket bound to port 0 anywhere (a picam sender's own socket,
/// another test's) can get the same port before the test's receiver binds it. So the
/// ports come from below the kernel's ephemeral range, where port 0 never lands: each
/// test process starts at its own offset (from its pid) and steps with an atomic
/// counter, so neither two tests of one binary nor two binaries at once (cargo runs
/// test binaries one after another, but a developer may not) share a port; each is
/// checked free for both protocols, skipping ports other programs hold.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let (low, high) = test_port_range();
    let span = u32::from(high - low);
    // 64 ports per process before it reaches the next pid's offset.
    let offset = std::process::id().wrapping_mul(64) % span;
    for _ in 0..span {
        let step = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = low + ((offset + step) % span) as u16;
        let free = UdpSocket::bind(("127.0.0.1", port)).is_ok()
            && TcpListener::bind(("127.0.0.1", port)).is_ok();
        if free {
            return port;
        }
    }
    panic!("no free port in {low}..{high}");
}

/// Ports below the kernel's ephemeral range (`ip_local_port_range`, where binding
/// port 0 takes from), above the well-known ones: `[low, high)`.
fn test_port_range() -> (u16, u16) {
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let high = ephemeral_low.max(4096);
    (high.saturating_sub(12_000).max(1024), high)
}

/// A transport a port is bound with, for [`wait_for_port`].
#[derive(Clone, Copy, Debug)]
pub enum Bound {
    /// A UDP socket bound to the port.
    Udp,
    /// A TCP socket listening on it.
    TcpListening,
}

/// Whether some process on this machine has `port` bound (UDP) or listening (TCP), from
/// `/proc/net/{udp,tcp}{,6}`: a peer's readiness, without binding the port (and so
/// without racing the peer for it).
pub fn port_bound(how: Bound, port: u16) -> bool {
    let tables: [&str; 2] = match how {
        Bound::Udp => ["/proc/net/udp", "/proc/net/udp6"],
        Bound::TcpListening => ["/proc/net/tcp", "/proc/net/tcp6"],
    };
    let wanted = format!(":{port:04X}");
    tables.iter().any(|table| {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        text.lines().skip(1).any(|line| {
            let mut fields = line.split_whitespace();
            let local = fields.nth(1).unwrap_or("");
            let state = fields.nth(1).unwrap_or("");
            // 0A is TCP_LISTEN; a UDP socket's state does not matter.
            local.ends_with(&wanted) && (matches!(how, Bound::Udp) || state == "0A")
        })
    })
}

/// Waits (at most `limit`) until `port` is bound as `how`; panics naming `what` if not.
pub fn wait_for_port(what: &str, how: Bound, port: u16, limit: Duration) {
    let deadline = Instant::now() + limit;
    while !port_bound(how, port) {
        assert!(
            Instant::now() < deadline,
            "{what}: port {port} not bound ({how:?}) within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A scratch directory removed at drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("picam-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // PICAM_KEEP_SCRATCH=1 keeps the processes' output for a look after a run.
        if std::env::var_os("PICAM_KEEP_SCRATCH").is_some() {
            eprintln!("kept {}", self.0.display());
            return;
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fresh key in the scratch directory (`picam keygen --out DIR/NAME`), mode 0600, for
/// `--key` on both sides: tests about something else run the default, encrypted path.
pub fn keygen_named(scratch: &Scratch, name: &str) -> String {
    let path = scratch.path(name);
    let out = Command::new(env!("CARGO_BIN_EXE_picam"))
        .args(["keygen", "--out"])
        .arg(&path)
        .env("PICAM_CONFIG_DIR", scratch.path("config"))
        .stdin(Stdio::null())
        .output()
        .expect("picam keygen runs");
    assert!(
        out.status.success(),
        "picam keygen failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    path.display().to_string()
}

/// The scratch directory's key `k` (made on first use), for `--key` on both sides.
pub fn key(scratch: &Scratch) -> String {
    let path = scratch.path("k");
    if path.exists() {
        return path.display().to_string();
    }
    keygen_named(scratch, "k")
}

/// A running picam whose stdout and stderr go to files.
pub struct Picam {
    pub child: Child,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
}

pub fn spawn(scratch: &Scratch, tag: &str, args: &[&str]) -> Picam {
    // Paired keys, if any, are kept in the scratch directory, never the real home.
    spawn_in(scratch, tag, args, &scratch.path("config"))
}

/// [`spawn`] with its own directory for paired keys (`PICAM_CONFIG_DIR`).
pub fn spawn_in(scratch: &Scratch, tag: &str, args: &[&str], config_dir: &Path) -> Picam {
    let stdout = scratch.path(&format!("{tag}.out"));
    let stderr = scratch.path(&format!("{tag}.err"));
    let child = Command::new(env!("CARGO_BIN_EXE_picam"))
        .args(args)
        .env("PICAM_LOG", "info")
        .env("PICAM_CONFIG_DIR", config_dir)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .expect("picam starts");
    Picam {
        child,
        stdout,
        stderr,
    }
}

/// What picam logs (at `info`, as [`spawn`] sets) once its socket is bound: a receiver
/// listening (UDP or TCP, picam's wire or an interop one) or an interop TCP sender
/// serving. A peer started after this line finds it.
pub const READY_LINES: [&str; 2] = ["receiving over", "serving over TCP"];

impl Picam {
    /// Waits until it has printed `line` to stderr; panics if it exits first or `limit`
    /// passes, with what it printed.
    pub fn wait_for_line(&mut self, line: &str, limit: Duration) {
        self.wait_for_any(&[line], limit);
    }

    /// Waits until its socket is bound (one of [`READY_LINES`]), at most 20 s (a loaded
    /// 2-core machine may start it slowly; a ready one answers within milliseconds).
    pub fn wait_ready(&mut self) {
        self.wait_for_any(&READY_LINES, Duration::from_secs(20));
    }

    fn wait_for_any(&mut self, lines: &[&str], limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let err = self.stderr_now();
            if lines.iter().any(|l| err.contains(l)) {
                return;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("picam exited ({status}) before printing any of {lines:?}: {err}");
            }
            assert!(
                Instant::now() < deadline,
                "picam printed none of {lines:?} within {limit:?}: {err}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// What it wrote to stderr so far.
    pub fn stderr_now(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Asks it to stop as systemd would (SIGTERM).
    pub fn terminate(&self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
    }

    /// Waits for exit, killing the process if it overruns `limit`; returns success.
    pub fn wait(mut self, limit: Duration) -> (bool, String, String) {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break Some(status);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let out = std::fs::read_to_string(&self.stdout).unwrap_or_default();
        let err = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        (status.is_some_and(|s| s.success()), out, err)
    }
}

impl Drop for Picam {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every picture in a YUV4MPEG2 file.
pub fn read_y4m(path: &Path) -> Vec<Picture> {
    let mut reader = BufReader::new(std::fs::File::open(path).expect("frames-out file exists"));
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap() == 0 {
        return Vec::new();
    }
    let header = Y4mHeader::parse(line.trim_end()).expect("valid y4m header");
    let mut pictures = Vec::new();
    loop {
        let mut magic = Vec::new();
        if reader.read_until(b'\n', &mut magic).unwrap() == 0 {
            break;
        }
        assert_eq!(magic, b"FRAME\n");
        let mut p = Picture::new(header.width, header.height);
        reader.read_exact(&mut p.y).unwrap();
        reader.read_exact(&mut p.u).unwrap();
        reader.read_exact(&mut p.v).unwrap();
        pictures.push(p);
    }
    pictures
}

/// The JSON stats records a receiver printed.
pub fn json_records(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}
