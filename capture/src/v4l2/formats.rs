//! What a V4L2 device offers (formats, sizes, frame rates) and the choice of one of
//! them for the asked size and rate. Pure data and functions: unit-tested without a
//! device, filled in by `device.rs` from the kernel.

#![forbid(unsafe_code)]

use std::fmt;

use super::ioctl::fourcc;

/// Pixel formats picam can take from a camera.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    /// H.264 encoded by the device.
    H264,
    /// NV12: Y plane, interleaved CbCr plane, 4:2:0.
    Nv12,
    /// YUV420 planar (I420, fourcc YU12).
    Yuv420,
    /// YUYV 4:2:2 packed.
    Yuyv,
    /// Motion JPEG (each frame a JPEG).
    Mjpeg,
    /// Anything else, by fourcc.
    Other(u32),
}

impl PixelFormat {
    /// FWHT, the codec of the kernel's virtual encoder (vicodec).
    pub const FWHT: Self = Self::Other(fourcc(b"FWHT"));

    /// From a V4L2 fourcc.
    pub fn from_fourcc(code: u32) -> Self {
        match code {
            c if c == fourcc(b"H264") => Self::H264,
            c if c == fourcc(b"NV12") => Self::Nv12,
            c if c == fourcc(b"YU12") => Self::Yuv420,
            c if c == fourcc(b"YUYV") => Self::Yuyv,
            c if c == fourcc(b"MJPG") || c == fourcc(b"JPEG") => Self::Mjpeg,
            c => Self::Other(c),
        }
    }

    /// The V4L2 fourcc.
    pub fn fourcc(self) -> u32 {
        match self {
            Self::H264 => fourcc(b"H264"),
            Self::Nv12 => fourcc(b"NV12"),
            Self::Yuv420 => fourcc(b"YU12"),
            Self::Yuyv => fourcc(b"YUYV"),
            Self::Mjpeg => fourcc(b"MJPG"),
            Self::Other(c) => c,
        }
    }

    /// Raw formats a picam encoder takes (after conversion for x264).
    pub fn is_raw_usable(self) -> bool {
        matches!(self, Self::Nv12 | Self::Yuv420 | Self::Yuyv | Self::Mjpeg)
    }

    /// Preference among raw formats: fewest conversions first. MJPEG is last: it costs a
    /// JPEG decode per frame (but is often the only way to 30 fps on USB 2).
    fn raw_rank(self) -> u8 {
        match self {
            Self::Yuv420 => 0,
            Self::Nv12 => 1,
            Self::Yuyv => 2,
            Self::Mjpeg => 3,
            _ => 9,
        }
    }
}

impl fmt::Display for PixelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let code = self.fourcc().to_le_bytes();
        let text: String = code
            .iter()
            .map(|&b| if b.is_ascii_graphic() { b as char } else { '?' })
            .collect();
        f.write_str(text.trim_end())
    }
}

/// A frame interval as a fraction of a second.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interval {
    /// Numerator, seconds.
    pub num: u32,
    /// Denominator.
    pub den: u32,
}

impl Interval {
    /// Frames per second, if the fraction is sane.
    pub fn fps(self) -> Option<f64> {
        (self.num > 0 && self.den > 0).then(|| self.den as f64 / self.num as f64)
    }
}

/// The frame rates offered at one size.
#[derive(Clone, Debug, PartialEq)]
pub enum Rates {
    /// These intervals.
    Discrete(Vec<Interval>),
    /// Anything from `min_fps` to `max_fps`.
    Range {
        /// Slowest.
        min_fps: f64,
        /// Fastest.
        max_fps: f64,
    },
    /// The driver does not say.
    Unknown,
}

impl Rates {
    /// The rate picam will ask for: the asked one if offered (within a tenth of a frame
    /// per second), else the slowest offered rate above it; `None` if all are slower.
    pub fn pick(&self, fps: u32) -> Option<f64> {
        let want = fps as f64;
        match self {
            Rates::Unknown => Some(want),
            Rates::Range { min_fps, max_fps } => {
                (want <= max_fps + 0.1).then(|| want.max(*min_fps))
            }
            Rates::Discrete(list) => {
                let rates = list.iter().filter_map(|i| i.fps());
                rates
                    .filter(|&r| r >= want - 0.1)
                    .min_by(|a, b| a.total_cmp(b))
            }
        }
    }
}

impl fmt::Display for Rates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rates::Unknown => write!(f, "? fps"),
            Rates::Range { min_fps, max_fps } => write!(f, "{min_fps:.0}-{max_fps:.0} fps"),
            Rates::Discrete(list) => {
                let mut rates: Vec<f64> = list.iter().filter_map(|i| i.fps()).collect();
                rates.sort_by(|a, b| b.total_cmp(a));
                rates.dedup();
                let text: Vec<String> = rates.iter().map(|r| format_rate(*r)).collect();
                write!(f, "{} fps", text.join("/"))
            }
        }
    }
}

