//! Many viewers through Janus Gateway (issue 20): `scripts/fanout-janus.sh` runs Debian's
//! Janus on a generated configuration, `picam send --wire rtp` into its streaming
//! mountpoint and the viewer page; real Chromium processes (`scripts/web/measure.mjs`)
//! open the printed URL and read picam's latency stamp from every presented frame.
//!
//! The keyframe interval is 10 s (`--intra 300`), so a first picture within a second or
//! two of a page opening mid-stream can only come from the viewer's keyframe request
//! reaching picam through Janus (the mountpoint's RTCP port, latched on picam's sender
//! reports). The stream is 640x360 (`web::SMALL`): at 720p, three Chromiums decoding
//! and stamp-reading in software beside x264 and Janus on a 2-core CI machine presented
//! 9.6 frames a second in one run while decoding every frame. Bounds are generous for a loaded
//! machine; 720p through Janus is measured on a quiet one by `scripts/bench-fanout.sh`
//! (BENCHMARKS).

mod common;
#[path = "common/janus.rs"]
mod janus;
#[allow(dead_code)]
#[path = "common/web.rs"]
mod web;

use std::time::Duration;

use common::Scratch;
use web::{measure, require_browser, serial, SMALL};

/// Time for measure.mjs to finish after its counting window (closing browsers).
const FINISH: Duration = Duration::from_secs(90);

#[test]
fn three_browsers_through_janus_and_a_late_joiner_get_a_keyframe_at_once() {
    let _serial = serial();
    let name = "three_browsers_through_janus_and_a_late_joiner_get_a_keyframe_at_once";
    if !require_browser(name) || !janus::require_janus(name) {
        return;
    }
    let scratch = Scratch::new("fanout-janus");
    let mut fanout = janus::start(
        &scratch,
        120,
        &[
            "--width",
            &SMALL.width.to_string(),
            "--height",
            &SMALL.height.to_string(),
            "--fps",
            "30",
            "--bitrate",
            &SMALL.bitrate.to_string(),
            "--intra",
            "300",
            "--stats",
            "json",
        ],
    );

    // Three people open the link at once. Three Chromiums starting together on two
    // cores (beside x264 and Janus) present below the stream's rate for their first
    // seconds: at 720p, in CI, 15-22 fps for 4 s in one run, 18-22 fps for 10 s in
    // another, then 27-31, while each decoded every frame. The rate is counted after an 8 s
    // warm-up, and the bounds are CI's, looser than the (>= 24 fps, first picture
    // within 2 s), which `scripts/bench-fanout.sh` measures on a quiet machine (30.0 fps
    // each, first pictures 363-654 ms). The first picture is timed from the page's
    // opening; Janus relays at most one keyframe request a second, so a browser whose
    // connection comes up just after another's waits up to a second more (CI: 0.3-0.7 s
    // or 1.0-1.9 s).
    let reports = measure(&scratch, "three", &fanout.url, 3, 8, 8).finish(3, FINISH);
    for r in &reports {
        let first = r.first_frame_ms().expect("a first picture");
        assert!(
            first <= 3000.0,
            "first picture {first} ms after opening the page (> 3 s): {r:?}"
        );
        assert!(r.fps() >= 20.0, "fewer than 20 frames a second: {r:?}");
        assert_eq!(
            r.stamped(),
            r.presented(),
            "a presented frame without its stamp: {r:?}"
        );
        assert_eq!(r.backwards(), 0, "frames presented out of order: {r:?}");
        let p95 = r.p95_ms().expect("latencies measured");
        assert!(
            p95 <= 80.0,
            "95th percentile latency {p95} ms > 80 ms: {r:?}"
        );
    }

    // A fourth joins mid-stream, long after the last periodic keyframe would help.
    let late = measure(&scratch, "late", &fanout.url, 1, 0, 3).finish(1, FINISH);
    let first = late[0].first_frame_ms().expect("a first picture");
    assert!(
        first <= 1500.0,
        "a late joiner waited {first} ms for its first picture: {:?}",
        late[0]
    );
    let stats = fanout.picam_stats().expect("picam's stats");
    let forced = stats["keyframes_forced"].as_u64().unwrap_or(0);
    assert!(
        forced >= 2,
        "picam forced {forced} keyframes for 4 joining viewers (their PLI did not reach it through Janus): {stats}"
    );

    // Ctrl-C stops everything the script started.
    let (exited, err) = fanout.stop(Duration::from_secs(15));
    assert!(exited, "fanout-janus.sh did not stop on SIGTERM: {err}");
    assert!(
        !fanout.janus_alive(),
        "Janus (pid {}) still running after the script stopped",
        fanout.janus_pid
    );
    assert_eq!(
        fanout.other_pids.len(),
        2,
        "the script named picam's and the page server's pids"
    );
    let left = fanout.still_running();
    assert!(
        left.is_empty(),
        "still running after the script stopped: {left:?}"
    );
}
