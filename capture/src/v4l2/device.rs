//! An open V4L2 device: what it is, what it offers, its controls, and a streaming
//! capture queue of mmapped buffers.

#![forbid(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

use super::controls::ControlDevice;
use super::formats::{FormatInfo, Interval, PixelFormat, Rates, Sizes};
use super::ioctl::{self, Capabilities, MemoryType, PlaneMapping, QueueType};
use crate::CaptureError;

/// What kind of device this is, for picam.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Captures video (single-planar capture queue).
    Camera,
    /// A memory-to-memory H.264 encoder.
    Encoder,
    /// Something else (metadata node, decoder, ISP, multi-planar camera picam does not
    /// capture from).
    Other,
}

/// A device's identity and offer.
#[derive(Clone, Debug)]
pub struct DeviceInfo {
    /// Path, e.g. `/dev/video0`.
    pub path: String,
    /// Driver name (`uvcvideo`, `vivid`, `bcm2835-codec`, ...).
    pub driver: String,
    /// Card name.
    pub card: String,
    /// Bus.
    pub bus: String,
    /// The node's capabilities.
    pub caps: Capabilities,
    /// What it is.
    pub kind: Kind,
    /// Capture formats (a camera's output; an encoder's coded side).
    pub formats: Vec<FormatInfo>,
    /// An encoder's input formats.
    pub inputs: Vec<FormatInfo>,
}

impl DeviceInfo {
    /// True when the device emits H.264 itself.
    pub fn has_h264(&self) -> bool {
        self.formats.iter().any(|f| f.format == PixelFormat::H264)
    }

    /// True when the device offers a raw format picam can encode.
    pub fn has_raw(&self) -> bool {
        self.formats.iter().any(|f| f.format.is_raw_usable())
    }
}

/// An open device.
pub struct Device {
    /// Path, for messages.
    pub path: String,
    pub(crate) file: File,
    caps: Capabilities,
    driver: String,
    card: String,
    bus: String,
}

