//! What the caller tells the window to show besides the picture, and how it is drawn:
//! the status message and the stats overlay (text lines and a latency graph).

use sdl2::pixels::Color;
use sdl2::rect::{Point, Rect};
use sdl2::render::{Texture, TextureCreator, WindowCanvas};
use sdl2::rwops::RWops;
use sdl2::ttf::Font;
use sdl2::video::WindowContext;

use super::layout::{self, Area};
use super::{sdl_err, Owner};
use crate::DisplayError;

/// Whether the picture on screen is live, and if not, why.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Status {
    /// Pictures are arriving: show the newest as it is.
    #[default]
    Live,
    /// No picture has arrived yet from `peer`.
    Waiting {
        /// The sender's address as the user knows it, e.g. `192.168.1.20:5600`.
        peer: String,
    },
    /// Not paired with a sender yet: the code to type on the camera.
    Pairing {
        /// The pairing code, e.g. `1234-5678`.
        code: String,
    },
    /// Pictures stopped arriving `for_secs` seconds ago.
    Stalled {
        /// Whole seconds since the last picture.
        for_secs: u64,
    },
}

impl Status {
    /// The message the window shows over a dimmed picture, or `None` when live.
    pub fn message(&self) -> Option<String> {
        match self {
            Status::Live => None,
            Status::Waiting { peer } => Some(format!("waiting for the sender at {peer}")),
            Status::Pairing { code } => Some(format!(
                "pairing code {code}: on the camera run  picam send --pair {code} --remote <this machine>"
            )),
            Status::Stalled { for_secs } => Some(format!("no frames for {for_secs} s")),
        }
    }
}

/// Everything drawn over the picture, handed to [`Window::present`](crate::Window::present)
/// each time. Borrowed, so building one per frame costs nothing.
#[derive(Clone, Debug, Default)]
pub struct Hud<'a> {
    /// Live, waiting or stalled; anything but live dims the picture and says why.
    pub status: Status,
    /// Lines of the stats overlay (latency, fps, Mbit/s, drops, keyframe requests),
    /// shown while the overlay is on. Unchanged lines are not re-rendered.
    pub stats_lines: &'a [String],
    /// Recent end-to-end latency samples in milliseconds, oldest first, for the
    /// overlay's graph (the last few seconds; the newest samples that fit are drawn).
    pub latency_history_ms: &'a [f32],
}

const TEXT: Color = Color::RGB(235, 235, 235);
const PANEL: Color = Color::RGBA(0, 0, 0, 160);
const DIM: Color = Color::RGBA(0, 0, 0, 170);
const GRAPH_FRAME: Color = Color::RGBA(255, 255, 255, 70);
const GRAPH_LINE: Color = Color::RGB(90, 230, 120);

/// A font opened at one pixel size.
struct SizedFont<'a> {
    px: u16,
    font: Font<'a, 'a>,
}

/// A line of text rendered to a texture, kept until its text or size changes.
struct Label<'a> {
    text: String,
    px: u16,
    texture: Texture<'a>,
    w: u32,
    h: u32,
}

/// Fonts and rendered text, re-made only when the text or the window's size changes.
#[derive(Default)]
pub(crate) struct TextCache<'a> {
    stats_font: Option<SizedFont<'a>>,
    status_font: Option<SizedFont<'a>>,
    stats: Vec<Option<Label<'a>>>,
    graph_label: Option<Label<'a>>,
    status: Option<Label<'a>>,
}

/// Opens the font at `px` unless `slot` already holds it at that size.
fn font_at<'a, 's>(
    slot: &'s mut Option<SizedFont<'a>>,
    owner: &'a Owner,
    px: u16,
) -> Result<&'s Font<'a, 'a>, DisplayError> {
    if slot.as_ref().map(|f| f.px) != Some(px) {
        *slot = None;
        let font_err = |message: String| DisplayError::Font {
            path: owner.font.path.display().to_string(),
            message,
        };
        let rw = RWops::from_bytes(&owner.font.bytes).map_err(font_err)?;
        let font = owner.ttf.load_font_from_rwops(rw, px).map_err(font_err)?;
        *slot = Some(SizedFont { px, font });
    }
    match slot {
        Some(f) => Ok(&f.font),
        None => Err(DisplayError::Font {
            path: owner.font.path.display().to_string(),
            message: "not loaded".into(),
        }),
    }
}

/// The texture for `text` at `px`, rendered only if `slot` holds something else.
/// Empty text has no texture.
fn label<'a, 's>(
    slot: &'s mut Option<Label<'a>>,
    font: &Font<'a, 'a>,
    creator: &'a TextureCreator<WindowContext>,
    px: u16,
    text: &str,
    driver: &str,
) -> Result<Option<&'s Label<'a>>, DisplayError> {
    if text.is_empty() {
        *slot = None;
        return Ok(None);
    }
    if !slot.as_ref().is_some_and(|l| l.px == px && l.text == text) {
        *slot = None;
        let surface = font.render(text).blended(TEXT).map_err(|e| {
            sdl_err(
                format!("rendering the text {text:?}"),
                driver,
                e.to_string(),
            )
        })?;
        let texture = creator.create_texture_from_surface(&surface).map_err(|e| {
            sdl_err(
                format!("uploading the text {text:?}"),
                driver,
                e.to_string(),
            )
        })?;
        *slot = Some(Label {
            text: text.to_owned(),
            px,
            texture,
            w: surface.width(),
            h: surface.height(),
        });
    }
    Ok(slot.as_ref())
}

