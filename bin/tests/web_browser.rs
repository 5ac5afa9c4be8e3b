//! The browser viewer end to end: `picam send --web` on loopback, watched by real
//! Chromium processes through the page it serves. `scripts/web/measure.mjs` reads the
//! latency stamp of every frame Chromium presents.
//!
//! The bounds are generous (a loaded 2-core machine decodes in software in every
//! browser; tests with two or more browsers at once stream 640x360, see `web::SMALL`);
//! the goal numbers are measured by the bench script into BENCHMARKS, not here.

mod common;
#[path = "common/web.rs"]
mod web;

use std::time::{Duration, Instant};

use common::{free_port, Scratch};
use web::{
    http_status, measure, require_browser, serial, start_sender, viewers_left, Video, WebSender,
    HD, SMALL,
};

/// Time for measure.mjs to finish after its counting window (closing browsers).
const FINISH: Duration = Duration::from_secs(90);

/// Time for a browser to start and show its first frame on a loaded machine.
const FIRST_FRAME: Duration = Duration::from_secs(40);

/// A sender of `video` on a free port, its token kept in the scratch dir's `config`.
fn sender_on_a_free_port(scratch: &Scratch, video: Video) -> WebSender {
    start_sender(scratch, "send", free_port(), &scratch.path("config"), video)
}

#[test]
fn one_viewer_sees_every_frame_stamped_and_soon() {
    let _serial = serial();
    if !require_browser("one_viewer_sees_every_frame_stamped_and_soon") {
        return;
    }
    let scratch = Scratch::new("web-one");
    let sender = sender_on_a_free_port(&scratch, HD);
    let reports = measure(&scratch, "one", &sender.url, 1, 2, 8).finish(1, FINISH);
    let r = &reports[0];
    assert!(r.fps() >= 24.0, "fewer than 24 frames a second: {r:?}");
    assert_eq!(
        r.stamped(),
        r.presented(),
        "a presented frame without its stamp: {r:?}"
    );
    let p95 = r.p95_ms().expect("latencies measured");
    assert!(
        p95 <= 100.0,
        "95th percentile latency {p95} ms > 100 ms: {r:?}"
    );
}

#[test]
fn two_viewers_at_once() {
    let _serial = serial();
    if !require_browser("two_viewers_at_once") {
        return;
    }
    let scratch = Scratch::new("web-two");
    let sender = sender_on_a_free_port(&scratch, SMALL);
    let reports = measure(&scratch, "two", &sender.url, 2, 3, 8).finish(2, FINISH);
    for r in &reports {
        assert!(
            r.fps() >= 20.0,
            "a viewer of two below 20 frames a second: {r:?}"
        );
        assert_eq!(
            r.stamped(),
            r.presented(),
            "a frame without its stamp: {r:?}"
        );
    }
}

#[test]
fn no_picture_without_the_right_token() {
    let _serial = serial();
    if !require_browser("no_picture_without_the_right_token") {
        return;
    }
    let scratch = Scratch::new("web-token");
    let port = free_port();
    let sender = start_sender(&scratch, "send", port, &scratch.path("config"), SMALL);
    let (page, token) = sender.url.split_once("#t=").expect("URL carries #t=TOKEN");
    assert_eq!(token.len(), 32, "a 128-bit token in hex: {}", sender.url);
    // The same token with its last digit changed.
    let last = token.chars().last().unwrap();
    let wrong = format!("{}{}", &token[..31], if last == '0' { '1' } else { '0' });

    // Both pages at once: two browsers, each with its own measure.mjs.
    let bare = measure(&scratch, "bare", page, 1, 1, 4);
    let forged = measure(&scratch, "forged", &format!("{page}#t={wrong}"), 1, 1, 4);
    for (what, m) in [("no token", bare), ("a wrong token", forged)] {
        let r = &m.finish(1, FINISH)[0];
        assert_eq!(r.presented(), 0, "{what}: frames presented: {r:?}");
        assert_eq!(r.first_frame_ms(), None, "{what}: a frame was shown: {r:?}");
        assert!(
            r.status().contains("token"),
            "{what}: the page does not say why: {r:?}"
        );
    }

    // And straight at the endpoint: no Authorization, then a wrong one.
    let offer = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n";
    for auth in [String::new(), format!("Authorization: Bearer {wrong}\r\n")] {
        let request = format!(
            "POST /whep HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}Content-Type: application/sdp\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{offer}",
            offer.len()
        );
        assert_eq!(http_status(port, &request), 401, "POST /whep with {auth:?}");
    }
}

