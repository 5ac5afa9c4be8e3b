use std::io::Write;

use media::y4m::Y4mHeader;
use media::Picture;

use crate::DisplayError;

/// Writes pictures as a YUV4MPEG2 stream. The header is taken from the first picture;
/// YUV4MPEG2 cannot change size mid-stream, so pictures of another size are skipped and
/// counted.
pub struct Y4mWriter<W: Write> {
    out: W,
    path: String,
    fps: u32,
    header: Option<Y4mHeader>,
    written: u64,
    skipped: u64,
}

impl<W: Write> Y4mWriter<W> {
    /// A writer to `out` (named `path` in errors), declaring `fps` in the header.
    pub fn new(out: W, path: impl Into<String>, fps: u32) -> Self {
        Self {
            out,
            path: path.into(),
            fps: fps.max(1),
            header: None,
            written: 0,
            skipped: 0,
        }
    }

    /// Pictures written.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Pictures skipped because their size differed from the first.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Appends one picture and flushes, so a reader at the other end of a pipe sees it
    /// the moment it is shown.
    pub fn write(&mut self, picture: &Picture) -> Result<(), DisplayError> {
        let err = |source| DisplayError::Write {
            path: self.path.clone(),
            source,
        };
        let header = match self.header {
            Some(h) => h,
            None => {
                let h = Y4mHeader {
                    width: picture.width,
                    height: picture.height,
                    fps_num: self.fps,
                    fps_den: 1,
                };
                self.out.write_all(h.to_line().as_bytes()).map_err(err)?;
                self.header = Some(h);
                h
            }
        };
        if (header.width, header.height) != (picture.width, picture.height) {
            self.skipped += 1;
            return Ok(());
        }
        self.out.write_all(b"FRAME\n").map_err(err)?;
        for plane in [&picture.y, &picture.u, &picture.v] {
            self.out.write_all(plane).map_err(err)?;
        }
        self.out.flush().map_err(err)?;
        self.written += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_stream_y4m_readers_accept_and_skips_other_sizes() {
        let mut w = Y4mWriter::new(Vec::new(), "memory", 30);
        w.write(&Picture::new(4, 2)).unwrap();
        w.write(&Picture::new(8, 2)).unwrap();
        w.write(&Picture::new(4, 2)).unwrap();
        assert_eq!((w.written(), w.skipped()), (2, 1));
        let bytes = w.out;
        let header = "YUV4MPEG2 W4 H2 F30:1 Ip A1:1 C420jpeg\n";
        assert!(bytes.starts_with(header.as_bytes()));
        assert_eq!(bytes.len(), header.len() + 2 * (6 + 4 * 2 * 3 / 2));
        assert_eq!(
            Y4mHeader::parse(header.trim_end()).unwrap().frame_bytes(),
            12
        );
    }
}
