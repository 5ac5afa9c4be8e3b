//! The SDL2 viewer window.

mod font;
mod hud;
mod layout;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use media::Picture;
use sdl2::event::{Event, WindowEvent};
use sdl2::keyboard::Keycode;
use sdl2::mouse::MouseButton;
use sdl2::pixels::{Color, PixelFormatEnum};
use sdl2::rect::{Point, Rect};
use sdl2::render::{BlendMode, Texture, TextureCreator, WindowCanvas};
use sdl2::ttf::Sdl2TtfContext;
use sdl2::video::{FullscreenType, WindowContext};
use sdl2::{EventPump, Sdl, VideoSubsystem};

pub use hud::{Hud, Status};

use crate::DisplayError;
use font::FontFile;
use hud::TextCache;

/// Whether a window can be opened here: `DISPLAY` or `WAYLAND_DISPLAY` is set, or
/// `SDL_VIDEODRIVER` names a driver explicitly (e.g. `offscreen` for headless
/// rendering). Always true on Windows and macOS. When false, run headless instead:
/// [`Window::open`] would fail with [`DisplayError::NoDisplay`].
pub fn display_available() -> bool {
    if cfg!(any(target_os = "windows", target_os = "macos")) {
        return true;
    }
    ["SDL_VIDEODRIVER", "DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|k| std::env::var_os(k).is_some_and(|v| !v.is_empty()))
}

/// How to open the [`Window`].
#[derive(Clone, Debug, Default)]
pub struct WindowOptions {
    /// The sender as the user knows it (e.g. `192.168.1.20:5600`), shown in the title.
    pub title_peer: String,
    /// Wait for the display's vertical blank in `present`. Off by default: it adds up
    /// to one refresh period of latency in exchange for no tearing.
    pub vsync: bool,
    /// Start with the stats overlay shown (`S` toggles it).
    pub overlay_on: bool,
    /// Start in desktop fullscreen (`F` or a double-click toggles it).
    pub start_fullscreen: bool,
    /// Initial window size in screen coordinates; `None` is 1280x720.
    pub size: Option<(u32, u32)>,
    /// TrueType font for the text; `None` searches the usual places and `fc-match`.
    pub font: Option<PathBuf>,
}

/// What the caller should do after [`Window::handle_events`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Nothing for the caller to do.
    Continue,
    /// The view changed (resize, expose, fullscreen or overlay toggled): call
    /// [`Window::present`] soon, with `None` if there is no new picture.
    Redraw,
    /// The user closed the window or pressed `Esc` or `Q`: stop.
    Quit,
}

/// Timings of one [`Window::present`] call.
#[derive(Clone, Copy, Debug)]
pub struct PresentTiming {
    /// Just after the renderer's present returned.
    pub presented_at: Instant,
    /// From the picture's `decoded_at` to `presented_at`, when a picture was given.
    pub decoded_to_presented: Option<Duration>,
    /// Uploading the picture's planes to the texture.
    pub upload: Duration,
    /// Drawing the picture, status and overlay.
    pub draw: Duration,
    /// Inside the renderer's present (includes the wait for vblank with vsync on).
    pub present: Duration,
}

/// The window's pixels as RGB, from [`Window::screenshot`].
#[derive(Clone, Debug)]
pub struct Screenshot {
    /// Width in output pixels.
    pub width: u32,
    /// Height in output pixels.
    pub height: u32,
    /// Rows of `width` RGB triplets, top first.
    pub rgb: Vec<u8>,
}

impl Screenshot {
    /// The colour at `(x, y)`, or `None` outside the image.
    pub fn pixel(&self, x: u32, y: u32) -> Option<[u8; 3]> {
        if x >= self.width || y >= self.height {
            return None;
        }
        let i = (y as usize * self.width as usize + x as usize) * 3;
        self.rgb.get(i..i + 3).map(|p| [p[0], p[1], p[2]])
    }
}

