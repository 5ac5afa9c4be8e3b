//! Fixtures are SPSs libx264 wrote (through the ffmpeg CLI, testsrc input); the values
//! expected of them are those ffmpeg's `trace_headers` and `ffprobe` print, not ours.

use super::*;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// `-preset ultrafast -tune zerolatency`, 1280x720: constrained baseline, already free.
const ZEROLATENCY_720: &str = "6742c01fda014016ec0440000003004000000f23c60ca8";
/// `-preset medium`, 1280x720: high, B-pyramid, reorder 2.
const MEDIUM_720: &str = "6764001facd9405005bb0110000003001000000303c0f1831960";
/// `-pix_fmt yuv422p -preset fast`: High 4:2:2.
const HIGH422_720: &str = "677a001fbcd9405005bb0110000003001000000303c0f1831960";
/// `-preset fast -x264-params nal-hrd=cbr`: timing and NAL HRD parameters.
const HRD_720: &str = "6764001facd9405005bb0110000003001000000303c604000f424001e84e4c30078c18cb";
/// `-flags +ildct -preset fast`: interlaced (frame_mbs_only_flag = 0), 1280x720.
const INTERLACED_720: &str = "67640020acd940500bbf2e0220000003002000000783e2c5b2c0";
/// `-g 1`, 320x240: all intra, constraint_set3: a VUI without bitstream_restriction.
const INTRA_240: &str = "6764100dacb8283f60220000030002000003007808";
/// `-preset medium`, 1920x1080: bottom cropping of 8 rows.
const MEDIUM_1080: &str = "67640028acd940780227e5c044000003000400000300f03c60c658";
/// `-pix_fmt yuv444p`, 320x180: High 4:4:4 with cropping in 4:4:4 units.
const CROP444_180: &str = "67f4000d919b282833f1b80880000003008000001e078a14cb";
/// `-preset medium -bf 0`, 320x240: 3 references, no reordering: already free.
const NO_BFRAMES_240: &str = "6764000dacb20283f60220000003002000000781e28549";
/// `-flags +ildct -bf 0`, 352x288 interlaced: already free.
const INTERLACED_NO_BFRAMES_288: &str = "67640015acec1612d80880000003008000001e0f8a1570";
/// `-pix_fmt gray`, 320x240: 4:0:0.
const GRAY_240: &str = "6764000df3650507ec05b2000003000200000300781e28532c";
/// `-pix_fmt yuv444p` with CBR HRD, 176x144.
const HRD444_144: &str = "67f4000b919b28589d8088000003000800000301e30200186a0030d7261803c50a6580";

struct Fixture {
    name: &'static str,
    hex: &'static str,
    profile_level_id: &'static str,
    size: (u32, u32),
    refs: u32,
    reorder: Option<u32>,
    dpb: Option<u32>,
}

