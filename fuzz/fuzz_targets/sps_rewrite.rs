//! The SPS reader and "no reordering" rewriter (`media::h264_sps`) on arbitrary bytes:
//! no panic, and what it promises holds.
//!
//! What is checked:
//! * reading and rewriting agree: both fail on the same input, and the rewrite declines
//!   (`Ok(None)`) exactly when the SPS already promises no reordering;
//! * a rewritten SPS reads back as promising no reordering, with the same profile,
//!   level, size and references, carries no start code prefix, and a second rewrite
//!   declines;
//! * on a whole access unit, every SPS that can be read promises no reordering after
//!   `rewrite_access_unit`, and `None` means every readable one already did.
//!
//! Layout: `mode: u8`, then the bytes. Mode bit 0 prepends an SPS header byte (0x67), so
//! the fuzzer need not find it; bit 1 also runs the access unit checks on
//! `00 00 00 01 <nal> 00 00 01 65 88`, and bit 2 on the bytes as they are.
#![no_main]

use libfuzzer_sys::fuzz_target;
use media::annexb::{nal, nal_type, nal_units};
use media::h264_sps::{reorder_free_sps, rewrite_access_unit, sps_reorder_info, SpsInfo};

fn same_stream(a: &SpsInfo, b: &SpsInfo) -> bool {
    (
        a.profile_idc,
        a.constraint_flags,
        a.level_idc,
        a.seq_parameter_set_id,
        a.width,
        a.height,
        a.max_num_ref_frames,
    ) == (
        b.profile_idc,
        b.constraint_flags,
        b.level_idc,
        b.seq_parameter_set_id,
        b.width,
        b.height,
        b.max_num_ref_frames,
    )
}

/// Every SPS in `au` that can be read promises no reordering.
fn all_free(au: &[u8]) -> bool {
    nal_units(au)
        .filter(|n| nal_type(n) == Some(nal::SPS))
        .all(|n| sps_reorder_info(n).map_or(true, |i| i.reorder_free()))
}

fn check_access_unit(au: &[u8]) {
    match rewrite_access_unit(au) {
        Some(new) => assert!(all_free(&new), "an SPS still reorders after the rewrite"),
        None => assert!(all_free(au), "None, yet an SPS reorders"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut unit = Vec::with_capacity(rest.len() + 1);
    if mode & 1 == 1 {
        unit.push(0x67);
    }
    unit.extend_from_slice(rest);

    let info = sps_reorder_info(&unit);
    match reorder_free_sps(&unit) {
        Err(_) => assert!(info.is_err(), "the rewrite fails where reading does not"),
        Ok(None) => assert!(info.expect("read").reorder_free(), "declined, yet it reorders"),
        Ok(Some(new)) => {
            let before = info.expect("read");
            assert!(!before.reorder_free(), "rewrote an SPS that needed nothing");
            let after = sps_reorder_info(&new).expect("the rewritten SPS reads back");
            assert!(after.reorder_free(), "rewritten, yet it reorders: {after:?}");
            assert_eq!(after.max_num_reorder_frames, Some(0));
            assert_eq!(
                after.max_dec_frame_buffering,
                Some(before.max_num_ref_frames.max(1))
            );
            assert!(same_stream(&before, &after), "{before:?} became {after:?}");
            assert!(
                !new.windows(3).any(|w| w[0] == 0 && w[1] == 0 && w[2] <= 2),
                "start code prefix inside the rewritten SPS"
            );
            assert_eq!(reorder_free_sps(&new).expect("reads"), None);
        }
    }

    if mode & 2 == 2 {
        let mut au = vec![0, 0, 0, 1];
        au.extend_from_slice(&unit);
        au.extend_from_slice(&[0, 0, 1, 0x65, 0x88]);
        check_access_unit(&au);
    }
    if mode & 4 == 4 {
        check_access_unit(rest);
    }
});