fn format_rate(r: f64) -> String {
    if (r - r.round()).abs() < 0.01 {
        format!("{r:.0}")
    } else {
        format!("{r:.2}")
    }
}

/// Sizes offered for one format.
#[derive(Clone, Debug, PartialEq)]
pub enum Sizes {
    /// These sizes, each with its rates.
    Discrete(Vec<(u32, u32, Rates)>),
    /// Any size in the ranges, on the steps (rates asked per size on use).
    Stepwise {
        /// Smallest width.
        min_w: u32,
        /// Largest width.
        max_w: u32,
        /// Width step.
        step_w: u32,
        /// Smallest height.
        min_h: u32,
        /// Largest height.
        max_h: u32,
        /// Height step.
        step_h: u32,
        /// Rates at the asked size, if known.
        rates: Rates,
    },
}

/// One format with its sizes.
#[derive(Clone, Debug, PartialEq)]
pub struct FormatInfo {
    /// The format.
    pub format: PixelFormat,
    /// The driver's description.
    pub description: String,
    /// Sizes and rates.
    pub sizes: Sizes,
}

/// What picam wants from a camera.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Want {
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// Accept the device's own H.264.
    pub h264: bool,
    /// Accept raw formats (to encode).
    pub raw: bool,
}

/// The format, size and rate chosen.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Choice {
    /// Format.
    pub format: PixelFormat,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// Frame rate to ask for.
    pub fps: f64,
}

impl FormatInfo {
    /// The rates at `width`x`height`, if this format has that size.
    pub fn rates_at(&self, width: u32, height: u32) -> Option<&Rates> {
        match &self.sizes {
            Sizes::Discrete(list) => list
                .iter()
                .find(|(w, h, _)| (*w, *h) == (width, height))
                .map(|(_, _, r)| r),
            Sizes::Stepwise {
                min_w,
                max_w,
                step_w,
                min_h,
                max_h,
                step_h,
                rates,
            } => {
                let fits = |v: u32, min: u32, max: u32, step: u32| {
                    (min..=max).contains(&v) && (v - min) % step.max(1) == 0
                };
                (fits(width, *min_w, *max_w, *step_w) && fits(height, *min_h, *max_h, *step_h))
                    .then_some(rates)
            }
        }
    }
}

/// Picks the format for `want`: the device's H.264 first (if accepted), then raw formats
/// by `PixelFormat::raw_rank`, each only if it has the size and a rate at least the
/// asked one. On failure, the error text lists what the device offers.
pub fn choose(formats: &[FormatInfo], want: Want) -> Result<Choice, String> {
    let mut candidates: Vec<&FormatInfo> = formats
        .iter()
        .filter(|f| {
            (want.h264 && f.format == PixelFormat::H264) || (want.raw && f.format.is_raw_usable())
        })
        .collect();
    candidates.sort_by_key(|f| {
        if f.format == PixelFormat::H264 {
            0
        } else {
            1 + f.format.raw_rank()
        }
    });
    for f in &candidates {
        if let Some(fps) = f
            .rates_at(want.width, want.height)
            .and_then(|r| r.pick(want.fps))
        {
            return Ok(Choice {
                format: f.format,
                width: want.width,
                height: want.height,
                fps,
            });
        }
    }
    let usable: Vec<FormatInfo> = candidates.into_iter().cloned().collect();
    Err(if usable.is_empty() {
        let all: Vec<String> = formats.iter().map(|f| f.format.to_string()).collect();
        format!(
            "no format picam can use (it needs {}); the device has: {}",
            match (want.h264, want.raw) {
                (true, true) => "H264, YU12, NV12, YUYV or MJPG",
                (true, false) => "H264",
                _ => "YU12, NV12, YUYV or MJPG",
            },
            if all.is_empty() {
                "none".to_string()
            } else {
                all.join(", ")
            }
        )
    } else {
        summarize(&usable)
    })
}

