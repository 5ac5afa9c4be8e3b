//! Pairing and key files against real `picam` processes on loopback (issue 18): a PAIR1
//! flood, a forged PAIR1 or PAIR2 from a proxy in the path, a lost PAIR2, reply sizes,
//! and key files that are FIFOs, huge, symbolic links, directories or in an empty
//! `PICAM_CONFIG_DIR`. Every process is bounded in time and killed on drop; floods run
//! at a fixed rate.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::keyed::*;
use common::{free_port, keygen_named, spawn, spawn_in, Picam, Scratch};
use transport::secure::pairing::PairInitiator;

const KIND_PAIR1: u8 = 11;
const KIND_PAIR2: u8 = 12;
const KIND_PAIR3: u8 = 13;

/// A receiver on `port` waiting to pair (no key in `config`); returns it and its code.
fn receiver_waiting(scratch: &Scratch, port: &str, config: &Path) -> (Picam, String) {
    let recv = spawn_in(
        scratch,
        "recv",
        &strs(&recv_args(
            port,
            "udp",
            "30",
            &scratch.path("shown.y4m"),
            &[],
        )),
        config,
    );
    let err = wait_for(&recv, "picam pairing code:", Duration::from_secs(15));
    let code = err
        .lines()
        .find_map(|l| l.trim().strip_prefix("picam pairing code:"))
        .unwrap_or_else(|| panic!("no pairing code shown:\n{err}"))
        .trim()
        .to_string();
    (recv, code)
}

/// A fresh PAIR1 for a random code, as a sender would send it.
fn some_pair1() -> Vec<u8> {
    let code = format!("{:08}", rand_u32() % 100_000_000);
    let mut buf = Vec::new();
    let mut sender = PairInitiator::new(&code).expect("randomness");
    assert!(sender.poll_transmit(Instant::now(), &mut buf));
    buf
}

fn rand_u32() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    nanos.wrapping_mul(2_654_435_761) ^ std::process::id()
}

/// A PAIR1 flood at 200 a second for 10 s (2000 distinct guesses) at a receiver waiting
/// to pair: at most 20 answers, none longer than its question, and the code shown
/// never changes (before the fix: every guess answered, 73 bytes for 41, a new code
/// every 5 guesses).
#[test]
fn a_pair1_flood_gets_at_most_20_answers_in_10_s() {
    let _serial = one_at_a_time();
    let scratch = Scratch::new("pair-flood");
    let port = free_port().to_string();
    let (recv, code) = receiver_waiting(&scratch, &port, &scratch.path("config"));
    let guesses: Vec<Vec<u8>> = (0..2000).map(|_| some_pair1()).collect();
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_nonblocking(true).unwrap();
    let target: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let interval = Duration::from_millis(5);
    let begun = Instant::now();
    let (mut answers, mut larger) = (0usize, Vec::new());
    let mut inbuf = [0u8; 2048];
    let mut drain = |answers: &mut usize, larger: &mut Vec<usize>| {
        while let Ok((n, _)) = socket.recv_from(&mut inbuf) {
            *answers += 1;
            if n > guesses[0].len() {
                larger.push(n);
            }
        }
    };
    for (i, guess) in guesses.iter().enumerate() {
        let due = begun + interval * i as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let _ = socket.send_to(guess, target);
        drain(&mut answers, &mut larger);
    }
    let took = begun.elapsed();
    std::thread::sleep(Duration::from_millis(200));
    drain(&mut answers, &mut larger);
    let err = recv.stderr_now();
    recv.terminate();
    let _ = recv.wait(Duration::from_secs(20));
    eprintln!(
        "flood: {} PAIR1s of {} bytes in {took:?}: {answers} answers, code {code}",
        guesses.len(),
        guesses[0].len()
    );
    assert!(took < Duration::from_secs(12), "the flood took {took:?}");
    assert!(answers <= 20, "{answers} answers to a 10 s flood");
    assert!(
        larger.is_empty(),
        "answers larger than the question: {larger:?}"
    );
    assert_eq!(
        err.matches("picam pairing code:").count(),
        1,
        "the flood changed the code:\n{err}"
    );
}

