//! `--frames-out`: every picture shown, as YUV4MPEG2. A stream of that format has one
//! picture size, but a sender restarted at another resolution changes it mid-run. So a
//! file gets a sibling per size (`shown.y4m`, then `shown.640x480.y4m`), each said once
//! in the log; stdout cannot be split, so pictures of a new size are counted
//! (`frames_out_skipped`) with one warning, never dropped in silence.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use display::Y4mWriter;
use media::Picture;

/// Frame rate declared in the headers (the stream's real rate is not known here).
const FPS: u32 = 30;
/// Files open at once; a stream hopping between more sizes than this is pathological,
/// and the pictures of further sizes are counted as skipped.
const MAX_FILES: usize = 8;

type Writer = Y4mWriter<Box<dyn Write + Send>>;

/// Where shown pictures are written.
pub enum FramesOut {
    /// `-`: one stream on stdout; pictures of another size than the first are skipped.
    Stdout {
        /// The writer.
        writer: Writer,
        /// A new size has been reported.
        warned: bool,
    },
    /// A file, and one more per picture size.
    Files {
        /// The file named on the command line (the first size goes there).
        path: PathBuf,
        /// One writer per size seen, in order of appearance.
        writers: Vec<((u32, u32), Writer)>,
        /// Pictures of sizes past [`MAX_FILES`].
        skipped: u64,
    },
}

impl FramesOut {
    /// Opens `path` (`-`: stdout); the file is created at once so a bad path fails early.
    pub fn open(path: &str) -> Result<Self> {
        if path == "-" {
            return Ok(Self::Stdout {
                writer: Y4mWriter::new(Box::new(std::io::stdout()), "-", FPS),
                warned: false,
            });
        }
        let path = PathBuf::from(path);
        let file = create(&path)?;
        Ok(Self::Files {
            path,
            writers: vec![((0, 0), file)],
            skipped: 0,
        })
    }

    /// Writes one picture (to the file of its size).
    pub fn write(&mut self, picture: &Picture) -> Result<()> {
        let size = (picture.width, picture.height);
        match self {
            Self::Stdout { writer, warned } => {
                let before = writer.skipped();
                writer.write(picture)?;
                if writer.skipped() > before && !*warned {
                    *warned = true;
                    tracing::warn!(
                        "--frames-out -: the pictures changed size to {}x{}; a YUV4MPEG2 stream \
                         cannot, so pictures of another size than the first are not written \
                         (counted as frames_out_skipped)",
                        size.0,
                        size.1
                    );
                }
            }
            Self::Files {
                path,
                writers,
                skipped,
            } => {
                // The first picture fixes the first file's size.
                if writers.len() == 1 && writers[0].0 == (0, 0) {
                    writers[0].0 = size;
                }
                let at = match writers.iter().position(|(s, _)| *s == size) {
                    Some(at) => at,
                    None if writers.len() >= MAX_FILES => {
                        *skipped += 1;
                        return Ok(());
                    }
                    None => {
                        let sibling = sized_path(path, size);
                        tracing::warn!(
                            "--frames-out: the pictures changed size to {}x{}; writing them to {}",
                            size.0,
                            size.1,
                            sibling.display()
                        );
                        writers.push((size, create(&sibling)?));
                        writers.len() - 1
                    }
                };
                writers[at].1.write(picture)?;
            }
        }
        Ok(())
    }

    /// Pictures shown but not written.
    pub fn skipped(&self) -> u64 {
        match self {
            Self::Stdout { writer, .. } => writer.skipped(),
            Self::Files { skipped, .. } => *skipped,
        }
    }
}

fn create(path: &Path) -> Result<Writer> {
    let file = std::fs::File::create(path)
        .with_context(|| format!("cannot create --frames-out file {}", path.display()))?;
    let out: Box<dyn Write + Send> = Box::new(std::io::BufWriter::with_capacity(4 << 20, file));
    Ok(Y4mWriter::new(out, path.display().to_string(), FPS))
}

/// `shown.y4m` -> `shown.640x480.y4m`; `shown` -> `shown.640x480`.
fn sized_path(path: &Path, (w, h): (u32, u32)) -> PathBuf {
    let stem = path.file_stem().unwrap_or_default().to_string_lossy();
    let name = match path.extension() {
        Some(ext) => format!("{stem}.{w}x{h}.{}", ext.to_string_lossy()),
        None => format!("{stem}.{w}x{h}"),
    };
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sibling_names_carry_the_size() {
        let cases = [
            ("shown.y4m", "shown.640x480.y4m"),
            ("/tmp/a/shown.y4m", "/tmp/a/shown.640x480.y4m"),
            ("shown", "shown.640x480"),
        ];
        for (path, want) in cases {
            assert_eq!(sized_path(Path::new(path), (640, 480)), PathBuf::from(want));
        }
    }

    /// Sizes 4x2, 8x2, 4x2: the first and last go to the named file, the second to its
    /// sibling; nothing is lost.
    #[test]
    fn a_new_size_goes_to_a_new_file_and_nothing_is_skipped() {
        let dir = std::env::temp_dir().join(format!("picam-frames-out-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("shown.y4m");
        let mut out = FramesOut::open(path.to_str().unwrap()).unwrap();
        for (w, h) in [(4, 2), (8, 2), (4, 2), (8, 2), (8, 2)] {
            out.write(&Picture::new(w, h)).unwrap();
        }
        assert_eq!(out.skipped(), 0);
        drop(out);
        let frames = |p: &Path| {
            let bytes = std::fs::read(p).unwrap();
            let text = String::from_utf8_lossy(&bytes).into_owned();
            (
                text.lines().next().unwrap().to_string(),
                text.matches("FRAME").count(),
            )
        };
        let (header, n) = frames(&path);
        assert!(header.starts_with("YUV4MPEG2 W4 H2"), "{header}");
        assert_eq!(n, 2);
        let (header, n) = frames(&dir.join("shown.8x2.y4m"));
        assert!(header.starts_with("YUV4MPEG2 W8 H2"), "{header}");
        assert_eq!(n, 3);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