/// What the textures borrow from: the renderer's texture creator, the TTF library and
/// the font's bytes. Kept with the textures in one self-referential [`Gpu`] cell.
pub(crate) struct Owner {
    creator: TextureCreator<WindowContext>,
    ttf: Sdl2TtfContext,
    font: FontFile,
}

/// The streaming IYUV texture and the size it was made for.
struct Video<'a> {
    texture: Texture<'a>,
    width: u32,
    height: u32,
}

/// Every texture and font of the window.
#[derive(Default)]
struct Assets<'a> {
    video: Option<Video<'a>>,
    text: TextCache<'a>,
}

self_cell::self_cell!(
    /// Textures live exactly as long as the creator they borrow; both are dropped
    /// before the canvas and the SDL context.
    struct Gpu {
        owner: Owner,
        #[covariant]
        dependent: Assets,
    }
);

/// The viewer: an SDL2 window showing the newest decoded picture through a streaming
/// YUV texture, letterboxed, with a status message and a stats overlay.
///
/// SDL is not thread safe: the window must be opened, driven and dropped on one thread
/// (the main thread on macOS; any single thread on Linux and Windows), and only one
/// window can be open at a time in a process. The type is neither `Send` nor `Sync`.
/// See the [crate docs](crate) for the loop that drives it.
pub struct Window {
    // Field order is drop order: textures, then the renderer, then SDL itself.
    gpu: Gpu,
    canvas: WindowCanvas,
    events: EventPump,
    _video: VideoSubsystem,
    _sdl: Sdl,
    driver: String,
    peer: String,
    overlay_on: bool,
    points: Vec<Point>,
}

/// A [`DisplayError::Sdl`] with its context.
pub(crate) fn sdl_err(
    doing: impl Into<String>,
    driver: &str,
    message: impl Into<String>,
) -> DisplayError {
    DisplayError::Sdl {
        doing: doing.into(),
        driver: driver.to_owned(),
        message: message.into(),
    }
}

impl Window {
    /// Opens the window (hidden behind nothing: it is shown at once, black, titled with
    /// the peer). Fails with [`DisplayError::NoDisplay`] when [`display_available`] is
    /// false, [`DisplayError::NoFont`] without a usable font, or
    /// [`DisplayError::Sdl`] when SDL cannot make a window or renderer. SDL's own
    /// environment variables apply: `SDL_VIDEODRIVER` (e.g. `offscreen`, `x11`,
    /// `wayland`) and `SDL_RENDER_DRIVER` (e.g. `opengl`, `software`).
    pub fn open(options: WindowOptions) -> Result<Window, DisplayError> {
        if !display_available() {
            return Err(DisplayError::NoDisplay);
        }
        let font = font::find_font(options.font.as_deref())?;
        // Before SDL has picked a driver, name the one asked for.
        let wanted = match std::env::var("SDL_VIDEODRIVER") {
            Ok(d) if !d.is_empty() => format!("{d} (from SDL_VIDEODRIVER)"),
            _ => "default".to_owned(),
        };
        let sdl = sdl2::init().map_err(|e| sdl_err("initialising SDL", &wanted, e))?;
        let video = sdl
            .video()
            .map_err(|e| sdl_err("initialising SDL video", &wanted, e))?;
        let driver = video.current_video_driver().to_owned();
        // Read when the video texture is created: scale it smoothly, on the GPU.
        sdl2::hint::set("SDL_RENDER_SCALE_QUALITY", "linear");

        let (w, h) = options.size.unwrap_or((1280, 720));
        let mut builder = video.window(&title(&options.title_peer, None), w.max(1), h.max(1));
        builder.position_centered().resizable().allow_highdpi();
        if options.start_fullscreen {
            builder.fullscreen_desktop();
        }
        let window = builder
            .build()
            .map_err(|e| sdl_err("creating the window", &driver, e.to_string()))?;
        let mut canvas_builder = window.into_canvas();
        if options.vsync {
            canvas_builder = canvas_builder.present_vsync();
        }
        let mut canvas = canvas_builder
            .build()
            .map_err(|e| sdl_err("creating the renderer", &driver, e.to_string()))?;
        canvas.set_blend_mode(BlendMode::Blend);
        let events = sdl
            .event_pump()
            .map_err(|e| sdl_err("taking the event pump", &driver, e))?;
        let ttf = sdl2::ttf::init()
            .map_err(|e| sdl_err("initialising SDL_ttf", &driver, e.to_string()))?;

        let owner = Owner {
            creator: canvas.texture_creator(),
            ttf,
            font,
        };
        let gpu = Gpu::try_new(owner, |owner| {
            // Fail now, with the font's path, rather than at the first overlay.
            let font_err = |message: String| DisplayError::Font {
                path: owner.font.path.display().to_string(),
                message,
            };
            let rw = sdl2::rwops::RWops::from_bytes(&owner.font.bytes).map_err(font_err)?;
            owner.ttf.load_font_from_rwops(rw, 16).map_err(font_err)?;
            Ok::<_, DisplayError>(Assets::default())
        })?;
        let mut window = Window {
            gpu,
            canvas,
            events,
            _video: video,
            _sdl: sdl,
            driver,
            peer: options.title_peer,
            overlay_on: options.overlay_on,
            points: Vec::new(),
        };
        window.canvas.set_draw_color(Color::BLACK);
        window.canvas.clear();
        window.canvas.present();
        tracing::debug!(driver = %window.driver, renderer = %window.renderer_name(), "viewer window open");
        Ok(window)
    }