/// What a [`Proxy`] in the path between sender and receiver does besides relaying.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Meddle {
    /// Sends a PAIR1 of its own right after the sender's first one, from the same
    /// address (as the receiver sees it).
    InjectPair1,
    /// Answers the sender's first PAIR1 itself with a PAIR2 that does not check out,
    /// before the receiver's real answer.
    ForgePair2,
    /// Drops the receiver's first PAIR2.
    DropPair2,
}

/// Pairing packets the proxy saw: (kind, length, when).
type Seen = Arc<Mutex<Vec<(u8, usize, Instant)>>>;

/// A UDP relay on loopback: the sender talks to `port`, the receiver sees the relay's
/// upstream socket. Runs until dropped (and at most 60 s).
struct Proxy {
    port: u16,
    seen: Seen,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

fn pairing_kind(packet: &[u8]) -> Option<u8> {
    (packet.len() >= 8 && packet[..2] == [0x50, 0x43] && (11..=13).contains(&packet[3]))
        .then_some(packet[3])
}

impl Proxy {
    fn start(receiver: SocketAddr, meddle: Meddle) -> Self {
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        let back = Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        back.connect(receiver).unwrap();
        for s in [&front, &back] {
            s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        }
        let port = front.local_addr().unwrap().port();
        let seen: Seen = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let sender: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
        let deadline = Instant::now() + Duration::from_secs(60);
        let upstream = {
            let (front, back, seen, stop, sender) = (
                front.clone(),
                back.clone(),
                seen.clone(),
                stop.clone(),
                sender.clone(),
            );
            std::thread::spawn(move || {
                let mut buf = [0u8; 65536];
                let mut first_pair1 = true;
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    let Ok((n, from)) = front.recv_from(&mut buf) else {
                        continue;
                    };
                    *sender.lock().unwrap() = Some(from);
                    let packet = &buf[..n];
                    let kind = pairing_kind(packet);
                    if let Some(kind) = kind {
                        seen.lock().unwrap().push((kind, n, Instant::now()));
                    }
                    if kind == Some(KIND_PAIR1) && first_pair1 && meddle == Meddle::ForgePair2 {
                        // The sender's own SPAKE2 point, marked as the receiver's: a
                        // valid point, so only the confirmation gives it away.
                        let mut forged = packet[..8].to_vec();
                        forged[3] = KIND_PAIR2;
                        forged.push(b'B');
                        forged.extend_from_slice(&packet[9..41]);
                        forged.extend_from_slice(&[0x5a; 32]);
                        let _ = front.send_to(&forged, from);
                    }
                    let _ = back.send(packet);
                    if kind == Some(KIND_PAIR1) && first_pair1 && meddle == Meddle::InjectPair1 {
                        let _ = back.send(&some_pair1());
                    }
                    first_pair1 &= kind != Some(KIND_PAIR1);
                }
            })
        };
        let downstream = {
            let (stop, seen) = (stop.clone(), seen.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 65536];
                let mut dropped = false;
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    let Ok(n) = back.recv(&mut buf) else {
                        continue;
                    };
                    let kind = pairing_kind(&buf[..n]);
                    if let Some(kind) = kind {
                        seen.lock().unwrap().push((kind | 0x80, n, Instant::now()));
                    }
                    if meddle == Meddle::DropPair2 && !dropped && kind == Some(KIND_PAIR2) {
                        dropped = true;
                        continue;
                    }
                    if let Some(to) = *sender.lock().unwrap() {
                        let _ = front.send_to(&buf[..n], to);
                    }
                }
            })
        };
        Self {
            port,
            seen,
            stop,
            threads: vec![upstream, downstream],
        }
    }

    /// (kind, length, when) of the pairing packets so far; replies have kind | 0x80.
    fn seen(&self) -> Vec<(u8, usize, Instant)> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Pairs a sender with a receiver through a proxy that meddles; asserts both keep the