fn rect(a: Area) -> Rect {
    Rect::new(a.x, a.y, a.w.max(1), a.h.max(1))
}

/// Dims the whole output and centres the status message on it.
pub(crate) fn draw_status<'a>(
    canvas: &mut WindowCanvas,
    owner: &'a Owner,
    cache: &mut TextCache<'a>,
    message: &str,
    output: (u32, u32),
    driver: &str,
) -> Result<(), DisplayError> {
    let draw_err = |e: String| sdl_err("dimming the picture", driver, e);
    canvas.set_draw_color(DIM);
    canvas.fill_rect(None).map_err(draw_err)?;
    let px = layout::status_px(output.1);
    let font = font_at(&mut cache.status_font, owner, px)?;
    if let Some(l) = label(&mut cache.status, font, &owner.creator, px, message, driver)? {
        let x = (output.0 as i32 - l.w as i32) / 2;
        let y = (output.1 as i32 - l.h as i32) / 2;
        canvas
            .copy(&l.texture, None, Rect::new(x, y, l.w, l.h))
            .map_err(|e| sdl_err("drawing the status message", driver, e))?;
    }
    Ok(())
}

/// Draws the stats overlay in the top-left corner: a translucent panel with the
/// caller's lines and, below them, the latency graph.
pub(crate) fn draw_overlay<'a>(
    canvas: &mut WindowCanvas,
    owner: &'a Owner,
    cache: &mut TextCache<'a>,
    hud: &Hud<'_>,
    output: (u32, u32),
    points: &mut Vec<Point>,
    driver: &str,
) -> Result<(), DisplayError> {
    let err = |e: String| sdl_err("drawing the stats overlay", driver, e);
    let px = layout::stats_px(output.1);
    let TextCache {
        stats_font,
        stats,
        graph_label,
        ..
    } = cache;
    let font = font_at(stats_font, owner, px)?;
    let line_h = font.height().max(1) as u32;
    stats.resize_with(hud.stats_lines.len(), || None);

    let graph = !hud.latency_history_ms.is_empty();
    let top_ms = layout::graph_top_ms(hud.latency_history_ms);
    let graph_text = format!("latency, top of graph {top_ms} ms");

    // Render (or reuse) every label first, to size the panel.
    let mut text_w = 0;
    for (slot, line) in stats.iter_mut().zip(hud.stats_lines) {
        if let Some(l) = label(slot, font, &owner.creator, px, line, driver)? {
            text_w = text_w.max(l.w);
        }
    }
    if graph {
        if let Some(l) = label(graph_label, font, &owner.creator, px, &graph_text, driver)? {
            text_w = text_w.max(l.w);
        }
    }
    let pad = u32::from(px) / 2;
    let graph_w = text_w.max(14 * u32::from(px));
    let graph_h = 4 * line_h;
    let content_h =
        line_h * hud.stats_lines.len() as u32 + if graph { line_h + graph_h + pad } else { 0 };
    if content_h == 0 {
        return Ok(());
    }
    let panel = Area {
        x: pad as i32,
        y: pad as i32,
        w: graph_w + 2 * pad,
        h: content_h + 2 * pad,
    };
    canvas.set_draw_color(PANEL);
    canvas.fill_rect(rect(panel)).map_err(err)?;

    let x = panel.x + pad as i32;
    let mut y = panel.y + pad as i32;
    for slot in stats.iter() {
        // An empty line has no label but still takes its row.
        if let Some(l) = slot {
            canvas
                .copy(&l.texture, None, Rect::new(x, y, l.w, l.h))
                .map_err(err)?;
        }
        y += line_h as i32;
    }
    if !graph {
        return Ok(());
    }
    y += pad as i32;
    if let Some(l) = graph_label.as_ref() {
        canvas
            .copy(&l.texture, None, Rect::new(x, y, l.w, l.h))
            .map_err(err)?;
    }
    y += line_h as i32;
    let frame = Area {
        x,
        y,
        w: graph_w,
        h: graph_h,
    };
    canvas.set_draw_color(GRAPH_FRAME);
    canvas.draw_rect(rect(frame)).map_err(err)?;

    let samples = hud.latency_history_ms;
    let count = samples.len().min(graph_w.max(2) as usize);
    let recent = &samples[samples.len() - count..];
    points.clear();
    let span_x = f64::from(graph_w.saturating_sub(1));
    let span_y = f64::from(graph_h.saturating_sub(1));
    for (i, &ms) in recent.iter().enumerate() {
        let fx = if count > 1 {
            i as f64 / (count - 1) as f64
        } else {
            1.0
        };
        let ms = if ms.is_finite() { f64::from(ms) } else { 0.0 };
        let fy = (ms / f64::from(top_ms)).clamp(0.0, 1.0);
        points.push(Point::new(
            x + (fx * span_x) as i32,
            y + (span_y - fy * span_y) as i32,
        ));
    }
    canvas.set_draw_color(GRAPH_LINE);
    if points.len() == 1 {
        canvas.draw_point(points[0]).map_err(err)?;
    } else {
        canvas.draw_lines(points.as_slice()).map_err(err)?;
    }
    Ok(())
}
