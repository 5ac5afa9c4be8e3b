//! The YUV4MPEG2 stream header, shared by the y4m source (reading) and the
//! `--frames-out` sink (writing). Only 4:2:0 8-bit is accepted: it is what H.264
//! cameras and picam's decoder produce.

use crate::MediaError;

/// Stream parameters from a `YUV4MPEG2 ...` header line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Y4mHeader {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Frame rate numerator.
    pub fps_num: u32,
    /// Frame rate denominator.
    pub fps_den: u32,
}

/// Magic that opens a frame inside the stream.
pub const FRAME_MAGIC: &[u8] = b"FRAME";

impl Y4mHeader {
    /// Parses the header line (without its trailing newline).
    pub fn parse(line: &str) -> Result<Self, MediaError> {
        let bad = |why: String| MediaError::Y4mHeader(why);
        let mut fields = line.split_ascii_whitespace();
        if fields.next() != Some("YUV4MPEG2") {
            return Err(bad("stream does not start with YUV4MPEG2".into()));
        }
        let (mut width, mut height, mut fps) = (None, None, (30, 1));
        for field in fields {
            let (tag, value) = field.split_at(1);
            match tag {
                "W" => width = value.parse().ok(),
                "H" => height = value.parse().ok(),
                "F" => {
                    let (n, d) = value
                        .split_once(':')
                        .ok_or_else(|| bad(format!("frame rate `{value}`")))?;
                    fps = (
                        n.parse()
                            .map_err(|_| bad(format!("frame rate `{value}`")))?,
                        d.parse()
                            .map_err(|_| bad(format!("frame rate `{value}`")))?,
                    );
                }
                "C" if !value.starts_with("420") || value.contains("p1") => {
                    return Err(bad(format!(
                        "colour space `C{value}`: only 8-bit 4:2:0 (C420*) is supported"
                    )));
                }
                "I" if value != "p" && value != "?" => {
                    return Err(bad(format!(
                        "interlacing `I{value}`: only progressive is supported"
                    )));
                }
                _ => {}
            }
        }
        let width = width.ok_or_else(|| bad("missing or bad width (W)".into()))?;
        let height = height.ok_or_else(|| bad("missing or bad height (H)".into()))?;
        if width == 0
            || height == 0
            || width % 2 == 1
            || height % 2 == 1
            || width > 8192
            || height > 8192
        {
            return Err(MediaError::PictureSize {
                width,
                height,
                why: "must be even and 2..=8192",
            });
        }
        if fps.0 == 0 || fps.1 == 0 {
            return Err(bad(format!(
                "frame rate {}:{} is not positive",
                fps.0, fps.1
            )));
        }
        Ok(Self {
            width,
            height,
            fps_num: fps.0,
            fps_den: fps.1,
        })
    }

    /// The header line, newline included.
    pub fn to_line(&self) -> String {
        format!(
            "YUV4MPEG2 W{} H{} F{}:{} Ip A1:1 C420jpeg\n",
            self.width, self.height, self.fps_num, self.fps_den
        )
    }

    /// Bytes of one frame's planes.
    pub fn frame_bytes(&self) -> usize {
        let luma = self.width as usize * self.height as usize;
        luma + luma / 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_ffmpeg_writes_and_round_trips() {
        let h =
            Y4mHeader::parse("YUV4MPEG2 W1280 H720 F30000:1001 Ip A1:1 C420jpeg XYSCSS=420JPEG")
                .unwrap();
        assert_eq!(
            (h.width, h.height, h.fps_num, h.fps_den),
            (1280, 720, 30000, 1001)
        );
        assert_eq!(Y4mHeader::parse(h.to_line().trim_end()).unwrap(), h);
        assert_eq!(h.frame_bytes(), 1280 * 720 * 3 / 2);
    }

    #[test]
    fn refuses_what_it_cannot_carry() {
        for line in [
            "YUV4MPEG W2 H2",
            "YUV4MPEG2 H720",
            "YUV4MPEG2 W1281 H720",
            "YUV4MPEG2 W1280 H720 C444",
            "YUV4MPEG2 W1280 H720 C420p10",
            "YUV4MPEG2 W1280 H720 It",
            "YUV4MPEG2 W1280 H720 F30:0",
            "YUV4MPEG2 W1280 H720 Fx",
        ] {
            assert!(Y4mHeader::parse(line).is_err(), "{line}");
        }
    }
}