impl Device {
    /// Opens `path` (non-blocking: waits are `poll`s with timeouts).
    pub fn open(path: &str) -> Result<Self, CaptureError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(path)
            .map_err(|source| CaptureError::Device {
                device: path.into(),
                action: open_action(path),
                source,
            })?;
        let cap = ioctl::querycap(&file).map_err(|source| CaptureError::Device {
            device: path.into(),
            action: "VIDIOC_QUERYCAP (is it a V4L2 device?)".into(),
            source,
        })?;
        Ok(Self {
            path: path.to_string(),
            file,
            caps: cap.caps,
            driver: cap.driver,
            card: cap.card,
            bus: cap.bus,
        })
    }

    /// The open descriptor, for [`super::ioctl`] calls this type does not wrap (the
    /// qemu check's decoder).
    pub fn file(&self) -> &File {
        &self.file
    }

    /// The node's capabilities.
    pub fn caps(&self) -> Capabilities {
        self.caps
    }

    /// Driver name.
    pub fn driver(&self) -> &str {
        &self.driver
    }

    /// Camera, encoder or other.
    pub fn kind(&self) -> Kind {
        if self.is_m2m() {
            return if self.is_m2m_encoder_of(PixelFormat::H264) {
                Kind::Encoder
            } else {
                Kind::Other
            };
        }
        let c = self.caps;
        if !c.contains(Capabilities::STREAMING) {
            return Kind::Other;
        }
        if c.contains(Capabilities::VIDEO_CAPTURE) {
            Kind::Camera
        } else {
            Kind::Other
        }
    }

    /// True for a streaming memory-to-memory device (either API).
    pub fn is_m2m(&self) -> bool {
        let c = self.caps;
        c.contains(Capabilities::STREAMING)
            && (c.intersects(Capabilities::VIDEO_M2M | Capabilities::VIDEO_M2M_MPLANE)
                || (c.intersects(Capabilities::VIDEO_OUTPUT | Capabilities::VIDEO_OUTPUT_MPLANE)
                    && c.intersects(
                        Capabilities::VIDEO_CAPTURE | Capabilities::VIDEO_CAPTURE_MPLANE,
                    )))
    }

    /// True for a memory-to-memory device whose coded (capture) side offers `coded`:
    /// an encoder to that format. (A decoder offers raw formats there.)
    pub fn is_m2m_encoder_of(&self, coded: PixelFormat) -> bool {
        self.is_m2m()
            && self
                .formats(self.m2m_types().1)
                .iter()
                .any(|f| f.format == coded)
    }

    /// For an m2m device: (raw input queue, coded output queue), multi-planar where the
    /// device has the multi-planar API.
    pub fn m2m_types(&self) -> (QueueType, QueueType) {
        if self
            .caps
            .intersects(Capabilities::VIDEO_M2M_MPLANE | Capabilities::VIDEO_CAPTURE_MPLANE)
        {
            (QueueType::VideoOutputMplane, QueueType::VideoCaptureMplane)
        } else {
            (QueueType::VideoOutput, QueueType::VideoCapture)
        }
    }

    /// Everything `picam devices` shows.
    pub fn info(&self) -> DeviceInfo {
        let kind = self.kind();
        let (formats, inputs) = match kind {
            Kind::Encoder => {
                let (input, coded) = self.m2m_types();
                (self.formats(coded), self.formats(input))
            }
            Kind::Camera => (self.formats(QueueType::VideoCapture), Vec::new()),
            Kind::Other => (Vec::new(), Vec::new()),
        };
        DeviceInfo {
            path: self.path.clone(),
            driver: self.driver.clone(),
            card: self.card.clone(),
            bus: self.bus.clone(),
            caps: self.caps,
            kind,
            formats,
            inputs,
        }
    }

    /// The formats of queue `type_`, with sizes and rates. Enumeration errors end the
    /// list (a device without ENUM_FRAMESIZES still lists its formats).
    pub fn formats(&self, queue: QueueType) -> Vec<FormatInfo> {
        let mut out = Vec::new();
        for index in 0..64 {
            let Ok(Some(d)) = ioctl::enum_fmt(&self.file, queue, index) else {
                break;
            };
            let fourcc = u32::from(d.pixelformat);
            out.push(FormatInfo {
                format: PixelFormat::from_fourcc(fourcc),
                description: d.description.trim().to_string(),
                sizes: self.sizes(fourcc),
            });
        }
        out
    }

    fn sizes(&self, fourcc: u32) -> Sizes {
        let mut list = Vec::new();
        for index in 0..256 {
            let Ok(Some(s)) = ioctl::enum_framesizes(&self.file, fourcc, index) else {
                break;
            };
            match s {
                ioctl::FrameSize::Discrete { width, height } => {
                    list.push((width, height, self.rates(fourcc, width, height)));
                }
                ioctl::FrameSize::Stepwise {
                    min_w,
                    max_w,
                    step_w,
                    min_h,
                    max_h,
                    step_h,
                } => {
                    // Rates at the largest size are what limits; ask there.
                    return Sizes::Stepwise {
                        min_w,
                        max_w,
                        step_w,
                        min_h,
                        max_h,
                        step_h,
                        rates: self.rates(fourcc, max_w, max_h),
                    };
                }
            }
        }
        Sizes::Discrete(list)
    }

    /// The rates offered at one size.
    pub fn rates(&self, fourcc: u32, w: u32, h: u32) -> Rates {
        let mut list = Vec::new();
        for index in 0..64 {
            let Ok(Some(i)) = ioctl::enum_frameintervals(&self.file, fourcc, w, h, index) else {
                break;
            };
            match i {
                ioctl::FrameInterval::Discrete(num, den) => list.push(Interval { num, den }),
                ioctl::FrameInterval::Range { min, max } => {
                    // The shortest interval is the highest rate.
                    let fps = |(num, den)| Interval { num, den }.fps().unwrap_or(0.0);
                    return Rates::Range {
                        min_fps: fps(max),
                        max_fps: fps(min),
                    };
                }
            }
        }
        if list.is_empty() {
            Rates::Unknown
        } else {
            Rates::Discrete(list)
        }
    }

    /// Sets the capture format; returns what the driver settled on (it may adjust).
    pub fn set_capture_format(
        &self,
        format: PixelFormat,
        width: u32,
        height: u32,
    ) -> Result<ioctl::PixFormat, CaptureError> {
        let asked = ioctl::PixFormat {
            width,
            height,
            pixelformat: format.fourcc(),
            ..Default::default()
        };
        ioctl::s_fmt(&self.file, QueueType::VideoCapture, asked)
            .map_err(|source| self.err(format!("VIDIOC_S_FMT {format} {width}x{height}"), source))
    }

    /// Asks for `fps`; returns the rate the driver set (None if it has no rate control).
    pub fn set_capture_rate(&self, queue: QueueType, fps: f64) -> Option<f64> {
        // 1000/(fps*1000) keeps fractional rates such as 29.97.
        let den = (fps * 1000.0).round() as u32;
        let (num, den) = ioctl::s_parm_timeperframe(&self.file, queue, 1000, den).ok()??;
        Interval { num, den }.fps()
    }

    pub(crate) fn err(&self, action: impl Into<String>, source: std::io::Error) -> CaptureError {
        CaptureError::Device {
            device: self.path.clone(),
            action: action.into(),
            source,
        }
    }
}

