//! The viewer window, rendered headless and read back.
//!
//! SDL is global to the process, so every check runs in one `#[test]`, in order. It
//! uses `SDL_VIDEODRIVER=offscreen` (Mesa EGL) unless the variable is already set, and
//! falls back to the `dummy` driver with the software renderer; if neither can open a
//! window the second half fails under `CI=true` and skips loudly elsewhere (`testkit`).

use std::time::Instant;

use display::{
    display_available, DisplayError, Flow, Hud, Screenshot, Status, Window, WindowOptions,
};
use media::Picture;
use sdl2::event::Event;
use sdl2::keyboard::{Keycode, Mod, Scancode};
use sdl2::mouse::MouseButton;

/// A picture whose left half is white and right half black.
fn half_white(width: u32, height: u32) -> Picture {
    let mut p = Picture::new(width, height);
    for row in p.y.chunks_mut(width as usize) {
        let (left, right) = row.split_at_mut(width as usize / 2);
        left.fill(255);
        right.fill(0);
    }
    p.u.fill(128);
    p.v.fill(128);
    p.decoded_at = Instant::now();
    p
}

fn luma(shot: &Screenshot, x: u32, y: u32) -> u32 {
    let [r, g, b] = shot
        .pixel(x, y)
        .unwrap_or_else(|| panic!("({x}, {y}) outside {}x{}", shot.width, shot.height));
    (r as u32 + g as u32 + b as u32) / 3
}

fn assert_white(shot: &Screenshot, x: u32, y: u32, what: &str) {
    let l = luma(shot, x, y);
    assert!(
        l > 230,
        "{what}: ({x}, {y}) should be white, is {:?}",
        shot.pixel(x, y)
    );
}

fn assert_black(shot: &Screenshot, x: u32, y: u32, what: &str) {
    let l = luma(shot, x, y);
    assert!(
        l < 25,
        "{what}: ({x}, {y}) should be black, is {:?}",
        shot.pixel(x, y)
    );
}

/// Pixels of `region` (x0, y0, x1, y1) brighter than `level`.
fn bright_pixels(shot: &Screenshot, region: (u32, u32, u32, u32), level: u32) -> usize {
    let (x0, y0, x1, y1) = region;
    (y0..y1)
        .flat_map(|y| (x0..x1).map(move |x| (x, y)))
        .filter(|&(x, y)| luma(shot, x, y) > level)
        .count()
}

fn differing_pixels(a: &Screenshot, b: &Screenshot, region: (u32, u32, u32, u32)) -> usize {
    let (x0, y0, x1, y1) = region;
    (y0..y1)
        .flat_map(|y| (x0..x1).map(move |x| (x, y)))
        .filter(|&(x, y)| a.pixel(x, y) != b.pixel(x, y))
        .count()
}

fn key(keycode: Keycode, scancode: Scancode) -> Event {
    Event::KeyDown {
        timestamp: 0,
        window_id: 0,
        keycode: Some(keycode),
        scancode: Some(scancode),
        keymod: Mod::NOMOD,
        repeat: false,
    }
}

fn open(size: (u32, u32)) -> Result<Window, DisplayError> {
    Window::open(WindowOptions {
        title_peer: "test:5600".into(),
        size: Some(size),
        ..Default::default()
    })
}

/// Opens a 320x320 window with the first driver that works here, or says why none
/// does.
fn open_headless() -> Result<Window, String> {
    if std::env::var_os("SDL_VIDEODRIVER").is_some() {
        return open((320, 320)).map_err(|e| format!("SDL_VIDEODRIVER as set does not work: {e}"));
    }
    std::env::set_var("SDL_VIDEODRIVER", "offscreen");
    let offscreen = match open((320, 320)) {
        Ok(w) => return Ok(w),
        Err(e) => e,
    };
    std::env::set_var("SDL_VIDEODRIVER", "dummy");
    std::env::set_var("SDL_RENDER_DRIVER", "software");
    open((320, 320)).map_err(|dummy| {
        format!("offscreen failed ({offscreen}), dummy + software failed ({dummy})")
    })
}

