//! `v4l2:/dev/videoN`: a camera's own H.264, or its raw frames through an encoder
//! (the V4L2 memory-to-memory encoder or libx264). A camera that disappears mid-stream
//! (unplugged, driver reset) is waited for and reopened with the same format.

#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use media::{wallclock_us, EncodedFrame, Picture};

use super::controls::{self, CommandMapper};
use super::convert::{self, Layout, MjpegDecoder};
use super::device::{is_gone, CaptureQueue, Device, FrameMeta};
use super::formats::{self, Choice, PixelFormat, Want};
use super::m2m::M2mEncoder;
use crate::annexb::{nal, nal_type, nal_units, AccessUnit, ParameterSets};
use crate::raw_encode::RawEncoder;
use crate::retry::Backoff;
use crate::{CaptureError, Control, EncoderSettings, Source, Stop, X264Encoder};

/// Which encoder raw frames go to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EncoderChoice {
    /// The device's own H.264 if it has it, else a hardware encoder if one is found,
    /// else libx264.
    Auto,
    /// libx264, always (raw capture even from an H.264 camera).
    X264,
    /// This memory-to-memory encoder device.
    Device(String),
}

/// How to open a V4L2 source.
#[derive(Clone, Debug)]
pub struct V4l2Options {
    /// The camera, e.g. `/dev/video0`.
    pub device: String,
    /// Size, rate, bitrate, keyframe period.
    pub settings: EncoderSettings,
    /// The encoder for raw frames.
    pub encoder: EncoderChoice,
    /// Paint the latency stamp into raw frames before encoding.
    pub stamp: bool,
}

enum Encode {
    /// The camera encodes.
    Camera {
        params: ParameterSets,
        mapper: CommandMapper,
        want_key: bool,
    },
    /// libx264.
    X264 {
        encoder: RawEncoder,
        picture: Picture,
        mjpeg: Option<MjpegDecoder>,
    },
    /// A memory-to-memory encoder.
    M2m {
        encoder: Box<M2mEncoder>,
        picture: Picture,
        mjpeg: Option<MjpegDecoder>,
    },
}

/// Frames from a V4L2 camera.
pub struct V4l2Source {
    opts: V4l2Options,
    choice: Choice,
    dev: Option<(Device, CaptureQueue)>,
    encode: Encode,
    layout: Layout,
    fps: f64,
    frame: u32,
    backoff: Backoff,
    opened_at: Instant,
    reopens: u32,
    /// Fired by the owner: waits for frames and for a camera to come back end.
    stop: Stop,
}

/// No frame for this long (or 4 frame intervals, if longer) means the camera stalled.
const STALL: Duration = Duration::from_secs(3);

impl V4l2Source {
    /// Opens the camera, picks the format for the settings, sets up the encoder.
    pub fn open(opts: V4l2Options) -> Result<Self, CaptureError> {
        let dev = Device::open(&opts.device)?;
        let info = dev.info();
        if info.kind != super::device::Kind::Camera {
            return Err(CaptureError::Unsupported {
                device: opts.device.clone(),
                asked: "capture video".into(),
                supports: format!(
                    "nothing picam captures from ({} {}, {:?})",
                    info.driver, info.card, info.kind
                ),
            });
        }
        let s = opts.settings;
        let want = Want {
            width: s.width,
            height: s.height,
            fps: s.fps,
            h264: opts.encoder == EncoderChoice::Auto,
            raw: true,
        };
        let choice =
            formats::choose(&info.formats, want).map_err(|supports| CaptureError::Unsupported {
                device: opts.device.clone(),
                asked: format!("capture {}x{} at {} fps", s.width, s.height, s.fps),
                supports,
            })?;
        let (dev, queue, layout, fps) = start(dev, choice)?;
        let settings = EncoderSettings {
            width: layout.width,
            height: layout.height,
            fps: fps.round().max(1.0) as u32,
            ..s
        };
        let mjpeg = || -> Result<Option<MjpegDecoder>, CaptureError> {
            if choice.format == PixelFormat::Mjpeg {
                MjpegDecoder::new()
                    .map(Some)
                    .map_err(|what| CaptureError::BadFrame {
                        device: opts.device.clone(),
                        frame: 0,
                        what,
                    })
            } else {
                Ok(None)
            }
        };
        let mut dev = dev;
        let encode = if choice.format == PixelFormat::H264 {
            let applied = controls::apply(&mut dev, &controls::startup(settings));
            tracing::info!(
                "{}: camera encodes H.264; controls set: {}; not available: {}",
                opts.device,
                list(&applied.set),
                list(&applied.missing)
            );
            Encode::Camera {
                params: ParameterSets::default(),
                mapper: CommandMapper::default(),
                want_key: true,
            }
        } else {
            let m2m = match &opts.encoder {
                EncoderChoice::X264 => None,
                EncoderChoice::Device(path) => Some(M2mEncoder::open(path, settings, layout)?),
                EncoderChoice::Auto => match super::find_encoder() {
                    Some(path) => match M2mEncoder::open(&path, settings, layout) {
                        Ok(e) => Some(e),
                        Err(e) => {
                            tracing::warn!("hardware encoder {path} unusable ({e}); using libx264");
                            None
                        }
                    },
                    None => None,
                },
            };
            let picture = Picture::new(layout.width, layout.height);
            match m2m {
                Some(encoder) => Encode::M2m {
                    encoder: Box::new(encoder),
                    picture,
                    mjpeg: mjpeg()?,
                },
                None => Encode::X264 {
                    encoder: RawEncoder::new(X264Encoder::new(settings)?, opts.stamp),
                    picture,
                    mjpeg: mjpeg()?,
                },
            }
        };
        Ok(Self {
            opts,
            choice,
            dev: Some((dev, queue)),
            encode,
            layout,
            fps,
            frame: 0,
            backoff: Backoff::new(),
            opened_at: Instant::now(),
            reopens: 0,
            stop: Stop::new(),
        })
    }

