//! `--source rpicam` with picam as the encoder: rpicam-vid is only the camera
//! (`--codec yuv420`, raw I420 on stdout) and picam encodes, so keyframes on request,
//! bitrate and frame-rate changes work as with any raw camera.
//!
//! - **Encoder**: the V4L2 memory-to-memory H.264 encoder if one is found by capability
//!   (a Pi 4's `/dev/video11`), else libx264 (a Pi 5 has no hardware encoder).
//! - **Frame rate changes** are made by skipping frames before the encoder
//!   ([`Decimator`]), not by restarting rpicam-vid with a new `--framerate`: a restart
//!   costs the camera's start-up (a second or more with no picture, exposure settling
//!   again), and the congestion controller changes the rate often; a skipped frame costs
//!   nothing and the change takes effect at the next frame.
//! - **Copies**: each frame is read from the pipe into a reused buffer of one frame (the
//!   copy out of the kernel) and copied once more, row by row without the padding, into
//!   the encoder's input (libx264's frame or the hardware encoder's buffer).
//! - **Capture time**: the moment the frame's last byte was read from the pipe.

use media::EncodedFrame;

use crate::file_source::{warn_once, Warned};
use crate::retry::Backoff;
use crate::{CaptureError, Control, Decimator, EncoderSettings, Source, Stop, X264Encoder};

use super::args::raw_args;
use super::child::{resolve_program, RpicamChild};
use super::frame_reader::{FrameRead, FrameReader, RawFrame};
use super::h264::{FIRST_BYTES, STALL};
use super::layout::{I420Layout, Isp};

/// Which encoder takes rpicam-vid's raw frames.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RawEncoding {
    /// A hardware encoder found by capability, else libx264.
    Auto,
    /// libx264.
    X264,
    /// This memory-to-memory encoder device, e.g. `/dev/video11`.
    Device(String),
}

/// How to start the raw path.
#[derive(Clone, Debug)]
pub struct RawOptions {
    /// The program (`None`: the first of [`super::PROGRAMS`] on PATH).
    pub program: Option<String>,
    /// Size, rate, bitrate, keyframe period.
    pub settings: EncoderSettings,
    /// The user's options for rpicam-vid, passed last.
    pub extra: Vec<String>,
    /// The encoder.
    pub encoding: RawEncoding,
    /// The luma row stride of rpicam-vid's frames, bytes (`None`: the rule of this
    /// machine's ISP, [`Isp::detect`]).
    pub stride: Option<u32>,
}

enum Encoder {
    X264 {
        encoder: X264Encoder,
        force_keyframe: bool,
    },
    #[cfg(target_os = "linux")]
    M2m(Box<crate::v4l2::m2m::M2mEncoder>),
}

/// Raw frames from an rpicam-vid child, encoded by picam.
pub struct RpicamRawSource {
    child: RpicamChild,
    reader: Option<FrameReader>,
    got_frame: bool,
    exited: bool,
    layout: I420Layout,
    encoder: Encoder,
    /// What encodes and why, for the logs and `describe`.
    encoder_why: String,
    decimator: Decimator,
    settings: EncoderSettings,
    frame: u32,
    warned: Warned,
}

impl RpicamRawSource {
    /// Opens the encoder and starts rpicam-vid. Fails with the encoder's error when no
    /// encoder can be opened (then the caller may fall back to rpicam-vid's own H.264).
    pub fn start(options: RawOptions) -> Result<Self, CaptureError> {
        let s = options.settings;
        let layout = match options.stride {
            Some(stride) => I420Layout::with_stride(s.width, s.height, stride)?,
            None => I420Layout::for_isp(Isp::detect(), s.width, s.height)?,
        };
        let (encoder, encoder_why) = open_encoder(&options.encoding, s, layout)?;
        let program = resolve_program(options.program.as_deref())?;
        tracing::info!(
            "{program} gives raw I420 ({}x{}, {}-byte rows{}), {encoder_why}",
            s.width,
            s.height,
            layout.y_stride,
            match options.stride {
                Some(_) => " as configured by stride=".to_string(),
                None => format!(" by the {} ISP's rule", Isp::detect().name()),
            },
        );
        let (child, stdout) = RpicamChild::start(program, raw_args(s, &options.extra))?;
        let mut source = Self {
            child,
            reader: None,
            got_frame: false,
            exited: false,
            layout,
            encoder,
            encoder_why,
            decimator: Decimator::new(s.fps),
            settings: s,
            frame: 0,
            warned: Warned::default(),
        };
        source.attach(stdout)?;
        Ok(source)
    }