#[test]
fn viewer_window_headless() {
    // No display at all: a clear error, no panic.
    let saved: Vec<_> = ["SDL_VIDEODRIVER", "DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .map(|k| (*k, std::env::var_os(k)))
        .collect();
    for (k, _) in &saved {
        std::env::remove_var(k);
    }
    assert!(!display_available());
    assert!(matches!(open((320, 320)), Err(DisplayError::NoDisplay)));
    for (k, v) in saved {
        if let Some(v) = v {
            std::env::set_var(k, v);
        }
    }

    // The rest needs a working SDL video driver: through `testkit`, a failure under CI
    // and a loud skip elsewhere.
    let mut window = match open_headless() {
        Ok(window) => window,
        Err(why) => {
            testkit::require(
                "window::viewer_window_headless",
                false,
                "an SDL video driver that opens a window (offscreen or dummy)",
                &format!("libsdl2 with Mesa EGL; here: {why}"),
            );
            return;
        }
    };
    eprintln!(
        "driver {}, renderer {}",
        window.video_driver(),
        window.renderer_name()
    );
    let events = sdl2::init()
        .and_then(|sdl| sdl.event())
        .expect("SDL event subsystem");
    let out = window.output_size().expect("output size");
    assert_eq!(out, (320, 320), "a window without high-DPI scaling");
    let live = Hud::default();

    // Waiting, nothing shown yet: black, with the message in the middle.
    let waiting = Hud {
        status: Status::Waiting {
            peer: "10.0.0.2:5600".into(),
        },
        ..Default::default()
    };
    window
        .present(None, &waiting)
        .expect("present without a picture");
    let shot = window.screenshot(&waiting).expect("screenshot");
    assert_black(&shot, 10, 10, "waiting");
    assert!(
        bright_pixels(&shot, (0, 140, 320, 180), 150) > 20,
        "the waiting message is drawn"
    );

    // A 16:9 picture in a square window: bars above and below, halves where they belong.
    let picture = half_white(64, 36);
    let timing = window
        .present(Some(&picture), &live)
        .expect("present a picture");
    assert!(timing.decoded_to_presented.is_some());
    assert_eq!(window.picture_size(), Some((64, 36)));
    let shot = window.screenshot(&live).expect("screenshot");
    // Picture area: 320x180 at y = 70.
    for (x, y) in [(40, 100), (120, 160), (150, 240)] {
        assert_white(&shot, x, y, "left half");
    }
    for (x, y) in [(200, 100), (280, 160), (300, 240)] {
        assert_black(&shot, x, y, "right half");
    }
    for (x, y) in [(40, 10), (40, 60), (40, 260), (40, 310)] {
        assert_black(&shot, x, y, "letterbox bar");
    }

    // The overlay changes the top-left corner, and only while it is on.
    let lines = vec![
        "latency 42.0 ms".to_string(),
        "fps 30.0".into(),
        "".into(),
        "drops 0".into(),
    ];
    let history: Vec<f32> = (0..150).map(|i| 20.0 + (i % 30) as f32).collect();
    let stats = Hud {
        status: Status::Live,
        stats_lines: &lines,
        latency_history_ms: &history,
    };
    let plain = window.screenshot(&stats).expect("screenshot");
    window.set_overlay(true);
    let overlaid = window.screenshot(&stats).expect("screenshot");
    let corner = (0, 0, 160, 160);
    assert!(
        differing_pixels(&plain, &overlaid, corner) > 500,
        "the overlay draws in the corner"
    );
    assert!(
        bright_pixels(&overlaid, (0, 0, 160, 60), 200) > 0
            || bright_pixels(&overlaid, (160, 0, 320, 60), 200) > 0
    );
    assert_eq!(
        differing_pixels(&plain, &overlaid, (200, 200, 320, 320)),
        0,
        "and nowhere else"
    );
    // Cached text: the same lines again give the same pixels.
    let again = window.screenshot(&stats).expect("screenshot");
    assert_eq!(differing_pixels(&overlaid, &again, (0, 0, 320, 320)), 0);
    window.set_overlay(false);

    // Stalled: the last picture is dimmed and the message drawn over it.
    let stalled = Hud {
        status: Status::Stalled { for_secs: 3 },
        ..Default::default()
    };
    let shot = window.screenshot(&stalled).expect("screenshot");
    let dimmed = luma(&shot, 40, 100);
    assert!(
        (40..160).contains(&dimmed),
        "dimmed white, not live white: {dimmed}"
    );
    assert!(
        bright_pixels(&shot, (170, 140, 320, 180), 150) > 10,
        "the stall message is drawn"
    );

    // Resize: now wider than the picture, so bars left and right.
    window.set_size(400, 200).expect("resize");
    assert_eq!(
        window.handle_events(),
        Flow::Redraw,
        "a resize asks for a redraw"
    );
    assert_eq!(window.output_size().expect("output size"), (400, 200));
    window.present(None, &live).expect("present after resize");
    let shot = window.screenshot(&live).expect("screenshot");
    // Picture area: 356x200 at x = 22.
    assert_black(&shot, 10, 100, "left pillar");
    assert_black(&shot, 390, 100, "right pillar");
    assert_white(&shot, 40, 100, "left half after resize");
    assert_white(&shot, 190, 20, "left half after resize");
    assert_black(&shot, 215, 100, "right half after resize");

    // A new picture size mid-stream: same window, new texture, square picture.
    let square = half_white(32, 32);
    window
        .present(Some(&square), &live)
        .expect("present a new size");
    assert_eq!(window.picture_size(), Some((32, 32)));
    let shot = window.screenshot(&live).expect("screenshot");
    // Picture area: 200x200 at x = 100.
    assert_black(&shot, 50, 100, "left pillar of the square picture");
    assert_white(&shot, 150, 100, "left half of the square picture");
    assert_black(&shot, 250, 100, "right half of the square picture");
    assert_black(&shot, 350, 100, "right pillar of the square picture");
    // And back.
    window
        .present(Some(&picture), &live)
        .expect("present the first size again");
    assert_eq!(window.picture_size(), Some((64, 36)));

    // A malformed picture is an error, not a panic, and the window goes on.
    let mut broken = half_white(64, 36);
    broken.v.truncate(10);
    assert!(matches!(
        window.present(Some(&broken), &live),
        Err(DisplayError::BadPicture { .. })
    ));
    window
        .present(None, &live)
        .expect("present after a bad picture");

    // Keys and clicks, through SDL's own queue.
    events
        .push_event(key(Keycode::S, Scancode::S))
        .expect("push S");
    assert_eq!(window.handle_events(), Flow::Redraw);
    assert!(window.overlay_on(), "S toggles the overlay on");
    events
        .push_event(key(Keycode::S, Scancode::S))
        .expect("push S");
    window.handle_events();
    assert!(!window.overlay_on(), "and off");
    let double_click = Event::MouseButtonDown {
        timestamp: 0,
        window_id: 0,
        which: 0,
        mouse_btn: MouseButton::Left,
        clicks: 2,
        x: 10,
        y: 10,
    };
    events.push_event(double_click).expect("push double-click");
    assert_eq!(window.handle_events(), Flow::Redraw);
    events
        .push_event(key(Keycode::F, Scancode::F))
        .expect("push F");
    assert_eq!(window.handle_events(), Flow::Redraw);
    window
        .present(None, &live)
        .expect("present after fullscreen toggles");
    // The toggles resize the window: drain those redraws; then nothing is pending.
    let settled = (0..20).any(|_| window.handle_events() == Flow::Continue);
    assert!(
        settled && window.handle_events() == Flow::Continue,
        "events settle"
    );
    for quit in [
        key(Keycode::Q, Scancode::Q),
        key(Keycode::ESCAPE, Scancode::Escape),
        Event::Quit { timestamp: 0 },
    ] {
        let name = format!("{quit:?}");
        events.push_event(quit).expect("push quit");
        assert_eq!(window.handle_events(), Flow::Quit, "{name} quits");
    }

    // Closing and opening again works in the same process.
    drop(events);
    drop(window);
    let window = open((160, 90)).expect("open a second window after the first closed");
    drop(window);
}
