//! The V4L2 memory-to-memory encoder (a Raspberry Pi 4's `bcm2835-codec`, usually
//! `/dev/video11`; other SoCs' stateful encoders alike): raw frames are written into the
//! encoder's input ("output" queue) buffers, coded frames come back on its "capture"
//! queue. H.264 is what picam streams; the coded format is a parameter so that the same
//! plumbing runs against the kernel's virtual FWHT encoder (vicodec) in the qemu test.
//!
//! The logic (which buffer, when to ask for a keyframe, matching timestamps, copying
//! with the encoder's strides, drain) lives in [`M2mEncoder`] over the narrow
//! [`EncoderIo`] seam, unit-tested with a fake. [`V4l2EncoderIo`] is the kernel side.
//!
//! Copies: a camera frame in a format the encoder takes (YUYV, NV12, YU12) is copied
//! once, camera buffer to encoder buffer, row by row only if the strides differ.
//! [`M2mEncoder::encode_dmabuf`] avoids that copy by importing the camera's buffer
//! (checked vivid -> vicodec under qemu); `picam send` does not use it yet: it needs the
//! camera's layout to equal the encoder's and a kernel that imports between the two
//! drivers (see `docs/CAMERAS.md`).

#![forbid(unsafe_code)]

use std::time::Duration;

use media::{EncodedFrame, Picture};

use super::controls::{self, Applied, CommandMapper, ControlDevice};
use super::convert::Layout;
use super::formats::PixelFormat;
use crate::annexb::{AccessUnit, ParameterSets};
use crate::{CaptureError, Control, EncoderSettings};

mod kernel;

pub use kernel::V4l2EncoderIo;

/// How long one frame may take in the encoder before it counts as stuck.
const ENCODE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a drain (STOP until the last buffer) may take.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// The input layout the encoder settled on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InputLayout {
    /// Raw format.
    pub format: PixelFormat,
    /// Luma bytes per line.
    pub stride: u32,
    /// Bytes of the luma plane (chroma follows; includes the encoder's row padding).
    pub luma_size: usize,
    /// Bytes of a whole frame.
    pub size: usize,
}

/// A coded frame from the encoder.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Coded {
    /// The coded bytes (Annex B for H.264).
    pub data: Vec<u8>,
    /// The driver's keyframe flag.
    pub keyframe: bool,
    /// The timestamp given with the input, microseconds.
    pub timestamp_us: u64,
    /// The driver's sequence number of this coded buffer.
    pub sequence: u32,
    /// The driver marked it the last one (`V4L2_BUF_FLAG_LAST`, after a STOP).
    pub last: bool,
}

/// What a drain gave back.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Drained {
    /// Coded buffers up to and including the one marked last (often empty).
    pub frames: Vec<Coded>,
    /// `V4L2_EVENT_EOS` arrived.
    pub eos_event: bool,
}

/// What the encoder logic needs from the device.
pub trait EncoderIo: Send {
    /// Sets the coded format, then the input format/size/rate; returns the input layout.
    fn configure(
        &mut self,
        input: PixelFormat,
        coded: PixelFormat,
        settings: EncoderSettings,
    ) -> std::io::Result<InputLayout>;
    /// The device's controls.
    fn controls(&mut self) -> &mut dyn ControlDevice;
    /// Allocates buffers and starts both queues.
    fn start(&mut self) -> std::io::Result<()>;
    /// A free input buffer (taking back those the encoder has finished with).
    fn free_input(&mut self) -> std::io::Result<Option<usize>>;
    /// The memory of input buffer `index`.
    fn input_mut(&mut self, index: usize) -> &mut [u8];
    /// Queues input buffer `index` holding `bytes` bytes, stamped `timestamp_us`.
    fn queue_input(&mut self, index: usize, bytes: usize, timestamp_us: u64)
        -> std::io::Result<()>;
    /// Waits up to `timeout` for a coded frame.
    fn dequeue_coded(&mut self, timeout: Duration) -> std::io::Result<Option<Coded>>;
    /// Sets up the input queue for DMABUF import (`count` slots) instead of MMAP: the
    /// frames then stay in the camera's buffers. Call before [`EncoderIo::start`].
    fn use_dmabuf_input(&mut self, count: u32) -> std::io::Result<()>;
    /// Queues the frame held by DMABUF `fd` (`bytes` used of `length`) at slot `index`.
    fn queue_input_dmabuf(
        &mut self,
        index: usize,
        fd: std::os::fd::BorrowedFd<'_>,
        bytes: usize,
        length: usize,
        timestamp_us: u64,
    ) -> std::io::Result<()>;
    /// Asks the encoder to finish (`VIDIOC_ENCODER_CMD` STOP) and collects what it
    /// still gives, up to the buffer marked last; waits at most `timeout`.
    fn drain(&mut self, timeout: Duration) -> std::io::Result<Drained>;
    /// Starts a fresh stream after a drain (STREAMOFF, STREAMON).
    fn restart(&mut self) -> std::io::Result<()>;
}

