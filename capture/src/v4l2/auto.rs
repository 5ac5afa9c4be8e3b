//! `--source auto`: the best camera here, and why. Preference: a camera that emits
//! H.264 itself (no encoding on the CPU), then a raw camera with the hardware encoder,
//! then a raw camera with libx264; with no V4L2 camera, rpicam-vid if installed (the
//! Pi's libcamera cameras, which a Pi 5 only has that way).

#![forbid(unsafe_code)]

use super::device::{DeviceInfo, Kind};

/// What `auto` picked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AutoChoice {
    /// The `--source` value it stands for.
    pub source: String,
    /// The `--encoder` value to use with it (`None`: not applicable).
    pub encoder: Option<String>,
    /// Why, in one sentence.
    pub why: String,
}

/// Picks from `devices` (from [`super::list_devices`]) and whether rpicam-vid is installed.
/// `None` when there is nothing to capture from.
pub fn choose(devices: &[DeviceInfo], rpicam: bool) -> Option<AutoChoice> {
    let cameras: Vec<&DeviceInfo> = devices.iter().filter(|d| d.kind == Kind::Camera).collect();
    let encoder = devices.iter().find(|d| d.kind == Kind::Encoder);
    // The Pi's unicam/ISP nodes are raw Bayer cameras picam cannot use: skip devices
    // with neither H.264 nor a usable raw format.
    if let Some(cam) = cameras.iter().find(|d| d.has_h264()) {
        return Some(AutoChoice {
            source: format!("v4l2:{}", cam.path),
            encoder: None,
            why: format!(
                "{} ({}) encodes H.264 itself: no encoding on this CPU",
                cam.path, cam.card
            ),
        });
    }
    if let Some(cam) = cameras.iter().find(|d| d.has_raw()) {
        return Some(match encoder {
            Some(enc) => AutoChoice {
                source: format!("v4l2:{}", cam.path),
                encoder: Some(enc.path.clone()),
                why: format!(
                    "{} ({}) gives raw frames and {} ({}) is a hardware H.264 encoder",
                    cam.path, cam.card, enc.path, enc.driver
                ),
            },
            None => AutoChoice {
                source: format!("v4l2:{}", cam.path),
                encoder: Some("x264".into()),
                why: format!(
                    "{} ({}) gives raw frames and there is no hardware encoder: libx264",
                    cam.path, cam.card
                ),
            },
        });
    }
    rpicam.then(|| AutoChoice {
        source: "rpicam".into(),
        encoder: None,
        why:
            "no V4L2 camera picam can capture from, and rpicam-vid is installed (libcamera camera)"
                .into(),
    })
}

#[cfg(test)]
mod tests {
    use super::super::formats::{FormatInfo, PixelFormat, Rates, Sizes};
    use super::*;

    fn dev(path: &str, kind: Kind, formats: &[PixelFormat]) -> DeviceInfo {
        DeviceInfo {
            path: path.into(),
            driver: "drv".into(),
            card: "card".into(),
            bus: String::new(),
            caps: crate::v4l2::ioctl::Capabilities::empty(),
            kind,
            formats: formats
                .iter()
                .map(|&format| FormatInfo {
                    format,
                    description: String::new(),
                    sizes: Sizes::Discrete(vec![(640, 480, Rates::Unknown)]),
                })
                .collect(),
            inputs: Vec::new(),
        }
    }

    #[test]
    fn prefers_h264_then_hardware_encoder_then_x264_then_rpicam() {
        let bayer = dev(
            "/dev/video0",
            Kind::Camera,
            &[PixelFormat::Other(0x3031_4770)],
        );
        let raw = dev(
            "/dev/video1",
            Kind::Camera,
            &[PixelFormat::Yuyv, PixelFormat::Mjpeg],
        );
        let h264 = dev(
            "/dev/video2",
            Kind::Camera,
            &[PixelFormat::Yuyv, PixelFormat::H264],
        );
        let enc = dev("/dev/video11", Kind::Encoder, &[PixelFormat::H264]);

        let c = choose(
            &[bayer.clone(), raw.clone(), h264.clone(), enc.clone()],
            true,
        )
        .unwrap();
        assert_eq!((c.source.as_str(), c.encoder), ("v4l2:/dev/video2", None));
        assert!(c.why.contains("encodes H.264 itself"));

        let c = choose(&[bayer.clone(), raw.clone(), enc.clone()], true).unwrap();
        assert_eq!(
            (c.source.as_str(), c.encoder.as_deref()),
            ("v4l2:/dev/video1", Some("/dev/video11"))
        );

        let c = choose(&[bayer.clone(), raw.clone()], false).unwrap();
        assert_eq!(c.encoder.as_deref(), Some("x264"));
        assert!(c.why.contains("no hardware encoder"));

        // A Pi 5: only raw Bayer nodes; rpicam-vid installed.
        let c = choose(&[bayer.clone(), enc.clone()], true).unwrap();
        assert_eq!(c.source, "rpicam");
        assert_eq!(choose(&[bayer], false), None);
    }
}