    /// The format, size and rate in use.
    pub fn choice(&self) -> Choice {
        self.choice
    }

    /// The frame rate the driver set.
    pub fn fps(&self) -> f64 {
        self.fps
    }

    /// How many times the camera has been reopened after it went away.
    pub fn reopens(&self) -> u32 {
        self.reopens
    }

    /// Waits for the camera to come back and restarts it with the same format.
    fn reopen(&mut self, why: &str) -> Result<(), CaptureError> {
        if let Some((dev, mut queue)) = self.dev.take() {
            queue.stop(&dev);
        }
        tracing::warn!("{}: {why}; waiting for it to come back", self.opts.device);
        loop {
            // Stopped: nothing is open, and `next_frame` ends the stream.
            if self
                .stop
                .sleep(self.backoff.delay(self.opened_at.elapsed()))
            {
                return Ok(());
            }
            let dev = match Device::open(&self.opts.device) {
                Ok(dev) => dev,
                Err(e) => {
                    tracing::debug!("{e}");
                    continue;
                }
            };
            match start(dev, self.choice) {
                Ok((mut dev, queue, layout, _)) => {
                    if layout != self.layout {
                        return Err(CaptureError::Unsupported {
                            device: self.opts.device.clone(),
                            asked: format!("the format it had before ({:?})", self.layout),
                            supports: format!("{layout:?} now (a different camera?)"),
                        });
                    }
                    if let Encode::Camera { want_key, .. } = &mut self.encode {
                        controls::apply(&mut dev, &controls::startup(self.opts.settings));
                        *want_key = true;
                    }
                    self.reopens += 1;
                    self.opened_at = Instant::now();
                    tracing::info!("{}: back (reopen {})", self.opts.device, self.reopens);
                    self.dev = Some((dev, queue));
                    self.control(Control::ForceKeyframe);
                    return Ok(());
                }
                Err(e) if is_gone(&e) => tracing::debug!("{e}"),
                Err(e) => tracing::debug!("{e}; trying again"),
            }
        }
    }
}

