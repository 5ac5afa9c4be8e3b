//! The kernel side of [`EncoderIo`]: a V4L2 stateful encoder with MMAP buffers on both
//! queues, single- or multi-planar as the device offers (one plane per buffer: the raw
//! formats picam feeds are contiguous).
//!
//! Verified on a kernel device: vicodec (FWHT) with `multiplanar=0` and `=1`, under qemu
//! (`scripts/qemu-v4l2/run.sh`). The H.264 encoder of a Raspberry Pi 4 (bcm2835-codec)
//! is the same interface but needs a check on the Pi (its controls, its strides).

use std::time::{Duration, Instant};

use super::{Coded, Drained, EncoderIo, InputLayout};
use crate::v4l2::controls::ControlDevice;
use crate::v4l2::device::Device;
use crate::v4l2::formats::PixelFormat;
use crate::v4l2::ioctl::{self, MemoryType, PlaneMapping, QueueType};
use crate::{CaptureError, EncoderSettings};

/// Encoder buffers on each queue: few, so that frames never wait inside the encoder.
const ENCODER_BUFFERS: u32 = 2;
/// How long a drain waits for the EOS event once it has the LAST buffer.
const EOS_GRACE: Duration = Duration::from_millis(200);

/// The kernel side of [`EncoderIo`].
pub struct V4l2EncoderIo {
    dev: Device,
    input_queue: QueueType,
    coded_queue: QueueType,
    inputs: Vec<PlaneMapping>,
    input_queued: Vec<bool>,
    coded: Vec<PlaneMapping>,
    /// `V4L2_EVENT_EOS` could be subscribed (drain then also waits for it).
    eos_events: bool,
    /// Input slots imported as DMABUF (0: MMAP input buffers).
    dmabuf_slots: u32,
}

impl V4l2EncoderIo {
    /// Opens the memory-to-memory encoder at `path`, which must emit `coded`.
    pub fn open(path: &str, coded: PixelFormat) -> Result<Self, CaptureError> {
        let dev = Device::open(path)?;
        if !dev.is_m2m_encoder_of(coded) {
            let kind = if dev.is_m2m() {
                "a memory-to-memory device".to_string()
            } else {
                format!("a {:?} device", dev.kind())
            };
            let (_, coded_queue) = dev.m2m_types();
            let emits: Vec<String> = dev
                .formats(coded_queue)
                .iter()
                .map(|f| f.format.to_string())
                .collect();
            return Err(CaptureError::Unsupported {
                device: path.to_string(),
                asked: format!("encode {coded} (memory-to-memory)"),
                supports: format!(
                    "it is {kind} ({}) emitting [{}]",
                    dev.driver(),
                    emits.join(", ")
                ),
            });
        }
        let (input_queue, coded_queue) = dev.m2m_types();
        // Drain works without the event too (the LAST flag is what counts): a device
        // that refuses the subscription is not an error.
        let eos_events = ioctl::subscribe(&dev.file, true, false).is_ok();
        Ok(Self {
            dev,
            input_queue,
            coded_queue,
            inputs: Vec::new(),
            input_queued: Vec::new(),
            coded: Vec::new(),
            eos_events,
            dmabuf_slots: 0,
        })
    }

    /// True when the device uses the multi-planar API.
    pub fn multiplanar(&self) -> bool {
        self.input_queue.is_multiplanar()
    }

    /// The open device.
    pub fn device(&self) -> &Device {
        &self.dev
    }

    fn alloc(&mut self, queue: QueueType) -> std::io::Result<Vec<PlaneMapping>> {
        let count = ioctl::reqbufs(&self.dev.file, queue, MemoryType::Mmap, ENCODER_BUFFERS)?;
        let mut maps = Vec::with_capacity(count as usize);
        for index in 0..count {
            let planes = ioctl::map_buffer(&self.dev.file, queue, index)?;
            // One plane per buffer is what `configure` asked for.
            let Some(map) = planes.into_iter().next() else {
                return Err(std::io::Error::other(format!(
                    "{queue:?} buffer {index} has no plane"
                )));
            };
            maps.push(map);
        }
        Ok(maps)
    }

    fn queue_coded(&mut self, index: u32) -> std::io::Result<()> {
        let len = self.coded.get(index as usize).map_or(0, |m| m.len());
        ioctl::qbuf(
            &self.dev.file,
            ioctl::buffer(self.coded_queue, MemoryType::Mmap, index, 0, len, 0),
        )
    }