#[test]
fn a_killed_viewer_frees_its_slot_and_spares_the_other() {
    let _serial = serial();
    if !require_browser("a_killed_viewer_frees_its_slot_and_spares_the_other") {
        return;
    }
    let scratch = Scratch::new("web-kill");
    let sender = sender_on_a_free_port(&scratch, SMALL);
    let mut victim = measure(&scratch, "victim", &sender.url, 1, 0, 60);
    let pid = victim.browser_pid(0, FIRST_FRAME);
    victim.wait_for("browser 0 first frame", FIRST_FRAME);
    // The watcher counts from 3 s after its page loads: all of it after the kill.
    let mut watcher = measure(&scratch, "watcher", &sender.url, 1, 3, 6);
    watcher.wait_for("browser 0 first frame", FIRST_FRAME);

    let left_before = viewers_left(&sender.picam.stderr_now());
    let status = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -KILL {pid}");
    let killed = Instant::now();
    // Bounded: the sender must notice the silent viewer by itself (no DELETE came).
    loop {
        let log = sender.picam.stderr_now();
        if viewers_left(&log) > left_before {
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(10),
            "no viewer left within 10 s of killing a viewer's browser: {log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let r = &watcher.finish(1, FINISH)[0];
    assert!(r.fps() >= 20.0, "the other viewer fell below 20 fps: {r:?}");
    assert_eq!(
        r.stamped(),
        r.presented(),
        "a frame without its stamp: {r:?}"
    );
    drop(victim);
}

#[test]
fn a_restarted_sender_is_picked_up_without_reload() {
    let _serial = serial();
    if !require_browser("a_restarted_sender_is_picked_up_without_reload") {
        return;
    }
    let scratch = Scratch::new("web-restart");
    let port = free_port();
    // The token lives in the config dir: the restarted sender keeps it.
    let config = scratch.path("config");
    let first = start_sender(&scratch, "send1", port, &config, HD);
    let mut m = measure(&scratch, "restart", &first.url, 1, 1, 22);
    m.wait_for("browser 0 first frame", FIRST_FRAME);
    m.wait_for("collecting", FIRST_FRAME);
    let counting = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    let url = first.url.clone();
    let killed_at = counting.elapsed().as_secs_f64().floor() as usize;
    drop(first); // SIGKILL: the browser gets no goodbye
    let second = start_sender(&scratch, "send2", port, &config, HD);
    assert_eq!(second.url, url, "the restarted sender changed its URL");
    let restarted = counting.elapsed().as_secs_f64();

    let r = &m.finish(1, FINISH)[0];
    let per_second = r.per_second();
    // Frames still in flight at the kill may land in the kill's second: look after it.
    let restart_at = (restarted.floor() as usize).max(killed_at + 1);
    assert!(
        per_second.iter().take(3).all(|&n| n > 0),
        "no frames before the restart: {r:?}"
    );
    // The first second from the restart on in which frames are shown, and the next too.
    let back = (restart_at..per_second.len().saturating_sub(1))
        .find(|&k| per_second[k] > 0 && per_second[k + 1] > 0)
        .unwrap_or_else(|| panic!("no frames after the restart at {restarted:.1} s: {r:?}"));
    assert!(
        back - restart_at <= 10,
        "frames came back {} s after the restart (> 10 s): {r:?}",
        back - restart_at
    );
    assert_eq!(r.status(), "", "the page is not live at the end: {r:?}");
    assert_eq!(
        r.stamped(),
        r.presented(),
        "a frame without its stamp: {r:?}"
    );
    drop(second);
}