const FIXTURES: &[Fixture] = &[
    Fixture {
        name: "zerolatency 720p",
        hex: ZEROLATENCY_720,
        profile_level_id: "42c01f",
        size: (1280, 720),
        refs: 1,
        reorder: Some(0),
        dpb: Some(1),
    },
    Fixture {
        name: "medium 720p",
        hex: MEDIUM_720,
        profile_level_id: "64001f",
        size: (1280, 720),
        refs: 4,
        reorder: Some(2),
        dpb: Some(4),
    },
    Fixture {
        name: "high 4:2:2 720p",
        hex: HIGH422_720,
        profile_level_id: "7a001f",
        size: (1280, 720),
        refs: 4,
        reorder: Some(2),
        dpb: Some(4),
    },
    Fixture {
        name: "HRD 720p",
        hex: HRD_720,
        profile_level_id: "64001f",
        size: (1280, 720),
        refs: 4,
        reorder: Some(2),
        dpb: Some(4),
    },
    Fixture {
        name: "interlaced 720p",
        hex: INTERLACED_720,
        profile_level_id: "640020",
        size: (1280, 720),
        refs: 4,
        reorder: Some(2),
        dpb: Some(4),
    },
    Fixture {
        name: "all intra 240p",
        hex: INTRA_240,
        profile_level_id: "64100d",
        size: (320, 240),
        refs: 0,
        reorder: None,
        dpb: None,
    },
    Fixture {
        name: "medium 1080p",
        hex: MEDIUM_1080,
        profile_level_id: "640028",
        size: (1920, 1080),
        refs: 4,
        reorder: Some(2),
        dpb: Some(4),
    },
    Fixture {
        name: "4:4:4 cropped 180p",
        hex: CROP444_180,
        profile_level_id: "f4000d",
        size: (320, 180),
        refs: 4,
        reorder: Some(2),
        dpb: Some(4),
    },
    Fixture {
        name: "no B-frames 240p",
        hex: NO_BFRAMES_240,
        profile_level_id: "64000d",
        size: (320, 240),
        refs: 3,
        reorder: Some(0),
        dpb: Some(3),
    },
    Fixture {
        name: "interlaced no B-frames 288p",
        hex: INTERLACED_NO_BFRAMES_288,
        profile_level_id: "640015",
        size: (352, 288),
        refs: 2,
        reorder: Some(0),
        dpb: Some(2),
    },
    Fixture {
        name: "gray 240p",
        hex: GRAY_240,
        profile_level_id: "64000d",
        size: (320, 240),
        refs: 4,
        reorder: Some(2),
        dpb: Some(4),
    },
    Fixture {
        name: "4:4:4 HRD 144p",
        hex: HRD444_144,
        profile_level_id: "f4000b",
        size: (176, 144),
        refs: 4,
        reorder: Some(2),
        dpb: Some(4),
    },
];

/// Bit `i` of `data`.
fn bit(data: &[u8], i: usize) -> bool {
    data[i / 8] >> (7 - i % 8) & 1 == 1
}

/// No start code prefix (`00 00 0x`, x <= 2) inside a NAL unit, and every `00 00 03`
/// an emulation prevention byte (unescaping and escaping again gives the same bytes).
fn assert_escaped(nal: &[u8]) {
    for (i, w) in nal.windows(3).enumerate() {
        assert!(
            !(w[0] == 0 && w[1] == 0 && w[2] <= 2),
            "unescaped {w:02x?} at {i} in {nal:02x?}"
        );
    }
    assert_eq!(escape(&unescape(nal)), nal, "stray 00 00 03 in {nal:02x?}");
}

/// Checks `new` against `old`: reorder-free, same picture and profile, every bit before
/// the restriction as it was, the other restriction fields kept, emulation prevention in
/// place, and a second rewrite changes nothing.
fn check_rewrite(name: &str, old: &[u8], new: &[u8]) {
    assert_escaped(new);
    let (a, b) = (parse(old).unwrap(), parse(new).unwrap());
    assert!(b.info.reorder_free(), "{name}: {:?}", b.info);
    assert_eq!(b.info.max_num_reorder_frames, Some(0), "{name}");
    assert_eq!(
        b.info.max_dec_frame_buffering,
        Some(a.info.max_num_ref_frames.max(1)),
        "{name}"
    );
    let keep = SpsInfo {
        max_num_reorder_frames: None,
        max_dec_frame_buffering: None,
        ..a.info
    };
    assert_eq!(
        SpsInfo {
            max_num_reorder_frames: None,
            max_dec_frame_buffering: None,
            ..b.info
        },
        keep,
        "{name}"
    );
    assert_eq!(a.vui_flag_at, b.vui_flag_at, "{name}");
    let kept = match &a.vui {
        Some(vui) => vui.restriction_flag_at,
        None => a.vui_flag_at,
    };
    for i in 0..kept {
        assert_eq!(bit(&a.rbsp, i), bit(&b.rbsp, i), "{name}: bit {i} changed");
    }
    let vui = b.vui.as_ref().expect("a VUI");
    if let Some(av) = &a.vui {
        assert_eq!(av.restriction_flag_at, vui.restriction_flag_at, "{name}");
    }
    let (r, n) = (
        a.vui.as_ref().and_then(|v| v.restriction),
        vui.restriction.unwrap(),
    );
    if let Some(r) = r {
        assert_eq!(
            (
                r.motion_vectors_over_pic_boundaries,
                r.max_bytes_per_pic_denom,
                r.max_bits_per_mb_denom,
                r.log2_max_mv_length_horizontal,
                r.log2_max_mv_length_vertical
            ),
            (
                n.motion_vectors_over_pic_boundaries,
                n.max_bytes_per_pic_denom,
                n.max_bits_per_mb_denom,
                n.log2_max_mv_length_horizontal,
                n.log2_max_mv_length_vertical
            ),
            "{name}: restriction fields not kept"
        );
    }
    assert_eq!(
        reorder_free_sps(new).unwrap(),
        None,
        "{name}: not idempotent"
    );
}

