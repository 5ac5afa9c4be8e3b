//! `source`: where the sender's frames come from, parsed once (flag or file) into a
//! [`SourceSpec`], and the camera auto-detection that `auto` and the default use.

use std::fmt;
use std::str::FromStr;

/// Every form `source` takes, as said in errors.
pub const ALLOWED: &str = "\"auto\", \"v4l2:/dev/videoN\", \"rpicam\", \"libcamera\", \
    \"rpicam:PROGRAM\" (rpicam forms may be followed by options for it, e.g. \"rpicam --hflip\", \
    and picam's own \"stride=BYTES\" for the rows of its raw frames), \
    \"file:PATH\", \"-\", \"test\", \"y4m:FILE\" or \"y4m:-\"";

/// A parsed `source`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceSpec {
    /// `test`: the synthetic camera.
    Test,
    /// `y4m:FILE` or `y4m:-` (stdin): raw YUV4MPEG2 video, encoded here.
    Y4m(String),
    /// `file:PATH`, or `-` for stdin: an H.264 Annex B stream.
    H264File(String),
    /// `rpicam`, `libcamera` or `rpicam:PROGRAM`, with options for the program.
    Rpicam {
        /// The program (`None`: the first of rpicam-vid, libcamera-vid on PATH).
        program: Option<String>,
        /// The user's options, passed on last.
        extra: Vec<String>,
        /// `stride=BYTES`: the luma row stride of rpicam-vid's raw frames, overriding
        /// the ISP's rule (`capture::rpicam::layout`); not passed to the program.
        stride: Option<u32>,
    },
    /// `v4l2:DEVICE`: a V4L2 camera.
    V4l2(String),
    /// `auto`: the best camera here.
    Auto,
}

/// Why a `source` value is refused (the caller adds the key, value and origin).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadSource(pub String);

impl fmt::Display for BadSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}; allowed {ALLOWED}", self.0)
    }
}

impl std::error::Error for BadSource {}

impl FromStr for SourceSpec {
    type Err = BadSource;

    fn from_str(spec: &str) -> Result<Self, BadSource> {
        let spec = spec.trim();
        let path = |prefix: &str| {
            spec.strip_prefix(prefix)
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .ok_or_else(|| BadSource(format!("`{prefix}` names no file")))
        };
        // File paths may hold spaces: these forms take the whole value.
        if spec == "-" {
            return Ok(Self::H264File("-".into()));
        }
        if spec.starts_with("file:") {
            return Ok(Self::H264File(path("file:")?));
        }
        if spec.starts_with("y4m:") {
            return Ok(Self::Y4m(path("y4m:")?));
        }
        let mut words = spec.split_whitespace();
        let head = words.next().unwrap_or_default();
        let mut extra: Vec<String> = words.map(str::to_string).collect();
        let program = match head {
            "rpicam" => Some(None),
            "libcamera" => Some(Some("libcamera-vid".to_string())),
            _ => head.strip_prefix("rpicam:").map(|p| Some(p.to_string())),
        };
        if let Some(program) = program {
            if program.as_deref() == Some("") {
                return Err(BadSource("`rpicam:` names no program".into()));
            }
            let mut stride = None;
            for word in std::mem::take(&mut extra) {
                match word.strip_prefix("stride=") {
                    Some(value) => {
                        let bytes = value.parse::<u32>().ok().filter(|&b| b > 0);
                        stride = Some(bytes.ok_or_else(|| {
                            BadSource(format!(
                                "`{word}`: the stride is a number of bytes per row, e.g. stride=1344"
                            ))
                        })?);
                    }
                    None => extra.push(word),
                }
            }
            return Ok(Self::Rpicam {
                program,
                extra,
                stride,
            });
        }
        if !extra.is_empty() {
            return Err(BadSource("only rpicam takes options after its name".into()));
        }
        Ok(match head {
            "" => return Err(BadSource("empty".into())),
            "test" => Self::Test,
            "auto" => Self::Auto,
            _ if head.starts_with("v4l2:") => Self::V4l2(path("v4l2:")?),
            _ => return Err(BadSource("not a source picam knows".into())),
        })
    }
}

impl fmt::Display for SourceSpec {
    /// The value as it would be written in `--source`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Test => write!(f, "test"),
            Self::Auto => write!(f, "auto"),
            Self::Y4m(path) => write!(f, "y4m:{path}"),
            Self::H264File(path) if path == "-" => write!(f, "-"),
            Self::H264File(path) => write!(f, "file:{path}"),
            Self::V4l2(dev) => write!(f, "v4l2:{dev}"),
            Self::Rpicam {
                program,
                extra,
                stride,
            } => {
                match program.as_deref() {
                    None => write!(f, "rpicam")?,
                    Some("libcamera-vid") => write!(f, "libcamera")?,
                    Some(p) => write!(f, "rpicam:{p}")?,
                }
                if let Some(bytes) = stride {
                    write!(f, " stride={bytes}")?;
                }
                extra.iter().try_for_each(|word| write!(f, " {word}"))
            }
        }
    }
}

