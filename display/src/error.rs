/// Everything the display stage can report.
#[derive(Debug, thiserror::Error)]
pub enum DisplayError {
    /// Writing pictures out failed.
    #[error("writing pictures to {path}: {source}")]
    Write {
        /// Where they were going (`-` for stdout).
        path: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// No display to open a window on; the caller should fall back to headless.
    #[error(
        "no display to open the viewer window on: neither DISPLAY nor WAYLAND_DISPLAY is \
         set (set SDL_VIDEODRIVER, e.g. SDL_VIDEODRIVER=offscreen, to render without one)"
    )]
    NoDisplay,
    /// An SDL call failed.
    #[error("SDL failed while {doing} (video driver {driver}): {message}")]
    Sdl {
        /// What the window was doing, e.g. "creating the renderer".
        doing: String,
        /// The SDL video driver in use, or `none` before one was chosen.
        driver: String,
        /// SDL's own error text.
        message: String,
    },
    /// No usable TrueType font was found for the window's text.
    #[error(
        "no TrueType font for the viewer's text: tried {tried}; install fonts-dejavu-core \
         or pass a font path in WindowOptions::font"
    )]
    NoFont {
        /// The paths and look-ups tried, comma separated.
        tried: String,
    },
    /// A font file was found but could not be read or parsed.
    #[error("loading the font {path}: {message}")]
    Font {
        /// The font file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// A picture's size or planes do not describe a valid I420 picture.
    #[error("picture {width}x{height} cannot be shown: {detail}")]
    BadPicture {
        /// Its luma width.
        width: u32,
        /// Its luma height.
        height: u32,
        /// What is wrong with it.
        detail: String,
    },
}