/// `sps` with its VUI dropped, as a camera without one would write it.
fn without_vui(sps: &[u8]) -> Vec<u8> {
    let p = parse(sps).unwrap();
    let mut w = BitWriter::default();
    w.copy(&p.rbsp, 0, p.vui_flag_at);
    w.bit(false);
    w.trailing_bits();
    escape(&w.bytes)
}

#[test]
fn fixtures_read_as_ffmpeg_reads_them() {
    for f in FIXTURES {
        let info = sps_reorder_info(&hex(f.hex)).unwrap_or_else(|e| panic!("{}: {e}", f.name));
        assert_eq!(info.profile_level_id(), f.profile_level_id, "{}", f.name);
        assert_eq!((info.width, info.height), f.size, "{}", f.name);
        assert_eq!(info.max_num_ref_frames, f.refs, "{}", f.name);
        assert_eq!(info.max_num_reorder_frames, f.reorder, "{}", f.name);
        assert_eq!(info.max_dec_frame_buffering, f.dpb, "{}", f.name);
        assert_eq!(info.seq_parameter_set_id, 0, "{}", f.name);
    }
}

#[test]
fn an_sps_that_already_promises_no_reordering_is_left_alone() {
    for f in FIXTURES {
        let nal = hex(f.hex);
        let free = f.reorder == Some(0) && f.dpb.is_some_and(|d| d <= f.refs.max(1));
        assert_eq!(
            sps_reorder_info(&nal).unwrap().reorder_free(),
            free,
            "{}",
            f.name
        );
        let out = reorder_free_sps(&nal).unwrap();
        assert_eq!(out.is_none(), free, "{}", f.name);
        // Trailing zero bytes (the start of a four-byte start code) change nothing.
        let mut padded = nal.clone();
        padded.extend_from_slice(&[0, 0]);
        assert_eq!(reorder_free_sps(&padded).unwrap(), out, "{}", f.name);
    }
}

#[test]
fn the_rewrite_promises_no_reordering_and_keeps_every_other_field() {
    let mut rewritten = 0;
    for f in FIXTURES {
        let nal = hex(f.hex);
        if let Some(new) = reorder_free_sps(&nal).unwrap() {
            check_rewrite(f.name, &nal, &new);
            rewritten += 1;
        }
    }
    assert_eq!(rewritten, 9);
}

#[test]
fn a_too_large_dpb_alone_is_rewritten() {
    // zerolatency 720p says reorder 0 with a DPB of 1; claim a DPB of 5 instead.
    let p = parse(&hex(ZEROLATENCY_720)).unwrap();
    let vui = p.vui.as_ref().unwrap();
    let r = vui.restriction.unwrap();
    let mut w = BitWriter::default();
    w.copy(&p.rbsp, 0, vui.restriction_flag_at);
    w.bit(true);
    w.bit(r.motion_vectors_over_pic_boundaries);
    w.ue(r.max_bytes_per_pic_denom);
    w.ue(r.max_bits_per_mb_denom);
    w.ue(r.log2_max_mv_length_horizontal);
    w.ue(r.log2_max_mv_length_vertical);
    w.ue(0);
    w.ue(5);
    w.trailing_bits();
    let nal = escape(&w.bytes);
    let info = sps_reorder_info(&nal).unwrap();
    assert_eq!(
        (info.max_num_reorder_frames, info.max_dec_frame_buffering),
        (Some(0), Some(5))
    );
    assert!(!info.reorder_free());
    let new = reorder_free_sps(&nal).unwrap().unwrap();
    check_rewrite("dpb 5", &nal, &new);
    // Back to what x264 wrote, byte for byte.
    assert_eq!(new, hex(ZEROLATENCY_720));
}

