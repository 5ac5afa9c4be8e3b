//! H.264 sequence parameter sets (SPS): reading what a WebRTC peer must know about a
//! stream, and rewriting an SPS so that it promises no frame reordering.
//!
//! A browser's H.264 decoder holds decoded pictures back (up to a whole DPB, several
//! frames) for output reordering unless the SPS says there is none: a VUI with
//! `bitstream_restriction_flag = 1`, `max_num_reorder_frames = 0` and
//! `max_dec_frame_buffering = max(max_num_ref_frames, 1)`. libx264 writes that for a
//! stream without B-frames; the Raspberry Pi's V4L2 encoder (bcm2835-codec) and many USB
//! cameras write no `bitstream_restriction`, or no VUI at all, and cost every viewer
//! frames of latency. [`reorder_free_sps`] rewrites such an SPS; [`rewrite_access_unit`]
//! applies it to every SPS of an Annex B access unit.
//!
//! **The rewrite is a promise the caller makes**: the stream must not reorder pictures
//! (no B-frames, output order = decoding order), as every stream picam sends is
//! (low-latency encoders, B-frames off). An SPS cannot tell whether its slices reorder.
//!
//! How the rewrite keeps everything else: the RBSP is copied bit for bit up to the
//! `vui_parameters_present_flag` (profile, scaling lists, picture order count, cropping
//! stay exactly as they were), and, when a VUI is present, on up to its
//! `bitstream_restriction_flag` (aspect ratio, colour description, timing and HRD
//! parameters stay bit-exact). Only the restriction block and the trailing bits are
//! written anew, and emulation prevention is re-inserted over the whole NAL unit.
//!
//! Written by hand: no maintained Rust crate writes an SPS (`h264-reader` only parses,
//! and re-serialising a parsed SPS is exactly what would risk losing the fields we must
//! keep); the bit reader and writer with exp-Golomb codes are a few dozen lines.

use crate::annexb::{nal, nal_type, nal_units};
use crate::MediaError;

/// `profile_idc` values whose SPS carries `chroma_format_idc`, bit depths and scaling
/// lists (H.264 7.3.2.1.1).
const HIGH_PROFILES: [u8; 13] = [100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135];

/// The largest DPB in frames the standard allows (A.3.1 h, `MaxDpbFrames`).
const MAX_DPB_FRAMES: u32 = 16;

/// What a WebRTC peer needs to know of a stream, read from its SPS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpsInfo {
    /// `profile_idc` (66 baseline, 77 main, 100 high, ...).
    pub profile_idc: u8,
    /// The byte after `profile_idc`: `constraint_set0_flag` (most significant bit) to
    /// `constraint_set5_flag`, then two reserved zero bits.
    pub constraint_flags: u8,
    /// `level_idc` (31 for level 3.1).
    pub level_idc: u8,
    /// `seq_parameter_set_id`.
    pub seq_parameter_set_id: u32,
    /// Width in pixels, after frame cropping.
    pub width: u32,
    /// Height in pixels, after frame cropping.
    pub height: u32,
    /// `max_num_ref_frames`.
    pub max_num_ref_frames: u32,
    /// `max_num_reorder_frames` of the VUI's bitstream restriction; `None` when the SPS
    /// has no restriction (a decoder then assumes reordering may happen).
    pub max_num_reorder_frames: Option<u32>,
    /// `max_dec_frame_buffering` of the VUI's bitstream restriction, if present.
    pub max_dec_frame_buffering: Option<u32>,
}

impl SpsInfo {
    /// The SDP `profile-level-id` (RFC 6184): profile, constraint flags and level as six
    /// lowercase hex digits, e.g. `42c01f`.
    pub fn profile_level_id(&self) -> String {
        format!(
            "{:02x}{:02x}{:02x}",
            self.profile_idc, self.constraint_flags, self.level_idc
        )
    }

