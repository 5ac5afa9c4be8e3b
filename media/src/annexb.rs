//! H.264 Annex B byte streams (shared: capture splits files and pipes with it, transport
//! splits the raw `h264` wire with it): finding NAL units, splitting a stream into access units
//! (one picture each), and keeping SPS/PPS in front of every keyframe.
//!
//! The splitter is check-then-parse: [`AccessUnitSplitter::push`] takes bytes as they
//! arrive, [`AccessUnitSplitter::pull`] hands out an access unit only once the start of
//! the next one has been seen (an incomplete unit is `Ok(None)`, never an error), and
//! [`AccessUnitSplitter::finish`] hands out the last one at the end of the stream.
//!
//! Waiting for the next access unit costs a frame interval on a live pipe, so
//! [`AccessUnitSplitter::flush`] hands out the pending unit early; a live source calls it
//! when its producer has gone quiet (a camera pipeline writes each frame in one go).

use std::collections::VecDeque;

use crate::MediaError;

/// NAL unit types this module cares about (H.264 table 7-1).
pub mod nal {
    /// Coded slice of a non-IDR picture.
    pub const SLICE: u8 = 1;
    /// Coded slice of an IDR picture.
    pub const IDR: u8 = 5;
    /// Supplemental enhancement information.
    pub const SEI: u8 = 6;
    /// Sequence parameter set.
    pub const SPS: u8 = 7;
    /// Picture parameter set.
    pub const PPS: u8 = 8;
    /// Access unit delimiter.
    pub const AUD: u8 = 9;
}

/// The largest access unit accepted; anything longer is not a picture but a stream with
/// no start codes in it, and is refused rather than buffered without bound.
pub const MAX_ACCESS_UNIT: usize = 16 << 20;

/// The NAL unit type of a NAL unit that starts with its header byte.
pub fn nal_type(nal: &[u8]) -> Option<u8> {
    nal.first().map(|h| h & 0x1f)
}

/// Iterates over the NAL units of an Annex B buffer, each without its start code,
/// starting at its header byte. Bytes before the first start code are skipped; trailing
/// zero bytes stay with the NAL unit they follow.
pub fn nal_units(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut pos = find_start_code(data, 0).map(|s| s + 3);
    std::iter::from_fn(move || {
        let start = pos?;
        match find_start_code(data, start) {
            Some(next) => {
                pos = Some(next + 3);
                Some(&data[start..next])
            }
            None => {
                pos = None;
                Some(&data[start..])
            }
        }
    })
    .filter(|nal| !nal.is_empty())
}

/// Offset of the first `00 00 01` at or after `from`.
fn find_start_code(data: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i + 3 <= data.len() {
        // Skip fast: the third byte must be 1 and the second 0.
        match data[i + 2] {
            1 if data[i + 1] == 0 && data[i] == 0 => return Some(i),
            0 => i += 1,
            _ => i += 3,
        }
    }
    None
}

/// True when a VCL NAL unit is the first slice of its picture: `first_mb_in_slice`
/// (the first ue(v) of the slice header) is 0, i.e. its first bit is 1.
fn first_slice(nal: &[u8]) -> bool {
    nal.get(1).is_some_and(|b| b & 0x80 != 0)
}

fn is_vcl(t: u8) -> bool {
    (1..=5).contains(&t)
}

/// One access unit: the Annex B bytes of one picture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessUnit {
    /// Start codes and NAL units, as they were in the stream.
    pub data: Vec<u8>,
    /// The picture is an IDR picture.
    pub keyframe: bool,
}

/// What is known of the access unit being gathered.
#[derive(Clone, Copy, Debug, Default)]
struct Pending {
    any: bool,
    vcl: bool,
    idr: bool,
}

/// Splits an Annex B byte stream into access units. See the module documentation for
/// the call order.
#[derive(Debug)]
pub struct AccessUnitSplitter {
    origin: String,
    /// Bytes of the pending access unit (and anything after it not yet classified).
    buf: Vec<u8>,
    /// Scanning for start codes resumes here.
    scan: usize,
    pending: Pending,
    ready: VecDeque<AccessUnit>,
}

