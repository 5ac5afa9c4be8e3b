//! The V4L2 kernel interface, through the `v4l2r` crate's ioctl module.
//!
//! `v4l2r::ioctl` owns the structures (bindgen'd from `<linux/videodev2.h>`), the ioctl
//! numbers and the `unsafe` calls. This file only adapts it to what picam needs: its
//! errors become `io::Error` (the errno is all picam reports, with the device and the
//! action added by the callers), "end of an enumeration" becomes `None`, and a few plain
//! structures replace the kernel's unions so that no caller reads a union.
//!
//! What is deliberately NOT used from `v4l2r`: its high-level `device`/`encoder` layers
//! (their own threads and buffer management; picam's encoder is one frame in, one frame
//! out, driven by the caller). Buffers are mapped once, at allocation, with
//! [`v4l2r::ioctl::mmap`], never per dequeue.
//!
//! One `unsafe` read remains (the module denies any other), in [`s_parm_timeperframe`]: `v4l2r` returns
//! `VIDIOC_S_PARM`'s result only as the raw `v4l2_streamparm`, whose `parm` is a union.

#![deny(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use v4l2r::bindings;
use v4l2r::ioctl::{self as v, CtrlId, IntoErrno, QueryCtrlFlags};
pub use v4l2r::ioctl::{BufferFlags, Capabilities, PlaneMapping, V4l2Buffer};
pub use v4l2r::memory::MemoryType;
pub use v4l2r::QueueType;

/// `v4l2_fourcc('A','B','C','D')`.
pub const fn fourcc(code: &[u8; 4]) -> u32 {
    (code[0] as u32) | ((code[1] as u32) << 8) | ((code[2] as u32) << 16) | ((code[3] as u32) << 24)
}

/// Codec control ids (`V4L2_CID_MPEG_*`), from the kernel headers.
pub const CID_GOP_SIZE: u32 = bindings::V4L2_CID_MPEG_VIDEO_GOP_SIZE;
/// Bitrate mode (VBR/CBR).
pub const CID_BITRATE_MODE: u32 = bindings::V4L2_CID_MPEG_VIDEO_BITRATE_MODE;
/// Target bitrate.
pub const CID_BITRATE: u32 = bindings::V4L2_CID_MPEG_VIDEO_BITRATE;
/// SPS/PPS before every IDR (Raspberry Pi encoders).
pub const CID_REPEAT_SEQ_HEADER: u32 = bindings::V4L2_CID_MPEG_VIDEO_REPEAT_SEQ_HEADER;
/// Keyframe on the next frame (button).
pub const CID_FORCE_KEY_FRAME: u32 = bindings::V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME;
/// H.264 keyframe period.
pub const CID_H264_I_PERIOD: u32 = bindings::V4L2_CID_MPEG_VIDEO_H264_I_PERIOD;
/// H.264 level.
pub const CID_H264_LEVEL: u32 = bindings::V4L2_CID_MPEG_VIDEO_H264_LEVEL;
/// H.264 profile.
pub const CID_H264_PROFILE: u32 = bindings::V4L2_CID_MPEG_VIDEO_H264_PROFILE;
/// SPS/PPS before every IDR (stateful encoders in general).
pub const CID_PREPEND_SPSPPS_TO_IDR: u32 = bindings::V4L2_CID_MPEG_VIDEO_PREPEND_SPSPPS_TO_IDR;
/// FWHT (vicodec) quantisation parameter of intra frames.
pub const CID_FWHT_I_FRAME_QP: u32 = bindings::V4L2_CID_FWHT_I_FRAME_QP;
/// FWHT (vicodec) quantisation parameter of inter frames.
pub const CID_FWHT_P_FRAME_QP: u32 = bindings::V4L2_CID_FWHT_P_FRAME_QP;

fn errno(e: impl IntoErrno) -> io::Error {
    io::Error::from_raw_os_error(e.into_errno())
}

