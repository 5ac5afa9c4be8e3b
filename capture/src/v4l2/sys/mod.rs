//! The V4L2 kernel interface: the few ioctls picam uses, their structures, and `mmap`.
//!
//! This is the only module of picam with `unsafe` outside FFmpeg's wrapper. It keeps
//! the rules in one place:
//! - Every structure is `#[repr(C)]`, written after `<linux/videodev2.h>`, and its size
//!   is checked at compile time for 64-bit targets against the kernel's (the ioctl
//!   numbers encode the size, so a wrong layout fails with ENOTTY rather than silently).
//!   Layouts follow the target through `libc::timeval` and pointer-sized unions, so
//!   32-bit Pi OS (armhf) gets its own sizes and numbers.
//! - Each `ioctl` is called with a pointer to a live, exclusively borrowed structure of
//!   exactly the type the request number names; pointers inside structures (the plane
//!   array of a multi-planar buffer, the control array) point to data borrowed for the
//!   duration of the call only.
//! - Memory from `mmap` is owned by [`Mmap`], unmapped on drop, and only handed out as
//!   slices borrowed from it. The driver writes into it only while the buffer is queued;
//!   the capture code reads it only between dequeue and the next queue.
//!
//! The structures are plain data: any bit pattern is valid, so reading a union member is
//! sound; values from the kernel are still checked by the callers before use.

#![allow(missing_docs)] // Field names are the kernel's; see videodev2.h.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

mod abi;

pub use abi::*;

const fn ioc(dir: u32, nr: u32, size: usize) -> libc::c_ulong {
    ((dir << 30) | ((size as u32) << 16) | ((b'V' as u32) << 8) | nr) as libc::c_ulong
}
const fn iowr<T>(nr: u32) -> libc::c_ulong {
    ioc(3, nr, std::mem::size_of::<T>())
}
const fn ior<T>(nr: u32) -> libc::c_ulong {
    ioc(2, nr, std::mem::size_of::<T>())
}
const fn iow<T>(nr: u32) -> libc::c_ulong {
    ioc(1, nr, std::mem::size_of::<T>())
}

const VIDIOC_QUERYCAP: libc::c_ulong = ior::<Capability>(0);
const VIDIOC_ENUM_FMT: libc::c_ulong = iowr::<FmtDesc>(2);
const VIDIOC_G_FMT: libc::c_ulong = iowr::<Format>(4);
const VIDIOC_S_FMT: libc::c_ulong = iowr::<Format>(5);
const VIDIOC_REQBUFS: libc::c_ulong = iowr::<RequestBuffers>(8);
const VIDIOC_QUERYBUF: libc::c_ulong = iowr::<Buffer>(9);
const VIDIOC_QBUF: libc::c_ulong = iowr::<Buffer>(15);
const VIDIOC_EXPBUF: libc::c_ulong = iowr::<ExportBuffer>(16);
const VIDIOC_DQBUF: libc::c_ulong = iowr::<Buffer>(17);
const VIDIOC_STREAMON: libc::c_ulong = iow::<libc::c_int>(18);
const VIDIOC_STREAMOFF: libc::c_ulong = iow::<libc::c_int>(19);
const VIDIOC_G_PARM: libc::c_ulong = iowr::<StreamParm>(21);
const VIDIOC_S_PARM: libc::c_ulong = iowr::<StreamParm>(22);
const VIDIOC_G_CTRL: libc::c_ulong = iowr::<Control>(27);
const VIDIOC_S_CTRL: libc::c_ulong = iowr::<Control>(28);
const VIDIOC_QUERYCTRL: libc::c_ulong = iowr::<QueryCtrl>(36);
const VIDIOC_TRY_FMT: libc::c_ulong = iowr::<Format>(64);
const VIDIOC_ENUM_FRAMESIZES: libc::c_ulong = iowr::<FrmSizeEnum>(74);
const VIDIOC_ENUM_FRAMEINTERVALS: libc::c_ulong = iowr::<FrmIvalEnum>(75);