#[test]
fn a_vui_is_added_when_there_is_none() {
    for f in FIXTURES {
        let nal = without_vui(&hex(f.hex));
        let info = sps_reorder_info(&nal).unwrap();
        assert_eq!((info.width, info.height), f.size, "{}", f.name);
        assert_eq!(info.max_num_reorder_frames, None);
        let new = reorder_free_sps(&nal).unwrap().expect("rewritten");
        check_rewrite(f.name, &nal, &new);
        let p = parse(&new).unwrap();
        let vui = p.vui.unwrap();
        // Nothing but the restriction: nine bits after the VUI flag.
        assert_eq!(vui.restriction_flag_at, p.vui_flag_at + 9, "{}", f.name);
        let r = vui.restriction.unwrap();
        assert!(r.motion_vectors_over_pic_boundaries);
        assert_eq!(
            (
                r.max_bytes_per_pic_denom,
                r.max_bits_per_mb_denom,
                r.log2_max_mv_length_horizontal,
                r.log2_max_mv_length_vertical
            ),
            (2, 1, 15, 15)
        );
    }
}

/// An SPS no x264 writes: scaling lists in the SPS, picture order count type 1, odd
/// cropping in 4:2:2, and a VUI with every optional part (extended SAR of 0:0, which
/// needs emulation prevention, colour description, chroma location, timing, NAL and VCL
/// HRD with two CPBs), but no bitstream restriction.
fn everything_sps() -> Vec<u8> {
    let mut w = BitWriter::default();
    w.bits(0x67, 8);
    w.bits(122, 8); // profile_idc: High 4:2:2
    w.bits(0, 8); // constraint flags
    w.bits(40, 8); // level_idc
    w.ue(3); // seq_parameter_set_id
    w.ue(2); // chroma_format_idc
    w.ue(2); // bit_depth_luma_minus8
    w.ue(2); // bit_depth_chroma_minus8
    w.bit(false); // qpprime_y_zero_transform_bypass_flag
    w.bit(true); // seq_scaling_matrix_present_flag
    for i in 0..8 {
        let present = i % 3 != 1;
        w.bit(present);
        if present {
            let size = if i < 6 { 16 } else { 64 };
            for j in 0..size {
                // A few deltas, then 0 (ends the list with the last value repeated).
                let delta: i32 = if j < 5 { j - 2 } else { 0 };
                let code = if delta > 0 { 2 * delta - 1 } else { -2 * delta };
                // After the deltas, nextScale = lastScale + 0 never reaches 0, so
                // all `size` deltas are coded.
                w.ue(code as u32);
            }
        }
    }
    w.ue(0); // log2_max_frame_num_minus4
    w.ue(1); // pic_order_cnt_type
    w.bit(false); // delta_pic_order_always_zero_flag
    w.ue(3); // offset_for_non_ref_pic: se code 3 is +2
    w.ue(0); // offset_for_top_to_bottom_field
    w.ue(3); // num_ref_frames_in_pic_order_cnt_cycle
    for code in [1, 2, 7] {
        // offset_for_ref_frame: +1, -1, +4
        w.ue(code);
    }
    w.ue(2); // max_num_ref_frames
    w.bit(false); // gaps_in_frame_num_value_allowed_flag
    w.ue(39); // pic_width_in_mbs_minus1: 640
    w.ue(29); // pic_height_in_map_units_minus1: 480
    w.bit(true); // frame_mbs_only_flag
    w.bit(true); // direct_8x8_inference_flag
    w.bit(true); // frame_cropping_flag
    for c in [1, 2, 3, 4] {
        w.ue(c); // 4:2:2: x in 2s, y in 1s: 640 - 6, 480 - 7
    }
    w.bit(true); // vui_parameters_present_flag
    w.bit(true); // aspect_ratio_info_present_flag
    w.bits(255, 8);
    w.bits(0, 16);
    w.bits(0, 16);
    w.bit(true); // overscan_info_present_flag
    w.bit(true);
    w.bit(true); // video_signal_type_present_flag
    w.bits(5, 3);
    w.bit(true);
    w.bit(true); // colour_description_present_flag
    w.bits(1, 8);
    w.bits(1, 8);
    w.bits(1, 8);
    w.bit(true); // chroma_loc_info_present_flag
    w.ue(1);
    w.ue(2);
    w.bit(true); // timing_info_present_flag
    w.bits(1001, 32);
    w.bits(60000, 32);
    w.bit(true);
    for _ in 0..2 {
        w.bit(true); // nal_ and vcl_hrd_parameters_present_flag
        w.ue(1); // cpb_cnt_minus1
        w.bits(4, 4);
        w.bits(6, 4);
        for v in [1000, 2000] {
            w.ue(v);
            w.ue(v * 2);
            w.bit(v == 1000);
        }
        for v in [23, 23, 23, 24] {
            w.bits(v, 5);
        }
    }
    w.bit(false); // low_delay_hrd_flag
    w.bit(true); // pic_struct_present_flag
    w.bit(false); // bitstream_restriction_flag
    w.trailing_bits();
    escape(&w.bytes)
}