    /// Whether the SPS already tells a decoder that no picture waits for reordering:
    /// `max_num_reorder_frames = 0` and a DPB no larger than the references need.
    pub fn reorder_free(&self) -> bool {
        self.max_num_reorder_frames == Some(0)
            && self
                .max_dec_frame_buffering
                .is_some_and(|d| d <= self.max_num_ref_frames.max(1))
    }
}

/// Reads the fields of an SPS NAL unit (header byte first, no start code, emulation
/// prevention bytes as in the stream).
pub fn sps_reorder_info(nal: &[u8]) -> Result<SpsInfo, MediaError> {
    Ok(parse(nal)?.info)
}

/// An SPS that promises no reordering, for the SPS NAL unit `nal` (header byte first,
/// no start code, emulation prevention bytes as in the stream; trailing zero bytes are
/// allowed).
///
/// `Ok(None)` when `nal` already promises it ([`SpsInfo::reorder_free`]): it is used as
/// it is. Otherwise `Ok(Some(new))`: the same SPS with a VUI bitstream restriction of
/// `max_num_reorder_frames = 0` and `max_dec_frame_buffering = max(max_num_ref_frames,
/// 1)` (a VUI is added if there was none; see the module documentation for what is
/// kept). An error names the field that is missing or out of range.
pub fn reorder_free_sps(nal: &[u8]) -> Result<Option<Vec<u8>>, MediaError> {
    let sps = parse(nal)?;
    if sps.info.reorder_free() {
        return Ok(None);
    }
    let mut w = BitWriter::default();
    w.copy(&sps.rbsp, 0, sps.vui_flag_at);
    let old = match &sps.vui {
        Some(vui) => {
            w.copy(&sps.rbsp, sps.vui_flag_at, vui.restriction_flag_at);
            vui.restriction
        }
        None => {
            // vui_parameters_present_flag, then aspect_ratio_info, overscan_info,
            // video_signal_type, chroma_loc_info, timing_info, nal_hrd, vcl_hrd and
            // pic_struct all absent, as they were without a VUI.
            w.bit(true);
            w.bits(0, 8);
            None
        }
    };
    // Without a restriction before, its fields take the values a decoder inferred (E.2.1).
    let r = old.unwrap_or(Restriction {
        motion_vectors_over_pic_boundaries: true,
        max_bytes_per_pic_denom: 2,
        max_bits_per_mb_denom: 1,
        log2_max_mv_length_horizontal: 15,
        log2_max_mv_length_vertical: 15,
        max_num_reorder_frames: 0,
        max_dec_frame_buffering: 0,
    });
    w.bit(true); // bitstream_restriction_flag
    w.bit(r.motion_vectors_over_pic_boundaries);
    w.ue(r.max_bytes_per_pic_denom);
    w.ue(r.max_bits_per_mb_denom);
    w.ue(r.log2_max_mv_length_horizontal);
    w.ue(r.log2_max_mv_length_vertical);
    w.ue(0); // max_num_reorder_frames
    w.ue(sps.info.max_num_ref_frames.max(1)); // max_dec_frame_buffering
    w.trailing_bits();
    Ok(Some(escape(&w.bytes)))
}

/// A copy of the Annex B access unit `annexb` with every SPS that does not promise "no
/// reordering" rewritten by [`reorder_free_sps`]; `None` when none needed it (the usual
/// case: nothing is copied). Every other byte (start codes, other NAL units, trailing
/// zero bytes) is kept. An SPS that cannot be read is left as it was, for the decoder to
/// judge.
pub fn rewrite_access_unit(annexb: &[u8]) -> Option<Vec<u8>> {
    let mut out: Option<Vec<u8>> = None;
    let mut copied = 0;
    for unit in nal_units(annexb) {
        if nal_type(unit) != Some(nal::SPS) {
            continue;
        }
        let Ok(Some(new)) = reorder_free_sps(unit) else {
            continue;
        };
        // `unit` is a sub-slice of `annexb`: its offset is the difference of addresses.
        let start = unit.as_ptr() as usize - annexb.as_ptr() as usize;
        let len = unit.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        let out = out.get_or_insert_with(|| Vec::with_capacity(annexb.len() + 16));
        out.extend_from_slice(&annexb[copied..start]);
        out.extend_from_slice(&new);
        copied = start + len;
    }
    out.map(|mut out| {
        out.extend_from_slice(&annexb[copied..]);
        out
    })
}