    /// Handles every pending SDL event without blocking: `F` or a double-click toggles
    /// desktop fullscreen, `S` toggles the overlay, and resizes are noted. Call it at
    /// least every few tens of milliseconds, also while no pictures arrive, so the
    /// window stays responsive.
    pub fn handle_events(&mut self) -> Flow {
        let (mut flow, mut quit) = (Flow::Continue, false);
        while let Some(event) = self.events.poll_event() {
            match event {
                // Keep draining after a quit: SDL 2.26 ends each poll cycle with a
                // sentinel event, and one left queued would hide the next call's events.
                Event::Quit { .. }
                | Event::Window {
                    win_event: WindowEvent::Close,
                    ..
                }
                | Event::KeyDown {
                    keycode: Some(Keycode::ESCAPE | Keycode::Q),
                    ..
                } => quit = true,
                Event::KeyDown {
                    keycode: Some(Keycode::F),
                    repeat: false,
                    ..
                }
                | Event::MouseButtonDown {
                    mouse_btn: MouseButton::Left,
                    clicks: 2,
                    ..
                } => {
                    self.toggle_fullscreen();
                    flow = Flow::Redraw;
                }
                Event::KeyDown {
                    keycode: Some(Keycode::S),
                    repeat: false,
                    ..
                } => {
                    self.overlay_on = !self.overlay_on;
                    flow = Flow::Redraw;
                }
                Event::Window {
                    win_event:
                        WindowEvent::Exposed
                        | WindowEvent::Shown
                        | WindowEvent::Restored
                        | WindowEvent::Maximized
                        | WindowEvent::Resized(..)
                        | WindowEvent::SizeChanged(..),
                    ..
                } => flow = Flow::Redraw,
                _ => {}
            }
        }
        if quit {
            Flow::Quit
        } else {
            flow
        }
    }

    /// Shows `picture` (or, with `None`, the last picture again) with `hud` over it,
    /// and returns when the renderer's present has returned. The caller hands over only
    /// the newest picture: older unshown ones are simply never passed in. A picture of
    /// a new size re-creates the texture in the same window.
    ///
    /// Unless `hud.status` is [`Status::Live`], the picture is dimmed and the status
    /// message drawn over it, so a stalled stream never looks live.
    pub fn present(
        &mut self,
        picture: Option<&Picture>,
        hud: &Hud<'_>,
    ) -> Result<PresentTiming, DisplayError> {
        let start = Instant::now();
        if let Some(p) = picture {
            self.upload(p)?;
        }
        let uploaded = Instant::now();
        self.draw(hud)?;
        let drawn = Instant::now();
        self.canvas.present();
        let presented_at = Instant::now();
        Ok(PresentTiming {
            presented_at,
            decoded_to_presented: picture
                .map(|p| presented_at.saturating_duration_since(p.decoded_at)),
            upload: uploaded - start,
            draw: drawn - uploaded,
            present: presented_at - drawn,
        })
    }

