//! The coded frames back through vicodec's stateful FWHT decoder, compared with the
//! pictures that went in (luma PSNR). This is check code: picam itself never decodes
//! through V4L2, so the decoder's flow (SOURCE_CHANGE before the capture side is set
//! up) lives here, on `capture::v4l2::ioctl`, not in the library.

use std::time::{Duration, Instant};

use capture::v4l2::formats::PixelFormat;
use capture::v4l2::ioctl::{self, MemoryType, PlaneMapping, QueueType};
use capture::v4l2::{device_paths, Device};

/// The stateful FWHT decoder beside the encoder: an m2m device taking FWHT in.
pub fn find_decoder() -> Option<String> {
    device_paths().into_iter().find(|p| {
        Device::open(p).is_ok_and(|d| {
            d.is_m2m()
                && d.formats(d.m2m_types().0)
                    .iter()
                    .any(|f| f.format == PixelFormat::FWHT)
        })
    })
}

/// An open decoder: coded frames in, YU12 pictures out.
pub struct Decoder {
    dev: Device,
    coded_queue: QueueType,
    picture_queue: QueueType,
    coded: Vec<PlaneMapping>,
    coded_busy: Vec<bool>,
    pictures: Vec<PlaneMapping>,
    width: u32,
    height: u32,
    stride: usize,
    /// The SOURCE_CHANGE event arrived (and the picture side was set up after it).
    pub source_change_seen: bool,
}

const BUFFERS: u32 = 2;
const WAIT: Duration = Duration::from_secs(3);

fn err(what: &str, e: std::io::Error) -> String {
    format!("decoder: {what}: {e}")
}

impl Decoder {
    /// Opens `path` for FWHT frames of `width`x`height`.
    pub fn open(path: &str, width: u32, height: u32) -> Result<Self, String> {
        let dev = Device::open(path).map_err(|e| e.to_string())?;
        let (coded_queue, picture_queue) = dev.m2m_types();
        ioctl::subscribe(dev.file(), false, true)
            .map_err(|e| err("subscribing to SOURCE_CHANGE", e))?;
        let f = dev.file();
        ioctl::s_fmt(
            f,
            coded_queue,
            ioctl::PixFormat {
                width,
                height,
                pixelformat: PixelFormat::FWHT.fourcc(),
                sizeimage: width * height * 3,
                ..Default::default()
            },
        )
        .map_err(|e| err("S_FMT FWHT", e))?;
        let n = ioctl::reqbufs(f, coded_queue, MemoryType::Mmap, BUFFERS)
            .map_err(|e| err("REQBUFS (coded)", e))?;
        let mut coded = Vec::new();
        for i in 0..n {
            let mut planes =
                ioctl::map_buffer(f, coded_queue, i).map_err(|e| err("QUERYBUF (coded)", e))?;
            coded.push(planes.remove(0));
        }
        ioctl::streamon(f, coded_queue).map_err(|e| err("STREAMON (coded)", e))?;
        Ok(Self {
            coded_busy: vec![false; coded.len()],
            dev,
            coded_queue,
            picture_queue,
            coded,
            pictures: Vec::new(),
            width,
            height,
            stride: width as usize,
            source_change_seen: false,
        })
    }

    /// After SOURCE_CHANGE: the picture format, buffers, streaming.
    fn set_up_pictures(&mut self) -> Result<(), String> {
        let f = self.dev.file();
        let got = ioctl::s_fmt(
            f,
            self.picture_queue,
            ioctl::PixFormat {
                width: self.width,
                height: self.height,
                pixelformat: PixelFormat::Yuv420.fourcc(),
                ..Default::default()
            },
        )
        .map_err(|e| err("S_FMT YU12", e))?;
        self.stride = got.bytesperline.max(got.width) as usize;
        let n = ioctl::reqbufs(f, self.picture_queue, MemoryType::Mmap, BUFFERS)
            .map_err(|e| err("REQBUFS (pictures)", e))?;
        for i in 0..n {
            let mut planes = ioctl::map_buffer(f, self.picture_queue, i)
                .map_err(|e| err("QUERYBUF (pictures)", e))?;
            let map = planes.remove(0);
            let len = map.len();
            self.pictures.push(map);
            ioctl::qbuf(
                f,
                ioctl::buffer(self.picture_queue, MemoryType::Mmap, i, 0, len, 0),
            )
            .map_err(|e| err("QBUF (pictures)", e))?;
        }
        ioctl::streamon(f, self.picture_queue).map_err(|e| err("STREAMON (pictures)", e))
    }

    /// Decodes one coded frame; returns the picture's luma rows, `width` bytes each.
    pub fn decode(&mut self, frame: &[u8], ts: u64) -> Result<Vec<u8>, String> {
        let f = self.dev.file();
        while let Some(b) = ioctl::dqbuf(f, self.coded_queue).map_err(|e| err("DQBUF", e))? {
            if let Some(busy) = self.coded_busy.get_mut(b.index() as usize) {
                *busy = false;
            }
        }
        let slot = self
            .coded_busy
            .iter()
            .position(|b| !b)
            .ok_or("decoder: no free coded buffer")?;
        let map = &mut self.coded[slot];
        if frame.len() > map.len() {
            return Err(format!(
                "decoder: {} bytes for a {}-byte buffer",
                frame.len(),
                map.len()
            ));
        }
        map[..frame.len()].copy_from_slice(frame);
        let len = map.len();
        ioctl::qbuf(
            f,
            ioctl::buffer(
                self.coded_queue,
                MemoryType::Mmap,
                slot as u32,
                frame.len(),
                len,
                ts,
            ),
        )
        .map_err(|e| err("QBUF (coded)", e))?;
        self.coded_busy[slot] = true;
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err("decoder: no picture within 3 s".into());
            }
            let ready = ioctl::poll(self.dev.file(), left.as_millis() as u32)
                .map_err(|e| err("poll", e))?;
            if ready.event {
                while let Some(e) =
                    ioctl::dqevent(self.dev.file()).map_err(|e| err("DQEVENT", e))?
                {
                    if e == ioctl::Event::SourceChange && self.pictures.is_empty() {
                        self.source_change_seen = true;
                        self.set_up_pictures()?;
                    }
                }
            }
            if self.pictures.is_empty() {
                continue;
            }
            let f = self.dev.file();
            let Some(b) = ioctl::dqbuf(f, self.picture_queue).map_err(|e| err("DQBUF", e))? else {
                continue;
            };
            let index = b.index();
            let map = &self.pictures[index as usize];
            let (w, h) = (self.width as usize, self.height as usize);
            if map.len() < self.stride * h {
                return Err(format!("decoder: picture buffer of {} bytes", map.len()));
            }
            let mut luma = Vec::with_capacity(w * h);
            for row in 0..h {
                luma.extend_from_slice(&map[row * self.stride..row * self.stride + w]);
            }
            let len = map.len();
            ioctl::qbuf(
                f,
                ioctl::buffer(self.picture_queue, MemoryType::Mmap, index, 0, len, 0),
            )
            .map_err(|e| err("QBUF (pictures)", e))?;
            return Ok(luma);
        }
    }
}

/// Luma PSNR in dB of `b` against `a` (equal lengths; 99 for identical).
pub fn psnr(a: &[u8], b: &[u8]) -> f64 {
    let n = a.len().min(b.len()).max(1);
    let sse: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum();
    if sse == 0.0 {
        return 99.0;
    }
    10.0 * (255.0f64 * 255.0 * n as f64 / sse).log10()
}