/// same key and that no reply was larger than a PAIR1. Returns the time from the first
/// PAIR1 to the first PAIR3.
fn pair_through(meddle: Meddle) -> Duration {
    let _serial = one_at_a_time();
    let scratch = Scratch::new(&format!("pair-{meddle:?}"));
    let (recv_dir, send_dir) = (scratch.path("recv-config"), scratch.path("send-config"));
    let port = free_port();
    let (recv, code) = receiver_waiting(&scratch, &port.to_string(), &recv_dir);
    let proxy = Proxy::start(format!("127.0.0.1:{port}").parse().unwrap(), meddle);
    let (ok, _, send_err) = spawn_in(
        &scratch,
        "send",
        &strs(&send_args(
            &proxy.port.to_string(),
            "udp",
            "2",
            &["--pair", &code],
        )),
        &send_dir,
    )
    .wait(Duration::from_secs(45));
    // The receiver keeps its key once the PAIR3 arrives; give it a moment to write it.
    let recv_key = recv_dir.join("receiver.key");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !recv_key.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    recv.terminate();
    let (_, _, recv_err) = recv.wait(Duration::from_secs(20));
    let seen = proxy.seen();
    drop(proxy);
    assert!(ok, "{meddle:?}: the sender failed:\n{send_err}\n{recv_err}");
    let (Ok(sent), Ok(kept)) = (
        std::fs::read(send_dir.join("sender.key")),
        std::fs::read(&recv_key),
    ) else {
        panic!("{meddle:?}: a side kept no key\nsender:\n{send_err}\nreceiver:\n{recv_err}")
    };
    assert_eq!(sent, kept, "{meddle:?}: the two sides hold different keys");
    let smallest_pair1 = seen
        .iter()
        .filter(|s| s.0 == KIND_PAIR1)
        .map(|s| s.1)
        .min()
        .expect("no PAIR1 seen");
    let replies: Vec<usize> = seen
        .iter()
        .filter(|s| s.0 & 0x80 != 0)
        .map(|s| s.1)
        .collect();
    assert!(
        replies.iter().all(|&n| n <= smallest_pair1),
        "{meddle:?}: replies {replies:?} larger than a PAIR1 of {smallest_pair1} bytes"
    );
    let first = |kind: u8| seen.iter().find(|s| s.0 == kind).map(|s| s.2);
    let took = first(KIND_PAIR3).expect("no PAIR3") - first(KIND_PAIR1).unwrap();
    eprintln!("{meddle:?}: paired in {took:?} (first PAIR1 to first PAIR3); replies {replies:?}");
    took
}

/// A forged PAIR1 right after the sender's (from the same address, as the receiver sees
/// it) does not replace the real exchange (before the fix it did: the sender went away
/// "paired" with a key the receiver never kept).
#[test]
fn an_injected_pair1_does_not_break_the_real_pairing() {
    pair_through(Meddle::InjectPair1);
}

/// A PAIR2 that does not check out, arriving before the real one, is ignored (before the
/// fix it ended the pairing: "the code does not match").
#[test]
fn a_forged_pair2_does_not_stop_the_sender() {
    pair_through(Meddle::ForgePair2);
}

/// The receiver's first PAIR2 lost: the sender repeats PAIR1 after 30 ms and gets the
/// same answer again (before the fix: a 500 ms repeat answered with the wrong bytes,
/// and no pairing in 30 s).
#[test]
fn a_lost_pair2_still_pairs_within_a_round_trip_and_a_few_ms() {
    let took = pair_through(Meddle::DropPair2);
    assert!(
        took < Duration::from_millis(300),
        "a lost PAIR2 cost {took:?}"
    );
}