    /// Draws the last picture with `hud`, reads the pixels back and presents. Slow (a
    /// GPU read-back): for tests and diagnostics only.
    pub fn screenshot(&mut self, hud: &Hud<'_>) -> Result<Screenshot, DisplayError> {
        self.draw(hud)?;
        let (width, height) = self.output_size()?;
        let rgb = self
            .canvas
            .read_pixels(None, PixelFormatEnum::RGB24)
            .map_err(|e| sdl_err("reading the window's pixels back", &self.driver, e))?;
        self.canvas.present();
        Ok(Screenshot { width, height, rgb })
    }

    /// Whether the stats overlay is shown (the caller may skip building its lines
    /// when it is not).
    pub fn overlay_on(&self) -> bool {
        self.overlay_on
    }

    /// Shows or hides the stats overlay, as `S` does.
    pub fn set_overlay(&mut self, on: bool) {
        self.overlay_on = on;
    }

    /// Whether the window is fullscreen.
    pub fn is_fullscreen(&self) -> bool {
        self.canvas.window().fullscreen_state() != FullscreenType::Off
    }

    /// Toggles desktop fullscreen, as `F` or a double-click does. A failure is logged,
    /// not returned: the window stays usable as it was.
    pub fn toggle_fullscreen(&mut self) {
        let next = if self.is_fullscreen() {
            FullscreenType::Off
        } else {
            FullscreenType::Desktop
        };
        if let Err(e) = self.canvas.window_mut().set_fullscreen(next) {
            tracing::warn!(driver = %self.driver, "cannot switch fullscreen to {next:?}: {e}");
        }
    }

    /// Resizes the window's client area (screen coordinates; the output may have more
    /// pixels on a high-DPI screen).
    pub fn set_size(&mut self, width: u32, height: u32) -> Result<(), DisplayError> {
        self.canvas
            .window_mut()
            .set_size(width.max(1), height.max(1))
            .map_err(|e| {
                sdl_err(
                    format!("resizing the window to {width}x{height}"),
                    &self.driver,
                    e.to_string(),
                )
            })
    }

    /// The drawable size in pixels.
    pub fn output_size(&self) -> Result<(u32, u32), DisplayError> {
        self.canvas
            .output_size()
            .map_err(|e| sdl_err("querying the output size", &self.driver, e))
    }

    /// Names the sender in the title (once its address is known, or when it changes).
    pub fn set_peer(&mut self, peer: &str) {
        if self.peer == peer {
            return;
        }
        self.peer = peer.to_owned();
        let t = title(&self.peer, self.picture_size());
        if let Err(e) = self.canvas.window_mut().set_title(&t) {
            tracing::warn!("cannot set the window title {t:?}: {e}");
        }
    }

    /// The size of the picture last shown, if any.
    pub fn picture_size(&self) -> Option<(u32, u32)> {
        self.gpu
            .borrow_dependent()
            .video
            .as_ref()
            .map(|v| (v.width, v.height))
    }

    /// SDL's video driver, e.g. `x11`, `wayland` or `offscreen`.
    pub fn video_driver(&self) -> &str {
        &self.driver
    }

    /// The renderer SDL chose, e.g. `opengl`, `opengles2` or `software`.
    pub fn renderer_name(&self) -> String {
        self.canvas.info().name.to_owned()
    }

