//! Attacks on a real stream (issue 10): real `picam` processes on loopback, bounded in
//! time, killed on drop. Wrong key, no key, `--insecure` on one side only, pairing with
//! a wrong code, a key file others can read, a spoofed flood from the sender's own
//! address, a TCP connection that never authenticates, replayed datagrams.

mod common;

use std::io::Read;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{free_port, json_records, keygen_named, read_y4m, spawn, spawn_in, Scratch};
use media::stamp;
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(60);

/// The streams here run one at a time: the flood's bar (95% shown) is about the
/// receiver, not about two test streams sharing a 2-core machine's CPU.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// `picam recv --headless` on 127.0.0.1, JSON stats, pictures to `y4m`.
fn recv_args(port: &str, protocol: &str, secs: &str, y4m: &Path, extra: &[&str]) -> Vec<String> {
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
fn send_args(port: &str, protocol: &str, secs: &str, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = ["send", "--remote", "127.0.0.1", "--width", "640"]
        .map(String::from)
        .to_vec();
    v.extend(["--height", "480", "--fps", "30", "--bitrate", "1500000"].map(String::from));
    v.extend(["--stats", "json", "--port", port, "--protocol", protocol].map(String::from));
    v.extend(["--duration", secs].map(String::from));
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Pictures in a frames-out file that may not exist (nothing was ever shown).
fn pictures(y4m: &Path) -> Vec<media::Picture> {
    match std::fs::metadata(y4m) {
        Ok(m) if m.len() > 0 => read_y4m(y4m),
        _ => Vec::new(),
    }
}

fn last_record(stdout: &str) -> Value {
    json_records(stdout)
        .into_iter()
        .rfind(|r| r["last"] == true)
        .unwrap_or_else(|| panic!("no final stats record in:\n{stdout}"))
}

fn num(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

/// Shown pictures carry increasing stamps (nothing forged or replayed got shown).
fn assert_in_order(pictures: &[media::Picture]) {
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
fn wait_for(p: &common::Picam, needle: &str, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let err = p.stderr_now();
        if err.contains(needle) || Instant::now() > deadline {
            return err;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// (a) Sender and receiver with different keys: nothing shown, the receiver counts the
/// packets that do not authenticate and says why.
#[test]
fn wrong_key_shows_nothing_and_says_why() {
    let _serial = one_at_a_time();
    let scratch = Scratch::new("sec-wrong-key");
    let (k1, k2) = (keygen_named(&scratch, "k1"), keygen_named(&scratch, "k2"));
    let port = free_port().to_string();
    let y4m = scratch.path("shown.y4m");
    let recv = spawn(
        &scratch,
        "recv",
        &strs(&recv_args(&port, "udp", "7", &y4m, &["--key", &k1])),
    );
    std::thread::sleep(Duration::from_millis(400));
    let send = spawn(
        &scratch,
        "send",
        &strs(&send_args(&port, "udp", "5", &["--key", &k2])),
    );
    let (send_ok, _, send_err) = send.wait(LIMIT);
    let (recv_ok, recv_out, recv_err) = recv.wait(LIMIT);
    assert!(send_ok && recv_ok, "{send_err}\n{recv_err}");
    assert_eq!(pictures(&y4m).len(), 0, "pictures shown under another key");
    let last = last_record(&recv_out);
    assert_eq!(num(&last["frames_shown"]), 0, "{last}");
    assert!(
        num(&last["secure"]["unauthenticated"]) > 0,
        "unauthenticated packets not counted: {last}"
    );
    assert!(
        recv_err.contains("another key"),
        "the receiver does not say the sender has another key:\n{recv_err}"
    );
    assert!(
        send_err.contains("no answer to the encrypted handshake"),
        "the sender does not say nobody answers:\n{send_err}"
    );
}

/// (b) No key, no `--pair`, no `--insecure`: the sender fails at once and says how to
/// pair.
#[test]
fn sender_without_a_key_fails_at_once() {
    let scratch = Scratch::new("sec-no-key");
    let port = free_port().to_string();
    let begun = Instant::now();
    let send = spawn(
        &scratch,
        "send",
        &["send", "--remote", "127.0.0.1", "--port", &port],
    );
    let (ok, _, err) = send.wait(Duration::from_secs(20));
    let took = begun.elapsed();
    assert!(!ok, "picam send without a key succeeded:\n{err}");
    assert!(took < Duration::from_secs(5), "took {took:?} to fail");
    assert!(
        err.contains("not paired with a receiver yet") && err.contains("--pair"),
        "{err}"
    );
}

/// (c) `--insecure` on one side only: nothing shown, and a warning naming `--insecure`
/// (never a silent black screen).
fn one_side_insecure(insecure_sender: bool) {
    let _serial = one_at_a_time();
    let tag = if insecure_sender {
        "plain-send"
    } else {
        "plain-recv"
    };
    let scratch = Scratch::new(&format!("sec-{tag}"));
    let key = common::key(&scratch);
    let port = free_port().to_string();
    let y4m = scratch.path("shown.y4m");
    let keyed = ["--key", key.as_str()];
    let plain = ["--insecure"];
    let (send_sec, recv_sec): (&[&str], &[&str]) = if insecure_sender {
        (&plain, &keyed)
    } else {
        (&keyed, &plain)
    };
    let recv = spawn(
        &scratch,
        "recv",
        &strs(&recv_args(&port, "udp", "7", &y4m, recv_sec)),
    );
    std::thread::sleep(Duration::from_millis(400));
    let send = spawn(
        &scratch,
        "send",
        &strs(&send_args(&port, "udp", "5", send_sec)),
    );
    let (send_ok, _, send_err) = send.wait(LIMIT);
    let (recv_ok, recv_out, recv_err) = recv.wait(LIMIT);
    assert!(send_ok && recv_ok, "{send_err}\n{recv_err}");
    assert_eq!(pictures(&y4m).len(), 0, "{tag}: pictures shown");
    let last = last_record(&recv_out);
    assert_eq!(num(&last["frames_shown"]), 0, "{last}");
    // The receiver is where a person looks at the black screen: it must say why.
    assert!(
        recv_err.contains("--insecure") && recv_err.contains("WARN"),
        "{tag}: the receiver does not name --insecure:\n{recv_err}"
    );
    if insecure_sender {
        assert!(
            num(&last["secure"]["plaintext_refused"]) > 0,
            "{tag}: plaintext packets not counted: {last}"
        );
    } else {
        assert!(
            send_err.contains("--insecure"),
            "{tag}: the sender does not name --insecure:\n{send_err}"
        );
    }
    eprintln!("{tag}: receiver stats {last}");
}

#[test]
fn insecure_sender_and_keyed_receiver_say_so() {
    one_side_insecure(true);
}

#[test]
fn keyed_sender_and_insecure_receiver_say_so() {
    one_side_insecure(false);
}

/// The eight digits of `code` with the last one changed.
fn wrong_code(code: &str) -> String {
    let mut chars: Vec<char> = code.chars().collect();
    let last = chars.iter().rposition(|c| c.is_ascii_digit()).unwrap();
    let d = chars[last].to_digit(10).unwrap();
    chars[last] = char::from_digit((d + 1) % 10, 10).unwrap();
    chars.into_iter().collect()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// (d) Pairing: a wrong code is refused with a message saying so; the right one pairs,
/// pictures flow, and both sides keep the key, mode 0600.
#[test]
fn pairing_refuses_a_wrong_code_then_pairs_with_the_right_one() {
    let _serial = one_at_a_time();
    let scratch = Scratch::new("sec-pair");
    let (recv_dir, send_dir) = (scratch.path("recv-config"), scratch.path("send-config"));
    let port = free_port().to_string();
    let y4m = scratch.path("shown.y4m");
    let recv = spawn_in(
        &scratch,
        "recv",
        &strs(&recv_args(&port, "udp", "60", &y4m, &[])),
        &recv_dir,
    );
    let err = wait_for(&recv, "picam pairing code:", Duration::from_secs(15));
    let code = err
        .lines()
        .find_map(|l| l.trim().strip_prefix("picam pairing code:"))
        .unwrap_or_else(|| panic!("no pairing code shown:\n{err}"))
        .trim()
        .to_string();
    let bad = wrong_code(&code);

    let (ok, _, bad_err) = spawn_in(
        &scratch,
        "send-bad",
        &strs(&send_args(&port, "udp", "3", &["--pair", &bad])),
        &send_dir,
    )
    .wait(Duration::from_secs(40));
    assert!(
        !ok,
        "pairing with the wrong code {bad} (right: {code}) succeeded"
    );
    assert!(
        bad_err.contains("the code does not match"),
        "wrong code: {bad_err}"
    );
    assert!(
        !send_dir.join("sender.key").exists(),
        "a key kept after a wrong code"
    );

    let (ok, send_out, send_err) = spawn_in(
        &scratch,
        "send-good",
        &strs(&send_args(&port, "udp", "3", &["--pair", &code])),
        &send_dir,
    )
    .wait(Duration::from_secs(40));
    assert!(ok, "pairing with the right code {code} failed:\n{send_err}");
    std::thread::sleep(Duration::from_millis(500));
    recv.terminate();
    let (recv_ok, recv_out, recv_err) = recv.wait(Duration::from_secs(20));
    assert!(recv_ok, "{recv_err}");
    let shown = pictures(&y4m);
    let sent = num(&last_record(&send_out)["frames_sent"]);
    assert!(
        shown.len() >= 45,
        "{} pictures shown of {sent} sent after pairing:\n{recv_err}",
        shown.len()
    );
    assert_in_order(&shown);
    for key in [recv_dir.join("receiver.key"), send_dir.join("sender.key")] {
        assert_eq!(mode(&key), 0o600, "{}", key.display());
    }
    assert_eq!(
        std::fs::read(recv_dir.join("receiver.key")).unwrap(),
        std::fs::read(send_dir.join("sender.key")).unwrap(),
        "both sides keep the same key"
    );
    eprintln!(
        "paired with {code}; {} shown of {sent}; {}",
        shown.len(),
        last_record(&recv_out)
    );
}

/// (e) A key file others can read is refused on both sides, naming the file and the fix.
#[test]
fn key_file_readable_by_others_is_refused() {
    let scratch = Scratch::new("sec-perms");
    let key = keygen_named(&scratch, "k");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let port = free_port().to_string();
    for side in ["send", "recv"] {
        let args = match side {
            "send" => send_args(&port, "udp", "2", &["--key", &key]),
            _ => recv_args(&port, "udp", "2", &scratch.path("x.y4m"), &["--key", &key]),
        };
        let (ok, _, err) = spawn(&scratch, side, &strs(&args)).wait(Duration::from_secs(20));
        assert!(!ok, "{side} accepted a key file with mode 0644");
        assert!(
            err.contains(&key) && err.contains("chmod 600"),
            "{side}: {err}"
        );
    }
}

/// A small fast generator for the flood (no dependency needed).
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let r = self.next().to_le_bytes();
            chunk.copy_from_slice(&r[..chunk.len()]);
        }
    }
}

/// Sends garbage from 127.0.0.1 to `to` as fast as a tight loop allows, until `stop`, at
/// most `max` datagrams, for at most `secs`. Three of four are shaped like picam
/// packets (magic 0x5043, version 2, kind 1, 8 or 10, random session and body).
fn flood(to: SocketAddr, stop: Arc<AtomicBool>, max: u64, secs: Duration) -> u64 {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut buf = [0u8; 1400];
    let mut sent = 0u64;
    let end = Instant::now() + secs;
    while sent < max && !stop.load(Ordering::Relaxed) {
        if sent % 4096 == 0 && Instant::now() > end {
            break;
        }
        let r = rng.next();
        let len = match r % 4 {
            0 => 1 + (r >> 8) as usize % 1400,
            1 => 40 + (r >> 8) as usize % 160, // handshake-sized
            _ => 100 + (r >> 8) as usize % 1300,
        };
        rng.fill(&mut buf[..len]);
        if r % 4 != 0 && len >= 8 {
            buf[0] = 0x50;
            buf[1] = 0x43;
            buf[2] = 2;
            buf[3] = [1, 8, 10][(r >> 20) as usize % 3];
        }
        if socket.send_to(&buf[..len], to).is_ok() {
            sent += 1;
        }
    }
    sent
}

/// (f) A flood of garbage from the sender's own address (127.0.0.1) while a keyed
/// stream runs: at least 95% of the frames sent are shown (the bar), no session
/// is adopted from it.
#[test]
fn spoofed_flood_from_the_senders_address_leaves_the_stream_alone() {
    let _serial = one_at_a_time();
    let scratch = Scratch::new("sec-flood");
    let key = common::key(&scratch);
    let port = free_port().to_string();
    let y4m = scratch.path("shown.y4m");
    let recv = spawn(
        &scratch,
        "recv",
        &strs(&recv_args(&port, "udp", "15", &y4m, &["--key", &key])),
    );
    std::thread::sleep(Duration::from_millis(400));
    let send = spawn(
        &scratch,
        "send",
        &strs(&send_args(&port, "udp", "12", &["--key", &key])),
    );
    // Let the session start, then flood for 10 s of the sender's 12.
    std::thread::sleep(Duration::from_millis(1500));
    let to: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let begun = Instant::now();
    let flooder = {
        let stop = stop.clone();
        std::thread::spawn(move || flood(to, stop, 1_500_000, Duration::from_secs(10)))
    };
    let flooded = flooder.join().unwrap();
    let flood_secs = begun.elapsed().as_secs_f64();
    let (send_ok, send_out, send_err) = send.wait(LIMIT);
    stop.store(true, Ordering::Relaxed);
    let (recv_ok, recv_out, recv_err) = recv.wait(LIMIT);
    assert!(send_ok && recv_ok, "{send_err}\n{recv_err}");
    let s = last_record(&send_out);
    let r = last_record(&recv_out);
    let (sent, shown) = (num(&s["frames_sent"]), num(&r["frames_shown"]));
    let percent = 100.0 * shown as f64 / sent.max(1) as f64;
    eprintln!(
        "flood: {flooded} datagrams in {flood_secs:.1} s ({:.0}/s); {shown} of {sent} frames shown ({percent:.1}%)\nreceiver: {r}\nsender: {s}",
        flooded as f64 / flood_secs
    );
    assert!(sent >= 300, "only {sent} frames sent: {send_err}");
    assert_eq!(r["sessions"], 1, "a session adopted from the flood: {r}");
    assert!(
        num(&r["secure"]["unauthenticated"]) > 0,
        "flood not counted as unauthenticated: {r}"
    );
    assert!(
        percent >= 95.0,
        "{shown} of {sent} frames shown ({percent:.1}%) under a flood of {flooded} datagrams"
    );
    assert_in_order(&pictures(&y4m));
}

/// Seconds until `stream` is closed by the peer (read returns 0 or an error).
fn until_closed(mut stream: TcpStream, limit: Duration) -> Option<Duration> {
    let begun = Instant::now();
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 4096];
    while begun.elapsed() < limit {
        match stream.read(&mut buf) {
            Ok(0) => return Some(begun.elapsed()),
            Ok(_) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return Some(begun.elapsed()),
        }
    }
    None
}

/// (g) TCP connections that never authenticate (one sends garbage, one nothing) while a
/// keyed TCP stream runs: the stream goes on, and both are closed within a few seconds.
#[test]
fn tcp_connection_that_never_authenticates_is_closed_and_disturbs_nothing() {
    let _serial = one_at_a_time();
    use std::io::Write;
    let scratch = Scratch::new("sec-tcp-stray");
    let key = common::key(&scratch);
    let port = free_port().to_string();
    let y4m = scratch.path("shown.y4m");
    let recv = spawn(
        &scratch,
        "recv",
        &strs(&recv_args(&port, "tcp", "12", &y4m, &["--key", &key])),
    );
    std::thread::sleep(Duration::from_millis(400));
    let send = spawn(
        &scratch,
        "send",
        &strs(&send_args(&port, "tcp", "9", &["--key", &key])),
    );
    std::thread::sleep(Duration::from_millis(2000));
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut garbage = TcpStream::connect(addr).expect("connect");
    let mut rng = XorShift(7);
    let mut junk = vec![0u8; 4096];
    rng.fill(&mut junk);
    // Length-prefixed-looking junk first, then more of it.
    junk[..2].copy_from_slice(&600u16.to_be_bytes());
    let _ = garbage.write_all(&junk);
    let silent = TcpStream::connect(addr).expect("connect");
    let (a, b) = (
        std::thread::spawn(move || until_closed(garbage, Duration::from_secs(8))),
        std::thread::spawn(move || until_closed(silent, Duration::from_secs(8))),
    );
    let (garbage_closed, silent_closed) = (a.join().unwrap(), b.join().unwrap());
    let (send_ok, send_out, send_err) = send.wait(LIMIT);
    let (recv_ok, recv_out, recv_err) = recv.wait(LIMIT);
    assert!(send_ok && recv_ok, "{send_err}\n{recv_err}");
    let s = last_record(&send_out);
    let r = last_record(&recv_out);
    let (sent, shown) = (num(&s["frames_sent"]), num(&r["frames_shown"]));
    eprintln!(
        "stray TCP: garbage closed after {garbage_closed:?}, silent after {silent_closed:?}; {shown} of {sent} shown; {r}"
    );
    for (what, closed) in [("garbage", garbage_closed), ("silent", silent_closed)] {
        let took =
            closed.unwrap_or_else(|| panic!("the {what} connection is still open after 8 s"));
        assert!(
            took <= Duration::from_secs(5),
            "{what} closed after {took:?}"
        );
    }
    assert_eq!(r["sessions"], 1, "{r}");
    assert!(
        shown as f64 >= 0.9 * sent as f64,
        "{shown} of {sent} frames shown:\n{recv_err}"
    );
    // No second of the stray connections' lifetime went without pictures.
    let records = json_records(&recv_out);
    let quiet: Vec<&Value> = records
        .iter()
        .filter(|r| r["last"] == false)
        .filter(|r| (3.0..8.0).contains(&r["t"].as_f64().unwrap_or(0.0)))
        .filter(|r| r["fps_out"].as_f64().unwrap_or(0.0) < 20.0)
        .collect();
    assert!(quiet.is_empty(), "seconds with few pictures: {quiet:?}");
    assert_in_order(&pictures(&y4m));
}

/// (h) Every sealed datagram delivered twice (a proxy forwards each at once and again
/// 100 ms later): the copies are counted as replays and dropped; the pictures are
/// those sent, in order.
#[test]
fn replayed_datagrams_are_dropped_and_counted() {
    let _serial = one_at_a_time();
    let scratch = Scratch::new("sec-replay");
    let key = common::key(&scratch);
    let recv_port = free_port();
    let proxy = UdpSocket::bind("127.0.0.1:0").unwrap();
    let proxy_port = proxy.local_addr().unwrap().port().to_string();
    let y4m = scratch.path("shown.y4m");
    let recv = spawn(
        &scratch,
        "recv",
        &strs(&recv_args(
            &recv_port.to_string(),
            "udp",
            "8",
            &y4m,
            &["--key", &key],
        )),
    );
    let receiver: SocketAddr = format!("127.0.0.1:{recv_port}").parse().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let relay = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            proxy
                .set_read_timeout(Some(Duration::from_millis(10)))
                .unwrap();
            let mut sender: Option<SocketAddr> = None;
            let mut later: std::collections::VecDeque<(Instant, Vec<u8>)> = Default::default();
            let mut buf = [0u8; 65536];
            let (mut forwarded, mut replayed) = (0u64, 0u64);
            while !stop.load(Ordering::Relaxed) {
                let now = Instant::now();
                while later.front().is_some_and(|(at, _)| *at <= now) {
                    let (_, packet) = later.pop_front().unwrap();
                    let _ = proxy.send_to(&packet, receiver);
                    replayed += 1;
                }
                let Ok((n, from)) = proxy.recv_from(&mut buf) else {
                    continue;
                };
                if from == receiver {
                    if let Some(to) = sender {
                        let _ = proxy.send_to(&buf[..n], to);
                    }
                } else {
                    sender = Some(from);
                    let _ = proxy.send_to(&buf[..n], receiver);
                    forwarded += 1;
                    later.push_back((now + Duration::from_millis(100), buf[..n].to_vec()));
                }
            }
            (forwarded, replayed)
        })
    };
    std::thread::sleep(Duration::from_millis(400));
    let send = spawn(
        &scratch,
        "send",
        &strs(&send_args(&proxy_port, "udp", "5", &["--key", &key])),
    );
    let (send_ok, send_out, send_err) = send.wait(LIMIT);
    let (recv_ok, recv_out, recv_err) = recv.wait(LIMIT);
    stop.store(true, Ordering::Relaxed);
    let (forwarded, replayed) = relay.join().unwrap();
    assert!(send_ok && recv_ok, "{send_err}\n{recv_err}");
    let s = last_record(&send_out);
    let r = last_record(&recv_out);
    let (sent, shown) = (num(&s["frames_sent"]), num(&r["frames_shown"]));
    eprintln!("replay: {forwarded} forwarded, {replayed} replayed; {shown} of {sent} shown; {r}");
    assert!(replayed > 100, "the proxy replayed only {replayed}");
    assert!(
        num(&r["secure"]["replayed"]) > 0,
        "replays not counted: {r}"
    );
    assert_eq!(r["sessions"], 1, "{r}");
    assert!(
        shown as f64 >= 0.9 * sent as f64,
        "{shown} of {sent} frames shown:\n{recv_err}"
    );
    let pictures = pictures(&y4m);
    assert_in_order(&pictures);
}