/// A memory-to-memory encoder device: one raw frame in, one coded frame out.
pub struct M2mEncoder<Io: EncoderIo = V4l2EncoderIo> {
    io: Io,
    path: String,
    camera: Layout,
    input: InputLayout,
    coded: PixelFormat,
    applied: Applied,
    mapper: CommandMapper,
    force_key: bool,
    params: ParameterSets,
    settings: EncoderSettings,
    last_sequence: Option<u32>,
}

impl M2mEncoder<V4l2EncoderIo> {
    /// Opens the H.264 encoder at `path` for frames laid out as `camera`.
    pub fn open(
        path: &str,
        settings: EncoderSettings,
        camera: Layout,
    ) -> Result<Self, CaptureError> {
        Self::open_coded(path, PixelFormat::H264, settings, camera)
    }

    /// Opens the encoder at `path` emitting `coded` (H.264 for streaming; FWHT for the
    /// check against the kernel's vicodec).
    pub fn open_coded(
        path: &str,
        coded: PixelFormat,
        settings: EncoderSettings,
        camera: Layout,
    ) -> Result<Self, CaptureError> {
        let io = V4l2EncoderIo::open(path, coded)?;
        Self::with_io_coded(io, path, coded, settings, camera)
    }

    /// As [`Self::open_coded`], with the input queue importing DMABUF frames (`slots`
    /// of them, usually the camera's buffer count) for [`Self::encode_dmabuf`].
    pub fn open_coded_dmabuf(
        path: &str,
        coded: PixelFormat,
        settings: EncoderSettings,
        camera: Layout,
        slots: u32,
    ) -> Result<Self, CaptureError> {
        let mut io = V4l2EncoderIo::open(path, coded)?;
        io.use_dmabuf_input(slots)
            .map_err(|source| CaptureError::Device {
                device: path.to_string(),
                action: "asking DMABUF input buffers".into(),
                source,
            })?;
        Self::with_io_coded(io, path, coded, settings, camera)
    }
}

impl<Io: EncoderIo> M2mEncoder<Io> {
    /// Sets up the H.264 encoder behind `io`.
    pub fn with_io(
        io: Io,
        path: &str,
        settings: EncoderSettings,
        camera: Layout,
    ) -> Result<Self, CaptureError> {
        Self::with_io_coded(io, path, PixelFormat::H264, settings, camera)
    }

    /// Sets up the encoder behind `io` to emit `coded`. The input format is the
    /// camera's when the encoder takes it (no conversion), else YU12 from a decoded
    /// picture.
    pub fn with_io_coded(
        mut io: Io,
        path: &str,
        coded: PixelFormat,
        settings: EncoderSettings,
        camera: Layout,
    ) -> Result<Self, CaptureError> {
        let err = |action: &str, source| CaptureError::Device {
            device: path.to_string(),
            action: action.to_string(),
            source,
        };
        let format = match camera.format {
            PixelFormat::Yuyv | PixelFormat::Nv12 | PixelFormat::Yuv420 => camera.format,
            _ => PixelFormat::Yuv420,
        };
        let input = io
            .configure(format, coded, settings)
            .map_err(|e| err("setting the encoder's formats", e))?;
        if input.format != format || input.size == 0 || input.luma_size > input.size {
            return Err(CaptureError::Unsupported {
                device: path.to_string(),
                asked: format!(
                    "encode {format} {}x{} to {coded}",
                    settings.width, settings.height
                ),
                supports: format!("{input:?}"),
            });
        }
        let applied = controls::apply(io.controls(), &controls::startup_for(coded, settings));
        tracing::info!(
            "{path}: hardware {coded} encoder; controls set: {:?}; not available: {:?}",
            applied.set,
            applied.missing
        );
        io.start()
            .map_err(|e| err("starting the encoder (VIDIOC_STREAMON)", e))?;
        Ok(Self {
            io,
            path: path.to_string(),
            camera: Layout { format, ..camera },
            input,
            coded,
            applied,
            mapper: CommandMapper::default(),
            force_key: false,
            params: ParameterSets::default(),
            settings,
            last_sequence: None,
        })
    }

    /// The encoder device.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The settings in force.
    pub fn settings(&self) -> EncoderSettings {
        self.settings
    }

    /// The device side (for checks: which API, which device).
    pub fn io(&self) -> &Io {
        &self.io
    }

