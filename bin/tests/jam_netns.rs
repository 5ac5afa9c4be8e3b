//! The router "traffic jam" on the real kernel path: three network namespaces (sender,
//! router, receiver) joined by veth pairs, with a `tbf` qdisc on the router's link to
//! the receiver (3 Mbit/s, 400 ms of queue) and picam configured for 8 Mbit/s.
//!
//! The guarded run (default) must keep latency within budget once settled; the
//! unguarded baseline (`--no-congestion-control`) in the same run shows what the
//! original pipeline did. Needs root, iproute2 (`ip`, `tc`) and a kernel that builds the
//! topology: under `CI=true` a missing one fails the test, elsewhere it skips loudly
//! (`testkit`).
//!
//! `PICAM_JAM_SECONDS` sets each run's length (default 15) and `PICAM_JAM_REPORT=FILE`
//! writes the measured table as Markdown (the BENCHMARKS table: `PICAM_JAM_SECONDS=30
//! PICAM_JAM_REPORT=target/jam.md`). `scripts/bench-jam.sh` is a different bench: issue
//! 22's before/after comparison of two builds.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{json_records, Scratch};

const RATE: &str = "3mbit";
const SETTLE_SECS: f64 = 5.0;

/// Three namespaces and two veth pairs, removed on drop.
struct Topology {
    ns: [String; 3],
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn in_ns(ns: &str, args: &[&str]) -> Result<(), String> {
    let mut full = vec!["netns", "exec", ns];
    full.extend_from_slice(args);
    ip(&full)
}

impl Topology {
    fn new(tag: &str) -> Result<Self, String> {
        Self::with_rate(tag, RATE)
    }