/// EINVAL at the end of an enumeration means "no more".
fn end_of_list<T>(r: Result<T, io::Error>) -> io::Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(None),
        Err(e) => Err(e),
    }
}

/// What `VIDIOC_QUERYCAP` says, with the node's own capabilities chosen.
#[derive(Clone, Debug)]
pub struct Capability {
    /// Driver name.
    pub driver: String,
    /// Card name.
    pub card: String,
    /// Bus.
    pub bus: String,
    /// The node's capabilities (`device_caps` where the driver gives them).
    pub caps: Capabilities,
}

/// `VIDIOC_QUERYCAP`.
pub fn querycap(fd: &File) -> io::Result<Capability> {
    let c: v::Capability = v::querycap(fd).map_err(errno)?;
    Ok(Capability {
        caps: c.device_caps(),
        driver: c.driver.trim().to_string(),
        card: c.card.trim().to_string(),
        bus: c.bus_info.trim().to_string(),
    })
}

/// `VIDIOC_ENUM_FMT`: format `index` of `queue`, `None` past the end.
pub fn enum_fmt(fd: &File, queue: QueueType, index: u32) -> io::Result<Option<v::FmtDesc>> {
    end_of_list(v::enum_fmt(fd, queue, index).map_err(errno))
}

/// A frame size as the driver lists it.
#[derive(Clone, Copy, Debug)]
pub enum FrameSize {
    /// One size.
    #[allow(missing_docs)] // Named for what they are.
    Discrete { width: u32, height: u32 },
    /// A range; steps are 1 for a continuous one.
    #[allow(missing_docs)]
    Stepwise {
        min_w: u32,
        max_w: u32,
        step_w: u32,
        min_h: u32,
        max_h: u32,
        step_h: u32,
    },
}

/// `VIDIOC_ENUM_FRAMESIZES`.
pub fn enum_framesizes(fd: &File, fourcc: u32, index: u32) -> io::Result<Option<FrameSize>> {
    let s: Option<bindings::v4l2_frmsizeenum> =
        end_of_list(v::enum_frame_sizes(fd, index, fourcc.into()).map_err(errno))?;
    Ok(s.and_then(|s| {
        Some(match s.size()? {
            v::FrmSizeTypes::Discrete(d) => FrameSize::Discrete {
                width: d.width,
                height: d.height,
            },
            v::FrmSizeTypes::StepWise(z) => FrameSize::Stepwise {
                min_w: z.min_width,
                max_w: z.max_width,
                step_w: z.step_width.max(1),
                min_h: z.min_height,
                max_h: z.max_height,
                step_h: z.step_height.max(1),
            },
        })
    }))
}

/// A frame interval as the driver lists it, as (numerator, denominator) seconds.
#[derive(Clone, Copy, Debug)]
pub enum FrameInterval {
    /// One interval.
    Discrete(u32, u32),
    /// A range: the shortest (`min`) and the longest (`max`) interval.
    #[allow(missing_docs)]
    Range { min: (u32, u32), max: (u32, u32) },
}

/// `VIDIOC_ENUM_FRAMEINTERVALS`.
pub fn enum_frameintervals(
    fd: &File,
    fourcc: u32,
    w: u32,
    h: u32,
    index: u32,
) -> io::Result<Option<FrameInterval>> {
    let i: Option<bindings::v4l2_frmivalenum> =
        end_of_list(v::enum_frame_intervals(fd, index, fourcc.into(), w, h).map_err(errno))?;
    Ok(i.and_then(|i| {
        Some(match i.intervals()? {
            v::FrmIvalTypes::Discrete(f) => FrameInterval::Discrete(f.numerator, f.denominator),
            v::FrmIvalTypes::StepWise(s) => FrameInterval::Range {
                min: (s.min.numerator, s.min.denominator),
                max: (s.max.numerator, s.max.denominator),
            },
        })
    }))
}