/// One line per format: `YUYV: 640x480 (30/15 fps), 1280x720 (10 fps)`.
pub fn summarize(formats: &[FormatInfo]) -> String {
    let lines: Vec<String> = formats
        .iter()
        .map(|f| {
            let sizes = match &f.sizes {
                Sizes::Discrete(list) => {
                    list.iter().map(|(w, h, r)| format!("{w}x{h} ({r})")).collect::<Vec<_>>().join(", ")
                }
                Sizes::Stepwise { min_w, max_w, step_w, min_h, max_h, step_h, rates } => {
                    format!("{min_w}x{min_h} to {max_w}x{max_h} in steps of {step_w}x{step_h} ({rates})")
                }
            };
            format!("{}: {sizes}", f.format)
        })
        .collect();
    lines.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn discrete(list: &[(u32, u32, &[u32])]) -> Sizes {
        Sizes::Discrete(
            list.iter()
                .map(|(w, h, rates)| {
                    (
                        *w,
                        *h,
                        Rates::Discrete(
                            rates.iter().map(|&r| Interval { num: 1, den: r }).collect(),
                        ),
                    )
                })
                .collect(),
        )
    }

    fn fmt(format: PixelFormat, sizes: Sizes) -> FormatInfo {
        FormatInfo {
            format,
            description: String::new(),
            sizes,
        }
    }

    /// A typical USB 2 webcam: YUYV is slow at 720p, MJPEG is not; and H.264.
    fn webcam() -> Vec<FormatInfo> {
        vec![
            fmt(
                PixelFormat::Yuyv,
                discrete(&[(640, 480, &[30, 15]), (1280, 720, &[10, 5])]),
            ),
            fmt(
                PixelFormat::Mjpeg,
                discrete(&[(640, 480, &[30]), (1280, 720, &[30]), (1920, 1080, &[30])]),
            ),
            fmt(
                PixelFormat::H264,
                discrete(&[(1280, 720, &[30]), (1920, 1080, &[30])]),
            ),
        ]
    }

    fn want(width: u32, height: u32, fps: u32, h264: bool, raw: bool) -> Want {
        Want {
            width,
            height,
            fps,
            h264,
            raw,
        }
    }

    #[test]
    fn prefers_h264_then_the_cheapest_raw_format_that_keeps_the_rate() {
        let cases = [
            (want(1280, 720, 30, true, true), PixelFormat::H264, 30.0),
            (want(1280, 720, 30, false, true), PixelFormat::Mjpeg, 30.0),
            (want(640, 480, 30, false, true), PixelFormat::Yuyv, 30.0),
            (want(640, 480, 30, true, true), PixelFormat::Yuyv, 30.0),
            // 25 asked, only 30 and 15 offered: the slowest rate not below it.
            (want(640, 480, 25, false, true), PixelFormat::Yuyv, 30.0),
            (want(1280, 720, 5, false, true), PixelFormat::Yuyv, 5.0),
        ];
        for (w, format, fps) in cases {
            let c = choose(&webcam(), w).unwrap();
            assert_eq!(
                (c.format, c.fps, c.width, c.height),
                (format, fps, w.width, w.height),
                "{w:?}"
            );
        }
    }

    #[test]
    fn refusal_lists_what_the_device_supports() {
        let err = choose(&webcam(), want(1920, 1080, 60, true, true)).unwrap_err();
        assert!(
            err.contains("H264: 1280x720 (30 fps), 1920x1080 (30 fps)"),
            "{err}"
        );
        assert!(
            err.contains("YUYV: 640x480 (30/15 fps), 1280x720 (10/5 fps)"),
            "{err}"
        );
        let only_grey = [fmt(
            PixelFormat::Other(fourcc(b"GREY")),
            discrete(&[(640, 480, &[30])]),
        )];
        let err = choose(&only_grey, want(640, 480, 30, true, true)).unwrap_err();
        assert!(
            err.contains("no format picam can use") && err.contains("GREY"),
            "{err}"
        );
    }

    #[test]
    fn stepwise_sizes_and_ranges() {
        // vivid-like and Pi legacy-stack-like devices.
        let f = [fmt(
            PixelFormat::Yuv420,
            Sizes::Stepwise {
                min_w: 32,
                max_w: 2592,
                step_w: 2,
                min_h: 32,
                max_h: 1944,
                step_h: 2,
                rates: Rates::Range {
                    min_fps: 1.0,
                    max_fps: 90.0,
                },
            },
        )];
        let c = choose(&f, want(1296, 972, 42, false, true)).unwrap();
        assert_eq!((c.format, c.fps), (PixelFormat::Yuv420, 42.0));
        assert!(
            choose(&f, want(1297, 972, 30, false, true)).is_err(),
            "off the step"
        );
        assert!(
            choose(&f, want(640, 480, 120, false, true)).is_err(),
            "too fast"
        );
        let unknown = [fmt(PixelFormat::Nv12, discrete(&[]))];
        assert!(choose(&unknown, want(640, 480, 30, false, true)).is_err());
        let any_rate = [fmt(
            PixelFormat::Nv12,
            Sizes::Discrete(vec![(640, 480, Rates::Unknown)]),
        )];
        assert_eq!(
            choose(&any_rate, want(640, 480, 30, false, true))
                .unwrap()
                .fps,
            30.0
        );
    }

    #[test]
    fn fourcc_round_trip_and_names() {
        for f in [
            PixelFormat::H264,
            PixelFormat::Nv12,
            PixelFormat::Yuv420,
            PixelFormat::Yuyv,
            PixelFormat::Mjpeg,
        ] {
            assert_eq!(PixelFormat::from_fourcc(f.fourcc()), f);
        }
        assert_eq!(PixelFormat::Yuyv.to_string(), "YUYV");
        assert_eq!(
            PixelFormat::from_fourcc(fourcc(b"JPEG")),
            PixelFormat::Mjpeg
        );
    }
}