    /// Uses `backoff` between restarts (tests use short ones).
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.child.set_backoff(backoff);
        self
    }

    /// How many times the child has been restarted.
    pub fn restarts(&self) -> u32 {
        self.child.restarts()
    }

    /// The full command line.
    pub fn command_line(&self) -> String {
        self.child.command_line()
    }

    /// The frame layout read from the pipe.
    pub fn layout(&self) -> I420Layout {
        self.layout
    }

    fn attach(&mut self, stdout: std::process::ChildStdout) -> Result<(), CaptureError> {
        let reader = FrameReader::spawn(self.child.program(), stdout, self.layout.frame_bytes())
            .map_err(|source| CaptureError::Spawn {
                program: self.child.command_line(),
                source,
            })?;
        self.reader = Some(reader);
        self.got_frame = false;
        self.exited = false;
        // A new run starts with a keyframe, so a receiver never waits for the old GOP.
        self.force_keyframe();
        Ok(())
    }

    fn restart(&mut self, why: &str) {
        self.reader = None;
        if let Some(stdout) = self.child.restart(why) {
            if let Err(e) = self.attach(stdout) {
                tracing::warn!("{e}");
            }
        }
    }

    fn force_keyframe(&mut self) {
        match &mut self.encoder {
            Encoder::X264 { force_keyframe, .. } => *force_keyframe = true,
            #[cfg(target_os = "linux")]
            Encoder::M2m(m2m) => m2m.control(Control::ForceKeyframe),
        }
    }

    fn encode(&mut self, frame: &RawFrame, n: u32) -> Result<EncodedFrame, CaptureError> {
        match &mut self.encoder {
            Encoder::X264 {
                encoder,
                force_keyframe,
            } => {
                let picture = self
                    .layout
                    .view(&frame.data)
                    .ok_or(CaptureError::RawLayout {
                        width: self.layout.width,
                        height: self.layout.height,
                        stride: self.layout.y_stride,
                        what: "a frame read has another length (broken reader)",
                    })?;
                let keyframe = std::mem::take(force_keyframe);
                match encoder.encode_i420(picture, frame.read_at_us, keyframe)? {
                    Some(out) if !out.data.is_empty() => Ok(out),
                    // zerolatency emits one access unit per picture.
                    _ => Err(CaptureError::NoOutput { frame: n }),
                }
            }
            #[cfg(target_os = "linux")]
            Encoder::M2m(m2m) => m2m.encode_raw(&frame.data, frame.read_at_us),
        }
    }
}

/// Opens the encoder for `layout`'s frames; says which and why.
fn open_encoder(
    encoding: &RawEncoding,
    settings: EncoderSettings,
    layout: I420Layout,
) -> Result<(Encoder, String), CaptureError> {
    let x264 = |why: String| -> Result<(Encoder, String), CaptureError> {
        Ok((
            Encoder::X264 {
                encoder: X264Encoder::new(settings)?,
                force_keyframe: false,
            },
            format!("encoded by libx264: {why}"),
        ))
    };
    match encoding {
        RawEncoding::X264 => x264("asked for with --encoder x264".into()),
        #[cfg(target_os = "linux")]
        RawEncoding::Device(path) => {
            let m2m = open_m2m(path, settings, layout)?;
            Ok((
                Encoder::M2m(Box::new(m2m)),
                format!("encoded by the hardware encoder {path} (asked for with --encoder)"),
            ))
        }
        #[cfg(target_os = "linux")]
        RawEncoding::Auto => match crate::v4l2::find_encoder() {
            Some(path) => match open_m2m(&path, settings, layout) {
                Ok(m2m) => Ok((
                    Encoder::M2m(Box::new(m2m)),
                    format!("encoded by the hardware encoder {path} (found by capability)"),
                )),
                Err(e) => x264(format!("the hardware encoder {path} is unusable ({e})")),
            },
            None => x264("no V4L2 memory-to-memory H.264 encoder here (a Pi 5 has none)".into()),
        },
        #[cfg(not(target_os = "linux"))]
        RawEncoding::Device(path) => Err(CaptureError::Spawn {
            program: path.clone(),
            source: std::io::Error::other("V4L2 encoders are Linux only"),
        }),
        #[cfg(not(target_os = "linux"))]
        RawEncoding::Auto => x264("V4L2 encoders are Linux only".into()),
    }
}