/// A format to set: one plane (the layouts picam uses are all one buffer per frame).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PixFormat {
    /// Width, pixels.
    pub width: u32,
    /// Height, pixels.
    pub height: u32,
    /// Fourcc.
    pub pixelformat: u32,
    /// Bytes per line of the (first) plane; 0 lets the driver choose.
    pub bytesperline: u32,
    /// Bytes of the (first) plane; 0 lets the driver choose.
    pub sizeimage: u32,
}

/// `VIDIOC_S_FMT` on `queue` (single- or multi-planar, by the queue's type, progressive
/// field order); returns what the driver settled on.
pub fn s_fmt(fd: &File, queue: QueueType, f: PixFormat) -> io::Result<PixFormat> {
    // Zeroed whole (bindgen's Default for the union: the kernel reads all of it), then
    // the member for this queue's API is written (writing a union field is safe).
    let mut fmt = bindings::v4l2_format {
        type_: queue as u32,
        ..Default::default()
    };
    if queue.is_multiplanar() {
        let mut plane_fmt: [bindings::v4l2_plane_pix_format; 8] = Default::default();
        plane_fmt[0].bytesperline = f.bytesperline;
        plane_fmt[0].sizeimage = f.sizeimage;
        fmt.fmt.pix_mp = bindings::v4l2_pix_format_mplane {
            width: f.width,
            height: f.height,
            pixelformat: f.pixelformat,
            field: bindings::v4l2_field_V4L2_FIELD_NONE,
            num_planes: 1,
            plane_fmt,
            ..Default::default()
        };
    } else {
        fmt.fmt.pix = bindings::v4l2_pix_format {
            width: f.width,
            height: f.height,
            pixelformat: f.pixelformat,
            field: bindings::v4l2_field_V4L2_FIELD_NONE,
            bytesperline: f.bytesperline,
            sizeimage: f.sizeimage,
            ..Default::default()
        };
    }
    let got: v4l2r::Format = v::s_fmt(&mut fd.as_fd(), fmt).map_err(errno)?;
    let plane = got.plane_fmt.first().cloned().unwrap_or_default();
    Ok(PixFormat {
        width: got.width,
        height: got.height,
        pixelformat: got.pixelformat.into(),
        bytesperline: plane.bytesperline,
        sizeimage: plane.sizeimage,
    })
}

/// `VIDIOC_S_PARM` with a frame interval of `num/den` s on `queue`; returns the interval
/// the driver set, or `None` if the queue has no rate control (no `V4L2_CAP_TIMEPERFRAME`).
pub fn s_parm_timeperframe(
    fd: &File,
    queue: QueueType,
    num: u32,
    den: u32,
) -> io::Result<Option<(u32, u32)>> {
    let interval = bindings::v4l2_fract {
        numerator: num,
        denominator: den,
    };
    // Zeroed whole (bindgen's Default for the union), then the member the kernel reads
    // for this queue's direction is written (writing a union field is safe).
    let mut sp = bindings::v4l2_streamparm {
        type_: queue as u32,
        ..Default::default()
    };
    if queue.direction() == v4l2r::QueueDirection::Capture {
        sp.parm.capture = bindings::v4l2_captureparm {
            timeperframe: interval,
            ..Default::default()
        };
    } else {
        sp.parm.output = bindings::v4l2_outputparm {
            timeperframe: interval,
            ..Default::default()
        };
    }
    let got: bindings::v4l2_streamparm = v::s_parm(fd, sp).map_err(errno)?;
    // `v4l2_captureparm` and `v4l2_outputparm` both start with `capability`, then a mode
    // word, then `timeperframe`: reading the capture view is right for either direction.
    #[allow(unsafe_code)]
    // SAFETY: the union holds plain integers only (any bit pattern is valid) and all
    // its bytes were initialised (zeroed, then written by us and by the kernel).
    let c = unsafe { got.parm.capture };
    if c.capability & bindings::V4L2_CAP_TIMEPERFRAME == 0 {
        return Ok(None);
    }
    Ok(Some((c.timeperframe.numerator, c.timeperframe.denominator)))
}

