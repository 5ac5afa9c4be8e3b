//! `--source rpicam`: which path rpicam-vid's frames take, and why (logged at info).
//!
//! By default rpicam-vid is only the camera (raw I420) and picam encodes, with the V4L2
//! hardware encoder where there is one, else libx264: keyframes on request, bitrate and
//! frame-rate changes then work. `--encoder rpicam` keeps rpicam-vid's own H.264 (no
//! run-time control); so does a picam without libx264 and without a hardware encoder.

use anyhow::{bail, Context, Result};
use capture::rpicam::{RawEncoding, RawOptions};
use capture::{CaptureError, EncoderSettings, RpicamRawSource, RpicamSource, Source};

/// What `--encoder` asks of the rpicam source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RpicamEncoder {
    /// rpicam-vid encodes H.264 itself.
    Rpicam,
    /// picam encodes the raw frames.
    Picam(RawEncoding),
}

/// Parses `--encoder` for the rpicam source (`None`: not given).
pub fn parse_encoder(value: Option<&str>) -> Result<RpicamEncoder> {
    Ok(match value.unwrap_or("auto") {
        "auto" => RpicamEncoder::Picam(RawEncoding::Auto),
        "x264" | "libx264" | "software" => RpicamEncoder::Picam(RawEncoding::X264),
        "rpicam" => RpicamEncoder::Rpicam,
        dev if dev.starts_with("/dev/") => RpicamEncoder::Picam(RawEncoding::Device(dev.into())),
        other => bail!(
            "invalid `--encoder` = {other:?} for --source rpicam: allowed \"auto\", \"x264\", \
             \"rpicam\" (rpicam-vid's own H.264) or an encoder device such as /dev/video11"
        ),
    })
}

/// Starts rpicam-vid the way `encoder` asks; `spec` is the source as written, for errors.
pub fn open(
    spec: &str,
    program: Option<&str>,
    extra: &[String],
    stride: Option<u32>,
    settings: EncoderSettings,
    encoder: RpicamEncoder,
) -> Result<Box<dyn Source>> {
    let own_h264 = |why: &str| -> Result<Box<dyn Source>> {
        if stride.is_some() {
            tracing::warn!("stride= applies to raw frames only; rpicam-vid's own H.264 ignores it");
        }
        tracing::info!(
            "--source rpicam: rpicam-vid encodes H.264 itself ({why}); keyframe requests, bitrate \
             and frame-rate changes cannot reach it, so receivers wait for the next periodic keyframe"
        );
        Ok(Box::new(
            RpicamSource::start(program, settings, extra)
                .with_context(|| format!("opening source {spec}"))?,
        ))
    };
    let encoding = match encoder {
        RpicamEncoder::Rpicam => return own_h264("--encoder rpicam"),
        RpicamEncoder::Picam(encoding) => encoding,
    };
    let options = RawOptions {
        program: program.map(str::to_string),
        settings,
        extra: extra.to_vec(),
        encoding: encoding.clone(),
        stride,
    };
    match RpicamRawSource::start(options) {
        Ok(source) => {
            tracing::info!(
                "--source rpicam: rpicam-vid gives raw frames and picam encodes them, so keyframes \
                 on request, bitrate and frame-rate changes work (`--encoder rpicam` for \
                 rpicam-vid's own H.264)"
            );
            Ok(Box::new(source))
        }
        // No encoder in picam at all: rpicam-vid's own H.264 still streams.
        Err(CaptureError::NoX264) if encoding == RawEncoding::Auto => {
            own_h264("this picam's FFmpeg has no libx264 and there is no hardware encoder")
        }
        Err(e) => Err(e).with_context(|| format!("opening source {spec}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoder_values_for_rpicam() {
        assert_eq!(
            parse_encoder(None).unwrap(),
            RpicamEncoder::Picam(RawEncoding::Auto)
        );
        assert_eq!(
            parse_encoder(Some("rpicam")).unwrap(),
            RpicamEncoder::Rpicam
        );
        assert_eq!(
            parse_encoder(Some("x264")).unwrap(),
            RpicamEncoder::Picam(RawEncoding::X264)
        );
        assert_eq!(
            parse_encoder(Some("/dev/video11")).unwrap(),
            RpicamEncoder::Picam(RawEncoding::Device("/dev/video11".into()))
        );
        let err = parse_encoder(Some("nvenc")).unwrap_err().to_string();
        assert!(
            err.contains("\"nvenc\"") && err.contains("\"rpicam\""),
            "{err}"
        );
    }
}
