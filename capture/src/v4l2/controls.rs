//! H.264 encoder controls of a V4L2 device (a camera that encodes, or a memory-to-memory
//! encoder): which to set at start, and how picam's [`Control`] commands map to them.
//!
//! The device sits behind [`ControlDevice`], so the mapping is tested without one; a
//! device lacking a control is told once, by name, and keeps working without it.

#![forbid(unsafe_code)]

use crate::{Control, EncoderSettings};

use super::formats::PixelFormat;
use super::ioctl;

/// The narrow view of a device that control mapping needs.
pub trait ControlDevice {
    /// The control's range `(min, max)` if the device has it (and it is enabled).
    fn range(&mut self, id: u32) -> Option<(i64, i64)>;
    /// Sets a control.
    fn set(&mut self, id: u32, value: i64) -> std::io::Result<()>;
}

/// A control's id and its name for messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cid {
    /// V4L2 control id.
    pub id: u32,
    /// Its name in messages.
    pub name: &'static str,
}

/// Target bitrate.
pub const BITRATE: Cid = Cid {
    id: ioctl::CID_BITRATE,
    name: "video_bitrate",
};
/// Constant bitrate mode.
pub const BITRATE_MODE: Cid = Cid {
    id: ioctl::CID_BITRATE_MODE,
    name: "video_bitrate_mode",
};
/// Keyframe period (H.264-specific control).
pub const I_PERIOD: Cid = Cid {
    id: ioctl::CID_H264_I_PERIOD,
    name: "h264_i_frame_period",
};
/// Keyframe period (generic GOP size).
pub const GOP_SIZE: Cid = Cid {
    id: ioctl::CID_GOP_SIZE,
    name: "video_gop_size",
};
/// SPS/PPS before every IDR (Raspberry Pi encoders).
pub const REPEAT_SEQ_HEADER: Cid = Cid {
    id: ioctl::CID_REPEAT_SEQ_HEADER,
    name: "repeat_sequence_header",
};
/// SPS/PPS before every IDR (stateful encoders in general).
pub const PREPEND_SPSPPS: Cid = Cid {
    id: ioctl::CID_PREPEND_SPSPPS_TO_IDR,
    name: "prepend_sps_pps_to_idr",
};
/// H.264 profile.
pub const PROFILE: Cid = Cid {
    id: ioctl::CID_H264_PROFILE,
    name: "h264_profile",
};
/// H.264 level.
pub const LEVEL: Cid = Cid {
    id: ioctl::CID_H264_LEVEL,
    name: "h264_level",
};
/// Make the next frame a keyframe (a button control).
pub const FORCE_KEY_FRAME: Cid = Cid {
    id: ioctl::CID_FORCE_KEY_FRAME,
    name: "force_key_frame",
};

/// FWHT intra-frame quantiser (vicodec; 1..31, lower is finer).
pub const FWHT_I_QP: Cid = Cid {
    id: ioctl::CID_FWHT_I_FRAME_QP,
    name: "fwht_i_frame_qp",
};
/// FWHT inter-frame quantiser.
pub const FWHT_P_QP: Cid = Cid {
    id: ioctl::CID_FWHT_P_FRAME_QP,
    name: "fwht_p_frame_qp",
};
/// The FWHT quantiser picam asks: vicodec's default, a picture close to the source.
const FWHT_QP: i64 = 20;

/// `V4L2_MPEG_VIDEO_H264_PROFILE_HIGH`.
const PROFILE_HIGH: i64 = 4;
/// `V4L2_MPEG_VIDEO_H264_PROFILE_CONSTRAINED_BASELINE`.
const PROFILE_CONSTRAINED_BASELINE: i64 = 1;
/// `V4L2_MPEG_VIDEO_H264_LEVEL_4_0` and `_4_2`.
const LEVEL_4_0: i64 = 11;
const LEVEL_4_2: i64 = 13;

/// The controls to set before streaming, in order, for `settings`.
pub fn startup(settings: EncoderSettings) -> Vec<(Cid, i64)> {
    let mbs = (settings.width as i64 + 15) / 16 * ((settings.height as i64 + 15) / 16);
    let level = if mbs * settings.fps as i64 > 245_760 {
        LEVEL_4_2
    } else {
        LEVEL_4_0
    };
    vec![
        (BITRATE_MODE, 1),
        (BITRATE, settings.bitrate as i64),
        (I_PERIOD, settings.intra as i64),
        (GOP_SIZE, settings.intra as i64),
        (REPEAT_SEQ_HEADER, 1),
        (PREPEND_SPSPPS, 1),
        (PROFILE, PROFILE_HIGH),
        (LEVEL, level),
    ]
}

/// The controls to set before streaming an encoder that emits `coded`: for H.264,
/// [`startup`]; for FWHT (vicodec, the kernel's virtual encoder used to check the
/// plumbing) the same list, so that the device names the H.264 ones as absent, and its
/// own quantisers.
pub fn startup_for(coded: PixelFormat, settings: EncoderSettings) -> Vec<(Cid, i64)> {
    let mut list = startup(settings);
    if coded == PixelFormat::FWHT {
        list.extend([(FWHT_I_QP, FWHT_QP), (FWHT_P_QP, FWHT_QP)]);
    }
    list
}

/// The controls a command maps to; empty for a command no control carries (frame rate:
/// that is the capture side's `S_PARM`).
pub fn for_command(command: Control) -> Vec<(Cid, i64)> {
    match command {
        Control::ForceKeyframe => vec![(FORCE_KEY_FRAME, 1)],
        Control::SetBitrate(bps) => vec![(BITRATE, bps as i64)],
        Control::SetFps(_) => Vec::new(),
    }
}

