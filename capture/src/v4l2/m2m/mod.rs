//! The V4L2 memory-to-memory H.264 encoder (a Raspberry Pi 4's `bcm2835-codec`, usually
//! `/dev/video11`; other SoCs' stateful encoders alike): raw frames are written into the
//! encoder's input ("output" queue) buffers, H.264 comes back on its "capture" queue.
//!
//! The logic (which buffer, when to ask for a keyframe, matching timestamps, copying
//! with the encoder's strides) lives in [`M2mEncoder`] over the narrow [`EncoderIo`]
//! seam, unit-tested with a fake. [`V4l2EncoderIo`] is the kernel side: multi-planar
//! MMAP queues. NOT VERIFIED on a kernel device here (this machine's kernel has no V4L2
//! and Debian's has no vicodec/vim2m-H.264): it is written to the V4L2 stateful encoder
//! interface and needs a check on a Pi 4.
//!
//! Copies: a camera frame in a format the encoder takes (YUYV, NV12, YU12) is copied
//! once, camera buffer to encoder buffer, row by row only if the strides differ. The
//! DMABUF import that would avoid that copy is not done yet.

use std::time::Duration;

use media::{EncodedFrame, Picture};

use super::controls::{self, CommandMapper, ControlDevice};
use super::convert::Layout;
use super::device::Device;
use super::formats::PixelFormat;
use super::sys::{self, Buffer, Mmap, Plane};
use crate::annexb::{AccessUnit, ParameterSets};
use crate::{CaptureError, Control, EncoderSettings};

/// How long one frame may take in the encoder before it counts as stuck.
const ENCODE_TIMEOUT: Duration = Duration::from_secs(2);

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
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Coded {
    /// Annex B bytes.
    pub data: Vec<u8>,
    /// The driver's keyframe flag.
    pub keyframe: bool,
    /// The timestamp given with the input, microseconds.
    pub timestamp_us: u64,
}