fn open_action(path: &str) -> String {
    if !Path::new(path).exists() {
        "opening (no such device: is the camera plugged in? see `picam devices`)".into()
    } else {
        "opening".into()
    }
}

impl ControlDevice for Device {
    fn range(&mut self, id: u32) -> Option<(i64, i64)> {
        let q = ioctl::queryctrl(&self.file, id).ok()??;
        (!q.disabled).then_some((q.min, q.max))
    }

    fn set(&mut self, id: u32, value: i64) -> std::io::Result<()> {
        ioctl::s_ctrl(
            &self.file,
            id,
            value.clamp(i32::MIN as i64, i32::MAX as i64) as i32,
        )
    }
}

/// One dequeued frame.
#[derive(Clone, Copy, Debug)]
pub struct FrameMeta {
    /// The buffer's index in the queue (its DMABUF in [`CaptureQueue::export`]).
    pub index: u32,
    /// Driver's sequence number.
    pub sequence: u32,
    /// Bytes of data.
    pub bytesused: usize,
    /// The driver marked it a keyframe (H.264 devices).
    pub keyframe: bool,
    /// The driver marked it corrupt.
    pub error: bool,
}

/// A streaming single-planar capture queue of mmapped buffers.
pub struct CaptureQueue {
    maps: Vec<PlaneMapping>,
    queue: QueueType,
    streaming: bool,
}

/// Buffers on the capture queue: one being read, one being filled, one spare. More
/// would let frames wait in the driver's queue; fewer makes the driver drop frames.
pub const CAPTURE_BUFFERS: u32 = 3;

impl CaptureQueue {
    /// Allocates, maps and queues the buffers and starts streaming.
    pub fn start(dev: &Device) -> Result<Self, CaptureError> {
        let queue = QueueType::VideoCapture;
        let count =
            ioctl::reqbufs(&dev.file, queue, MemoryType::Mmap, CAPTURE_BUFFERS).map_err(|e| {
                dev.err(
                    "VIDIOC_REQBUFS (is it busy? another program may be using it)",
                    e,
                )
            })?;
        if count == 0 {
            return Err(dev.err(
                "VIDIOC_REQBUFS",
                std::io::Error::other("the driver gave no buffers"),
            ));
        }
        let mut maps = Vec::with_capacity(count as usize);
        for index in 0..count {
            let planes = ioctl::map_buffer(&dev.file, queue, index)
                .map_err(|e| dev.err("VIDIOC_QUERYBUF + mmap", e))?;
            let Some(map) = planes.into_iter().next() else {
                return Err(dev.err(
                    "VIDIOC_QUERYBUF",
                    std::io::Error::other(format!("buffer {index} has no plane")),
                ));
            };
            let len = map.len();
            maps.push(map);
            ioctl::qbuf(
                &dev.file,
                ioctl::buffer(queue, MemoryType::Mmap, index, 0, len, 0),
            )
            .map_err(|e| dev.err("VIDIOC_QBUF", e))?;
        }
        ioctl::streamon(&dev.file, queue)
            .map_err(|e| dev.err("VIDIOC_STREAMON (is it busy?)", e))?;
        Ok(Self {
            maps,
            queue,
            streaming: true,
        })
    }

