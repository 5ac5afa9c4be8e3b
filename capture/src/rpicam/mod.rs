//! `rpicam-vid` (or the older `libcamera-vid`) as a child process: the modern Raspberry
//! Pi camera stack (libcamera) on Pi OS, including the Pi 5. Two ways to use it:
//!
//! - [`RpicamRawSource`] (the default when picam has an encoder): rpicam-vid is only the
//!   camera and writes raw I420 frames; picam encodes them (the V4L2 hardware encoder or
//!   libx264), so keyframes on request, bitrate and frame-rate changes all work.
//! - [`RpicamSource`] (`--encoder rpicam`): rpicam-vid encodes H.264 itself; it takes
//!   no commands while it runs.
//!
//! Either way a child that exits or stalls is restarted with backoff and each restart
//! is logged with its last stderr lines.

mod args;
mod child;
mod frame_reader;
mod h264;
pub mod layout;
mod raw;

pub use args::{level_for, raw_args, rpicam_args};
pub use frame_reader::{FrameRead, FrameReader, RawFrame};
pub use h264::RpicamSource;
pub use layout::{I420Layout, Isp};
pub use raw::{RawEncoding, RawOptions, RpicamRawSource};

/// Programs tried, in order, when none is named.
pub const PROGRAMS: [&str; 2] = ["rpicam-vid", "libcamera-vid"];

/// The full path of `name` on PATH, if it is there.
pub fn find_on_path(name: &str) -> Option<std::path::PathBuf> {
    if name.contains('/') {
        return Some(std::path::PathBuf::from(name)).filter(|p| p.is_file());
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}