    /// Dequeues one coded buffer if one is ready; requeues it unless it is the last.
    fn take_coded(&mut self) -> std::io::Result<Option<Coded>> {
        let Some(b) = ioctl::dqbuf(&self.dev.file, self.coded_queue)? else {
            return Ok(None);
        };
        let index = b.index();
        let map = self
            .coded
            .get(index as usize)
            .ok_or_else(|| std::io::Error::other(format!("coded buffer index {index}")))?;
        let used = (*b.get_first_plane().bytesused as usize).min(map.len());
        let flags = b.flags();
        let coded = Coded {
            data: map[..used].to_vec(),
            keyframe: flags.contains(ioctl::BufferFlags::KEYFRAME),
            timestamp_us: ioctl::timestamp_us(&b),
            sequence: b.sequence(),
            last: flags.contains(ioctl::BufferFlags::LAST),
        };
        // After the LAST buffer the queue stays drained until restarted: requeuing it
        // would fail with EPIPE.
        if !coded.last {
            self.queue_coded(index)?;
        }
        Ok(Some(coded))
    }

    fn start_queues(&mut self) -> std::io::Result<()> {
        self.input_queued.iter_mut().for_each(|q| *q = false);
        for i in 0..self.coded.len() as u32 {
            self.queue_coded(i)?;
        }
        ioctl::streamon(&self.dev.file, self.input_queue)?;
        ioctl::streamon(&self.dev.file, self.coded_queue)
    }
}

impl EncoderIo for V4l2EncoderIo {
    fn configure(
        &mut self,
        input: PixelFormat,
        coded: PixelFormat,
        s: EncoderSettings,
    ) -> std::io::Result<InputLayout> {
        // Coded side first (stateful encoder rule), then the raw side.
        ioctl::s_fmt(
            &self.dev.file,
            self.coded_queue,
            ioctl::PixFormat {
                width: s.width,
                height: s.height,
                pixelformat: coded.fourcc(),
                sizeimage: (s.width * s.height).max(512 * 1024),
                ..Default::default()
            },
        )?;
        let raw = ioctl::s_fmt(
            &self.dev.file,
            self.input_queue,
            ioctl::PixFormat {
                width: s.width,
                height: s.height,
                pixelformat: input.fourcc(),
                ..Default::default()
            },
        )?;
        let format = PixelFormat::from_fourcc(raw.pixelformat);
        let size = raw.sizeimage as usize;
        let luma_size = match format {
            PixelFormat::Yuyv => size,
            _ => size * 2 / 3,
        };
        self.dev.set_capture_rate(self.input_queue, s.fps as f64);
        Ok(InputLayout {
            format,
            stride: raw.bytesperline,
            luma_size,
            size,
        })
    }

    fn controls(&mut self) -> &mut dyn ControlDevice {
        &mut self.dev
    }

    fn start(&mut self) -> std::io::Result<()> {
        if self.dmabuf_slots > 0 {
            // No memory of our own on the input side: slots only.
            let n = ioctl::reqbufs(
                &self.dev.file,
                self.input_queue,
                MemoryType::DmaBuf,
                self.dmabuf_slots,
            )?;
            if n == 0 {
                return Err(std::io::Error::other(
                    "the driver gave no DMABUF input slots",
                ));
            }
            self.inputs.clear();
            self.input_queued = vec![false; n as usize];
        } else {
            self.inputs = self.alloc(self.input_queue)?;
            self.input_queued = vec![false; self.inputs.len()];
        }
        self.coded = self.alloc(self.coded_queue)?;
        self.start_queues()
    }

    fn use_dmabuf_input(&mut self, count: u32) -> std::io::Result<()> {
        self.dmabuf_slots = count.max(1);
        Ok(())
    }

    fn queue_input_dmabuf(
        &mut self,
        index: usize,
        fd: std::os::fd::BorrowedFd<'_>,
        bytes: usize,
        length: usize,
        timestamp_us: u64,
    ) -> std::io::Result<()> {
        if self.dmabuf_slots == 0 {
            return Err(std::io::Error::other(
                "the encoder's input was set up for MMAP, not DMABUF",
            ));
        }
        ioctl::qbuf(
            &self.dev.file,
            ioctl::dmabuf_buffer(
                self.input_queue,
                index as u32,
                fd,
                bytes,
                length,
                timestamp_us,
            ),
        )?;
        if let Some(q) = self.input_queued.get_mut(index) {
            *q = true;
        }
        Ok(())
    }

