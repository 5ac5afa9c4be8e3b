//! Attacks on the handshake (issue 18, "a restart can be blocked"): real `picam`
//! processes on loopback, bounded in time, killed on drop. Every flood runs at a fixed
//! rate, whatever the machine's speed.
//!
//! - A receiver restarted during a flood of 5,000 forged HELLOs a second (random bytes,
//!   no key) shows pictures again within 4 s.
//! - HELLOs of an earlier session, captured by a proxy and replayed after each real
//!   one, do not stop the handshake.
//! - Forged WELCOMEs, sent the moment a HELLO passes (an on-path sniffer), from another
//!   address and spoofed from the receiver's own, do not stop it either.
//! - TCP: 3,000 empty connections a second from another host do not keep the picture
//!   away.

mod common;

use std::collections::VecDeque;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::flood::{every_ms, XorShift};
use common::keyed::*;
use common::{free_port, spawn, Picam, Scratch};

/// The receiver's log line for its first picture.
const FIRST_PICTURE: &str = "first picture shown";
/// picam's common header: magic, version, kind, session id.
const MAGIC: [u8; 2] = [0x50, 0x43];
const VERSION: u8 = 2;
const KIND_HELLO: u8 = 8;
const KIND_WELCOME: u8 = 9;
/// Common header, epoch, Noise message (ephemeral key, encrypted time, tag).
const HELLO_LEN: usize = 8 + 1 + 32 + 8 + 16;
/// Common header, epoch, Noise message (ephemeral key, tag).
const WELCOME_LEN: usize = 8 + 1 + 32 + 16;

/// A packet of `kind` and `len` with a valid common header, session and epoch, the rest
/// random: what an attacker without the key can make.
fn forged(rng: &mut XorShift, kind: u8, len: usize, session: [u8; 4], epoch: u8) -> Vec<u8> {
    let mut p = vec![0u8; len];
    rng.fill(&mut p);
    p[..2].copy_from_slice(&MAGIC);
    p[2] = VERSION;
    p[3] = kind;
    p[4..8].copy_from_slice(&session);
    p[8] = epoch;
    p
}

/// How long after `since` the receiver logged its first picture, waiting up to `limit`.
fn first_picture(p: &Picam, since: Instant, limit: Duration) -> Option<Duration> {
    while since.elapsed() < limit {
        if p.stderr_now().contains(FIRST_PICTURE) {
            return Some(since.elapsed());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

fn recv(scratch: &Scratch, tag: &str, port: &str, protocol: &str, key: &str) -> Picam {
    let y4m = scratch.path(&format!("{tag}.y4m"));
    spawn(
        scratch,
        tag,
        &strs(&recv_args(port, protocol, "20", &y4m, &["--key", key])),
    )
}

fn send(scratch: &Scratch, tag: &str, port: &str, protocol: &str, key: &str, secs: &str) -> Picam {
    spawn(
        scratch,
        tag,
        &strs(&send_args(port, protocol, secs, &["--key", key])),
    )
}

#[test]
fn a_receiver_restarted_during_a_forged_hello_flood_shows_pictures_within_4_s() {
    const RATE: u64 = 5_000;
    let _serial = one_at_a_time();
    let scratch = Scratch::new("hs-restart");
    let key = common::key(&scratch);
    let port = free_port().to_string();
    let mut first = recv(&scratch, "recv1", &port, "udp", &key);
    first.wait_ready();
    let sender = send(&scratch, "send", &port, "udp", &key, "16");
    assert!(
        first_picture(&first, Instant::now(), Duration::from_secs(10)).is_some(),
        "no picture before the flood: {}",
        first.stderr_now()
    );
    // The flood: 5 forged HELLOs every millisecond (5,000/s) from another port of the
    // sender's host, random sessions and bodies.
    let to: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let flooder = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
            let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
            let mut sent = 0u64;
            let ticks = every_ms(&stop, Duration::from_secs(15), || {
                for _ in 0..RATE / 1000 {
                    let r = rng.next();
                    let hello = forged(
                        &mut rng,
                        KIND_HELLO,
                        HELLO_LEN,
                        (r as u32).to_be_bytes(),
                        (r >> 32) as u8,
                    );
                    if socket.send_to(&hello, to).is_ok() {
                        sent += 1;
                    }
                }
            });
            (sent, ticks)
        })
    };
    std::thread::sleep(Duration::from_millis(1000));
    first.terminate();
    let (first_ok, _, first_err) = first.wait(Duration::from_secs(10));
    assert!(first_ok, "the first receiver failed: {first_err}");
    let restarted = Instant::now();
    let second = recv(&scratch, "recv2", &port, "udp", &key);
    let shown_after = first_picture(&second, restarted, Duration::from_secs(10));
    stop.store(true, Ordering::Relaxed);
    let (flooded, ticks) = flooder.join().unwrap();
    let rate = flooded as f64 / (ticks as f64 / 1000.0);
    eprintln!(
        "forged HELLOs: {flooded} at {rate:.0}/s; picture after the restart: {shown_after:?}"
    );
    second.terminate();
    let (_, recv_out, recv_err) = second.wait(LIMIT);
    drop(sender);
    let shown_after = shown_after.unwrap_or_else(|| {
        panic!("no picture within 10 s of the restart under {rate:.0} forged HELLOs/s:\n{recv_err}")
    });
    assert!(
        shown_after <= Duration::from_secs(4),
        "first picture {shown_after:?} after the restart (bar 4 s)"
    );
    assert!(rate >= 4_000.0, "the flood ran at {rate:.0}/s only");
    let r = last_record(&recv_out);
    assert!(
        num(&r["secure"]["unauthenticated"]) > 1_000,
        "the flood did not reach the receiver: {r}"
    );
    assert_eq!(r["sessions"], 1, "a session adopted from the flood: {r}");
}