/// `VIDIOC_REQBUFS`: asks for `count` buffers of `memory` on `queue`; returns how many
/// the driver gave.
pub fn reqbufs(fd: &File, queue: QueueType, memory: MemoryType, count: u32) -> io::Result<u32> {
    let n: usize = v::reqbufs(fd, queue, memory, count).map_err(errno)?;
    Ok(n as u32)
}

/// `VIDIOC_QUERYBUF` then `mmap` of each of buffer `index`'s planes (once, for the
/// life of the queue).
pub fn map_buffer(fd: &File, queue: QueueType, index: u32) -> io::Result<Vec<PlaneMapping>> {
    let q: v::QueryBuffer = v::querybuf(fd, queue, index as usize).map_err(errno)?;
    q.planes
        .iter()
        .map(|p| v::mmap(fd, p.mem_offset, p.length).map_err(errno))
        .collect()
}

/// `VIDIOC_QBUF`.
pub fn qbuf(fd: &File, buffer: V4l2Buffer) -> io::Result<()> {
    v::qbuf::<_, ()>(fd, buffer).map_err(errno)
}

/// `VIDIOC_DQBUF`: `Ok(None)` when nothing is ready (EAGAIN; the device is
/// non-blocking), `Err` with EPIPE once the last buffer was dequeued (drained).
pub fn dqbuf(fd: &File, queue: QueueType) -> io::Result<Option<V4l2Buffer>> {
    match v::dqbuf::<V4l2Buffer>(fd, queue) {
        Ok(b) => Ok(Some(b)),
        Err(v::IoctlConvertError::IoctlError(v::DqBufIoctlError::NotReady)) => Ok(None),
        Err(e) => Err(errno(e)),
    }
}

/// `VIDIOC_STREAMON`.
pub fn streamon(fd: &File, queue: QueueType) -> io::Result<()> {
    v::streamon(fd, queue).map_err(errno)
}

/// `VIDIOC_STREAMOFF`.
pub fn streamoff(fd: &File, queue: QueueType) -> io::Result<()> {
    v::streamoff(fd, queue).map_err(errno)
}

/// A control's range, from `VIDIOC_QUERYCTRL`.
#[derive(Clone, Copy, Debug)]
pub struct CtrlRange {
    /// Minimum.
    pub min: i64,
    /// Maximum.
    pub max: i64,
    /// The driver marks it disabled.
    pub disabled: bool,
}

/// `VIDIOC_QUERYCTRL`: `None` if the device has no control `id`.
pub fn queryctrl(fd: &File, id: u32) -> io::Result<Option<CtrlRange>> {
    let Ok(cid) = CtrlId::new(id) else {
        return Ok(None);
    };
    let q: Option<bindings::v4l2_queryctrl> =
        end_of_list(v::queryctrl(fd, cid, QueryCtrlFlags::empty()).map_err(errno))?;
    Ok(q.map(|q| CtrlRange {
        min: q.minimum as i64,
        max: q.maximum as i64,
        disabled: q.flags & bindings::V4L2_CTRL_FLAG_DISABLED != 0,
    }))
}

/// `VIDIOC_G_CTRL`.
pub fn g_ctrl(fd: &File, id: u32) -> io::Result<i32> {
    v::g_ctrl(fd, id).map_err(errno)
}

/// `VIDIOC_S_CTRL`.
pub fn s_ctrl(fd: &File, id: u32, value: i32) -> io::Result<()> {
    v::s_ctrl(fd, id, value).map(|_| ()).map_err(errno)
}