    /// The driver's sequence number of the last coded frame.
    pub fn last_sequence(&self) -> Option<u32> {
        self.last_sequence
    }

    /// The input layout the encoder settled on.
    pub fn input_layout(&self) -> InputLayout {
        self.input
    }

    /// The controls set at start, and those the device lacks.
    pub fn controls_applied(&self) -> &Applied {
        &self.applied
    }

    /// Finishes the stream: STOP, then the coded frames still inside, up to the last.
    /// The encoder takes no more frames until [`Self::restart`].
    pub fn drain(&mut self) -> Result<Drained, CaptureError> {
        self.io
            .drain(DRAIN_TIMEOUT)
            .map_err(|source| CaptureError::Device {
                device: self.path.clone(),
                action: "draining (VIDIOC_ENCODER_CMD STOP, then DQBUF until LAST)".into(),
                source,
            })
    }

    /// Starts a fresh stream after [`Self::drain`] (the next frame is a keyframe).
    pub fn restart(&mut self) -> Result<(), CaptureError> {
        self.params = ParameterSets::default();
        self.io.restart().map_err(|source| CaptureError::Device {
            device: self.path.clone(),
            action: "restarting (VIDIOC_STREAMOFF, VIDIOC_STREAMON)".into(),
            source,
        })
    }

    /// Applies a control command (keyframe on the next frame, bitrate now).
    pub fn control(&mut self, command: Control) {
        match command {
            Control::ForceKeyframe => self.force_key = true,
            Control::SetBitrate(bps) => {
                if self.mapper.apply(self.io.controls(), &self.path, command) {
                    self.settings.bitrate = bps;
                }
            }
            Control::SetFps(_) => {}
        }
    }

    /// Encodes a camera buffer in the camera's layout.
    pub fn encode_raw(
        &mut self,
        data: &[u8],
        capture_us: u64,
    ) -> Result<EncodedFrame, CaptureError> {
        let cam = self.camera;
        let needed = cam.needed();
        if data.len() < needed {
            return Err(CaptureError::BadFrame {
                device: self.path.clone(),
                frame: 0,
                what: format!(
                    "{} bytes, a {}x{} {} frame needs {needed}",
                    data.len(),
                    cam.width,
                    cam.height,
                    cam.format
                ),
            });
        }
        let input = self.input;
        self.encode_with(capture_us, |buf| copy_frame(data, cam, buf, input))
    }

    /// Encodes a frame that stays in another device's buffer, imported as DMABUF `fd`
    /// (no copy: the encoder reads the camera's memory). The encoder must have been
    /// opened with [`M2mEncoder::open_coded_dmabuf`], and the frame laid out as the
    /// encoder's input (same format and stride): the caller checks
    /// [`Self::input_layout`] against the camera's.
    pub fn encode_dmabuf(
        &mut self,
        fd: std::os::fd::BorrowedFd<'_>,
        bytes: usize,
        length: usize,
        capture_us: u64,
    ) -> Result<EncodedFrame, CaptureError> {
        self.encode_queued(capture_us, |io, index| {
            io.queue_input_dmabuf(index, fd, bytes, length, capture_us)
        })
    }

    /// Encodes a decoded picture (the encoder was set up for YU12).
    pub fn encode_picture(
        &mut self,
        picture: &Picture,
        capture_us: u64,
    ) -> Result<EncodedFrame, CaptureError> {
        let input = self.input;
        self.encode_with(capture_us, |buf| copy_picture(picture, buf, input))
    }

    fn encode_with(
        &mut self,
        capture_us: u64,
        fill: impl FnOnce(&mut [u8]) -> usize,
    ) -> Result<EncodedFrame, CaptureError> {
        self.encode_queued(capture_us, |io, index| {
            let bytes = fill(io.input_mut(index));
            io.queue_input(index, bytes, capture_us)
        })
    }