fn list(names: &[&str]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// Sets the format and rate and starts streaming; returns the layout and rate in force.
fn start(dev: Device, choice: Choice) -> Result<(Device, CaptureQueue, Layout, f64), CaptureError> {
    let pix = dev.set_capture_format(choice.format, choice.width, choice.height)?;
    if (pix.width, pix.height, pix.pixelformat)
        != (choice.width, choice.height, choice.format.fourcc())
    {
        return Err(CaptureError::Unsupported {
            device: dev.path.clone(),
            asked: format!(
                "capture {} {}x{}",
                choice.format, choice.width, choice.height
            ),
            supports: format!(
                "it set {} {}x{} instead",
                PixelFormat::from_fourcc(pix.pixelformat),
                pix.width,
                pix.height
            ),
        });
    }
    let fps = dev
        .set_capture_rate(super::ioctl::QueueType::VideoCapture, choice.fps)
        .unwrap_or(choice.fps);
    let stride = if pix.bytesperline > 0 {
        pix.bytesperline
    } else if choice.format == PixelFormat::Yuyv {
        pix.width * 2
    } else {
        pix.width
    };
    let layout = Layout {
        format: choice.format,
        width: pix.width,
        height: pix.height,
        stride,
    };
    let queue = CaptureQueue::start(&dev)?;
    tracing::info!(
        "{}: {} ({}) {} {}x{} at {:.2} fps",
        dev.path,
        dev.info().card,
        dev.driver(),
        choice.format,
        pix.width,
        pix.height,
        fps
    );
    Ok((dev, queue, layout, fps))
}

impl Source for V4l2Source {
    fn next_frame(&mut self) -> Result<Option<EncodedFrame>, CaptureError> {
        let stall = STALL.max(Duration::from_secs_f64(4.0 / self.fps.max(0.1)));
        // Waits for a frame are cut into short polls so the stop flag is seen.
        let mut quiet_since = Instant::now();
        loop {
            if self.stop.is_fired() {
                return Ok(None);
            }
            let Some((dev, queue)) = &mut self.dev else {
                self.reopen("is closed")?;
                continue;
            };
            let device = self.opts.device.clone();
            let n = self.frame;
            let layout = self.layout;
            let encode = &mut self.encode;
            let left = stall.saturating_sub(quiet_since.elapsed());
            let got = queue.next(dev, Stop::slice(left), |data, meta| {
                let capture_us = wallclock_us();
                encode_frame(encode, &device, data, meta, layout, n, capture_us)
            });
            match got {
                Ok(Some(Ok(Some(frame)))) => {
                    self.frame = self.frame.wrapping_add(1);
                    return Ok(Some(frame));
                }
                // A corrupt or empty buffer: skip it (the next frame is made a keyframe).
                Ok(Some(Ok(None))) => {
                    quiet_since = Instant::now();
                    self.frame = self.frame.wrapping_add(1);
                    self.control(Control::ForceKeyframe);
                }
                Ok(Some(Err(e))) => return Err(e),
                Ok(None) if quiet_since.elapsed() < stall => {}
                Ok(None) => {
                    self.reopen(&format!("no frame for {:.1} s", stall.as_secs_f64()))?;
                    quiet_since = Instant::now();
                }
                Err(e) if is_gone(&e) => {
                    self.reopen(&format!("went away ({e})"))?;
                    quiet_since = Instant::now();
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn set_stop(&mut self, stop: Stop) {
        self.stop = stop;
    }

    fn control(&mut self, command: Control) {
        let device = self.opts.device.clone();
        match &mut self.encode {
            Encode::Camera { mapper, .. } => {
                if let Some((dev, _)) = &mut self.dev {
                    mapper.apply(dev, &device, command);
                }
            }
            Encode::X264 { encoder, .. } => {
                encoder.control(command);
            }
            Encode::M2m { encoder, .. } => encoder.control(command),
        }
        if let Control::SetFps(fps) = command {
            if let Some((dev, _)) = &self.dev {
                // Changing the rate while streaming works on many drivers; where it does
                // not, the camera keeps its rate.
                if let Some(got) =
                    dev.set_capture_rate(super::ioctl::QueueType::VideoCapture, fps as f64)
                {
                    self.fps = got;
                }
            }
        }
    }

    fn describe(&self) -> String {
        let how = match &self.encode {
            Encode::Camera { .. } => "H.264 from the camera".to_string(),
            Encode::X264 { encoder, .. } => format!(
                "libx264 {} kbit/s",
                encoder.encoder().settings().bitrate / 1000
            ),
            Encode::M2m { encoder, .. } => format!("hardware encoder {}", encoder.path()),
        };
        format!(
            "v4l2 {} {} {}x{} @ {:.1} fps, {how}",
            self.opts.device, self.choice.format, self.layout.width, self.layout.height, self.fps
        )
    }
}

/// Turns one buffer into an encoded frame; `Ok(None)` for a buffer to skip.
fn encode_frame(
    encode: &mut Encode,
    device: &str,
    data: &[u8],
    meta: FrameMeta,
    layout: Layout,
    n: u32,
    capture_us: u64,
) -> Result<Option<EncodedFrame>, CaptureError> {
    let bad = |what: String| CaptureError::BadFrame {
        device: device.to_string(),
        frame: meta.sequence,
        what,
    };
    if meta.error || data.is_empty() {
        tracing::debug!(
            "{device}: skipping frame {} (error flag or empty)",
            meta.sequence
        );
        return Ok(None);
    }
    match encode {
        Encode::Camera {
            params, want_key, ..
        } => {
            let idr = nal_units(data).any(|n| nal_type(n) == Some(nal::IDR));
            let au = params.complete(AccessUnit {
                data: data.to_vec(),
                keyframe: idr || meta.keyframe,
            });
            if *want_key && !au.keyframe {
                // Until the first keyframe (or one asked for), P frames are useless to a
                // receiver; the camera's controls were asked for one.
                return Ok(None);
            }
            if au.keyframe {
                *want_key = false;
            }
            Ok(Some(EncodedFrame {
                data: au.data.into(),
                capture_us,
                keyframe: au.keyframe,
            }))
        }
        Encode::X264 {
            encoder,
            picture,
            mjpeg,
        } => {
            to_picture(data, layout, picture, mjpeg).map_err(bad)?;
            encoder.encode(picture, n).map(Some)
        }
        Encode::M2m {
            encoder,
            picture,
            mjpeg,
        } => {
            if let Some(dec) = mjpeg {
                dec.decode(data, picture).map_err(bad)?;
                encoder.encode_picture(picture, capture_us).map(Some)
            } else {
                encoder.encode_raw(data, capture_us).map(Some)
            }
        }
    }
}

fn to_picture(
    data: &[u8],
    layout: Layout,
    picture: &mut Picture,
    mjpeg: &mut Option<MjpegDecoder>,
) -> Result<(), String> {
    match mjpeg {
        Some(dec) => dec.decode(data, picture),
        None => convert::to_i420(data, layout, picture),
    }
}