/// `VIDIOC_EXPBUF`: buffer `index` (plane `plane`) of `queue` as a DMABUF descriptor.
pub fn expbuf(fd: &File, queue: QueueType, index: u32, plane: u32) -> io::Result<OwnedFd> {
    v::expbuf(
        fd,
        queue,
        index as usize,
        plane as usize,
        v::ExpbufFlags::CLOEXEC | v::ExpbufFlags::RDWR,
    )
    .map_err(errno)
}

/// `VIDIOC_ENCODER_CMD` STOP: the encoder finishes what it holds and marks its last
/// coded buffer with `V4L2_BUF_FLAG_LAST` (and signals `V4L2_EVENT_EOS`).
pub fn encoder_stop(fd: &File) -> io::Result<()> {
    v::encoder_cmd::<_, ()>(fd, &v::EncoderCommand::Stop(false)).map_err(errno)
}

/// `VIDIOC_ENCODER_CMD` START: resumes an encoder after a drain (not needed after
/// STREAMOFF/STREAMON of the coded queue, which also resets it).
pub fn encoder_start(fd: &File) -> io::Result<()> {
    v::encoder_cmd::<_, ()>(fd, &v::EncoderCommand::Start).map_err(errno)
}

/// The events picam subscribes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// The encoder or decoder has produced its last buffer (`V4L2_EVENT_EOS`).
    Eos,
    /// The source changed (resolution; `V4L2_EVENT_SOURCE_CHANGE`).
    SourceChange,
}

/// Subscribes to `V4L2_EVENT_EOS` and `V4L2_EVENT_SOURCE_CHANGE`, as the device offers
/// (an error names the first it refused). Only these two: `v4l2r` 0.0.6 cannot convert
/// others.
pub fn subscribe(fd: &File, eos: bool, source_change: bool) -> io::Result<()> {
    if eos {
        v::subscribe_event(fd, v::EventType::Eos, v::SubscribeEventFlags::empty())
            .map_err(errno)?;
    }
    if source_change {
        v::subscribe_event(
            fd,
            v::EventType::SourceChange(0),
            v::SubscribeEventFlags::empty(),
        )
        .map_err(errno)?;
    }
    Ok(())
}

/// `VIDIOC_DQEVENT`: the next pending event, `None` if there is none.
pub fn dqevent(fd: &File) -> io::Result<Option<Event>> {
    match v::dqevent::<v::Event>(fd) {
        Ok(v::Event::Eos) => Ok(Some(Event::Eos)),
        Ok(v::Event::SrcChangeEvent(_)) => Ok(Some(Event::SourceChange)),
        Err(v::DqEventError::NotReady) => Ok(None),
        Err(e) => Err(errno(e)),
    }
}

/// What `poll` saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ready {
    /// A buffer can be dequeued from the capture queue (a frame, a coded buffer).
    pub readable: bool,
    /// An event is pending.
    pub event: bool,
    /// Error: the device is gone or not streaming.
    pub error: bool,
}