impl AccessUnitSplitter {
    /// A splitter for the stream named `origin` (a path, a device, a program), which
    /// errors name.
    pub fn new(origin: impl Into<String>) -> Self {
        Self {
            origin: origin.into(),
            buf: Vec::new(),
            scan: 0,
            pending: Pending::default(),
            ready: VecDeque::new(),
        }
    }

    /// Appends bytes read from the stream.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete access unit, `Ok(None)` when more bytes are needed.
    pub fn pull(&mut self) -> Result<Option<AccessUnit>, MediaError> {
        if let Some(au) = self.ready.pop_front() {
            return Ok(Some(au));
        }
        self.scan_buf();
        if let Some(au) = self.ready.pop_front() {
            return Ok(Some(au));
        }
        if self.buf.len() > MAX_ACCESS_UNIT {
            let len = self.buf.len();
            self.reset();
            return Err(MediaError::Bitstream {
                origin: self.origin.clone(),
                what: format!(
                    "{len} bytes without an access-unit boundary (not an H.264 Annex B stream?)"
                ),
            });
        }
        Ok(None)
    }

    /// Hands out the pending access unit now if it holds a picture, without waiting for
    /// the next one to begin. For live pipes whose producer writes whole frames.
    pub fn flush(&mut self) -> Option<AccessUnit> {
        if let Some(au) = self.ready.pop_front() {
            return Some(au);
        }
        self.scan_buf();
        if let Some(au) = self.ready.pop_front() {
            return Some(au);
        }
        self.pending.vcl.then(|| self.take(self.buf.len()))
    }

    /// At the end of the stream: the last access unit, if it holds a picture.
    pub fn finish(&mut self) -> Option<AccessUnit> {
        let au = self.flush();
        if self.ready.is_empty() && au.is_none() {
            // Parameter sets or garbage with no picture after them.
            self.reset();
        }
        au
    }

    /// True when the pending access unit holds at least one slice.
    pub fn has_picture(&self) -> bool {
        !self.ready.is_empty() || self.pending.vcl
    }

    /// Bytes held and not yet handed out.
    pub fn buffered(&self) -> usize {
        self.buf.len() + self.ready.iter().map(|au| au.data.len()).sum::<usize>()
    }

    /// Forgets everything buffered (after a producer restart).
    pub fn reset(&mut self) {
        self.buf.clear();
        self.scan = 0;
        self.pending = Pending::default();
        self.ready.clear();
    }

    /// Classifies the NAL units that have become visible, moving finished access units
    /// to `ready`.
    fn scan_buf(&mut self) {
        while let Some(mut sc) = find_start_code(&self.buf, self.scan) {
            // The header byte, and for a slice the byte holding first_mb_in_slice, must be
            // here before the NAL unit can be classified.
            let Some(&header) = self.buf.get(sc + 3) else {
                self.scan = sc;
                return;
            };
            let t = header & 0x1f;
            if is_vcl(t) && self.buf.len() < sc + 5 {
                self.scan = sc;
                return;
            }
            let starts_au = self.pending.vcl
                && match t {
                    nal::AUD | nal::SPS | nal::PPS | nal::SEI | 14..=18 => true,
                    _ if is_vcl(t) => first_slice(&self.buf[sc + 3..]),
                    _ => false,
                };
            if starts_au {
                // A four-byte start code's zero byte belongs to the next unit.
                let cut = if sc > 0 && self.buf[sc - 1] == 0 {
                    sc - 1
                } else {
                    sc
                };
                let au = self.take(cut);
                self.ready.push_back(au);
                sc -= cut;
            } else if !self.pending.any && sc > 0 {
                // Bytes before the first NAL unit of the stream are not data (a four-byte
                // start code keeps its zero).
                let cut = if self.buf[sc - 1] == 0 { sc - 1 } else { sc };
                self.buf.drain(..cut);
                sc -= cut;
            }
            self.pending.any = true;
            if is_vcl(t) {
                self.pending.vcl = true;
                self.pending.idr |= t == nal::IDR;
            }
            self.scan = sc + 3;
        }
        // Every position before len - 2 has been searched; a start code may straddle.
        self.scan = self.scan.max(self.buf.len().saturating_sub(2));
    }