/// Runs `picam` with `args` and the environment `env` (None: removed), in `cwd`.
fn run_with_env(
    scratch: &Scratch,
    tag: &str,
    args: &[&str],
    env: &[(&str, Option<&str>)],
    cwd: &Path,
) -> Picam {
    let stdout = scratch.path(&format!("{tag}.out"));
    let stderr = scratch.path(&format!("{tag}.err"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_picam"));
    cmd.args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap());
    for (name, value) in env {
        match value {
            Some(v) => cmd.env(name, v),
            None => cmd.env_remove(name),
        };
    }
    Picam {
        child: cmd.spawn().expect("picam starts"),
        stdout,
        stderr,
    }
}

/// `--key FIFO` is refused at once as not a regular file (before: it blocked forever
/// waiting for a writer).
#[test]
fn a_fifo_as_key_file_is_refused_at_once() {
    if !testkit::require_tools(
        "a_fifo_as_key_file_is_refused_at_once",
        &["mkfifo"],
        "coreutils",
    ) {
        return;
    }
    let scratch = Scratch::new("key-fifo");
    let fifo = scratch.path("fifo.key");
    assert!(Command::new("mkfifo")
        .args(["-m", "600"])
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let port = free_port().to_string();
    let fifo = fifo.display().to_string();
    let begun = Instant::now();
    let (ok, _, err) = spawn(
        &scratch,
        "send",
        &strs(&send_args(&port, "udp", "2", &["--key", &fifo])),
    )
    .wait(Duration::from_secs(10));
    let took = begun.elapsed();
    assert!(!ok, "a FIFO was taken as a key");
    assert!(
        took < Duration::from_secs(5),
        "took {took:?} (blocked on the FIFO?)"
    );
    assert!(
        err.contains("not a regular file") && err.contains("FIFO") && err.contains(&fifo),
        "{err}"
    );
}

/// A 300 MB key file is refused by its size, not read (before: read whole, then "does
/// not hold a picam key").
#[test]
fn a_huge_key_file_is_refused_unread() {
    let scratch = Scratch::new("key-huge");
    let path = scratch.path("huge.key");
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(300_000_000).unwrap(); // sparse: no disk used
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .unwrap();
    let port = free_port().to_string();
    let shown = path.display().to_string();
    let (ok, _, err) = spawn(
        &scratch,
        "send",
        &strs(&send_args(&port, "udp", "2", &["--key", &shown])),
    )
    .wait(Duration::from_secs(20));
    assert!(!ok, "a 300 MB file was taken as a key");
    assert!(
        err.contains("300000000 bytes") && err.contains(&shown),
        "the size is not named: {err}"
    );
}

/// `keygen --out LINK` refuses to write through the link; what it points to keeps its
/// contents and mode (before: overwritten with the key and made 0600).
#[test]
fn keygen_does_not_write_through_a_symlink() {
    let scratch = Scratch::new("key-link");
    let victim = scratch.path("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644)).unwrap();
    let link = scratch.path("out.key");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let link = link.display().to_string();
    let (ok, _, err) =
        spawn(&scratch, "keygen", &["keygen", "--out", &link]).wait(Duration::from_secs(20));
    assert!(!ok, "keygen wrote through a symlink:\n{err}");
    assert!(err.contains("symbolic link"), "{err}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    assert_eq!(
        std::fs::metadata(&victim).unwrap().permissions().mode() & 0o777,
        0o644
    );
    // The ordinary case still works, and the key it writes is read back.
    let key = keygen_named(&scratch, "fresh.key");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

/// `PICAM_CONFIG_DIR=""` is unset, not the current directory: a `sender.key` lying in
/// the current directory is not used, and the message names where the key was looked
/// for (before: the key in the current directory was used).
#[test]
fn an_empty_config_dir_is_not_the_current_directory() {
    let scratch = Scratch::new("key-empty-dir");
    let (home, cwd) = (scratch.path("home"), scratch.path("cwd"));
    std::fs::create_dir_all(&cwd).unwrap();
    let stray = keygen_named(&scratch, "cwd/sender.key");
    assert!(Path::new(&stray).exists());
    let port = free_port().to_string();
    let home_str = home.display().to_string();
    let (ok, _, err) = run_with_env(
        &scratch,
        "send",
        &strs(&send_args(&port, "udp", "1", &[])),
        &[
            ("PICAM_CONFIG_DIR", Some("")),
            ("XDG_CONFIG_HOME", None),
            ("HOME", Some(&home_str)),
        ],
        &cwd,
    )
    .wait(Duration::from_secs(20));
    assert!(
        !ok,
        "the sender used the key in the current directory:\n{err}"
    );
    let expected = home.join(".config/picam/sender.key").display().to_string();
    assert!(
        err.contains("not paired") && err.contains(&expected),
        "expected a look in {expected}:\n{err}"
    );
}

/// A directory named receiver.key is "not a regular file", not "readable by others".
#[test]
fn a_directory_as_key_file_is_named_as_such() {
    let scratch = Scratch::new("key-dir");
    let config = scratch.path("config");
    std::fs::create_dir_all(config.join("receiver.key")).unwrap();
    std::fs::set_permissions(
        config.join("receiver.key"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let port = free_port().to_string();
    let (ok, _, err) = spawn_in(
        &scratch,
        "recv",
        &strs(&recv_args(&port, "udp", "2", &scratch.path("x.y4m"), &[])),
        &config,
    )
    .wait(Duration::from_secs(20));
    assert!(!ok, "a directory was taken as a key:\n{err}");
    assert!(
        err.contains("not a regular file")
            && err.contains("directory")
            && !err.contains("readable by others"),
        "{err}"
    );
}