    /// Waits up to `timeout` for a frame and lends it to `f`, then gives the buffer
    /// back to the driver. `Ok(None)` on timeout.
    pub fn next<R>(
        &mut self,
        dev: &Device,
        timeout: Duration,
        f: impl FnOnce(&[u8], FrameMeta) -> R,
    ) -> Result<Option<R>, CaptureError> {
        let ready = ioctl::poll(&dev.file, timeout.as_millis().min(u32::MAX as u128) as u32)
            .map_err(|e| dev.err("poll", e))?;
        if ready == ioctl::Ready::default() {
            return Ok(None);
        }
        let b = match ioctl::dqbuf(&dev.file, self.queue) {
            Ok(Some(b)) => b,
            Ok(None) if ready.error => {
                return Err(dev.err(
                    "VIDIOC_DQBUF",
                    std::io::Error::from_raw_os_error(libc::ENODEV),
                ))
            }
            Ok(None) => return Ok(None),
            Err(e) => return Err(dev.err("VIDIOC_DQBUF", e)),
        };
        let index = b.index();
        let Some(map) = self.maps.get(index as usize) else {
            return Err(dev.err(
                "VIDIOC_DQBUF",
                std::io::Error::other(format!("buffer index {index} out of range")),
            ));
        };
        let used = (*b.get_first_plane().bytesused as usize).min(map.len());
        let flags = b.flags();
        let meta = FrameMeta {
            index,
            sequence: b.sequence(),
            bytesused: used,
            keyframe: flags.contains(ioctl::BufferFlags::KEYFRAME),
            error: flags.contains(ioctl::BufferFlags::ERROR),
        };
        let r = f(&map[..used], meta);
        let len = map.len();
        ioctl::qbuf(
            &dev.file,
            ioctl::buffer(self.queue, MemoryType::Mmap, index, 0, len, 0),
        )
        .map_err(|e| dev.err("VIDIOC_QBUF", e))?;
        Ok(Some(r))
    }

    /// Each buffer as a DMABUF descriptor (`VIDIOC_EXPBUF`), in index order, with its
    /// length: for handing frames to an encoder without a copy. The descriptors keep
    /// the memory alive past [`Self::stop`]; drop them to free it.
    pub fn export(&self, dev: &Device) -> Result<Vec<(std::os::fd::OwnedFd, usize)>, CaptureError> {
        (0..self.maps.len() as u32)
            .map(|i| {
                ioctl::expbuf(&dev.file, self.queue, i, 0)
                    .map(|fd| (fd, self.maps[i as usize].len()))
                    .map_err(|e| dev.err(format!("VIDIOC_EXPBUF (buffer {i})"), e))
            })
            .collect()
    }

    /// Stops streaming and frees the buffers.
    pub fn stop(&mut self, dev: &Device) {
        if self.streaming {
            let _ = ioctl::streamoff(&dev.file, self.queue);
            // Unmap before freeing: the kernel keeps mapped buffers alive otherwise.
            self.maps.clear();
            let _ = ioctl::reqbufs(&dev.file, self.queue, MemoryType::Mmap, 0);
            self.streaming = false;
        }
    }
}

/// True for errors that mean the device went away (unplugged, driver unbound).
pub fn is_gone(e: &CaptureError) -> bool {
    match e {
        CaptureError::Device { source, .. } => {
            matches!(
                source.raw_os_error(),
                Some(libc::ENODEV | libc::EIO | libc::ENXIO | libc::ENOENT)
            )
        }
        _ => false,
    }
}
