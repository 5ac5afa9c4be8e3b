//! The browser viewer (`picam send --web`) on the real kernel path: the sender in one
//! network namespace, a router namespace, and real Chromium (driven by
//! `scripts/web/measure.mjs --netns`) in the viewer's namespace (`common::netns`,
//! 10.215.0.0/16).
//!
//! - 2% random loss on the router (nftables `numgen random mod 1000 < 20 drop`, both
//!   directions): the browser's NACKs and picam's retransmissions keep at least 90% of
//!   the frames presented (the goal of 95% is measured by `scripts/bench-web.sh`).
//! - A 3 Mbit/s `tbf` router queue with picam at `--bitrate 4000000`: the browser's
//!   congestion feedback brings the encoder down, so latency stays bounded (p95 at most
//!   400 ms, generous) and at least 15 fps are presented.
//!
//! Needs root, iproute2, nftables, Chromium, node and the harness's npm dependencies:
//! under `CI=true` a missing one fails the test, elsewhere it skips loudly (`testkit`).
//! `PICAM_WEB_NETNS_SECONDS` sets each measurement's length (default 10);
//! `PICAM_WEB_SENDER=aiortc` runs the aiortc baseline instead of picam.

mod common;
#[path = "common/netns_web.rs"]
mod netns_web;
// Its prerequisites check and reports; the loopback tests' other helpers are unused here.
#[allow(dead_code)]
#[path = "common/web.rs"]
mod web;

use common::netns::Topology;
use common::Scratch;
use netns_web::{measure, require_browser, start_sender, WebSender};
use web::Report;

const PORT: u16 = 8080;

fn seconds() -> u64 {
    std::env::var("PICAM_WEB_NETNS_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10)
}

/// Everything the tests need, through `testkit`; then a probe topology, so a kernel
/// without namespaces or nftables is a missing prerequisite too.
fn prerequisites(test: &str, sender: WebSender) -> bool {
    if !(testkit::require_root(test, "network namespaces, nftables and tc")
        && testkit::require_tools(test, &["ip", "nft", "tc"], "iproute2, nftables")
        && require_browser(test, sender))
    {
        return false;
    }
    if let Err(e) = Topology::new("w", 215, "probe") {
        return testkit::require(
            test,
            false,
            "network namespaces, veth pairs and nftables",
            &format!("a kernel with netns, veth and nf_tables; here: {e}"),
        );
    }
    true
}

/// Runs the sender in the sender's namespace and one browser in the viewer's, measuring
/// for `seconds()` after `warmup` seconds; returns the browser's record and the router's
/// (forwarded, dropped).
fn watch(
    scratch: &Scratch,
    topo: &Topology,
    tag: &str,
    sender: WebSender,
    warmup: u64,
) -> (Report, (u64, u64)) {
    let (process, url) = start_sender(
        scratch,
        &format!("{tag}.send"),
        sender,
        &topo.ns[0],
        &topo.sender_addr(),
        PORT,
        &["--stats", "json"],
    );
    let mut viewers = measure(
        scratch,
        tag,
        &url,
        (warmup, seconds()),
        1,
        Some(&topo.ns[2]),
    );
    let counters = topo.counters().unwrap_or_else(|e| panic!("{tag}: {e}"));
    process.terminate();
    let (_, _, err) = process.wait(std::time::Duration::from_secs(10));
    let viewer = viewers.remove(0);
    eprintln!("{tag} ({sender:?}): {}", viewer.0);
    eprintln!(
        "{tag}: router forwarded {} packets, dropped {}",
        counters.0, counters.1
    );
    if viewer.presented() == 0 {
        eprintln!("{tag}: the sender said:\n{err}");
    }
    (viewer, counters)
}

#[test]
fn the_browser_presents_the_frames_through_two_percent_random_loss() {
    const TEST: &str = "web_netns::the_browser_presents_the_frames_through_two_percent_random_loss";
    // One at a time: a 720p encoder and a Chromium decoding it fill a 2-core machine.
    let _serial = web::serial();
    let sender = WebSender::from_env();
    if !prerequisites(TEST, sender) {
        return;
    }
    let scratch = Scratch::new("webloss");
    let topo = Topology::new("w", 215, "loss").unwrap_or_else(|e| panic!("topology: {e}"));
    topo.set_loss(&["numgen", "random", "mod", "1000", "<", "20"])
        .unwrap_or_else(|e| panic!("loss rule: {e}"));
    let (viewer, (forwarded, dropped)) = watch(&scratch, &topo, "loss", sender, 2);
    drop(topo);

    let secs = seconds() as f64;
    assert!(
        dropped as f64 > 0.005 * forwarded as f64,
        "the router dropped only {dropped} of {forwarded} packets: the loss rule did not work"
    );
    let ratio = viewer.presented() as f64 / (30.0 * secs);
    assert!(
        ratio >= 0.9,
        "the browser presented {} frames in {secs} s through 2% loss: {:.1}% of 30 fps (< 90%); nacks sent {}: {}",
        viewer.presented(),
        100.0 * ratio,
        viewer.0["stats"]["nackCount"],
        viewer.0
    );
}

#[test]
fn latency_stays_bounded_through_a_three_megabit_router_queue() {
    const TEST: &str = "web_netns::latency_stays_bounded_through_a_three_megabit_router_queue";
    // One at a time: a 720p encoder and a Chromium decoding it fill a 2-core machine.
    let _serial = web::serial();
    let sender = WebSender::from_env();
    if !prerequisites(TEST, sender) {
        return;
    }
    let scratch = Scratch::new("webjam");
    let topo = Topology::new("w", 215, "jam").unwrap_or_else(|e| panic!("topology: {e}"));
    // The jam of jam_netns.rs: 3 Mbit/s toward the viewer with 400 ms of queue, under a
    // sender configured for 4 Mbit/s.
    topo.limit_rate("3mbit", "400ms")
        .unwrap_or_else(|e| panic!("tbf: {e}"));
    // 5 s to settle first (as in jam_netns.rs): the queue fills before the feedback
    // brings the encoder down.
    let (viewer, _) = watch(&scratch, &topo, "jam", sender, 5);
    drop(topo);

    let p95 = viewer.p95_ms().unwrap_or(f64::INFINITY);
    let fps = viewer.fps();
    assert!(
        viewer.stamped() > 0 && p95 <= 400.0,
        "latency p95 {p95} ms through the 3 Mbit/s queue (bound 400 ms): the encoder did not come down: {}",
        viewer.0
    );
    assert!(
        fps >= 15.0,
        "{fps} fps presented through the 3 Mbit/s queue (bound 15): {}",
        viewer.0
    );
}