/// `ioctl(fd, request, arg)`, retried on EINTR.
///
/// # Safety
/// `request` must be one of the constants above and `T` the structure it names.
unsafe fn ioctl<T>(fd: &File, request: libc::c_ulong, arg: &mut T) -> io::Result<()> {
    loop {
        // SAFETY: by the caller's contract the kernel reads/writes exactly one T, which
        // `arg` borrows exclusively for the call. The request's type differs between
        // libc flavours (c_ulong on glibc, c_int on musl): `as _` adapts it.
        let r = unsafe { libc::ioctl(fd.as_raw_fd(), request as _, arg as *mut T) };
        if r == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// EINVAL at the end of an enumeration means "no more".
fn end_of_list<T>(r: io::Result<()>, value: T) -> io::Result<Option<T>> {
    match r {
        Ok(()) => Ok(Some(value)),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(None),
        Err(e) => Err(e),
    }
}

pub fn querycap(fd: &File) -> io::Result<Capability> {
    let mut cap = Capability::default();
    // SAFETY: request and type match.
    unsafe { ioctl(fd, VIDIOC_QUERYCAP, &mut cap) }?;
    Ok(cap)
}

pub fn enum_fmt(fd: &File, type_: u32, index: u32) -> io::Result<Option<FmtDesc>> {
    let mut d = FmtDesc {
        index,
        type_,
        ..Default::default()
    };
    // SAFETY: request and type match.
    end_of_list(unsafe { ioctl(fd, VIDIOC_ENUM_FMT, &mut d) }, d)
}

pub fn enum_framesizes(fd: &File, fourcc: u32, index: u32) -> io::Result<Option<FrmSizeEnum>> {
    let mut s = FrmSizeEnum {
        index,
        pixel_format: fourcc,
        ..Default::default()
    };
    // SAFETY: request and type match.
    end_of_list(unsafe { ioctl(fd, VIDIOC_ENUM_FRAMESIZES, &mut s) }, s)
}

pub fn enum_frameintervals(
    fd: &File,
    fourcc: u32,
    w: u32,
    h: u32,
    index: u32,
) -> io::Result<Option<FrmIvalEnum>> {
    let mut i = FrmIvalEnum {
        index,
        pixel_format: fourcc,
        width: w,
        height: h,
        ..Default::default()
    };
    // SAFETY: request and type match.
    end_of_list(unsafe { ioctl(fd, VIDIOC_ENUM_FRAMEINTERVALS, &mut i) }, i)
}

pub fn g_fmt(fd: &File, f: &mut Format) -> io::Result<()> {
    // SAFETY: request and type match.
    unsafe { ioctl(fd, VIDIOC_G_FMT, f) }
}

pub fn s_fmt(fd: &File, f: &mut Format) -> io::Result<()> {
    // SAFETY: request and type match.
    unsafe { ioctl(fd, VIDIOC_S_FMT, f) }
}

pub fn try_fmt(fd: &File, f: &mut Format) -> io::Result<()> {
    // SAFETY: request and type match.
    unsafe { ioctl(fd, VIDIOC_TRY_FMT, f) }
}

pub fn g_parm(fd: &File, p: &mut StreamParm) -> io::Result<()> {
    // SAFETY: request and type match.
    unsafe { ioctl(fd, VIDIOC_G_PARM, p) }
}

pub fn s_parm(fd: &File, p: &mut StreamParm) -> io::Result<()> {
    // SAFETY: request and type match.
    unsafe { ioctl(fd, VIDIOC_S_PARM, p) }
}

pub fn reqbufs(fd: &File, r: &mut RequestBuffers) -> io::Result<()> {
    // SAFETY: request and type match.
    unsafe { ioctl(fd, VIDIOC_REQBUFS, r) }
}

/// Runs a buffer ioctl; for a multi-planar type, `planes` is the plane array the kernel
/// reads and fills, attached for this call only.
fn buffer_ioctl(
    fd: &File,
    request: libc::c_ulong,
    b: &mut Buffer,
    planes: &mut [Plane],
) -> io::Result<()> {
    let mplane = matches!(
        b.type_,
        BUF_TYPE_VIDEO_CAPTURE_MPLANE | BUF_TYPE_VIDEO_OUTPUT_MPLANE
    );
    if mplane {
        b.m.planes = planes.as_mut_ptr();
        b.length = planes.len() as u32;
    }
    // SAFETY: request (QUERYBUF/QBUF/DQBUF) names Buffer; the plane pointer, if any,
    // points to `planes.len()` planes borrowed exclusively for this call.
    let r = unsafe { ioctl(fd, request, b) };
    if mplane {
        b.m.userptr = 0;
    }
    r
}

pub fn querybuf(fd: &File, b: &mut Buffer, planes: &mut [Plane]) -> io::Result<()> {
    buffer_ioctl(fd, VIDIOC_QUERYBUF, b, planes)
}

pub fn qbuf(fd: &File, b: &mut Buffer, planes: &mut [Plane]) -> io::Result<()> {
    buffer_ioctl(fd, VIDIOC_QBUF, b, planes)
}

pub fn dqbuf(fd: &File, b: &mut Buffer, planes: &mut [Plane]) -> io::Result<()> {
    buffer_ioctl(fd, VIDIOC_DQBUF, b, planes)
}

pub fn streamon(fd: &File, type_: u32) -> io::Result<()> {
    let mut t = type_ as libc::c_int;
    // SAFETY: request and type match.
    unsafe { ioctl(fd, VIDIOC_STREAMON, &mut t) }
}

pub fn streamoff(fd: &File, type_: u32) -> io::Result<()> {
    let mut t = type_ as libc::c_int;
    // SAFETY: request and type match.
    unsafe { ioctl(fd, VIDIOC_STREAMOFF, &mut t) }
}

pub fn queryctrl(fd: &File, id: u32) -> io::Result<Option<QueryCtrl>> {
    let mut q = QueryCtrl {
        id,
        ..Default::default()
    };
    // SAFETY: request and type match.
    end_of_list(unsafe { ioctl(fd, VIDIOC_QUERYCTRL, &mut q) }, q)
}

pub fn g_ctrl(fd: &File, id: u32) -> io::Result<i32> {
    let mut c = Control { id, value: 0 };
    // SAFETY: request and type match.
    unsafe { ioctl(fd, VIDIOC_G_CTRL, &mut c) }?;
    Ok(c.value)
}

pub fn s_ctrl(fd: &File, id: u32, value: i32) -> io::Result<()> {
    let mut c = Control { id, value };
    // SAFETY: request and type match.
    unsafe { ioctl(fd, VIDIOC_S_CTRL, &mut c) }
}

/// Exports buffer `index` (plane `plane`) of queue `type_` as a DMABUF file descriptor.
pub fn expbuf(fd: &File, type_: u32, index: u32, plane: u32) -> io::Result<OwnedFd> {
    let mut e = ExportBuffer {
        type_,
        index,
        plane,
        flags: (libc::O_CLOEXEC | libc::O_RDWR) as u32,
        ..Default::default()
    };
    // SAFETY: request and type match.
    unsafe { ioctl(fd, VIDIOC_EXPBUF, &mut e) }?;
    if e.fd < 0 {
        return Err(io::Error::other("VIDIOC_EXPBUF returned no descriptor"));
    }
    // SAFETY: the kernel just created this descriptor for us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(e.fd) })
}

/// Waits up to `timeout_ms` for `events` (POLLIN, POLLOUT) on `fd`; returns the events
/// that happened (0 on timeout).
pub fn poll(fd: &File, events: i16, timeout_ms: i32) -> io::Result<i16> {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events,
        revents: 0,
    };
    loop {
        // SAFETY: one valid pollfd, borrowed for the call.
        let r = unsafe { libc::poll(&mut p, 1, timeout_ms) };
        if r >= 0 {
            return Ok(if r == 0 { 0 } else { p.revents });
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

pub const POLLIN: i16 = libc::POLLIN;
pub const POLLOUT: i16 = libc::POLLOUT;
pub const POLLERR: i16 = libc::POLLERR;

/// A buffer mapped from a device; unmapped on drop.
pub struct Mmap {
    ptr: *mut libc::c_void,
    len: usize,
}

// SAFETY: the mapping is owned by this value alone; moving it to another thread moves
// the only handle to it.
unsafe impl Send for Mmap {}

impl Mmap {
    /// Maps `len` bytes at `offset` of the device (the offset QUERYBUF gave).
    pub fn new(fd: &File, offset: u32, len: usize) -> io::Result<Self> {
        if len == 0 {
            return Err(io::Error::other("driver reported a zero-length buffer"));
        }
        // SAFETY: a fresh shared mapping of a device buffer; the kernel validates the
        // offset and length against the buffer it belongs to.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                offset as libc::off_t,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Self { ptr, len })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: ptr..ptr+len is mapped for the life of self (module rules on who
        // writes when).
        unsafe { std::slice::from_raw_parts(self.ptr as *const u8, self.len) }
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as above, borrowed exclusively through &mut self.
        unsafe { std::slice::from_raw_parts_mut(self.ptr as *mut u8, self.len) }
    }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `new` mapped, once.
        unsafe {
            libc::munmap(self.ptr, self.len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_match_the_kernel_headers() {
        // Values from <linux/videodev2.h> on x86_64/aarch64.
        #[cfg(target_pointer_width = "64")]
        {
            assert_eq!(VIDIOC_QUERYCAP, 0x8068_5600);
            assert_eq!(VIDIOC_S_FMT, 0xc0d0_5605);
            assert_eq!(VIDIOC_QBUF, 0xc058_560f);
            assert_eq!(VIDIOC_DQBUF, 0xc058_5611);
            assert_eq!(VIDIOC_STREAMON, 0x4004_5612);
            assert_eq!(VIDIOC_S_PARM, 0xc0cc_5616);
            assert_eq!(VIDIOC_ENUM_FRAMESIZES, 0xc02c_564a);
        }
        assert_eq!(fourcc(b"YUYV"), 0x5659_5559);
    }
}