/// What applying controls did, for the log and for `describe`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Controls set.
    pub set: Vec<&'static str>,
    /// Controls the device does not have, or refused.
    pub missing: Vec<&'static str>,
}

/// Applies `controls` that the device has, clamping values into its range. Profile
/// falls back to constrained baseline where high is refused (some UVC cameras).
pub fn apply(dev: &mut dyn ControlDevice, controls: &[(Cid, i64)]) -> Applied {
    let mut out = Applied::default();
    for &(cid, value) in controls {
        let Some((min, max)) = dev.range(cid.id) else {
            out.missing.push(cid.name);
            continue;
        };
        let mut ok = dev.set(cid.id, value.clamp(min, max)).is_ok();
        if !ok && cid == PROFILE {
            ok = dev
                .set(cid.id, PROFILE_CONSTRAINED_BASELINE.clamp(min, max))
                .is_ok();
        }
        if ok {
            out.set.push(cid.name);
        } else {
            out.missing.push(cid.name);
        }
    }
    out
}

/// Applies a command, saying once per kind what the device cannot do.
#[derive(Debug, Default)]
pub struct CommandMapper {
    told: Vec<&'static str>,
}

impl CommandMapper {
    /// Sends `command` to `dev`; false if the device lacks what it needs.
    pub fn apply(&mut self, dev: &mut dyn ControlDevice, device: &str, command: Control) -> bool {
        let controls = for_command(command);
        if controls.is_empty() {
            return false;
        }
        let applied = apply(dev, &controls);
        for name in &applied.missing {
            if !self.told.contains(name) {
                self.told.push(name);
                tracing::warn!("{device}: has no usable {name} control: {command:?} is ignored (reported once)");
            }
        }
        applied.missing.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A device with some controls; records every set.
    #[derive(Default)]
    struct Fake {
        ranges: HashMap<u32, (i64, i64)>,
        refuse: Vec<(u32, i64)>,
        sets: Vec<(u32, i64)>,
    }

    impl ControlDevice for Fake {
        fn range(&mut self, id: u32) -> Option<(i64, i64)> {
            self.ranges.get(&id).copied()
        }
        fn set(&mut self, id: u32, value: i64) -> std::io::Result<()> {
            if self.refuse.contains(&(id, value)) {
                return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
            }
            self.sets.push((id, value));
            Ok(())
        }
    }

    fn settings() -> EncoderSettings {
        EncoderSettings {
            width: 1920,
            height: 1080,
            fps: 30,
            bitrate: 60_000_000,
            intra: 15,
        }
    }

    /// The Pi 4's bcm2835-codec encoder: everything, bitrate capped at 25 Mbit/s.
    fn pi_encoder() -> Fake {
        let mut f = Fake::default();
        for c in [
            BITRATE_MODE,
            I_PERIOD,
            REPEAT_SEQ_HEADER,
            PROFILE,
            LEVEL,
            FORCE_KEY_FRAME,
        ] {
            f.ranges.insert(c.id, (0, 1000));
        }
        f.ranges.insert(BITRATE.id, (25_000, 25_000_000));
        f
    }

    #[test]
    fn startup_sets_what_the_device_has_clamped_and_names_the_rest() {
        let mut dev = pi_encoder();
        let applied = apply(&mut dev, &startup(settings()));
        assert!(
            dev.sets.contains(&(BITRATE.id, 25_000_000)),
            "clamped to the device's maximum"
        );
        assert!(dev.sets.contains(&(I_PERIOD.id, 15)));
        assert!(dev.sets.contains(&(REPEAT_SEQ_HEADER.id, 1)));
        assert!(dev.sets.contains(&(LEVEL.id, LEVEL_4_0)));
        assert_eq!(
            applied.missing,
            vec!["video_gop_size", "prepend_sps_pps_to_idr"]
        );
    }

    #[test]
    fn level_rises_with_the_macroblock_rate() {
        let fast = EncoderSettings {
            fps: 60,
            ..settings()
        };
        assert!(startup(fast).contains(&(LEVEL, LEVEL_4_2)));
    }

    #[test]
    fn profile_falls_back_to_constrained_baseline() {
        let mut dev = pi_encoder();
        dev.refuse.push((PROFILE.id, PROFILE_HIGH));
        let applied = apply(&mut dev, &[(PROFILE, PROFILE_HIGH)]);
        assert_eq!(dev.sets, vec![(PROFILE.id, PROFILE_CONSTRAINED_BASELINE)]);
        assert!(applied.missing.is_empty());
    }

    #[test]
    fn commands_map_to_controls_and_missing_ones_are_reported() {
        let mut mapper = CommandMapper::default();
        let mut dev = pi_encoder();
        assert!(mapper.apply(&mut dev, "/dev/video11", Control::ForceKeyframe));
        assert!(mapper.apply(&mut dev, "/dev/video11", Control::SetBitrate(2_000_000)));
        assert_eq!(
            dev.sets,
            vec![(FORCE_KEY_FRAME.id, 1), (BITRATE.id, 2_000_000)]
        );
        assert!(!mapper.apply(&mut dev, "/dev/video11", Control::SetFps(10)));

        // A UVC webcam without encoder controls.
        let mut bare = Fake::default();
        assert!(!mapper.apply(&mut bare, "/dev/video0", Control::ForceKeyframe));
        assert!(!mapper.apply(&mut bare, "/dev/video0", Control::ForceKeyframe));
        assert_eq!(mapper.told, vec!["force_key_frame"]);
        assert!(bare.sets.is_empty());
    }
}