/// A VUI's `bitstream_restriction` fields (E.1.1).
#[derive(Clone, Copy, Debug)]
struct Restriction {
    motion_vectors_over_pic_boundaries: bool,
    max_bytes_per_pic_denom: u32,
    max_bits_per_mb_denom: u32,
    log2_max_mv_length_horizontal: u32,
    log2_max_mv_length_vertical: u32,
    max_num_reorder_frames: u32,
    max_dec_frame_buffering: u32,
}

/// Where the VUI's restriction sits, and what it says.
#[derive(Debug)]
struct Vui {
    /// Bit offset of `bitstream_restriction_flag` in the RBSP.
    restriction_flag_at: usize,
    restriction: Option<Restriction>,
}

/// A parsed SPS, with what the rewrite needs to copy it.
#[derive(Debug)]
struct Sps {
    /// The NAL unit without emulation prevention and trailing zero bytes, header byte
    /// included (bit 0 is its forbidden_zero_bit).
    rbsp: Vec<u8>,
    info: SpsInfo,
    /// Bit offset of `vui_parameters_present_flag` in `rbsp`.
    vui_flag_at: usize,
    vui: Option<Vui>,
}

fn bad(field: &'static str, what: impl Into<String>) -> MediaError {
    MediaError::Sps {
        field,
        what: what.into(),
    }
}