    /// One frame through the encoder: `queue` puts the frame into free input slot
    /// `index` and queues it; the coded frame comes back.
    fn encode_queued(
        &mut self,
        capture_us: u64,
        queue: impl FnOnce(&mut Io, usize) -> std::io::Result<()>,
    ) -> Result<EncodedFrame, CaptureError> {
        let err = |path: &str, action: &str, source| CaptureError::Device {
            device: path.into(),
            action: action.into(),
            source,
        };
        if std::mem::take(&mut self.force_key) {
            self.mapper
                .apply(self.io.controls(), &self.path, Control::ForceKeyframe);
        }
        let index = self
            .io
            .free_input()
            .map_err(|e| err(&self.path, "VIDIOC_DQBUF (input)", e))?
            .ok_or_else(|| {
                err(
                    &self.path,
                    "finding a free input buffer",
                    std::io::Error::other("all are queued"),
                )
            })?;
        queue(&mut self.io, index).map_err(|e| err(&self.path, "VIDIOC_QBUF (input)", e))?;
        let coded = self
            .io
            .dequeue_coded(ENCODE_TIMEOUT)
            .map_err(|e| err(&self.path, "VIDIOC_DQBUF (coded)", e))?
            .ok_or(CaptureError::NoOutput { frame: 0 })?;
        self.last_sequence = Some(coded.sequence);
        let au = if self.coded == PixelFormat::H264 {
            self.params.complete(AccessUnit {
                keyframe: coded.keyframe
                    || crate::annexb::nal_units(&coded.data)
                        .any(|n| crate::annexb::nal_type(n) == Some(5)),
                data: coded.data,
            })
        } else {
            // Not H.264: no parameter sets to keep. vicodec's encoder does not set the
            // buffer's keyframe flag (only its decoder does): read FWHT's own header.
            AccessUnit {
                keyframe: coded.keyframe
                    || (self.coded == PixelFormat::FWHT && fwht_is_intra(&coded.data)),
                data: coded.data,
            }
        };
        // The encoder hands back the input's timestamp: the capture time of this frame.
        let capture_us = if coded.timestamp_us > 0 {
            coded.timestamp_us
        } else {
            capture_us
        };
        Ok(EncodedFrame {
            data: au.data.into(),
            capture_us,
            keyframe: au.keyframe,
        })
    }
}

/// True when `data` starts with an FWHT frame header (vicodec's `fwht_cframe_hdr`:
/// two magic words, then big-endian version, width, height, flags) whose flags mark
/// an intra frame (`V4L2_FWHT_FL_I_FRAME`).
fn fwht_is_intra(data: &[u8]) -> bool {
    const I_FRAME: u32 = 1 << 10;
    match data.get(..24) {
        Some(h) if h[..8] == [0x4f, 0x4f, 0x4f, 0x4f, 0xff, 0xff, 0xff, 0xff] => {
            u32::from_be_bytes([h[20], h[21], h[22], h[23]]) & I_FRAME != 0
        }
        _ => false,
    }
}

/// Copies a camera frame into an encoder buffer, re-striding rows if needed; returns
/// the bytes used.
fn copy_frame(src: &[u8], cam: Layout, dst: &mut [u8], input: InputLayout) -> usize {
    let (w, h) = (cam.width as usize, cam.height as usize);
    let (ss, ds) = (cam.stride as usize, input.stride as usize);
    if ss == ds && input.luma_size == ss * h {
        let n = cam.needed().min(dst.len()).min(src.len());
        dst[..n].copy_from_slice(&src[..n]);
        return input.size.min(dst.len());
    }
    let row_bytes = if cam.format == PixelFormat::Yuyv {
        w * 2
    } else {
        w
    };
    let mut copy_rows =
        |src_off: usize, dst_off: usize, rows: usize, bytes: usize, ss: usize, ds: usize| {
            for r in 0..rows {
                let (s, d) = (src_off + r * ss, dst_off + r * ds);
                if s + bytes <= src.len() && d + bytes <= dst.len() {
                    dst[d..d + bytes].copy_from_slice(&src[s..s + bytes]);
                }
            }
        };
    copy_rows(0, 0, h, row_bytes, ss, ds);
    match cam.format {
        PixelFormat::Nv12 => copy_rows(ss * h, input.luma_size, h / 2, w, ss, ds),
        PixelFormat::Yuv420 => {
            let (sc, dc) = (ss / 2, ds / 2);
            let dst_chroma = (input.size - input.luma_size) / 2;
            copy_rows(ss * h, input.luma_size, h / 2, w / 2, sc, dc);
            copy_rows(
                ss * h + sc * (h / 2),
                input.luma_size + dst_chroma,
                h / 2,
                w / 2,
                sc,
                dc,
            );
        }
        _ => {}
    }
    input.size.min(dst.len())
}

/// Copies an I420 picture into a YU12 encoder buffer.
fn copy_picture(p: &Picture, dst: &mut [u8], input: InputLayout) -> usize {
    let cam = Layout {
        format: PixelFormat::Yuv420,
        width: p.width,
        height: p.height,
        stride: p.width,
    };
    let mut packed = Vec::with_capacity(p.y.len() * 3 / 2);
    packed.extend_from_slice(&p.y);
    packed.extend_from_slice(&p.u);
    packed.extend_from_slice(&p.v);
    copy_frame(&packed, cam, dst, input)
}

#[cfg(test)]
mod tests;
