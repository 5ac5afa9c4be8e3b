//! An open V4L2 device: what it is, what it offers, its controls, and a streaming
//! capture queue of mmapped buffers.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

use super::controls::ControlDevice;
use super::formats::{FormatInfo, Interval, PixelFormat, Rates, Sizes};
use super::sys::{self, Buffer, Mmap};
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
    /// The device's capabilities bits.
    pub caps: u32,
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

fn cstr(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).trim().to_string()
}

/// An open device.
pub struct Device {
    /// Path, for messages.
    pub path: String,
    pub(crate) file: File,
    caps: u32,
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
        let cap = sys::querycap(&file).map_err(|source| CaptureError::Device {
            device: path.into(),
            action: "VIDIOC_QUERYCAP (is it a V4L2 device?)".into(),
            source,
        })?;
        let caps = if cap.capabilities & sys::CAP_DEVICE_CAPS != 0 {
            cap.device_caps
        } else {
            cap.capabilities
        };
        Ok(Self {
            path: path.to_string(),
            file,
            caps,
            driver: cstr(&cap.driver),
            card: cstr(&cap.card),
            bus: cstr(&cap.bus_info),
        })
    }

    /// The device's capability bits.
    pub fn caps(&self) -> u32 {
        self.caps
    }

    /// Driver name.
    pub fn driver(&self) -> &str {
        &self.driver
    }

    /// Camera, encoder or other.
    pub fn kind(&self) -> Kind {
        let c = self.caps;
        if c & sys::CAP_STREAMING == 0 {
            return Kind::Other;
        }
        let m2m = c & (sys::CAP_VIDEO_M2M | sys::CAP_VIDEO_M2M_MPLANE) != 0
            || (c & (sys::CAP_VIDEO_OUTPUT | sys::CAP_VIDEO_OUTPUT_MPLANE) != 0
                && c & (sys::CAP_VIDEO_CAPTURE | sys::CAP_VIDEO_CAPTURE_MPLANE) != 0);
        if m2m {
            let coded_type = self.m2m_types().1;
            let h264_out = self
                .formats(coded_type)
                .iter()
                .any(|f| f.format == PixelFormat::H264);
            return if h264_out { Kind::Encoder } else { Kind::Other };
        }
        if c & sys::CAP_VIDEO_CAPTURE != 0 {
            Kind::Camera
        } else {
            Kind::Other
        }
    }

    /// For an m2m device: (raw input queue type, coded output queue type).
    pub fn m2m_types(&self) -> (u32, u32) {
        if self.caps & sys::CAP_VIDEO_M2M_MPLANE != 0
            || self.caps & sys::CAP_VIDEO_CAPTURE_MPLANE != 0
        {
            (
                sys::BUF_TYPE_VIDEO_OUTPUT_MPLANE,
                sys::BUF_TYPE_VIDEO_CAPTURE_MPLANE,
            )
        } else {
            (sys::BUF_TYPE_VIDEO_OUTPUT, sys::BUF_TYPE_VIDEO_CAPTURE)
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
            Kind::Camera => (self.formats(sys::BUF_TYPE_VIDEO_CAPTURE), Vec::new()),
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
    pub fn formats(&self, type_: u32) -> Vec<FormatInfo> {
        let mut out = Vec::new();
        for index in 0..64 {
            let Ok(Some(d)) = sys::enum_fmt(&self.file, type_, index) else {
                break;
            };
            let format = PixelFormat::from_fourcc(d.pixelformat);
            out.push(FormatInfo {
                format,
                description: cstr(&d.description),
                sizes: self.sizes(d.pixelformat),
            });
        }
        out
    }

    fn sizes(&self, fourcc: u32) -> Sizes {
        let mut list = Vec::new();
        for index in 0..256 {
            let Ok(Some(s)) = sys::enum_framesizes(&self.file, fourcc, index) else {
                break;
            };
            match s.type_ {
                sys::FRMSIZE_TYPE_DISCRETE => {
                    let (w, h) = (s.size[0], s.size[1]);
                    list.push((w, h, self.rates(fourcc, w, h)));
                }
                _ => {
                    let z = s.size;
                    // Rates at the largest size are what limits; ask there.
                    return Sizes::Stepwise {
                        min_w: z[0],
                        max_w: z[1],
                        step_w: if s.type_ == sys::FRMSIZE_TYPE_CONTINUOUS {
                            1
                        } else {
                            z[2]
                        },
                        min_h: z[3],
                        max_h: z[4],
                        step_h: if s.type_ == sys::FRMSIZE_TYPE_CONTINUOUS {
                            1
                        } else {
                            z[5]
                        },
                        rates: self.rates(fourcc, z[1], z[4]),
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
            let Ok(Some(i)) = sys::enum_frameintervals(&self.file, fourcc, w, h, index) else {
                break;
            };
            if i.type_ == sys::FRMIVAL_TYPE_DISCRETE {
                list.push(Interval {
                    num: i.interval[0],
                    den: i.interval[1],
                });
            } else {
                // min interval = max rate.
                let max = Interval {
                    num: i.interval[0],
                    den: i.interval[1],
                }
                .fps()
                .unwrap_or(0.0);
                let min = Interval {
                    num: i.interval[2],
                    den: i.interval[3],
                }
                .fps()
                .unwrap_or(0.0);
                return Rates::Range {
                    min_fps: min,
                    max_fps: max,
                };
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
    ) -> Result<sys::PixFormat, CaptureError> {
        let mut f = sys::Format::new(sys::BUF_TYPE_VIDEO_CAPTURE);
        {
            let p = f.pix_mut();
            p.width = width;
            p.height = height;
            p.pixelformat = format.fourcc();
            p.field = sys::FIELD_NONE;
        }
        sys::s_fmt(&self.file, &mut f).map_err(|source| {
            self.err(format!("VIDIOC_S_FMT {format} {width}x{height}"), source)
        })?;
        Ok(f.pix())
    }

    /// Asks for `fps`; returns the rate the driver set (None if it has no rate control).
    pub fn set_capture_rate(&self, type_: u32, fps: f64) -> Option<f64> {
        let mut p = sys::StreamParm::new(type_);
        sys::g_parm(&self.file, &mut p).ok()?;
        if p.capture().capability & sys::CAP_TIMEPERFRAME == 0 {
            return None;
        }
        // 1000/(fps*1000) keeps fractional rates such as 29.97.
        p.set_timeperframe(sys::Fract {
            numerator: 1000,
            denominator: (fps * 1000.0).round() as u32,
        });
        sys::s_parm(&self.file, &mut p).ok()?;
        let t = p.capture().timeperframe;
        Interval {
            num: t.numerator,
            den: t.denominator,
        }
        .fps()
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
        let q = sys::queryctrl(&self.file, id).ok()??;
        (q.flags & sys::CTRL_FLAG_DISABLED == 0).then_some((q.minimum as i64, q.maximum as i64))
    }

    fn set(&mut self, id: u32, value: i64) -> std::io::Result<()> {
        sys::s_ctrl(
            &self.file,
            id,
            value.clamp(i32::MIN as i64, i32::MAX as i64) as i32,
        )
    }
}

/// One dequeued frame.
#[derive(Clone, Copy, Debug)]
pub struct FrameMeta {
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
    maps: Vec<Mmap>,
    type_: u32,
    streaming: bool,
}

/// Buffers on the capture queue: one being read, one being filled, one spare. More
/// would let frames wait in the driver's queue; fewer makes the driver drop frames.
pub const CAPTURE_BUFFERS: u32 = 3;

impl CaptureQueue {
    /// Allocates, maps and queues the buffers and starts streaming.
    pub fn start(dev: &Device) -> Result<Self, CaptureError> {
        let type_ = sys::BUF_TYPE_VIDEO_CAPTURE;
        let mut req = sys::RequestBuffers {
            count: CAPTURE_BUFFERS,
            type_,
            memory: sys::MEMORY_MMAP,
            ..Default::default()
        };
        sys::reqbufs(&dev.file, &mut req).map_err(|e| {
            dev.err(
                "VIDIOC_REQBUFS (is it busy? another program may be using it)",
                e,
            )
        })?;
        if req.count == 0 {
            return Err(dev.err(
                "VIDIOC_REQBUFS",
                std::io::Error::other("the driver gave no buffers"),
            ));
        }
        let mut maps = Vec::with_capacity(req.count as usize);
        for index in 0..req.count {
            let mut b = Buffer::new(type_, sys::MEMORY_MMAP, index);
            sys::querybuf(&dev.file, &mut b, &mut []).map_err(|e| dev.err("VIDIOC_QUERYBUF", e))?;
            maps.push(
                Mmap::new(&dev.file, b.offset(), b.length as usize)
                    .map_err(|e| dev.err("mmap", e))?,
            );
            sys::qbuf(&dev.file, &mut b, &mut []).map_err(|e| dev.err("VIDIOC_QBUF", e))?;
        }
        sys::streamon(&dev.file, type_).map_err(|e| dev.err("VIDIOC_STREAMON (is it busy?)", e))?;
        Ok(Self {
            maps,
            type_,
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
        let events = sys::poll(
            &dev.file,
            sys::POLLIN,
            timeout.as_millis().min(i32::MAX as u128) as i32,
        )
        .map_err(|e| dev.err("poll", e))?;
        if events == 0 {
            return Ok(None);
        }
        let mut b = Buffer::new(self.type_, sys::MEMORY_MMAP, 0);
        match sys::dqbuf(&dev.file, &mut b, &mut []) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {
                if events & sys::POLLERR != 0 {
                    return Err(dev.err(
                        "VIDIOC_DQBUF",
                        std::io::Error::from_raw_os_error(libc::ENODEV),
                    ));
                }
                return Ok(None);
            }
            Err(e) => return Err(dev.err("VIDIOC_DQBUF", e)),
        }
        let Some(map) = self.maps.get(b.index as usize) else {
            return Err(dev.err(
                "VIDIOC_DQBUF",
                std::io::Error::other(format!("buffer index {} out of range", b.index)),
            ));
        };
        let used = (b.bytesused as usize).min(map.len());
        let meta = FrameMeta {
            sequence: b.sequence,
            bytesused: used,
            keyframe: b.flags & sys::BUF_FLAG_KEYFRAME != 0,
            error: b.flags & sys::BUF_FLAG_ERROR != 0,
        };
        let r = f(&map.as_slice()[..used], meta);
        sys::qbuf(&dev.file, &mut b, &mut []).map_err(|e| dev.err("VIDIOC_QBUF", e))?;
        Ok(Some(r))
    }

    /// Stops streaming and frees the buffers.
    pub fn stop(&mut self, dev: &Device) {
        if self.streaming {
            let _ = sys::streamoff(&dev.file, self.type_);
            self.maps.clear();
            let mut req = sys::RequestBuffers {
                count: 0,
                type_: self.type_,
                memory: sys::MEMORY_MMAP,
                ..Default::default()
            };
            let _ = sys::reqbufs(&dev.file, &mut req);
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