/// Waits up to `timeout_ms` for a capture buffer (`POLLIN`) or an event (`POLLPRI`)
/// on `fd`. `POLLOUT` (an m2m input buffer came back) is not waited for: those are
/// taken back without waiting.
pub fn poll(fd: &File, timeout_ms: u32) -> io::Result<Ready> {
    use nix::poll::{PollFd, PollFlags, PollTimeout};
    let timeout =
        PollTimeout::try_from(timeout_ms.min(i32::MAX as u32) as i32).unwrap_or(PollTimeout::MAX);
    let mut fds = [PollFd::new(
        fd.as_fd(),
        PollFlags::POLLIN | PollFlags::POLLPRI,
    )];
    loop {
        match nix::poll::poll(&mut fds, timeout) {
            Ok(0) => return Ok(Ready::default()),
            Ok(_) => {
                let r = fds[0].revents().unwrap_or(PollFlags::empty());
                return Ok(Ready {
                    readable: r.contains(PollFlags::POLLIN),
                    event: r.contains(PollFlags::POLLPRI),
                    error: r.intersects(PollFlags::POLLERR | PollFlags::POLLHUP),
                });
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(errno(e)),
        }
    }
}

/// Microseconds of a buffer's timestamp.
pub fn timestamp_us(b: &V4l2Buffer) -> u64 {
    let t = b.timestamp();
    (t.tv_sec.max(0) as u64) * 1_000_000 + t.tv_usec.max(0) as u64
}

/// A buffer of `queue` with index `index` to queue, `bytesused` in its (single) plane
/// of `length` bytes, stamped `timestamp_us`.
pub fn buffer(
    queue: QueueType,
    memory: MemoryType,
    index: u32,
    bytesused: usize,
    length: usize,
    timestamp_us: u64,
) -> V4l2Buffer {
    let mut b = V4l2Buffer::new(queue, index, memory);
    b.set_timestamp(bindings::timeval {
        tv_sec: (timestamp_us / 1_000_000) as _,
        tv_usec: (timestamp_us % 1_000_000) as _,
    });
    b.set_field(v4l2r::ioctl::BufferField::None);
    let p = b.get_first_plane_mut();
    *p.bytesused = bytesused as u32;
    *p.length = length as u32;
    b
}

/// A DMABUF buffer of `queue` to queue at slot `index`: the memory is `fd`'s (another
/// device's buffer, exported with [`expbuf`]), `bytesused` of it hold the frame.
pub fn dmabuf_buffer(
    queue: QueueType,
    index: u32,
    fd: BorrowedFd<'_>,
    bytesused: usize,
    length: usize,
    timestamp_us: u64,
) -> V4l2Buffer {
    let mut b = buffer(
        queue,
        MemoryType::DmaBuf,
        index,
        bytesused,
        length,
        timestamp_us,
    );
    if let v4l2r::ioctl::V4l2PlanesWithBackingMut::DmaBuf(mut planes) =
        b.planes_with_backing_iter_mut()
    {
        if let Some(mut p) = planes.next() {
            // The raw descriptor is only read by the kernel during QBUF, while `fd` is
            // borrowed by the caller.
            p.set_fd(fd.as_raw_fd());
        }
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fourcc_and_control_ids_match_the_kernel_headers() {
        assert_eq!(fourcc(b"YUYV"), 0x5659_5559);
        assert_eq!(
            fourcc(b"FWHT"),
            0x5448_5746,
            "v4l2_fourcc('F', 'W', 'H', 'T')"
        );
        assert_eq!(CID_BITRATE, 0x0099_09cf);
        assert_eq!(CID_H264_PROFILE, 0x0099_0a6b);
    }

    #[test]
    fn buffers_carry_size_and_time_in_both_apis() {
        for q in [QueueType::VideoOutput, QueueType::VideoOutputMplane] {
            let b = buffer(q, MemoryType::Mmap, 1, 100, 4096, 3_000_005);
            assert_eq!(b.index(), 1);
            assert_eq!(*b.get_first_plane().bytesused, 100);
            assert_eq!(*b.get_first_plane().length, 4096);
            assert_eq!(timestamp_us(&b), 3_000_005);
        }
    }

    #[test]
    fn a_dmabuf_buffer_carries_the_descriptor_in_both_apis() {
        let file = File::open("/dev/null").unwrap();
        for q in [QueueType::VideoOutput, QueueType::VideoOutputMplane] {
            let b = dmabuf_buffer(q, 2, file.as_fd(), 10, 20, 0);
            assert_eq!(b.memory(), MemoryType::DmaBuf);
            let v4l2r::ioctl::V4l2PlanesWithBacking::DmaBuf(mut planes) =
                b.planes_with_backing_iter()
            else {
                panic!("{q:?}: not a DMABUF buffer");
            };
            let p = planes.next().unwrap();
            assert_eq!(p.fd(), file.as_raw_fd());
            assert_eq!((*p.bytesused, *p.length), (10, 20));
        }
    }
}