    /// Removes the first `len` bytes as an access unit.
    fn take(&mut self, len: usize) -> AccessUnit {
        let rest = self.buf.split_off(len);
        let data = std::mem::replace(&mut self.buf, rest);
        let au = AccessUnit {
            data,
            keyframe: self.pending.idr,
        };
        self.pending = Pending::default();
        self.scan = 0;
        au
    }
}

/// Remembers the newest SPS and PPS and puts them in front of IDR access units that lack
/// them, so every keyframe starts a decoder (a file or camera may send them only once).
#[derive(Clone, Debug, Default)]
pub struct ParameterSets {
    sps: Option<Vec<u8>>,
    pps: Option<Vec<u8>>,
}

impl ParameterSets {
    /// Learns the parameter sets in `au`; if it is a keyframe without them, returns it with
    /// the remembered ones in front, otherwise as it is.
    pub fn complete(&mut self, au: AccessUnit) -> AccessUnit {
        let (mut has_sps, mut has_pps) = (false, false);
        for n in nal_units(&au.data) {
            match nal_type(n) {
                Some(nal::SPS) => {
                    has_sps = true;
                    self.sps = Some(trim_trailing_zeros(n).to_vec());
                }
                Some(nal::PPS) => {
                    has_pps = true;
                    self.pps = Some(trim_trailing_zeros(n).to_vec());
                }
                _ => {}
            }
        }
        if !au.keyframe || (has_sps && has_pps) {
            return au;
        }
        let mut data = Vec::with_capacity(au.data.len() + 64);
        for (have, set) in [(has_sps, &self.sps), (has_pps, &self.pps)] {
            if let (false, Some(set)) = (have, set) {
                data.extend_from_slice(&[0, 0, 0, 1]);
                data.extend_from_slice(set);
            }
        }
        data.extend_from_slice(&au.data);
        AccessUnit {
            data,
            keyframe: true,
        }
    }

    /// True once both an SPS and a PPS have been seen.
    pub fn known(&self) -> bool {
        self.sps.is_some() && self.pps.is_some()
    }
}

