//! picam's display stage: where decoded pictures go.
//!
//! [`Window`] shows pictures in an SDL2 window; [`Y4mWriter`] records exactly what a
//! viewer was shown (`--frames-out`), so any tool can inspect or time it.
//!
//! # The viewer window
//!
//! The window shows the newest decoded [`Picture`](media::Picture) through a streaming
//! IYUV texture (the planes go to the GPU as they are: no colour conversion on the
//! CPU), letterboxed in a resizable window, with vsync off unless asked for. Over it,
//! the caller's [`Hud`] supplies a [`Status`] (anything but live dims the picture and
//! says why, e.g. "waiting for the sender at ADDR" or "no frames for 3 s") and the
//! stats overlay's lines and latency samples. Text is rendered with SDL2_ttf at a pixel
//! size that follows the window, and cached until it changes.
//!
//! Keys: `F` or a double-click toggles desktop fullscreen, `S` the stats overlay;
//! `Esc`, `Q` or closing the window makes [`Window::handle_events`] return
//! [`Flow::Quit`].
//!
//! Everything SDL-bound stays on the thread that opened the window (the main thread on
//! macOS), and one window at a time per process. A receiver's loop looks like this,
//! with pictures arriving on a channel from the decoder thread:
//!
//! ```no_run
//! use std::sync::mpsc::{Receiver, RecvTimeoutError};
//! use std::time::Duration;
//! use display::{display_available, Flow, Hud, Status, Window, WindowOptions};
//!
//! fn show(pictures: Receiver<media::Picture>) -> Result<(), display::DisplayError> {
//!     if !display_available() {
//!         return Ok(()); // run headless instead
//!     }
//!     let options = WindowOptions { title_peer: "10.0.0.2:5600".into(), ..Default::default() };
//!     let mut window = Window::open(options)?;
//!     let mut status = Status::Waiting { peer: "10.0.0.2:5600".into() };
//!     loop {
//!         let flow = window.handle_events();
//!         if flow == Flow::Quit {
//!             return Ok(());
//!         }
//!         // Wait briefly for a picture, then take the newest one queued.
//!         let mut newest = match pictures.recv_timeout(Duration::from_millis(20)) {
//!             Ok(p) => Some(p),
//!             Err(RecvTimeoutError::Timeout) => None,
//!             Err(RecvTimeoutError::Disconnected) => return Ok(()),
//!         };
//!         while let Ok(p) = pictures.try_recv() {
//!             newest = Some(p);
//!         }
//!         if newest.is_some() {
//!             status = Status::Live;
//!         }
//!         if newest.is_some() || flow == Flow::Redraw {
//!             let hud = Hud { status: status.clone(), ..Default::default() };
//!             let timing = window.present(newest.as_ref(), &hud)?;
//!             let _ = timing.decoded_to_presented; // display-path latency
//!         }
//!     }
//! }
//! ```
//! A real loop also presents about once a second while no pictures arrive, with
//! [`Status::Stalled`], so the message's count moves on.

#![forbid(unsafe_code)]

mod error;
mod window;
mod y4m_writer;

pub use error::DisplayError;
pub use window::{
    display_available, Flow, Hud, PresentTiming, Screenshot, Status, Window, WindowOptions,
};
pub use y4m_writer::Y4mWriter;