/// The hardware encoder, fed the frames as read (YU12 with the pipe's stride: it
/// re-strides while copying into its own buffer).
#[cfg(target_os = "linux")]
fn open_m2m(
    path: &str,
    settings: EncoderSettings,
    layout: I420Layout,
) -> Result<crate::v4l2::m2m::M2mEncoder, CaptureError> {
    use crate::v4l2::convert::Layout;
    use crate::v4l2::formats::PixelFormat;
    crate::v4l2::m2m::M2mEncoder::open(
        path,
        settings,
        Layout {
            format: PixelFormat::Yuv420,
            width: layout.width,
            height: layout.height,
            stride: layout.y_stride,
        },
    )
}

impl Source for RpicamRawSource {
    fn next_frame(&mut self) -> Result<Option<EncodedFrame>, CaptureError> {
        loop {
            if self.child.stop().is_fired() {
                return Ok(None);
            }
            self.child.drain_stderr();
            if self.reader.is_none() {
                self.restart("is not running");
                continue;
            }
            if self.exited {
                self.restart("exited");
                continue;
            }
            let Some(reader) = &self.reader else {
                continue;
            };
            let timeout = if self.got_frame { STALL } else { FIRST_BYTES };
            match reader.next_unless(timeout, self.child.stop()) {
                FrameRead::Frame { frame, skipped } => {
                    self.got_frame = true;
                    if skipped > 0 {
                        tracing::debug!("{skipped} raw frames waiting were dropped to catch up");
                    }
                    let n = self.frame;
                    self.frame = self.frame.wrapping_add(1 + skipped);
                    // Frames the congestion controller cannot afford are skipped unencoded.
                    let result = self
                        .decimator
                        .keep()
                        .then(|| self.encode(&frame, n))
                        .transpose();
                    if let Some(reader) = &self.reader {
                        reader.recycle(frame.data);
                    }
                    if let Some(encoded) = result? {
                        return Ok(Some(encoded));
                    }
                }
                FrameRead::End => self.exited = true,
                FrameRead::Idle => {
                    let why = format!("produced no whole frame for {} s", timeout.as_secs());
                    self.restart(&why);
                }
                FrameRead::Failed(e) => self.restart(&format!("could not be read ({e})")),
                FrameRead::Stopped => return Ok(None),
            }
        }
    }

    fn control(&mut self, command: Control) {
        match command {
            Control::ForceKeyframe => self.force_keyframe(),
            Control::SetBitrate(bps) => match &mut self.encoder {
                Encoder::X264 { encoder, .. } => encoder.set_bitrate(bps),
                #[cfg(target_os = "linux")]
                Encoder::M2m(m2m) => m2m.control(command),
            },
            Control::SetFps(fps) => {
                self.decimator.set_target(fps);
                if fps > self.settings.fps {
                    warn_once(
                        &mut self.warned.fps,
                        self.child.program(),
                        "cannot raise the frame rate above the camera's --framerate",
                    );
                }
            }
        }
    }

    fn set_stop(&mut self, stop: Stop) {
        self.child.set_stop(stop);
    }

    fn describe(&self) -> String {
        let s = self.settings;
        format!(
            "{} raw {}x{} @ {} fps ({}-byte rows), {}, {} kbit/s, keyframe every {} frames",
            self.child.program(),
            s.width,
            s.height,
            s.fps,
            self.layout.y_stride,
            self.encoder_why,
            s.bitrate / 1000,
            s.intra
        )
    }
}