/// What the encoder logic needs from the device.
pub trait EncoderIo: Send {
    /// Sets the input format/size/rate and the coded format; returns the input layout.
    fn configure(
        &mut self,
        input: PixelFormat,
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
}

/// An H.264 encoder device: one raw frame in, one access unit out.
pub struct M2mEncoder<Io: EncoderIo = V4l2EncoderIo> {
    io: Io,
    path: String,
    camera: Layout,
    input: InputLayout,
    mapper: CommandMapper,
    force_key: bool,
    params: ParameterSets,
    settings: EncoderSettings,
}

impl M2mEncoder<V4l2EncoderIo> {
    /// Opens the encoder at `path` for frames laid out as `camera`.
    pub fn open(
        path: &str,
        settings: EncoderSettings,
        camera: Layout,
    ) -> Result<Self, CaptureError> {
        let io = V4l2EncoderIo::open(path)?;
        Self::with_io(io, path, settings, camera)
    }
}

impl<Io: EncoderIo> M2mEncoder<Io> {
    /// Sets up the encoder behind `io`. The input format is the camera's when the
    /// encoder takes it (no conversion), else YU12 from a decoded picture.
    pub fn with_io(
        mut io: Io,
        path: &str,
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
            .configure(format, settings)
            .map_err(|e| err("setting the encoder's formats", e))?;
        if input.format != format || input.size == 0 || input.luma_size > input.size {
            return Err(CaptureError::Unsupported {
                device: path.to_string(),
                asked: format!("encode {format} {}x{}", settings.width, settings.height),
                supports: format!("{input:?}"),
            });
        }
        let applied = controls::apply(io.controls(), &controls::startup(settings));
        tracing::info!(
            "{path}: hardware H.264 encoder; controls set: {:?}; not available: {:?}",
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
            mapper: CommandMapper::default(),
            force_key: false,
            params: ParameterSets::default(),
            settings,
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
        let bytes = fill(self.io.input_mut(index));
        self.io
            .queue_input(index, bytes, capture_us)
            .map_err(|e| err(&self.path, "VIDIOC_QBUF (input)", e))?;
        let coded = self
            .io
            .dequeue_coded(ENCODE_TIMEOUT)
            .map_err(|e| err(&self.path, "VIDIOC_DQBUF (coded)", e))?
            .ok_or(CaptureError::NoOutput { frame: 0 })?;
        let au = self.params.complete(AccessUnit {
            keyframe: coded.keyframe
                || crate::annexb::nal_units(&coded.data)
                    .any(|n| crate::annexb::nal_type(n) == Some(5)),
            data: coded.data,
        });
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

/// Encoder buffers on each queue: few, so that frames never wait inside the encoder.
const ENCODER_BUFFERS: u32 = 2;

/// The kernel side of [`EncoderIo`]: a V4L2 stateful encoder with MMAP buffers.
pub struct V4l2EncoderIo {
    dev: Device,
    input_type: u32,
    coded_type: u32,
    inputs: Vec<Mmap>,
    input_queued: Vec<bool>,
    coded: Vec<Mmap>,
    mplane: bool,
}

impl V4l2EncoderIo {
    /// Opens the encoder device.
    pub fn open(path: &str) -> Result<Self, CaptureError> {
        let dev = Device::open(path)?;
        if dev.kind() != super::device::Kind::Encoder {
            return Err(CaptureError::Unsupported {
                device: path.to_string(),
                asked: "encode H.264 (memory-to-memory)".into(),
                supports: format!("it is a {:?} device ({})", dev.kind(), dev.driver()),
            });
        }
        let (input_type, coded_type) = dev.m2m_types();
        Ok(Self {
            mplane: input_type == sys::BUF_TYPE_VIDEO_OUTPUT_MPLANE,
            dev,
            input_type,
            coded_type,
            inputs: Vec::new(),
            input_queued: Vec::new(),
            coded: Vec::new(),
        })
    }

    fn alloc(&mut self, type_: u32) -> std::io::Result<Vec<Mmap>> {
        let mut req = sys::RequestBuffers {
            count: ENCODER_BUFFERS,
            type_,
            memory: sys::MEMORY_MMAP,
            ..Default::default()
        };
        sys::reqbufs(&self.dev.file, &mut req)?;
        let mut maps = Vec::new();
        for index in 0..req.count {
            let mut b = Buffer::new(type_, sys::MEMORY_MMAP, index);
            let mut planes = [Plane::default()];
            sys::querybuf(&self.dev.file, &mut b, self.planes(&mut planes))?;
            let (offset, len) = if self.mplane {
                (planes[0].mem_offset(), planes[0].length)
            } else {
                (b.offset(), b.length)
            };
            maps.push(Mmap::new(&self.dev.file, offset, len as usize)?);
        }
        Ok(maps)
    }

    fn planes<'a>(&self, planes: &'a mut [Plane; 1]) -> &'a mut [Plane] {
        if self.mplane {
            &mut planes[..]
        } else {
            &mut planes[..0]
        }
    }

    fn queue_coded(&mut self, index: u32) -> std::io::Result<()> {
        let mut b = Buffer::new(self.coded_type, sys::MEMORY_MMAP, index);
        let mut planes = [Plane::default()];
        if self.mplane {
            planes[0].length = self.coded[index as usize].len() as u32;
        }
        sys::qbuf(&self.dev.file, &mut b, self.planes(&mut planes))
    }
}

impl EncoderIo for V4l2EncoderIo {
    fn configure(
        &mut self,
        input: PixelFormat,
        s: EncoderSettings,
    ) -> std::io::Result<InputLayout> {
        // Coded side first (stateful encoder rule), then the raw side.
        let mut coded = sys::Format::new(self.coded_type);
        let mut raw = sys::Format::new(self.input_type);
        if self.mplane {
            let p = coded.pix_mp_mut();
            (p.width, p.height, p.pixelformat, p.num_planes) =
                (s.width, s.height, PixelFormat::H264.fourcc(), 1);
            p.plane_fmt[0].sizeimage = (s.width * s.height).max(512 * 1024);
            let p = raw.pix_mp_mut();
            (p.width, p.height, p.pixelformat, p.num_planes) =
                (s.width, s.height, input.fourcc(), 1);
        } else {
            let p = coded.pix_mut();
            (p.width, p.height, p.pixelformat) = (s.width, s.height, PixelFormat::H264.fourcc());
            p.sizeimage = (s.width * s.height).max(512 * 1024);
            let p = raw.pix_mut();
            (p.width, p.height, p.pixelformat) = (s.width, s.height, input.fourcc());
        }
        sys::s_fmt(&self.dev.file, &mut coded)?;
        sys::s_fmt(&self.dev.file, &mut raw)?;
        let (format, stride, size) = if self.mplane {
            let p = raw.pix_mp();
            (
                p.pixelformat,
                p.plane_fmt[0].bytesperline,
                p.plane_fmt[0].sizeimage as usize,
            )
        } else {
            let p = raw.pix();
            (p.pixelformat, p.bytesperline, p.sizeimage as usize)
        };
        let format = PixelFormat::from_fourcc(format);
        let luma_size = match format {
            PixelFormat::Yuyv => size,
            _ => size * 2 / 3,
        };
        self.dev.set_capture_rate(self.input_type, s.fps as f64);
        Ok(InputLayout {
            format,
            stride,
            luma_size,
            size,
        })
    }