fn trim_trailing_zeros(nal: &[u8]) -> &[u8] {
    let end = nal.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
    &nal[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A NAL unit with a four-byte start code: header byte `h`, then `body`.
    fn nalu(h: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![0, 0, 0, 1, h];
        v.extend_from_slice(body);
        v
    }
    const SPS: u8 = 0x67;
    const PPS: u8 = 0x68;
    const IDR: u8 = 0x65;
    const P: u8 = 0x41;
    const AUD: u8 = 0x09;
    const SEI: u8 = 0x06;
    /// Slice bodies: first_mb_in_slice = 0 (first bit 1) or not.
    const FIRST: &[u8] = &[0x88, 0x84, 0x21];
    const LATER: &[u8] = &[0x5a, 0x33, 0x01, 0x02];

    fn split_all(stream: &[u8], chunk: usize) -> Vec<AccessUnit> {
        let mut s = AccessUnitSplitter::new("test");
        let mut out = Vec::new();
        for c in stream.chunks(chunk.max(1)) {
            s.push(c);
            while let Some(au) = s.pull().unwrap() {
                out.push(au);
            }
        }
        out.extend(s.finish());
        out
    }

    fn concat(parts: &[Vec<u8>]) -> Vec<u8> {
        parts.concat()
    }

    #[test]
    fn finds_nal_units_with_three_and_four_byte_start_codes() {
        let data = [
            &[0xff, 0, 0, 1, SPS, 1, 2][..],
            &[0, 0, 0, 1, PPS, 3],
            &[0, 0, 1, IDR, 0x88],
        ]
        .concat();
        let nals: Vec<_> = nal_units(&data).collect();
        // The four-byte start code's zero stays behind as a trailing zero of the SPS.
        assert_eq!(nals, vec![&[SPS, 1, 2, 0][..], &[PPS, 3], &[IDR, 0x88]]);
        assert_eq!(nal_units(&[1, 2, 3]).count(), 0);
        assert_eq!(nal_units(&[]).count(), 0);
    }

    #[test]
    fn splits_access_units_on_every_boundary_kind_and_chunking() {
        let au1 = concat(&[
            nalu(SPS, &[1, 2]),
            nalu(PPS, &[3]),
            nalu(IDR, FIRST),
            nalu(IDR, LATER),
        ]);
        let au2 = concat(&[nalu(P, FIRST), nalu(P, LATER)]);
        let au3 = concat(&[nalu(AUD, &[0xf0]), nalu(P, FIRST)]);
        let au4 = concat(&[nalu(SEI, &[5, 1, 0x80]), nalu(P, FIRST)]);
        let au5 = concat(&[nalu(P, FIRST)]);
        let stream = concat(&[
            au1.clone(),
            au2.clone(),
            au3.clone(),
            au4.clone(),
            au5.clone(),
        ]);
        let want = [
            (&au1, true),
            (&au2, false),
            (&au3, false),
            (&au4, false),
            (&au5, false),
        ];
        for chunk in [1, 2, 3, 5, 7, 64, stream.len()] {
            let got = split_all(&stream, chunk);
            assert_eq!(got.len(), want.len(), "chunk {chunk}");
            for (g, (w, key)) in got.iter().zip(want) {
                assert_eq!((&g.data, g.keyframe), (w, key), "chunk {chunk}");
            }
        }
    }

    #[test]
    fn incomplete_unit_is_none_until_the_next_begins_and_flush_hands_it_out() {
        let mut s = AccessUnitSplitter::new("test");
        s.push(&concat(&[
            nalu(SPS, &[1]),
            nalu(PPS, &[2]),
            nalu(IDR, FIRST),
        ]));
        assert_eq!(s.pull().unwrap(), None);
        assert!(s.has_picture());
        let au = s.flush().expect("a picture is pending");
        assert!(au.keyframe);
        assert_eq!(s.buffered(), 0);
        // Parameter sets alone are not a picture: nothing to flush.
        s.push(&nalu(SPS, &[1]));
        assert_eq!(s.flush(), None);
        assert_eq!(s.finish(), None);
        assert_eq!(s.buffered(), 0);
    }

    #[test]
    fn garbage_is_bounded_and_reported_with_the_origin() {
        let mut s = AccessUnitSplitter::new("/dev/video9");
        let junk = vec![0x55u8; 1 << 20];
        let mut err = None;
        for _ in 0..(MAX_ACCESS_UNIT >> 20) + 2 {
            s.push(&junk);
            if let Err(e) = s.pull() {
                err = Some(e);
                break;
            }
        }
        let err = err.expect("oversized input is refused").to_string();
        assert!(err.contains("/dev/video9"), "{err}");
        assert_eq!(s.buffered(), 0);
    }

    #[test]
    fn never_panics_on_arbitrary_bytes() {
        // A small deterministic generator: start-code-rich noise.
        let mut x: u32 = 12345;
        let mut data = Vec::new();
        for _ in 0..20_000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            data.push(match (x >> 16) % 6 {
                0 | 1 => 0,
                2 => 1,
                _ => (x >> 8) as u8,
            });
        }
        for chunk in [1, 3, 17, 4096] {
            let aus = split_all(&data, chunk);
            let total: usize = aus.iter().map(|a| a.data.len()).sum();
            assert!(total <= data.len());
        }
    }

    #[test]
    fn keyframes_get_parameter_sets_once_learned() {
        let mut ps = ParameterSets::default();
        let first = AccessUnit {
            data: concat(&[nalu(SPS, &[1]), nalu(PPS, &[2]), nalu(IDR, FIRST)]),
            keyframe: true,
        };
        assert_eq!(ps.complete(first.clone()), first);
        assert!(ps.known());
        let p = AccessUnit {
            data: nalu(P, FIRST),
            keyframe: false,
        };
        assert_eq!(ps.complete(p.clone()), p);
        let bare_idr = AccessUnit {
            data: nalu(IDR, FIRST),
            keyframe: true,
        };
        let fixed = ps.complete(bare_idr);
        let types: Vec<_> = nal_units(&fixed.data).filter_map(nal_type).collect();
        assert_eq!(types, vec![nal::SPS, nal::PPS, nal::IDR]);
    }
}
