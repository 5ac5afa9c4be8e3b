//! rpicam-vid's command lines: H.264 (rpicam-vid encodes) or raw I420 (picam encodes).

use crate::EncoderSettings;

/// The options both modes share: run until stopped, no preview window, each frame
/// written out as soon as it is ready (`--flush`: stdio would otherwise hold the tail
/// of a frame back until the next one), the size and rate.
fn common_args(codec: &str, settings: EncoderSettings) -> Vec<String> {
    let mut args: Vec<String> = ["--timeout", "0", "--nopreview", "--codec", codec, "--flush"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for (key, value) in [
        ("--width", settings.width),
        ("--height", settings.height),
        ("--framerate", settings.fps),
    ] {
        args.push(key.to_string());
        args.push(value.to_string());
    }
    args
}

/// The command line for rpicam-vid's own H.264 on stdout: Annex B with SPS/PPS before
/// every keyframe (`--inline`), the bitrate and keyframe period of `settings`, and
/// `extra` (the user's own options, e.g. `--hflip --camera 1`) last so that they win.
pub fn rpicam_args(settings: EncoderSettings, extra: &[String]) -> Vec<String> {
    let mut args = common_args("h264", settings);
    args.extend(
        [
            "--inline",
            "--profile",
            "high",
            "--level",
            level_for(settings),
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    for (key, value) in [("--bitrate", settings.bitrate), ("--intra", settings.intra)] {
        args.push(key.to_string());
        args.push(value.to_string());
    }
    args.extend(extra.iter().cloned());
    args.extend(["--output".to_string(), "-".to_string()]);
    args
}

/// The command line for raw frames on stdout (`--codec yuv420`: rpicam-vid's null
/// encoder writes each I420 frame as libcamera laid it out, row padding included; see
/// [`super::layout`]). Bitrate and keyframe period are picam's encoder's business.
pub fn raw_args(settings: EncoderSettings, extra: &[String]) -> Vec<String> {
    let mut args = common_args("yuv420", settings);
    args.extend(extra.iter().cloned());
    args.extend(["--output".to_string(), "-".to_string()]);
    args
}

/// The H.264 level rpicam-vid is asked for: 4.0 carries 1080p30; faster or larger needs
/// 4.2 (the Pi's encoder refuses frames a level cannot hold).
pub fn level_for(settings: EncoderSettings) -> &'static str {
    let mbs = (settings.width as u64).div_ceil(16) * (settings.height as u64).div_ceil(16);
    if mbs * settings.fps as u64 > 245_760 {
        "4.2"
    } else {
        "4"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> EncoderSettings {
        EncoderSettings {
            width: 1280,
            height: 720,
            fps: 30,
            bitrate: 4_000_000,
            intra: 15,
        }
    }

    #[test]
    fn command_line_carries_every_setting_and_user_options_last() {
        let args = rpicam_args(settings(), &["--hflip".into()]);
        let line = args.join(" ");
        for want in [
            "--timeout 0",
            "--nopreview",
            "--codec h264",
            "--inline",
            "--flush",
            "--width 1280",
            "--height 720",
            "--framerate 30",
            "--bitrate 4000000",
            "--intra 15",
            "--level 4",
        ] {
            assert!(line.contains(want), "{want:?} missing from {line}");
        }
        assert!(line.ends_with("--hflip --output -"), "{line}");
    }

    #[test]
    fn raw_command_line_asks_for_i420_and_leaves_encoding_out() {
        let line = raw_args(settings(), &["--hflip".into()]).join(" ");
        for want in [
            "--timeout 0",
            "--nopreview",
            "--codec yuv420",
            "--flush",
            "--width 1280",
            "--height 720",
            "--framerate 30",
        ] {
            assert!(line.contains(want), "{want:?} missing from {line}");
        }
        for unwanted in ["--bitrate", "--intra", "--inline", "--level", "h264"] {
            assert!(!line.contains(unwanted), "{unwanted:?} in {line}");
        }
        assert!(line.ends_with("--hflip --output -"), "{line}");
    }

    #[test]
    fn level_follows_the_macroblock_rate() {
        let at = |w, h, fps| {
            level_for(EncoderSettings {
                width: w,
                height: h,
                fps,
                ..settings()
            })
        };
        assert_eq!(at(1920, 1080, 30), "4");
        assert_eq!(at(1920, 1080, 50), "4.2");
        assert_eq!(at(1280, 720, 60), "4");
        assert_eq!(at(1280, 720, 120), "4.2");
    }
}