fn parse(nal: &[u8]) -> Result<Sps, MediaError> {
    let &header = nal
        .first()
        .ok_or_else(|| bad("nal_unit_header", "empty NAL unit"))?;
    if header & 0x80 != 0 {
        return Err(bad("forbidden_zero_bit", "set"));
    }
    if header & 0x1f != nal::SPS {
        return Err(MediaError::NotSps {
            nal_type: header & 0x1f,
        });
    }
    let mut rbsp = unescape(nal);
    // The SPS ends at its rbsp_stop_one_bit: the last bit set (trailing zero bytes are
    // trailing_zero_8bits of the byte stream).
    let last = rbsp.iter().rposition(|&b| b != 0).unwrap_or(0);
    if last == 0 {
        return Err(bad("rbsp_trailing_bits", "no SPS data after the header"));
    }
    rbsp.truncate(last + 1);
    let stop = last * 8 + 7 - rbsp[last].trailing_zeros() as usize;

    let mut r = BitReader {
        data: &rbsp,
        pos: 8,
        end: stop,
    };
    let profile_idc = r.bits(8, "profile_idc")? as u8;
    let constraint_flags = r.bits(8, "constraint_set_flags")? as u8;
    let level_idc = r.bits(8, "level_idc")? as u8;
    let seq_parameter_set_id = r.ue_max("seq_parameter_set_id", 31)?;
    let mut chroma_format_idc = 1;
    let mut separate_colour_plane = false;
    if HIGH_PROFILES.contains(&profile_idc) {
        chroma_format_idc = r.ue_max("chroma_format_idc", 3)?;
        if chroma_format_idc == 3 {
            separate_colour_plane = r.flag("separate_colour_plane_flag")?;
        }
        r.ue_max("bit_depth_luma_minus8", 6)?;
        r.ue_max("bit_depth_chroma_minus8", 6)?;
        r.flag("qpprime_y_zero_transform_bypass_flag")?;
        if r.flag("seq_scaling_matrix_present_flag")? {
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.flag("seq_scaling_list_present_flag")? {
                    skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }
    r.ue_max("log2_max_frame_num_minus4", 12)?;
    match r.ue_max("pic_order_cnt_type", 2)? {
        0 => {
            r.ue_max("log2_max_pic_order_cnt_lsb_minus4", 12)?;
        }
        1 => {
            r.flag("delta_pic_order_always_zero_flag")?;
            r.se("offset_for_non_ref_pic")?;
            r.se("offset_for_top_to_bottom_field")?;
            let cycle = r.ue_max("num_ref_frames_in_pic_order_cnt_cycle", 255)?;
            for _ in 0..cycle {
                r.se("offset_for_ref_frame")?;
            }
        }
        _ => {}
    }
    let max_num_ref_frames = r.ue_max("max_num_ref_frames", MAX_DPB_FRAMES)?;
    r.flag("gaps_in_frame_num_value_allowed_flag")?;
    let width_mbs = u64::from(r.ue("pic_width_in_mbs_minus1")?) + 1;
    let height_map_units = u64::from(r.ue("pic_height_in_map_units_minus1")?) + 1;
    let frame_mbs_only = r.flag("frame_mbs_only_flag")?;
    if !frame_mbs_only {
        r.flag("mb_adaptive_frame_field_flag")?;
    }
    r.flag("direct_8x8_inference_flag")?;
    let mut crop = [0u64; 4];
    if r.flag("frame_cropping_flag")? {
        for (c, field) in crop.iter_mut().zip([
            "frame_crop_left_offset",
            "frame_crop_right_offset",
            "frame_crop_top_offset",
            "frame_crop_bottom_offset",
        ]) {
            *c = u64::from(r.ue(field)?);
        }
    }
    let vui_flag_at = r.pos;
    let vui = if r.flag("vui_parameters_present_flag")? {
        Some(parse_vui(&mut r)?)
    } else {
        None
    };
    if r.pos != stop {
        return Err(bad(
            "rbsp_trailing_bits",
            format!("{} bits of unknown data after the last field", stop - r.pos),
        ));
    }

    // Picture size (7.4.2.1.1): cropping counts in chroma samples, and in field pairs
    // when the picture may be coded as fields.
    let field_factor = if frame_mbs_only { 1 } else { 2 };
    let (sub_width, sub_height) = match (chroma_format_idc, separate_colour_plane) {
        (0, _) | (3, true) => (1, 1),
        (1, _) => (2, 2),
        (2, _) => (2, 1),
        _ => (1, 1),
    };
    let coded_width = width_mbs * 16;
    let coded_height = height_map_units * 16 * field_factor;
    let crop_x = (crop[0] + crop[1]) * sub_width;
    let crop_y = (crop[2] + crop[3]) * sub_height * field_factor;
    if crop_x >= coded_width {
        return Err(bad(
            "frame_crop_left_offset",
            format!("crops {crop_x} of {coded_width} columns"),
        ));
    }
    if crop_y >= coded_height {
        return Err(bad(
            "frame_crop_top_offset",
            format!("crops {crop_y} of {coded_height} rows"),
        ));
    }
    let width = u32::try_from(coded_width - crop_x)
        .map_err(|_| bad("pic_width_in_mbs_minus1", "picture wider than 2^32"))?;
    let height = u32::try_from(coded_height - crop_y)
        .map_err(|_| bad("pic_height_in_map_units_minus1", "picture taller than 2^32"))?;

    let restriction = vui.as_ref().and_then(|v| v.restriction);
    let info = SpsInfo {
        profile_idc,
        constraint_flags,
        level_idc,
        seq_parameter_set_id,
        width,
        height,
        max_num_ref_frames,
        max_num_reorder_frames: restriction.map(|r| r.max_num_reorder_frames),
        max_dec_frame_buffering: restriction.map(|r| r.max_dec_frame_buffering),
    };
    Ok(Sps {
        rbsp,
        info,
        vui_flag_at,
        vui,
    })
}

/// Skips one `scaling_list()` (7.3.2.1.1.1), checking its deltas.
fn skip_scaling_list(r: &mut BitReader<'_>, size: usize) -> Result<(), MediaError> {
    let (mut last, mut next) = (8i64, 8i64);
    for _ in 0..size {
        if next != 0 {
            let delta = r.se("delta_scale")?;
            if !(-128..=127).contains(&delta) {
                return Err(bad("delta_scale", format!("{delta} is outside -128..127")));
            }
            next = (last + delta + 256) % 256;
        }
        if next != 0 {
            last = next;
        }
    }
    Ok(())
}

/// Reads `vui_parameters()` (E.1.1), keeping where its restriction starts.
fn parse_vui(r: &mut BitReader<'_>) -> Result<Vui, MediaError> {
    if r.flag("aspect_ratio_info_present_flag")? && r.bits(8, "aspect_ratio_idc")? == 255 {
        r.bits(16, "sar_width")?;
        r.bits(16, "sar_height")?;
    }
    if r.flag("overscan_info_present_flag")? {
        r.flag("overscan_appropriate_flag")?;
    }
    if r.flag("video_signal_type_present_flag")? {
        r.bits(3, "video_format")?;
        r.flag("video_full_range_flag")?;
        if r.flag("colour_description_present_flag")? {
            r.bits(8, "colour_primaries")?;
            r.bits(8, "transfer_characteristics")?;
            r.bits(8, "matrix_coefficients")?;
        }
    }
    if r.flag("chroma_loc_info_present_flag")? {
        r.ue_max("chroma_sample_loc_type_top_field", 5)?;
        r.ue_max("chroma_sample_loc_type_bottom_field", 5)?;
    }
    if r.flag("timing_info_present_flag")? {
        r.bits(32, "num_units_in_tick")?;
        r.bits(32, "time_scale")?;
        r.flag("fixed_frame_rate_flag")?;
    }
    let nal_hrd = r.flag("nal_hrd_parameters_present_flag")?;
    if nal_hrd {
        skip_hrd(r)?;
    }
    let vcl_hrd = r.flag("vcl_hrd_parameters_present_flag")?;
    if vcl_hrd {
        skip_hrd(r)?;
    }
    if nal_hrd || vcl_hrd {
        r.flag("low_delay_hrd_flag")?;
    }
    r.flag("pic_struct_present_flag")?;
    let restriction_flag_at = r.pos;
    let restriction = if r.flag("bitstream_restriction_flag")? {
        Some(Restriction {
            motion_vectors_over_pic_boundaries: r
                .flag("motion_vectors_over_pic_boundaries_flag")?,
            max_bytes_per_pic_denom: r.ue_max("max_bytes_per_pic_denom", 16)?,
            max_bits_per_mb_denom: r.ue_max("max_bits_per_mb_denom", 16)?,
            log2_max_mv_length_horizontal: r.ue_max("log2_max_mv_length_horizontal", 16)?,
            log2_max_mv_length_vertical: r.ue_max("log2_max_mv_length_vertical", 16)?,
            max_num_reorder_frames: r.ue_max("max_num_reorder_frames", MAX_DPB_FRAMES)?,
            max_dec_frame_buffering: r.ue_max("max_dec_frame_buffering", MAX_DPB_FRAMES)?,
        })
    } else {
        None
    };
    Ok(Vui {
        restriction_flag_at,
        restriction,
    })
}

/// Skips `hrd_parameters()` (E.1.2); the rewrite copies its bits as they were.
fn skip_hrd(r: &mut BitReader<'_>) -> Result<(), MediaError> {
    let cpb_cnt = r.ue_max("cpb_cnt_minus1", 31)? + 1;
    r.bits(4, "bit_rate_scale")?;
    r.bits(4, "cpb_size_scale")?;
    for _ in 0..cpb_cnt {
        r.ue("bit_rate_value_minus1")?;
        r.ue("cpb_size_value_minus1")?;
        r.flag("cbr_flag")?;
    }
    r.bits(5, "initial_cpb_removal_delay_length_minus1")?;
    r.bits(5, "cpb_removal_delay_length_minus1")?;
    r.bits(5, "dpb_output_delay_length_minus1")?;
    r.bits(5, "time_offset_length")?;
    Ok(())
}

/// The NAL unit's bytes without emulation prevention (7.4.1: a 0x03 after two zero
/// bytes is dropped).
fn unescape(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0;
    for &b in nal {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// `rbsp` with emulation prevention inserted: no `00 00 0x` (x <= 3) survives.
fn escape(rbsp: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(rbsp.len() + rbsp.len() / 16 + 1);
    let mut zeros = 0;
    for &b in rbsp {
        if zeros >= 2 && b <= 3 {
            out.push(3);
            zeros = 0;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// Reads bits, most significant first, up to `end` (the stop bit).
struct BitReader<'a> {
    data: &'a [u8],
    /// Next bit to read.
    pos: usize,
    /// First bit not to read.
    end: usize,
}

impl BitReader<'_> {
    fn flag(&mut self, field: &'static str) -> Result<bool, MediaError> {
        if self.pos >= self.end {
            return Err(bad(field, "the SPS ends before it"));
        }
        let bit = self.data[self.pos / 8] >> (7 - self.pos % 8) & 1;
        self.pos += 1;
        Ok(bit == 1)
    }

    /// `n` bits (at most 32) as an unsigned number.
    fn bits(&mut self, n: u32, field: &'static str) -> Result<u32, MediaError> {
        debug_assert!(n <= 32);
        let mut v = 0u64;
        for _ in 0..n {
            v = v << 1 | u64::from(self.flag(field)?);
        }
        Ok(v as u32)
    }

    /// An unsigned exp-Golomb code, ue(v) (9.1).
    fn ue(&mut self, field: &'static str) -> Result<u32, MediaError> {
        let mut zeros = 0;
        while !self.flag(field)? {
            zeros += 1;
            if zeros > 31 {
                return Err(bad(field, "exp-Golomb code longer than 32 bits"));
            }
        }
        let v = (1u64 << zeros) - 1 + u64::from(self.bits(zeros, field)?);
        u32::try_from(v).map_err(|_| bad(field, format!("{v} does not fit in 32 bits")))
    }

    fn ue_max(&mut self, field: &'static str, max: u32) -> Result<u32, MediaError> {
        let v = self.ue(field)?;
        if v > max {
            return Err(bad(
                field,
                format!("{v} is above the largest allowed, {max}"),
            ));
        }
        Ok(v)
    }

    /// A signed exp-Golomb code, se(v) (9.1.1).
    fn se(&mut self, field: &'static str) -> Result<i64, MediaError> {
        let k = i64::from(self.ue(field)?);
        Ok(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) })
    }
}

/// Writes bits, most significant first.
#[derive(Default)]
struct BitWriter {
    bytes: Vec<u8>,
    /// Bits written.
    len: usize,
}

impl BitWriter {
    fn bit(&mut self, bit: bool) {
        if self.len % 8 == 0 {
            self.bytes.push(0);
        }
        if bit {
            let last = self.bytes.len() - 1;
            self.bytes[last] |= 0x80 >> (self.len % 8);
        }
        self.len += 1;
    }

    /// The `n` low bits of `v`.
    fn bits(&mut self, v: u32, n: u32) {
        for i in (0..n).rev() {
            self.bit(v >> i & 1 == 1);
        }
    }

    fn ue(&mut self, v: u32) {
        let code = u64::from(v) + 1;
        let len = 64 - code.leading_zeros();
        self.bits(0, len - 1);
        for i in (0..len).rev() {
            self.bit(code >> i & 1 == 1);
        }
    }

    /// Bits `from..to` of `data`, as they are.
    fn copy(&mut self, data: &[u8], from: usize, to: usize) {
        for pos in from..to {
            self.bit(data[pos / 8] >> (7 - pos % 8) & 1 == 1);
        }
    }

    /// `rbsp_trailing_bits()`: a stop bit, then zero bits to the byte boundary.
    fn trailing_bits(&mut self) {
        self.bit(true);
        while self.len % 8 != 0 {
            self.bit(false);
        }
    }
}

#[cfg(test)]
mod tests;