    /// Copies the picture's planes into the streaming texture, making a new texture
    /// first if the size changed.
    fn upload(&mut self, p: &Picture) -> Result<(), DisplayError> {
        check_picture(p)?;
        let driver = self.driver.as_str();
        let resized = self.gpu.with_dependent_mut(|owner, assets| {
            let resized = assets
                .video
                .as_ref()
                .is_none_or(|v| (v.width, v.height) != (p.width, p.height));
            if resized {
                assets.video = None;
                let texture = owner
                    .creator
                    .create_texture_streaming(PixelFormatEnum::IYUV, p.width, p.height)
                    .map_err(|e| {
                        sdl_err(
                            format!("creating a {}x{} YUV texture", p.width, p.height),
                            driver,
                            e.to_string(),
                        )
                    })?;
                assets.video = Some(Video {
                    texture,
                    width: p.width,
                    height: p.height,
                });
            }
            if let Some(v) = assets.video.as_mut() {
                let (w, cw) = (p.width as usize, p.chroma_width());
                v.texture
                    .update_yuv(None, &p.y, w, &p.u, cw, &p.v, cw)
                    .map_err(|e| {
                        sdl_err(
                            format!("uploading a {}x{} picture", p.width, p.height),
                            driver,
                            e.to_string(),
                        )
                    })?;
            }
            Ok::<_, DisplayError>(resized)
        })?;
        if resized {
            let t = title(&self.peer, Some((p.width, p.height)));
            if let Err(e) = self.canvas.window_mut().set_title(&t) {
                tracing::warn!("cannot set the window title {t:?}: {e}");
            }
        }
        Ok(())
    }

    /// Draws everything into the back buffer.
    fn draw(&mut self, hud: &Hud<'_>) -> Result<(), DisplayError> {
        let output = self.output_size()?;
        let Window {
            gpu,
            canvas,
            driver,
            overlay_on,
            points,
            ..
        } = self;
        let driver = driver.as_str();
        canvas.set_draw_color(Color::BLACK);
        canvas.clear();
        if output.0 == 0 || output.1 == 0 {
            return Ok(()); // minimised
        }
        gpu.with_dependent_mut(|owner, assets| {
            if let Some(v) = &assets.video {
                let area = layout::letterbox((v.width, v.height), output);
                let dst = Rect::new(area.x, area.y, area.w.max(1), area.h.max(1));
                canvas
                    .copy(&v.texture, None, dst)
                    .map_err(|e| sdl_err("drawing the picture", driver, e))?;
            }
            if let Some(message) = hud.status.message() {
                hud::draw_status(canvas, owner, &mut assets.text, &message, output, driver)?;
            }
            if *overlay_on {
                hud::draw_overlay(canvas, owner, &mut assets.text, hud, output, points, driver)?;
            }
            Ok(())
        })
    }
}

/// Rejects pictures whose planes do not match their size, before SDL sees them.
fn check_picture(p: &Picture) -> Result<(), DisplayError> {
    let bad = |detail: String| DisplayError::BadPicture {
        width: p.width,
        height: p.height,
        detail,
    };
    if p.width == 0 || p.height == 0 || p.width % 2 != 0 || p.height % 2 != 0 {
        return Err(bad("I420 needs a non-zero, even width and height".into()));
    }
    let luma = p.width as usize * p.height as usize;
    for (name, len, want) in [
        ("y", p.y.len(), luma),
        ("u", p.u.len(), luma / 4),
        ("v", p.v.len(), luma / 4),
    ] {
        if len != want {
            return Err(bad(format!(
                "plane {name} has {len} bytes, expected {want}"
            )));
        }
    }
    Ok(())
}

fn title(peer: &str, size: Option<(u32, u32)>) -> String {
    match size {
        Some((w, h)) => format!("picam — {peer} — {w}x{h}"),
        None => format!("picam — {peer}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_pictures_are_rejected_with_their_size() {
        let mut p = Picture::new(4, 2);
        assert!(check_picture(&p).is_ok());
        p.u.pop();
        let e = check_picture(&p)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("4x2") && e.contains("plane u"), "{e}");
        assert!(check_picture(&Picture {
            width: 3,
            ..Picture::new(4, 2)
        })
        .is_err());
    }

    #[test]
    fn title_names_the_peer_and_size() {
        assert_eq!(
            title("10.0.0.2:5600", Some((1280, 720))),
            "picam — 10.0.0.2:5600 — 1280x720"
        );
    }
}