    /// The topology with the router's link at `rate` (a `tc` rate such as "8mbit").
    fn with_rate(tag: &str, rate: &str) -> Result<Self, String> {
        let id = std::process::id() % 100_000;
        let ns = ["snd", "rtr", "rcv"].map(|r| format!("picam-{r}-{tag}-{id}"));
        let topo = Topology { ns: ns.clone() };
        for n in &ns {
            ip(&["netns", "add", n])?;
            in_ns(n, &["ip", "link", "set", "lo", "up"])?;
        }
        let [snd, rtr, rcv] = &ns;
        // Private test subnets that exist only inside these namespaces; no default route.
        ip(&[
            "link", "add", "pcs0", "netns", snd, "type", "veth", "peer", "name", "pcr0", "netns",
            rtr,
        ])?;
        ip(&[
            "link", "add", "pcr1", "netns", rtr, "type", "veth", "peer", "name", "pcv0", "netns",
            rcv,
        ])?;
        in_ns(snd, &["ip", "addr", "add", "10.213.1.1/24", "dev", "pcs0"])?;
        in_ns(rtr, &["ip", "addr", "add", "10.213.1.2/24", "dev", "pcr0"])?;
        in_ns(rtr, &["ip", "addr", "add", "10.213.2.1/24", "dev", "pcr1"])?;
        in_ns(rcv, &["ip", "addr", "add", "10.213.2.2/24", "dev", "pcv0"])?;
        for (n, dev) in [(snd, "pcs0"), (rtr, "pcr0"), (rtr, "pcr1"), (rcv, "pcv0")] {
            in_ns(n, &["ip", "link", "set", dev, "up"])?;
        }
        in_ns(rtr, &["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
        in_ns(
            snd,
            &["ip", "route", "add", "10.213.2.0/24", "via", "10.213.1.2"],
        )?;
        in_ns(
            rcv,
            &["ip", "route", "add", "10.213.1.0/24", "via", "10.213.2.1"],
        )?;
        // The jam: the router forwards to the receiver at 3 Mbit/s with 400 ms of queue.
        in_ns(
            rtr,
            &[
                "tc", "qdisc", "add", "dev", "pcr1", "root", "tbf", "rate", rate, "burst",
                "32kbit", "latency", "400ms",
            ],
        )?;
        Ok(topo)
    }

    /// Changes the router's link rate in place (`tc qdisc change`): a capacity step.
    fn set_rate(&self, rate: &str) -> Result<(), String> {
        in_ns(
            &self.ns[1],
            &[
                "tc", "qdisc", "change", "dev", "pcr1", "root", "tbf", "rate", rate, "burst",
                "32kbit", "latency", "400ms",
            ],
        )
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for n in &self.ns {
            let _ = ip(&["netns", "delete", n]);
        }
    }
}

/// Settled latency of one run, from the receiver's once-a-second records after
/// `SETTLE_SECS` until the sender stopped: median of the per-second medians, 95th
/// percentile of the per-second p95s, and the largest latency seen.
#[derive(Clone, Copy, Debug)]
struct Settled {
    p50: f64,
    p95: f64,
    max: f64,
    fps: f64,
    mbit: f64,
    /// The sender's target bitrate once settled (median of its records), Mbit/s.
    target_mbit: Option<f64>,
}

fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1]
}

fn settled(stdout: &str, seconds: u64) -> Option<Settled> {
    // Only while the sender ran: the receiver runs 3 s longer, and its empty records
    // would lower the mean frame rate and bitrate by ~10 % in a 30 s run.
    let records: Vec<_> = json_records(stdout)
        .into_iter()
        .filter(|r| r["last"] == false)
        .filter(|r| (SETTLE_SECS..=seconds as f64 + 0.5).contains(&r["t"].as_f64().unwrap_or(0.0)))
        .collect();
    let lat: Vec<&serde_json::Value> = records
        .iter()
        .map(|r| &r["latency_ms"])
        .filter(|l| l.is_object())
        .collect();
    if lat.is_empty() {
        return None;
    }
    let field = |k: &str| lat.iter().filter_map(|l| l[k].as_f64()).collect::<Vec<_>>();
    let n = records.len() as f64;
    Some(Settled {
        p50: percentile(field("p50"), 0.5),
        p95: percentile(field("p95"), 0.95),
        max: field("max").into_iter().fold(0.0, f64::max),
        fps: records
            .iter()
            .filter_map(|r| r["fps_out"].as_f64())
            .sum::<f64>()
            / n,
        mbit: records
            .iter()
            .filter_map(|r| r["bitrate_bps"].as_f64())
            .sum::<f64>()
            / n
            / 1e6,
        target_mbit: None,
    })
}

/// The median of the sender's target bitrates after `SETTLE_SECS`, Mbit/s.
fn settled_target(stdout: &str) -> Option<f64> {
    let targets: Vec<f64> = json_records(stdout)
        .into_iter()
        .filter(|r| r["last"] == false && r["t"].as_f64().unwrap_or(0.0) > SETTLE_SECS)
        .filter_map(|r| r["target_bitrate_bps"].as_f64())
        .collect();
    (!targets.is_empty()).then(|| percentile(targets, 0.5) / 1e6)
}

fn run(
    topo: &Topology,
    scratch: &Scratch,
    protocol: &str,
    guarded: bool,
    seconds: u64,
    source: &[&str],
    recv_args: &[&str],
) -> Option<Settled> {
    let picam = env!("CARGO_BIN_EXE_picam");
    let tag = format!(
        "{protocol}-{}{}",
        if guarded { "guarded" } else { "unguarded" },
        if source.is_empty() { "" } else { "-source" }
    );
    let tag = if recv_args.is_empty() {
        tag
    } else {
        tag + "-wire"
    };
    let send_out = scratch.path(&format!("{tag}.send.json"));
    let recv_out = scratch.path(&format!("{tag}.recv.json"));
    let recv_err = scratch.path(&format!("{tag}.recv.err"));
    let total = (seconds + 3).to_string();
    // The default, encrypted path: one key for both sides.
    let key = common::key(scratch);
    let recv = Command::new("ip")
        .args([
            "netns",
            "exec",
            &topo.ns[2],
            picam,
            "recv",
            "--headless",
            "--stats",
            "json",
        ])
        .args([
            "--bind",
            "10.213.2.2",
            "--port",
            "5000",
            "--protocol",
            protocol,
            "--duration",
            &total,
            "--key",
            &key,
        ])
        .args(recv_args)
        .env("PICAM_CONFIG_DIR", scratch.path("config"))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&recv_out).unwrap())
        .stderr(std::fs::File::create(&recv_err).unwrap())
        .env("PICAM_LOG", "info")
        .spawn()
        .expect("start receiver");
    // The sender starts once the receiver's socket is bound (its "receiving over" line).
    let ready_by = std::time::Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(&recv_err).is_ok_and(|e| e.contains("receiving over")) {
        assert!(
            std::time::Instant::now() < ready_by,
            "the receiver did not bind within 20 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut send = Command::new("ip");
    send.args([
        "netns",
        "exec",
        &topo.ns[0],
        picam,
        "send",
        "--remote",
        "10.213.2.2",
        "--port",
        "5000",
    ])
    .args([
        "--protocol",
        protocol,
        "--bitrate",
        "8000000",
        "--duration",
        &seconds.to_string(),
        "--key",
        &key,
        "--stats",
        "json",
    ])
    .args(source)
    .env("PICAM_CONFIG_DIR", scratch.path("config"))
    .stdin(Stdio::null())
    .stdout(std::fs::File::create(&send_out).unwrap())
    .stderr(std::fs::File::create(scratch.path(&format!("{tag}.send.err"))).unwrap());
    if !guarded {
        send.arg("--no-congestion-control");
    }
    let sent = common::Picam {
        child: send.spawn().expect("start sender"),
        stdout: send_out,
        stderr: scratch.path(&format!("{tag}.send.err")),
    }
    .wait(Duration::from_secs(seconds + 30));
    let received = common::Picam {
        child: recv,
        stdout: recv_out.clone(),
        stderr: scratch.path("z"),
    }
    .wait(Duration::from_secs(seconds + 30));
    assert!(sent.0, "{tag}: sender failed: {}", sent.2);
    assert!(received.0, "{tag}: receiver failed");
    let result = settled(&received.1, seconds).map(|s| Settled {
        target_mbit: settled_target(&sent.1),
        ..s
    });
    eprintln!("{tag}: {result:?}");
    result
}

fn cell(s: Option<Settled>) -> String {
    match s {
        Some(s) => format!(
            "{:.0} | {:.0} | {:.0} | {:.1} | {:.2}",
            s.p50, s.p95, s.max, s.fps, s.mbit
        ),
        None => "no picture | - | - | 0 | -".into(),
    }
}

/// Root, `ip` and `tc`, through `testkit` (fails under CI, skips loudly elsewhere).
fn prerequisites(test: &str) -> bool {
    testkit::require_root(test, "network namespaces and tc qdiscs")
        && testkit::require_tools(test, &["ip", "tc"], "iproute2")
}

/// The topology, or `None` after `testkit` said why it cannot be built here (a kernel
/// without namespaces, veth or tbf): a prerequisite like root, so it fails under CI.
fn topology(test: &str, tag: &str) -> Option<Topology> {
    match Topology::new(tag) {
        Ok(topo) => Some(topo),
        Err(e) => {
            testkit::require(
                test,
                false,
                "network namespaces, veth pairs and a tbf qdisc",
                &format!("a kernel with netns, veth and sch_tbf; here: {e}"),
            );
            None
        }
    }
}

/// Each run's length: `PICAM_JAM_SECONDS`, else `default`.
fn run_seconds(default: u64) -> u64 {
    std::env::var("PICAM_JAM_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

#[test]
fn latency_stays_bounded_through_a_3_mbit_router_queue() {
    const TEST: &str = "jam_netns::latency_stays_bounded_through_a_3_mbit_router_queue";
    if !prerequisites(TEST) {
        return;
    }
    let seconds = run_seconds(15);
    let scratch = Scratch::new("jam");
    let mut rows = Vec::new();
    for protocol in ["udp", "tcp"] {
        let Some(topo) = topology(TEST, protocol) else {
            return;
        };
        let guarded = run(&topo, &scratch, protocol, true, seconds, &[], &[]);
        drop(topo);
        let topo = Topology::new(protocol).expect("topology again");
        let unguarded = run(&topo, &scratch, protocol, false, seconds, &[], &[]);
        drop(topo);
        let g = guarded.unwrap_or_else(|| {
            panic!("{protocol}: guarded run showed no picture after {SETTLE_SECS} s")
        });
        // Generous bounds: a benchmark measures, a test only guards the promise.
        assert!(
            g.p95 < 300.0,
            "{protocol}: guarded settled p95 {:.0} ms",
            g.p95
        );
        assert!(
            g.fps > 10.0,
            "{protocol}: guarded run showed only {:.1} fps",
            g.fps
        );
        if let Some(u) = unguarded {
            assert!(
                u.p95 > 1.5 * g.p95 || u.fps < 0.5 * g.fps,
                "{protocol}: the unguarded baseline ({u:?}) should be clearly worse than guarded ({g:?})"
            );
        }
        let ratio = unguarded.map_or("-".into(), |u| format!("{:.1}x", u.p95 / g.p95));
        rows.push(format!("| {protocol} | guarded | {} | |", cell(guarded)));
        rows.push(format!(
            "| {protocol} | unguarded | {} | {ratio} |",
            cell(unguarded)
        ));
    }
    if let Ok(path) = std::env::var("PICAM_JAM_REPORT") {
        let table = format!(
            "| protocol | jam guard | p50 ms | p95 ms | max ms | fps shown | Mbit/s received | p95 unguarded / guarded |\n|---|---|---|---|---|---|---|---|\n{}\n",
            rows.join("\n")
        );
        std::fs::write(&path, table).expect("write report");
    }
}

/// The two small runs below take turns (each beside the main test above): three
/// encoders at once on a 2-core machine would measure the CPU, not the link.
static SMALL_RUNS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// `--source rpicam` on the raw path (the fake rpicam-vid, picam's libx264): the
/// congestion controller's bitrate reaches picam's encoder, so the sender's target
/// settles near the 3 Mbit/s link (it starts at 8) and latency stays bounded. With
/// rpicam-vid's own H.264 the bitrate could not follow. Runs beside the test above,
/// at 960x540 and 10 s, to add little time.
#[test]
fn rpicam_raw_bitrate_follows_a_3_mbit_router_queue() {
    const TEST: &str = "jam_netns::rpicam_raw_bitrate_follows_a_3_mbit_router_queue";
    let _one = SMALL_RUNS.lock().unwrap_or_else(|e| e.into_inner());
    if !prerequisites(TEST) {
        return;
    }
    let scratch = Scratch::new("jam-rpicam");
    let Some(topo) = topology(TEST, "rpi") else {
        return;
    };
    let source = format!("rpicam:{}", env!("CARGO_BIN_EXE_fake-rpicam-vid"));
    let args = ["--source", &source, "--width", "960", "--height", "540"];
    let g = run(&topo, &scratch, "udp", true, 10, &args, &[])
        .unwrap_or_else(|| panic!("rpicam raw: no picture after {SETTLE_SECS} s"));
    let target = g
        .target_mbit
        .expect("the sender reports its target bitrate");
    assert!(
        target < 4.5,
        "rpicam raw: the sender's target stayed at {target:.2} Mbit/s through a 3 Mbit/s link"
    );
    assert!(g.p95 < 300.0, "rpicam raw: settled p95 {:.0} ms", g.p95);
    assert!(g.fps > 10.0, "rpicam raw: only {:.1} fps shown", g.fps);
    if let Ok(path) = std::env::var("PICAM_JAM_REPORT") {
        let row = format!(
            "\n`--source rpicam` (raw, fake rpicam-vid, 960x540, udp, guarded, 10 s): p50 {:.0} ms, p95 {:.0} ms, max {:.0} ms, {:.1} fps shown, {:.2} Mbit/s received, sender target {target:.2} Mbit/s (starts at 8)\n",
            g.p50, g.p95, g.max, g.fps, g.mbit
        );
        let report = path.clone() + ".rpicam";
        std::fs::write(report, row).expect("write report");
    }
}

/// `--wire rtp` (test pattern, picam's RTP receiver sending receiver reports and
/// transport-wide feedback): the sender's feedback-driven bitrate settles near the
/// 3 Mbit/s link from 8, its pacing and stale-frame deadline keep latency bounded. 960x540 and 10 s, to add little time.
#[test]
fn rtp_bitrate_follows_a_3_mbit_router_queue_from_receiver_reports() {
    const TEST: &str = "jam_netns::rtp_bitrate_follows_a_3_mbit_router_queue_from_receiver_reports";
    let _one = SMALL_RUNS.lock().unwrap_or_else(|e| e.into_inner());
    if !prerequisites(TEST) {
        return;
    }
    let scratch = Scratch::new("jam-rtp");
    let Some(topo) = topology(TEST, "rtp") else {
        return;
    };
    let wire = ["--wire", "rtp"];
    let send = [&wire[..], &["--width", "960", "--height", "540"]].concat();
    // `PICAM_JAM_SECONDS` lengthens it for benches (10 s by default, to add little time).
    let seconds = run_seconds(10);
    let g = run(&topo, &scratch, "udp", true, seconds, &send, &wire)
        .unwrap_or_else(|| panic!("rtp: no picture after {SETTLE_SECS} s"));
    let target = g
        .target_mbit
        .expect("the sender reports its target bitrate");
    assert!(
        target < 4.5,
        "rtp: the sender's target stayed at {target:.2} Mbit/s through a 3 Mbit/s link"
    );
    assert!(g.p95 < 300.0, "rtp: settled p95 {:.0} ms", g.p95);
    assert!(g.fps > 10.0, "rtp: only {:.1} fps shown", g.fps);
    if let Ok(path) = std::env::var("PICAM_JAM_REPORT") {
        let row = format!(
            "\n`--wire rtp` (test pattern, 960x540, udp, guarded, 10 s): p50 {:.0} ms, p95 {:.0} ms, max {:.0} ms, {:.1} fps shown, {:.2} Mbit/s received, sender target {target:.2} Mbit/s (starts at 8)\n",
            g.p50, g.p95, g.max, g.fps, g.mbit
        );
        std::fs::write(path + ".rtp", row).expect("write report");
    }
}

/// How a run took one capacity step, from the receiver's once-a-second records.
#[derive(Debug)]
struct Step {
    /// The largest latency in the 3 s after the step, ms.
    transient_ms: f64,
    /// Seconds from the step to the end of the first once-a-second record whose p95 is
    /// back within `max(50 ms, 1.5 x the p95 before the step)` (so 1-2 s when it came
    /// back within the first second); `None` if it never came back.
    recovered_s: Option<f64>,
}

fn step_response(records: &[serde_json::Value], at: f64) -> Option<Step> {
    let lat = |r: &serde_json::Value, k: &str| r["latency_ms"][k].as_f64();
    let t = |r: &serde_json::Value| r["t"].as_f64().unwrap_or(0.0);
    let before: Vec<f64> = records
        .iter()
        .filter(|r| t(r) > at - 4.0 && t(r) <= at)
        .filter_map(|r| lat(r, "p95"))
        .collect();
    let bound = if before.is_empty() {
        50.0
    } else {
        (1.5 * percentile(before, 0.5)).max(50.0)
    };
    // A record covers the second before its `t`: the first one after the step ends at
    // least half a second after it (the step is timed from the receiver's start).
    let after: Vec<&serde_json::Value> = records.iter().filter(|r| t(r) > at + 0.5).collect();
    let transient_ms = after
        .iter()
        .filter(|r| t(r) <= at + 3.0)
        .filter_map(|r| lat(r, "max"))
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))?;
    // The first second that ends back within bound, counted from the step.
    let recovered_s = after
        .iter()
        .find(|r| lat(r, "p95").is_some_and(|p| p <= bound))
        .map(|r| t(r) - at);
    Some(Step {
        transient_ms,
        recovered_s,
    })
}

/// The capacity step of issue 22: the router's link goes 8 -> 2 -> 8 Mbit/s (`tc qdisc
/// change`) at a third and two thirds of the run, with 8 Mbit/s asked. CI's bounds are
/// generous (pictures keep coming every second, no latency over 1 s, some pictures
/// after each step); the transient and the time to recover are printed (the issue's
/// targets: transient <= 200 ms, recovered within 1 s). `PICAM_JAM_SECONDS` sets the
/// run's length (15 s by default).
#[test]
fn a_capacity_step_8_2_8_mbit_stays_bounded() {
    const TEST: &str = "jam_netns::a_capacity_step_8_2_8_mbit_stays_bounded";
    let _one = SMALL_RUNS.lock().unwrap_or_else(|e| e.into_inner());
    if !prerequisites(TEST) {
        return;
    }
    let seconds = run_seconds(15);
    let scratch = Scratch::new("jam-step");
    let topo = match Topology::with_rate("stp", "8mbit") {
        Ok(topo) => std::sync::Arc::new(topo),
        Err(e) => {
            testkit::require(
                TEST,
                false,
                "network namespaces, veth pairs and a tbf qdisc",
                &format!("a kernel with netns, veth and sch_tbf; here: {e}"),
            );
            return;
        }
    };
    let (down_at, up_at) = (seconds as f64 / 3.0, 2.0 * seconds as f64 / 3.0);
    // The steps are timed from the receiver's start (its stdout file appears at spawn),
    // which is the zero of its records' `t`.
    let stepper = {
        let topo = topo.clone();
        let started = scratch.path("udp-guarded.recv.json");
        std::thread::spawn(move || -> Result<(), String> {
            let wait_until = std::time::Instant::now() + Duration::from_secs(30);
            while !started.exists() {
                if std::time::Instant::now() > wait_until {
                    return Err("the receiver did not start within 30 s".into());
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            let zero = std::time::Instant::now();
            for (at, rate) in [(down_at, "2mbit"), (up_at, "8mbit")] {
                let when = zero + Duration::from_secs_f64(at);
                std::thread::sleep(when.saturating_duration_since(std::time::Instant::now()));
                topo.set_rate(rate)?;
            }
            Ok(())
        })
    };
    let g = run(&topo, &scratch, "udp", true, seconds, &[], &[]);
    stepper
        .join()
        .expect("the stepping thread")
        .unwrap_or_else(|e| panic!("step: {e}"));
    let stdout = std::fs::read_to_string(scratch.path("udp-guarded.recv.json")).unwrap();
    let records: Vec<_> = json_records(&stdout)
        .into_iter()
        .filter(|r| r["last"] == false)
        .collect();
    let t = |r: &serde_json::Value| r["t"].as_f64().unwrap_or(0.0);
    let down = step_response(&records, down_at);
    let up = step_response(&records, up_at);
    for (name, at, step) in [("8 -> 2", down_at, &down), ("2 -> 8", up_at, &up)] {
        match step {
            Some(s) => eprintln!(
                "step {name} Mbit/s at {at:.1} s: transient max {:.0} ms, p95 back in bound after {}",
                s.transient_ms,
                s.recovered_s
                    .map_or("never".into(), |r| format!("the record ending {r:.1} s after"))
            ),
            None => eprintln!("step {name} Mbit/s at {at:.1} s: no picture after it"),
        }
    }
    for r in &records {
        eprintln!(
            "  t {:.1}: fps {:.0}, {:.2} Mbit/s, latency p50 {:?} p95 {:?} max {:?}",
            t(r),
            r["fps_out"].as_f64().unwrap_or(0.0),
            r["bitrate_bps"].as_f64().unwrap_or(0.0) / 1e6,
            r["latency_ms"]["p50"].as_f64(),
            r["latency_ms"]["p95"].as_f64(),
            r["latency_ms"]["max"].as_f64(),
        );
    }
    let g = g.unwrap_or_else(|| panic!("step: no picture after {SETTLE_SECS} s"));
    assert!(g.fps > 10.0, "step: only {:.1} fps shown", g.fps);
    // Frames keep coming: every second from the first picture on shows some, and no
    // picture is a second late (the tbf holds at most 400 ms).
    let first = records
        .iter()
        .position(|r| r["fps_out"].as_f64().unwrap_or(0.0) > 0.0)
        .expect("step: some picture");
    // The sender stops at `seconds`; the receiver runs on for 3 s.
    for r in records[first..].iter().filter(|r| t(r) <= seconds as f64) {
        assert!(
            r["fps_out"].as_f64().unwrap_or(0.0) > 0.0,
            "step: no picture in the second ending at {:.1} s",
            t(r)
        );
        let max = r["latency_ms"]["max"].as_f64().unwrap_or(0.0);
        assert!(
            max < 1000.0,
            "step: a picture {max:.0} ms late at {:.1} s",
            t(r)
        );
    }
    assert!(
        down.is_some() && up.is_some(),
        "step: pictures after each step"
    );
}