    fn free_input(&mut self) -> std::io::Result<Option<usize>> {
        // Take back finished inputs without waiting.
        while let Some(b) = ioctl::dqbuf(&self.dev.file, self.input_queue)? {
            if let Some(q) = self.input_queued.get_mut(b.index() as usize) {
                *q = false;
            }
        }
        Ok(self.input_queued.iter().position(|q| !q))
    }

    fn input_mut(&mut self, index: usize) -> &mut [u8] {
        match self.inputs.get_mut(index) {
            Some(m) => &mut m[..],
            None => &mut [],
        }
    }

    fn queue_input(
        &mut self,
        index: usize,
        bytes: usize,
        timestamp_us: u64,
    ) -> std::io::Result<()> {
        let len = self.inputs.get(index).map_or(0, |m| m.len());
        ioctl::qbuf(
            &self.dev.file,
            ioctl::buffer(
                self.input_queue,
                MemoryType::Mmap,
                index as u32,
                bytes,
                len,
                timestamp_us,
            ),
        )?;
        if let Some(q) = self.input_queued.get_mut(index) {
            *q = true;
        }
        Ok(())
    }

    fn dequeue_coded(&mut self, timeout: Duration) -> std::io::Result<Option<Coded>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(c) = self.take_coded()? {
                return Ok(Some(c));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            let ready = ioctl::poll(&self.dev.file, left.as_millis().max(1) as u32)?;
            if ready == ioctl::Ready::default() {
                return Ok(None);
            }
            if ready.event {
                // Drain stray events (an EOS outside a drain is only informative).
                while ioctl::dqevent(&self.dev.file)?.is_some() {}
            }
            if ready.error && !ready.readable {
                return Err(std::io::Error::from_raw_os_error(libc::EIO));
            }
        }
    }

    fn drain(&mut self, timeout: Duration) -> std::io::Result<Drained> {
        ioctl::encoder_stop(&self.dev.file)?;
        let mut deadline = Instant::now() + timeout;
        let mut out = Drained::default();
        let mut last = false;
        while !(last && (out.eos_event || !self.eos_events)) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                if last {
                    // The LAST flag is what the interface promises; the EOS event is
                    // extra, and a driver may not send it.
                    break;
                }
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("drain: no buffer flagged LAST within {timeout:?}"),
                ));
            }
            if last {
                // After the last buffer, poll reports the queue readable at once (no
                // more buffers will come): sleep instead while the event may arrive.
                std::thread::sleep(Duration::from_millis(5));
            }
            let ready = ioctl::poll(&self.dev.file, left.as_millis().max(1) as u32)?;
            if ready.event {
                while let Some(e) = ioctl::dqevent(&self.dev.file)? {
                    out.eos_event |= e == ioctl::Event::Eos;
                }
            }
            if !last {
                match self.take_coded() {
                    Ok(Some(c)) => {
                        last = c.last;
                        out.frames.push(c);
                    }
                    Ok(None) => {}
                    // EPIPE: the last buffer was already taken.
                    Err(e) if e.raw_os_error() == Some(libc::EPIPE) => last = true,
                    Err(e) => return Err(e),
                }
                if last {
                    deadline = deadline.min(Instant::now() + EOS_GRACE);
                }
            }
        }
        Ok(out)
    }

    fn restart(&mut self) -> std::io::Result<()> {
        // STREAMOFF returns every buffer to us and clears the drained state;
        // STREAMON with the coded buffers requeued starts a fresh stream.
        ioctl::streamoff(&self.dev.file, self.input_queue)?;
        ioctl::streamoff(&self.dev.file, self.coded_queue)?;
        self.start_queues()
    }
}

impl Drop for V4l2EncoderIo {
    fn drop(&mut self) {
        // Unmap before the descriptor closes (field order would do it too; explicit is
        // clearer): the kernel frees the buffers when the last user goes.
        let _ = ioctl::streamoff(&self.dev.file, self.input_queue);
        let _ = ioctl::streamoff(&self.dev.file, self.coded_queue);
        self.inputs.clear();
        self.coded.clear();
    }
}