/// Real HELLOs the proxy drops at the start of `REPLAY`.
const REAL_HELLOS_LOST_WHILE_REPLAYING: u64 = 2;

/// What the proxy does besides forwarding.
const CAPTURE: u8 = 0;
const REPLAY: u8 = 1;
const FORGE_WELCOMES: u8 = 2;

/// A UDP proxy between one sender and the receiver at `to`: the sender sends to the
/// proxy's port; everything is forwarded both ways. In `CAPTURE` it keeps a copy of each
/// HELLO; in `REPLAY` it sends every captured HELLO to the receiver right after each
/// real one (and loses the first real ones); in `FORGE_WELCOMES` it answers each HELLO at once with two forged
/// WELCOMEs (right session and epoch, random body), one from another socket and one
/// spoofed from the proxy's own port, the address the sender sends to.
struct Proxy {
    port: u16,
    mode: Arc<AtomicU8>,
    captured: Arc<Mutex<Vec<Vec<u8>>>>,
    /// (real HELLOs forwarded after capturing, HELLOs replayed, WELCOMEs forged).
    counts: Arc<Mutex<(u64, u64, u64)>>,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Proxy {
    fn start(to: SocketAddr) -> Self {
        let listen = UdpSocket::bind("127.0.0.1:0").unwrap();
        let upstream = UdpSocket::bind("127.0.0.1:0").unwrap();
        let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
        for s in [&listen, &upstream] {
            s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        }
        let port = listen.local_addr().unwrap().port();
        let mode = Arc::new(AtomicU8::new(CAPTURE));
        let captured = Arc::new(Mutex::new(Vec::new()));
        let counts = Arc::new(Mutex::new((0, 0, 0)));
        let stop = Arc::new(AtomicBool::new(false));
        let sender: Arc<Mutex<Option<SocketAddr>>> = Arc::new(Mutex::new(None));
        let deadline = Instant::now() + Duration::from_secs(60);
        let forward = {
            let (listen, upstream) = (listen.try_clone().unwrap(), upstream.try_clone().unwrap());
            let (mode, captured, counts, stop, sender) = (
                mode.clone(),
                captured.clone(),
                counts.clone(),
                stop.clone(),
                sender.clone(),
            );
            std::thread::spawn(move || {
                let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
                let mut buf = [0u8; 65_536];
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    let Ok((n, from)) = listen.recv_from(&mut buf) else {
                        continue;
                    };
                    *sender.lock().unwrap() = Some(from);
                    let packet = &buf[..n];
                    let hello = n == HELLO_LEN && packet[3] == KIND_HELLO;
                    let mode = mode.load(Ordering::Relaxed);
                    if hello && mode == FORGE_WELCOMES {
                        let session: [u8; 4] = packet[4..8].try_into().unwrap();
                        for socket in [&stranger, &listen] {
                            let welcome =
                                forged(&mut rng, KIND_WELCOME, WELCOME_LEN, session, packet[8]);
                            let _ = socket.send_to(&welcome, from);
                            counts.lock().unwrap().2 += 1;
                        }
                    }
                    // While replaying, the first real HELLOs are lost on the way, so
                    // the sender retries and replays follow several real ones.
                    let lost = hello
                        && mode == REPLAY
                        && counts.lock().unwrap().0 < REAL_HELLOS_LOST_WHILE_REPLAYING;
                    if !lost {
                        let _ = upstream.send_to(packet, to);
                    }
                    if hello {
                        match mode {
                            CAPTURE => captured.lock().unwrap().push(packet.to_vec()),
                            REPLAY => {
                                counts.lock().unwrap().0 += 1;
                                for old in captured.lock().unwrap().iter() {
                                    let _ = upstream.send_to(old, to);
                                    counts.lock().unwrap().1 += 1;
                                }
                            }
                            _ => counts.lock().unwrap().0 += 1,
                        }
                    }
                }
            })
        };
        let backward = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 65_536];
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    let Ok((n, _)) = upstream.recv_from(&mut buf) else {
                        continue;
                    };
                    if let Some(to) = *sender.lock().unwrap() {
                        let _ = listen.send_to(&buf[..n], to);
                    }
                }
            })
        };
        Proxy {
            port,
            mode,
            captured,
            counts,
            stop,
            threads: vec![forward, backward],
        }
    }

    fn counts(&self) -> (u64, u64, u64) {
        *self.counts.lock().unwrap()
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

#[test]
fn an_earlier_sessions_hellos_replayed_after_each_real_one_do_not_stop_the_handshake() {
    let _serial = one_at_a_time();
    let scratch = Scratch::new("hs-replay");
    let key = common::key(&scratch);
    let port = free_port().to_string();
    let proxy = Proxy::start(format!("127.0.0.1:{port}").parse().unwrap());
    let via = proxy.port.to_string();
    // An earlier session, recorded by the proxy: its HELLOs, unanswered (no receiver
    // yet), so the sender retries a few times.
    let earlier = send(&scratch, "send1", &via, "udp", &key, "2");
    let (earlier_ok, _, earlier_err) = earlier.wait(LIMIT);
    assert!(earlier_ok, "{earlier_err}");
    let captured = proxy.captured.lock().unwrap().len();
    assert!(captured >= 3, "only {captured} HELLOs captured");
    proxy.mode.store(REPLAY, Ordering::Relaxed);
    let mut receiver = recv(&scratch, "recv", &port, "udp", &key);
    receiver.wait_ready();
    let started = Instant::now();
    let sender = send(&scratch, "send2", &via, "udp", &key, "6");
    let shown = first_picture(&receiver, started, Duration::from_secs(8));
    let (real, replayed, _) = proxy.counts();
    eprintln!("{captured} old HELLOs, replayed {replayed} times after {real} real ones; first picture after {shown:?}");
    let (_, _, send_err) = sender.wait(LIMIT);
    receiver.terminate();
    let (_, recv_out, recv_err) = receiver.wait(LIMIT);
    let shown = shown.unwrap_or_else(|| {
        panic!(
            "no picture in 8 s with replayed HELLOs:\nreceiver:\n{recv_err}\nsender:\n{send_err}"
        )
    });
    assert!(
        real > REAL_HELLOS_LOST_WHILE_REPLAYING && replayed >= real * captured as u64,
        "the replays did not follow each real HELLO"
    );
    assert!(
        shown <= Duration::from_secs(3),
        "first picture after {shown:?}"
    );
    let r = last_record(&recv_out);
    assert!(
        num(&r["frames_shown"]) >= 60,
        "the stream did not go on: {r}"
    );
}

#[test]
fn forged_welcomes_from_anywhere_do_not_stop_the_handshake() {
    let _serial = one_at_a_time();
    let scratch = Scratch::new("hs-welcome");
    let key = common::key(&scratch);
    let port = free_port().to_string();
    let proxy = Proxy::start(format!("127.0.0.1:{port}").parse().unwrap());
    proxy.mode.store(FORGE_WELCOMES, Ordering::Relaxed);
    let mut receiver = recv(&scratch, "recv", &port, "udp", &key);
    receiver.wait_ready();
    let started = Instant::now();
    let sender = send(&scratch, "send", &proxy.port.to_string(), "udp", &key, "6");
    let shown = first_picture(&receiver, started, Duration::from_secs(8));
    let (hellos, _, forged_welcomes) = proxy.counts();
    eprintln!(
        "{forged_welcomes} forged WELCOMEs for {hellos} HELLOs; first picture after {shown:?}"
    );
    let (_, send_out, send_err) = sender.wait(LIMIT);
    receiver.terminate();
    let (_, _, recv_err) = receiver.wait(LIMIT);
    let shown = shown.unwrap_or_else(|| {
        panic!(
            "no picture in 8 s with forged WELCOMEs:\nreceiver:\n{recv_err}\nsender:\n{send_err}"
        )
    });
    assert!(forged_welcomes >= 2, "no WELCOME was forged");
    assert!(
        shown <= Duration::from_secs(2),
        "first picture after {shown:?}"
    );
    let s = last_record(&send_out);
    assert_eq!(
        s["secure"]["handshakes"], 1,
        "one handshake, not restarted: {s}"
    );
}

#[test]
fn tcp_empty_connections_from_another_host_do_not_keep_the_picture_away() {
    const PER_TICK: usize = 3; // every millisecond: 3,000 connections a second
    const KEPT_OPEN: usize = 300;
    let _serial = one_at_a_time();
    let scratch = Scratch::new("hs-tcp");
    let key = common::key(&scratch);
    let port = free_port().to_string();
    let mut receiver = recv(&scratch, "recv", &port, "tcp", &key);
    receiver.wait_ready();
    let to: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let flooder = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let mut open = VecDeque::new();
            let mut made = 0u64;
            let ticks = every_ms(&stop, Duration::from_secs(15), || {
                rt.block_on(async {
                    for _ in 0..PER_TICK {
                        // From 127.0.0.2: another host than the sender's 127.0.0.1.
                        let Ok(socket) = tokio::net::TcpSocket::new_v4() else {
                            continue;
                        };
                        if socket.bind("127.0.0.2:0".parse().unwrap()).is_err() {
                            continue;
                        }
                        let connect =
                            tokio::time::timeout(Duration::from_millis(100), socket.connect(to));
                        if let Ok(Ok(stream)) = connect.await {
                            open.push_back(stream);
                            made += 1;
                            if open.len() > KEPT_OPEN {
                                open.pop_front();
                            }
                        }
                    }
                });
            });
            (made, ticks)
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    let sender = send(&scratch, "send", &port, "tcp", &key, "8");
    let shown = first_picture(&receiver, started, Duration::from_secs(8));
    stop.store(true, Ordering::Relaxed);
    let (made, ticks) = flooder.join().unwrap();
    let rate = made as f64 / (ticks as f64 / 1000.0);
    eprintln!("{made} empty connections at {rate:.0}/s; first picture after {shown:?}");
    let (_, _, send_err) = sender.wait(LIMIT);
    receiver.terminate();
    let (_, _, recv_err) = receiver.wait(LIMIT);
    let shown = shown.unwrap_or_else(|| {
        panic!("no picture in 8 s under {rate:.0} connections/s:\nreceiver:\n{recv_err}\nsender:\n{send_err}")
    });
    assert!(
        rate >= 2_000.0,
        "the flood ran at {rate:.0} connections/s only"
    );
    assert!(
        shown <= Duration::from_secs(4),
        "first picture after {shown:?}"
    );
}
