//! Running real `picam` processes on loopback, bounded in time, and reading what they
//! recorded.

#![allow(dead_code)]

pub mod keyed;
pub mod peers;

use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use media::y4m::Y4mHeader;
use media::Picture;

/// A port free on 127.0.0.1 for both UDP and TCP right now.
pub fn free_port() -> u16 {
    for _ in 0..100 {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port found");
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

impl Picam {
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
