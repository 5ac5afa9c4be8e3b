//! Finding a TrueType font at run time.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::DisplayError;

/// Standard places of a monospace (or at least a plain sans) TrueType font, most
/// likely first: Debian/Ubuntu, Arch, Fedora, then macOS and Windows.
const CANDIDATES: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",
    "/usr/share/fonts/TTF/DejaVuSansMono.ttf",
    "/usr/share/fonts/dejavu/DejaVuSansMono.ttf",
    "/usr/share/fonts/dejavu-sans-mono-fonts/DejaVuSansMono.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationMono-Regular.ttf",
    "/System/Library/Fonts/Menlo.ttc",
    "/System/Library/Fonts/Monaco.ttf",
    "C:\\Windows\\Fonts\\consola.ttf",
    "C:\\Windows\\Fonts\\arial.ttf",
];

/// A font file read into memory, so it can be opened at any pixel size without
/// touching the file system again.
pub(crate) struct FontFile {
    pub(crate) path: PathBuf,
    pub(crate) bytes: Vec<u8>,
}

/// Finds and reads the font: `explicit` if given (and only it), else the first of
/// [`CANDIDATES`] that exists, else what `fc-match monospace` names.
pub(crate) fn find_font(explicit: Option<&Path>) -> Result<FontFile, DisplayError> {
    if let Some(path) = explicit {
        return read(path);
    }
    if let Some(path) = CANDIDATES.iter().map(Path::new).find(|p| p.is_file()) {
        return read(path);
    }
    if let Some(path) = fc_match() {
        return read(&path);
    }
    Err(DisplayError::NoFont {
        tried: format!("{}, fc-match monospace", CANDIDATES.join(", ")),
    })
}

fn read(path: &Path) -> Result<FontFile, DisplayError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(FontFile {
            path: path.to_path_buf(),
            bytes,
        }),
        Err(e) => Err(DisplayError::Font {
            path: path.display().to_string(),
            message: e.to_string(),
        }),
    }
}

/// Asks fontconfig, if installed, for a monospace font file that FreeType can scale.
fn fc_match() -> Option<PathBuf> {
    let out = Command::new("fc-match")
        .args(["--format=%{file}", "monospace"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let path = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    (matches!(ext.as_str(), "ttf" | "otf" | "ttc") && path.is_file()).then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explicit_path_that_does_not_exist_is_a_clear_error() {
        let err = find_font(Some(Path::new("/nonexistent/font.ttf")))
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("/nonexistent/font.ttf")));
    }
}
