//! Measures the display path: from a picture's `decoded_at` to the renderer's present
//! returning, at 720p and 1080p, with the stats overlay on.
//!
//! ```text
//! SDL_VIDEODRIVER=offscreen cargo run --release -p display --example present_latency
//! DISPLAY=:99 SDL_RENDER_DRIVER=software cargo run --release -p display --example present_latency -- 300
//! ```
//! Arguments: the number of frames per size (default 300), then optionally
//! `--screenshot PATH.ppm` to save the last 720p frame as drawn.
//!
//! Pictures are handed over at 30 per second with `decoded_at` set just before, as the
//! decoder would. "Presented" means the renderer's present call returned: with a GPU
//! renderer the frame may still be in the driver's queue, and without vsync nothing
//! waits for the scan-out.

use std::time::{Duration, Instant};

use display::{display_available, Hud, Status, Window, WindowOptions};
use media::Picture;

fn main() {
    if let Err(e) = run() {
        eprintln!("present_latency: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut frames = 300usize;
    let mut screenshot = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--screenshot" => screenshot = args.next(),
            n => frames = n.parse()?,
        }
    }
    if !display_available() {
        return Err("no display: set DISPLAY or SDL_VIDEODRIVER=offscreen".into());
    }
    for (i, (w, h)) in [(1280, 720), (1920, 1080)].into_iter().enumerate() {
        let shot = if i == 0 { screenshot.as_deref() } else { None };
        measure(w, h, frames, shot)?;
    }
    Ok(())
}

/// A few distinct pictures of a moving gradient, so every upload carries new data.
fn pictures(w: u32, h: u32) -> Vec<Picture> {
    (0..4u32)
        .map(|n| {
            let mut p = Picture::new(w, h);
            for (y, row) in p.y.chunks_mut(w as usize).enumerate() {
                for (x, px) in row.iter_mut().enumerate() {
                    *px = (x as u32 + y as u32 + n * 40) as u8;
                }
            }
            for (y, row) in p.u.chunks_mut(w as usize / 2).enumerate() {
                row.fill((y as u32 * 2 + n * 30) as u8);
            }
            p
        })
        .collect()
}

fn measure(
    w: u32,
    h: u32,
    frames: usize,
    screenshot: Option<&str>,
) -> Result<(), Box<dyn std::error::Error>> {
    let options = WindowOptions {
        title_peer: "measure".into(),
        overlay_on: true,
        size: Some((w, h)),
        ..Default::default()
    };
    let mut window = Window::open(options)?;
    let mut pics = pictures(w, h);
    let mut latency = Vec::with_capacity(frames);
    let (mut upload, mut draw, mut present) = (Vec::new(), Vec::new(), Vec::new());
    let mut history: Vec<f32> = Vec::new();
    let mut lines = Vec::new();
    let period = Duration::from_millis(33);
    let mut next = Instant::now();
    for i in 0..frames {
        window.handle_events();
        if i % 10 == 0 {
            // Stats change a few times a second, as the receiver's would.
            let last = history.last().copied().unwrap_or(0.0);
            lines = vec![
                format!("display path {last:.2} ms"),
                format!("frame {i}"),
                format!("{w}x{h} 30 fps"),
            ];
        }
        let hud = Hud {
            status: Status::Live,
            stats_lines: &lines,
            latency_history_ms: &history,
        };
        let n = i % pics.len();
        pics[n].decoded_at = Instant::now();
        let t = window.present(Some(&pics[n]), &hud)?;
        let d = t.decoded_to_presented.unwrap_or_default();
        latency.push(d);
        upload.push(t.upload);
        draw.push(t.draw);
        present.push(t.present);
        history.push(d.as_secs_f32() * 1000.0);
        if history.len() > 150 {
            history.remove(0);
        }
        next += period;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    println!(
        "{w}x{h} driver={} renderer={} frames={frames}: decoded_at->present median {} p95 {} \
         (median upload {} draw {} present {})",
        window.video_driver(),
        window.renderer_name(),
        ms(quantile(&mut latency, 0.5)),
        ms(quantile(&mut latency, 0.95)),
        ms(quantile(&mut upload, 0.5)),
        ms(quantile(&mut draw, 0.5)),
        ms(quantile(&mut present, 0.5)),
    );
    if let Some(path) = screenshot {
        let lines = [
            String::from("latency 12.3 ms"),
            "fps 30.0".into(),
            "4.1 Mbit/s".into(),
        ];
        let hud = Hud {
            status: Status::Live,
            stats_lines: &lines,
            latency_history_ms: &history,
        };
        let shot = window.screenshot(&hud)?;
        let mut ppm = format!("P6\n{} {}\n255\n", shot.width, shot.height).into_bytes();
        ppm.extend_from_slice(&shot.rgb);
        std::fs::write(path, ppm)?;
    }
    Ok(())
}

fn quantile(v: &mut [Duration], q: f64) -> Duration {
    v.sort_unstable();
    v.get(((v.len().saturating_sub(1)) as f64 * q).round() as usize)
        .copied()
        .unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}
