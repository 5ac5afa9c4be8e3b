//! The latency stamp: frame number and sender wall-clock time painted into the pixels.
//!
//! Layout (see `docs/STAMP.md`): 112 bits, most significant first — frame number (32),
//! capture time in microseconds since the Unix epoch (64), CRC-16/CCITT-FALSE over the
//! 12 bytes before it (16). Each bit is a [`BLOCK`]x[`BLOCK`] luma square, white (235)
//! for 1 and black (16) for 0, laid out left to right and top to bottom from the
//! picture's top-left corner; chroma under the band is neutral (128). Squares aligned
//! to H.264 macroblocks with full-range contrast survive heavy compression; the reader
//! averages each square's inner half and the CRC rejects any misread.

use crate::Picture;

/// Side of one bit's square in luma pixels (one H.264 macroblock).
pub const BLOCK: u32 = 16;
/// Number of bits in a stamp.
pub const BITS: u32 = 112;
const WHITE: u8 = 235;
const BLACK: u8 = 16;

/// What the sender wrote into a picture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// Frame number at the source (wraps).
    pub frame: u32,
    /// Sender wall-clock time, microseconds since the Unix epoch.
    pub time_us: u64,
}

/// Squares per row for a picture of this width.
fn columns(width: u32) -> u32 {
    width / BLOCK
}

/// Height in luma rows covered by the stamp band, or `None` when the picture is too small.
pub fn band_height(width: u32, height: u32) -> Option<u32> {
    let cols = columns(width);
    if cols == 0 {
        return None;
    }
    let rows = BITS.div_ceil(cols);
    let band = rows * BLOCK;
    (band <= height).then_some(band)
}

fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0xFFFF;
    for &b in bytes {
        crc ^= (b as u16) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

fn to_bytes(stamp: Stamp) -> [u8; 14] {
    let mut out = [0u8; 14];
    out[..4].copy_from_slice(&stamp.frame.to_be_bytes());
    out[4..12].copy_from_slice(&stamp.time_us.to_be_bytes());
    let crc = crc16(&out[..12]);
    out[12..].copy_from_slice(&crc.to_be_bytes());
    out
}

/// Paints `stamp` into the top band of `picture`. Returns false (painting nothing) when
/// the picture is too small to hold it.
pub fn paint(picture: &mut Picture, stamp: Stamp) -> bool {
    let Some(band) = band_height(picture.width, picture.height) else {
        return false;
    };
    let bytes = to_bytes(stamp);
    let width = picture.width as usize;
    let cols = columns(picture.width);
    for bit in 0..BITS {
        let set = bytes[(bit / 8) as usize] & (0x80 >> (bit % 8)) != 0;
        let value = if set { WHITE } else { BLACK };
        let (bx, by) = ((bit % cols) * BLOCK, (bit / cols) * BLOCK);
        for row in by..by + BLOCK {
            let start = row as usize * width + bx as usize;
            picture.y[start..start + BLOCK as usize].fill(value);
        }
    }
    let cw = picture.chroma_width();
    let chroma_rows = band as usize / 2;
    picture.u[..cw * chroma_rows].fill(128);
    picture.v[..cw * chroma_rows].fill(128);
    true
}

/// Reads a stamp back from a (possibly compressed) picture; `None` when there is no
/// valid stamp (too small, never painted, or damaged beyond what the CRC accepts).
pub fn read(picture: &Picture) -> Option<Stamp> {
    band_height(picture.width, picture.height)?;
    let width = picture.width as usize;
    let cols = columns(picture.width);
    let mut bytes = [0u8; 14];
    let quarter = BLOCK / 4;
    for bit in 0..BITS {
        let (bx, by) = ((bit % cols) * BLOCK, (bit / cols) * BLOCK);
        let mut sum = 0u32;
        for row in by + quarter..by + BLOCK - quarter {
            let start = row as usize * width + (bx + quarter) as usize;
            sum += picture.y[start..start + (BLOCK / 2) as usize]
                .iter()
                .map(|&p| p as u32)
                .sum::<u32>();
        }
        let mean = sum / ((BLOCK / 2) * (BLOCK / 2));
        if mean >= 128 {
            bytes[(bit / 8) as usize] |= 0x80 >> (bit % 8);
        }
    }
    let crc = u16::from_be_bytes([bytes[12], bytes[13]]);
    if crc != crc16(&bytes[..12]) {
        return None;
    }
    Some(Stamp {
        frame: u32::from_be_bytes(bytes[..4].try_into().ok()?),
        time_us: u64::from_be_bytes(bytes[4..12].try_into().ok()?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_matches_the_ccitt_false_check_value() {
        assert_eq!(crc16(b"123456789"), 0x29B1);
    }

    #[test]
    fn round_trips_at_common_sizes() {
        for (w, h) in [(320, 240), (640, 480), (1280, 720), (1920, 1080)] {
            let mut p = Picture::new(w, h);
            let s = Stamp {
                frame: 0xDEAD_BEEF,
                time_us: 1_790_000_000_123_456,
            };
            assert!(paint(&mut p, s));
            assert_eq!(read(&p), Some(s), "{w}x{h}");
        }
    }

    #[test]
    fn survives_noise_but_rejects_a_flipped_bit() {
        let mut p = Picture::new(640, 480);
        let s = Stamp {
            frame: 7,
            time_us: 42,
        };
        paint(&mut p, s);
        // Compression-like noise of +-60 on every pixel keeps every square on its side.
        for (i, px) in p.y.iter_mut().enumerate() {
            let n = (i.wrapping_mul(2_654_435_761) >> 7) % 121;
            *px = (*px as i32 + n as i32 - 60).clamp(0, 255) as u8;
        }
        assert_eq!(read(&p), Some(s));
        // Invert the first square: the frame number's top bit changes and the CRC says no.
        for row in 0..BLOCK as usize {
            p.y[row * 640..row * 640 + BLOCK as usize].fill(WHITE);
        }
        assert_eq!(read(&p), None);
    }

    #[test]
    fn too_small_pictures_carry_no_stamp() {
        assert_eq!(band_height(64, 48), None);
        let mut p = Picture::new(64, 48);
        assert!(!paint(
            &mut p,
            Stamp {
                frame: 1,
                time_us: 1
            }
        ));
        assert_eq!(read(&p), None);
    }

    #[test]
    fn a_blank_picture_reads_as_no_stamp() {
        assert_eq!(read(&Picture::new(1280, 720)), None);
    }
}