    fn controls(&mut self) -> &mut dyn ControlDevice {
        &mut self.dev
    }

    fn start(&mut self) -> std::io::Result<()> {
        self.inputs = self.alloc(self.input_type)?;
        self.input_queued = vec![false; self.inputs.len()];
        self.coded = self.alloc(self.coded_type)?;
        for i in 0..self.coded.len() as u32 {
            self.queue_coded(i)?;
        }
        sys::streamon(&self.dev.file, self.input_type)?;
        sys::streamon(&self.dev.file, self.coded_type)
    }

    fn free_input(&mut self) -> std::io::Result<Option<usize>> {
        // Take back finished inputs without waiting.
        loop {
            let mut b = Buffer::new(self.input_type, sys::MEMORY_MMAP, 0);
            let mut planes = [Plane::default()];
            match sys::dqbuf(&self.dev.file, &mut b, self.planes(&mut planes)) {
                Ok(()) => {
                    if let Some(q) = self.input_queued.get_mut(b.index as usize) {
                        *q = false;
                    }
                }
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => break,
                Err(e) => return Err(e),
            }
        }
        Ok(self.input_queued.iter().position(|q| !q))
    }

    fn input_mut(&mut self, index: usize) -> &mut [u8] {
        self.inputs
            .get_mut(index)
            .map(|m| m.as_mut_slice())
            .unwrap_or(&mut [])
    }

    fn queue_input(
        &mut self,
        index: usize,
        bytes: usize,
        timestamp_us: u64,
    ) -> std::io::Result<()> {
        let mut b = Buffer::new(self.input_type, sys::MEMORY_MMAP, index as u32);
        b.timestamp = libc::timeval {
            tv_sec: (timestamp_us / 1_000_000) as libc::time_t,
            tv_usec: (timestamp_us % 1_000_000) as libc::suseconds_t,
        };
        b.bytesused = bytes as u32;
        b.field = sys::FIELD_NONE;
        let mut planes = [Plane::default()];
        if self.mplane {
            planes[0].bytesused = bytes as u32;
            planes[0].length = self.inputs.get(index).map_or(0, |m| m.len()) as u32;
        }
        sys::qbuf(&self.dev.file, &mut b, self.planes(&mut planes))?;
        if let Some(q) = self.input_queued.get_mut(index) {
            *q = true;
        }
        Ok(())
    }

    fn dequeue_coded(&mut self, timeout: Duration) -> std::io::Result<Option<Coded>> {
        if sys::poll(&self.dev.file, sys::POLLIN, timeout.as_millis() as i32)? == 0 {
            return Ok(None);
        }
        let mut b = Buffer::new(self.coded_type, sys::MEMORY_MMAP, 0);
        let mut planes = [Plane::default()];
        sys::dqbuf(&self.dev.file, &mut b, self.planes(&mut planes))?;
        let used = if self.mplane {
            planes[0].bytesused
        } else {
            b.bytesused
        } as usize;
        let map = self
            .coded
            .get(b.index as usize)
            .ok_or_else(|| std::io::Error::other("bad buffer index"))?;
        let data = map.as_slice()[..used.min(map.len())].to_vec();
        let keyframe = b.flags & sys::BUF_FLAG_KEYFRAME != 0;
        let timestamp_us = b.timestamp.tv_sec as u64 * 1_000_000 + b.timestamp.tv_usec as u64;
        self.queue_coded(b.index)?;
        Ok(Some(Coded {
            data,
            keyframe,
            timestamp_us,
        }))
    }
}

#[cfg(test)]
mod tests;