/// The camera `auto` picks here, if any: the V4L2 cameras and whether rpicam-vid is
/// installed, weighed by [`capture::v4l2::auto::choose`]. The one detection both the
/// default `source` and `--source auto` use.
#[cfg(target_os = "linux")]
pub fn detect_camera() -> Option<capture::v4l2::auto::AutoChoice> {
    let devices: Vec<_> = capture::v4l2::list_devices()
        .into_iter()
        .filter_map(|d| d.ok())
        .collect();
    let rpicam = capture::rpicam::PROGRAMS
        .iter()
        .any(|p| capture::rpicam::find_on_path(p).is_some());
    capture::v4l2::auto::choose(&devices, rpicam)
}

/// The `source` used when none is configured: `auto` where there is a camera to
/// stream from (a usable V4L2 camera, or rpicam-vid), else the test pattern.
pub fn default_source() -> SourceSpec {
    #[cfg(target_os = "linux")]
    if detect_camera().is_some() {
        return SourceSpec::Auto;
    }
    SourceSpec::Test
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_parses_and_prints_back() {
        let rpicam = |program: Option<&str>, extra: &[&str]| SourceSpec::Rpicam {
            program: program.map(str::to_string),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            stride: None,
        };
        let cases: Vec<(&str, SourceSpec, &str)> = vec![
            ("test", SourceSpec::Test, "test"),
            (" test ", SourceSpec::Test, "test"),
            ("auto", SourceSpec::Auto, "auto"),
            ("-", SourceSpec::H264File("-".into()), "-"),
            (
                "file:a.h264",
                SourceSpec::H264File("a.h264".into()),
                "file:a.h264",
            ),
            (
                "file:my clip.h264",
                SourceSpec::H264File("my clip.h264".into()),
                "file:my clip.h264",
            ),
            ("y4m:in.y4m", SourceSpec::Y4m("in.y4m".into()), "y4m:in.y4m"),
            ("y4m:-", SourceSpec::Y4m("-".into()), "y4m:-"),
            (
                "y4m:my clip.y4m",
                SourceSpec::Y4m("my clip.y4m".into()),
                "y4m:my clip.y4m",
            ),
            (
                "v4l2:/dev/video0",
                SourceSpec::V4l2("/dev/video0".into()),
                "v4l2:/dev/video0",
            ),
            ("rpicam", rpicam(None, &[]), "rpicam"),
            (
                "rpicam --hflip --camera 1",
                rpicam(None, &["--hflip", "--camera", "1"]),
                "rpicam --hflip --camera 1",
            ),
            ("libcamera", rpicam(Some("libcamera-vid"), &[]), "libcamera"),
            (
                "rpicam --hflip stride=1344",
                SourceSpec::Rpicam {
                    program: None,
                    extra: vec!["--hflip".into()],
                    stride: Some(1344),
                },
                "rpicam stride=1344 --hflip",
            ),
            (
                "rpicam:/opt/vid -n",
                rpicam(Some("/opt/vid"), &["-n"]),
                "rpicam:/opt/vid -n",
            ),
        ];
        for (text, want, printed) in cases {
            let got: SourceSpec = text.parse().unwrap_or_else(|e| panic!("{text:?}: {e}"));
            assert_eq!(got, want, "{text:?}");
            assert_eq!(got.to_string(), printed, "{text:?}");
            assert_eq!(
                printed.parse::<SourceSpec>().unwrap(),
                want,
                "{printed:?} round trip"
            );
        }
    }

    #[test]
    fn bad_forms_say_why_and_list_the_allowed_ones() {
        let cases = [
            ("", "empty"),
            ("   ", "empty"),
            ("camera", "not a source picam knows"),
            ("tst", "not a source picam knows"),
            ("y4m:", "`y4m:` names no file"),
            ("file:", "`file:` names no file"),
            ("v4l2:", "`v4l2:` names no file"),
            ("rpicam:", "names no program"),
            (
                "rpicam stride=wide",
                "`stride=wide`: the stride is a number of bytes",
            ),
            ("rpicam stride=0", "`stride=0`"),
            ("rpicam stride=-64", "`stride=-64`"),
            ("test --fast", "only rpicam takes options"),
            ("v4l2:/dev/video0 --hflip", "only rpicam takes options"),
        ];
        for (text, want) in cases {
            let err = text.parse::<SourceSpec>().unwrap_err().to_string();
            assert!(err.contains(want), "{text:?}: {err}");
            assert!(err.contains("allowed \"auto\""), "{text:?}: {err}");
        }
    }
}