#[test]
fn high_profile_fields_are_read_and_kept() {
    let nal = everything_sps();
    assert!(
        nal.windows(3).any(|w| w == [0, 0, 3]),
        "escapes in the input"
    );
    let info = sps_reorder_info(&nal).unwrap();
    assert_eq!(info.profile_level_id(), "7a0028");
    assert_eq!(info.seq_parameter_set_id, 3);
    assert_eq!((info.width, info.height), (634, 473));
    assert_eq!(info.max_num_ref_frames, 2);
    assert_eq!(info.max_num_reorder_frames, None);
    let new = reorder_free_sps(&nal).unwrap().unwrap();
    check_rewrite("everything", &nal, &new);
    // Only the restriction grew: the rest is the same bytes up to it.
    let (a, b) = (parse(&nal).unwrap(), parse(&new).unwrap());
    let at = a.vui.unwrap().restriction_flag_at;
    assert_eq!(a.rbsp[..at / 8], b.rbsp[..at / 8]);
}

#[test]
fn errors_name_the_field() {
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (vec![], "nal_unit_header"),
        (vec![0xe7, 0x42], "forbidden_zero_bit"),
        (vec![0x67], "rbsp_trailing_bits"),
        (vec![0x67, 0, 0, 0], "rbsp_trailing_bits"),
        // Ends inside level_idc (the stop bit is the last 1).
        (vec![0x67, 0x42, 0xc0, 0x80], "level_idc"),
        // chroma_format_idc = 4 (00101).
        (vec![0x67, 100, 0, 31, 0b1001_0110], "chroma_format_idc"),
    ];
    for (nal, field) in cases {
        match sps_reorder_info(&nal) {
            Err(MediaError::Sps { field: f, .. }) => assert_eq!(f, field, "{nal:02x?}"),
            other => panic!("{nal:02x?}: {other:?}"),
        }
    }
    let pps = [0x68, 0xce, 0x38, 0x80];
    assert!(matches!(
        reorder_free_sps(&pps),
        Err(MediaError::NotSps { nal_type: 8 })
    ));
    let e = sps_reorder_info(&[0x67, 100, 0, 31, 0b1001_0110]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "bad H.264 SPS: chroma_format_idc: 4 is above the largest allowed, 3"
    );

    // Data after the VUI is not dropped silently: the SPS is refused.
    let p = parse(&hex(MEDIUM_720)).unwrap();
    let mut w = BitWriter::default();
    w.copy(
        &p.rbsp,
        0,
        p.rbsp.len() * 8 - 1 - p.rbsp.last().unwrap().trailing_zeros() as usize,
    );
    w.bits(0b101, 3);
    w.trailing_bits();
    match reorder_free_sps(&escape(&w.bytes)) {
        Err(MediaError::Sps { field, what }) => {
            assert_eq!(field, "rbsp_trailing_bits");
            assert!(what.contains("3 bits"), "{what}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn every_truncation_is_an_error_never_a_panic() {
    for f in FIXTURES {
        let nal = hex(f.hex);
        for len in 0..nal.len() - 1 {
            // Cut, then given a stop bit so it is not refused at its last bit only.
            let mut cut = nal[..len].to_vec();
            assert!(reorder_free_sps(&cut).is_err(), "{} cut at {len}", f.name);
            cut.push(0x80);
            assert!(
                reorder_free_sps(&cut).is_err(),
                "{} cut at {len} + stop",
                f.name
            );
        }
    }
}

#[test]
fn arbitrary_bytes_never_panic_and_a_rewrite_always_reads_back_free() {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let seeds: Vec<Vec<u8>> = FIXTURES.iter().map(|f| hex(f.hex)).collect();
    let mut rewrites = 0;
    for i in 0..20_000 {
        // Flip bits of a real SPS (most inputs parse that way), or pure noise.
        let mut nal = seeds[i % seeds.len()].clone();
        if i % 10 == 0 {
            let len = (next() % 40) as usize;
            nal = (0..len).map(|_| next() as u8).collect();
            if let Some(h) = nal.first_mut() {
                *h = 0x67;
            }
        } else {
            for _ in 0..=next() % 3 {
                let bit = (next() as usize) % (nal.len() * 8 - 8) + 8;
                nal[bit / 8] ^= 0x80 >> (bit % 8);
            }
        }
        if let Ok(Some(new)) = reorder_free_sps(&nal) {
            assert!(sps_reorder_info(&new).unwrap().reorder_free());
            assert_escaped(&new);
            rewrites += 1;
        }
    }
    assert!(rewrites > 1000, "only {rewrites} rewrites");
}

#[test]
fn exp_golomb_round_trips() {
    let values = (0..300).chain([65535, 65536, 1 << 31, u32::MAX - 1]);
    let mut w = BitWriter::default();
    for v in values.clone() {
        w.ue(v);
    }
    w.trailing_bits();
    let end = w.len - 8 + w.bytes.last().unwrap().leading_zeros() as usize;
    let mut r = BitReader {
        data: &w.bytes,
        pos: 0,
        end,
    };
    for v in values {
        assert_eq!(r.ue("v").unwrap(), v);
    }
    // 2^32 - 1 needs 32 leading zeros: refused, not wrapped.
    let mut r = BitReader {
        data: &[0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x80],
        pos: 0,
        end: 65,
    };
    assert!(r.ue("v").is_err());
}

fn annexb(nals: &[(&[u8], &[u8])]) -> Vec<u8> {
    nals.iter()
        .flat_map(|(start, nal)| start.iter().chain(nal.iter()).copied())
        .collect()
}

#[test]
fn access_units_get_every_sps_rewritten_and_keep_every_other_byte() {
    const LONG: &[u8] = &[0, 0, 0, 1];
    const SHORT: &[u8] = &[0, 0, 1];
    let pps: &[u8] = &[0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0];
    let idr: &[u8] = &[0x65, 0x88, 0x84, 0x00, 0x33, 0xff];
    let free = hex(ZEROLATENCY_720);
    let au = annexb(&[(LONG, &free), (LONG, pps), (SHORT, idr)]);
    assert_eq!(rewrite_access_unit(&au), None);
    assert_eq!(rewrite_access_unit(idr), None, "no start code");
    assert_eq!(rewrite_access_unit(&[]), None);

    let (med, intra) = (hex(MEDIUM_720), hex(INTRA_240));
    let (med_new, intra_new) = (
        reorder_free_sps(&med).unwrap().unwrap(),
        reorder_free_sps(&intra).unwrap().unwrap(),
    );
    let au = annexb(&[
        (LONG, &[0x09, 0xf0]),
        (LONG, &med),
        (LONG, pps),
        (SHORT, &free),
        (LONG, &intra),
        (SHORT, idr),
    ]);
    let want = annexb(&[
        (LONG, &[0x09, 0xf0]),
        (LONG, &med_new),
        (LONG, pps),
        (SHORT, &free),
        (LONG, &intra_new),
        (SHORT, idr),
    ]);
    assert_eq!(rewrite_access_unit(&au).unwrap(), want);

    // An SPS at the end, with trailing zero bytes; a broken SPS is left as it was.
    let broken: &[u8] = &[0x67, 0x42, 0x80];
    let au = annexb(&[(LONG, broken), (LONG, &med), (&[0, 0], &[])]);
    let want = annexb(&[(LONG, broken), (LONG, &med_new), (&[0, 0], &[])]);
    assert_eq!(rewrite_access_unit(&au).unwrap(), want);
}
