//! The kernel's V4L2 structures and constants, written after `<linux/videodev2.h>`,
//! with their sizes checked at compile time (see the parent module for the rules).

#![allow(missing_docs)] // Field names are the kernel's; see videodev2.h.

pub const fn fourcc(code: &[u8; 4]) -> u32 {
    (code[0] as u32) | (code[1] as u32) << 8 | (code[2] as u32) << 16 | (code[3] as u32) << 24
}

// Capabilities.
pub const CAP_VIDEO_CAPTURE: u32 = 0x0000_0001;
pub const CAP_VIDEO_OUTPUT: u32 = 0x0000_0002;
pub const CAP_VIDEO_CAPTURE_MPLANE: u32 = 0x0000_1000;
pub const CAP_VIDEO_OUTPUT_MPLANE: u32 = 0x0000_2000;
pub const CAP_VIDEO_M2M_MPLANE: u32 = 0x0000_4000;
pub const CAP_VIDEO_M2M: u32 = 0x0000_8000;
pub const CAP_STREAMING: u32 = 0x0400_0000;
pub const CAP_DEVICE_CAPS: u32 = 0x8000_0000;

// Buffer types, memory, fields.
pub const BUF_TYPE_VIDEO_CAPTURE: u32 = 1;
pub const BUF_TYPE_VIDEO_OUTPUT: u32 = 2;
pub const BUF_TYPE_VIDEO_CAPTURE_MPLANE: u32 = 9;
pub const BUF_TYPE_VIDEO_OUTPUT_MPLANE: u32 = 10;
pub const MEMORY_MMAP: u32 = 1;
pub const MEMORY_DMABUF: u32 = 4;
pub const FIELD_NONE: u32 = 1;
pub const BUF_FLAG_KEYFRAME: u32 = 0x0000_0008;
pub const BUF_FLAG_ERROR: u32 = 0x0000_0040;
pub const FMT_FLAG_COMPRESSED: u32 = 0x0001;
pub const FRMSIZE_TYPE_DISCRETE: u32 = 1;
pub const FRMSIZE_TYPE_CONTINUOUS: u32 = 2;
pub const FRMSIZE_TYPE_STEPWISE: u32 = 3;
pub const FRMIVAL_TYPE_DISCRETE: u32 = 1;
pub const CAP_TIMEPERFRAME: u32 = 0x1000;
pub const CTRL_FLAG_DISABLED: u32 = 0x0001;

// Codec controls (v4l2-controls.h).
pub const CID_CODEC_BASE: u32 = 0x0099_0000 | 0x900;
pub const CID_GOP_SIZE: u32 = CID_CODEC_BASE + 203;
pub const CID_BITRATE_MODE: u32 = CID_CODEC_BASE + 206;
pub const CID_BITRATE: u32 = CID_CODEC_BASE + 207;
pub const CID_REPEAT_SEQ_HEADER: u32 = CID_CODEC_BASE + 226;
pub const CID_FORCE_KEY_FRAME: u32 = CID_CODEC_BASE + 229;
pub const CID_H264_I_PERIOD: u32 = CID_CODEC_BASE + 358;
pub const CID_H264_LEVEL: u32 = CID_CODEC_BASE + 359;
pub const CID_H264_PROFILE: u32 = CID_CODEC_BASE + 363;
pub const CID_PREPEND_SPSPPS_TO_IDR: u32 = CID_CODEC_BASE + 644;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Capability {
    pub driver: [u8; 16],
    pub card: [u8; 32],
    pub bus_info: [u8; 32],
    pub version: u32,
    pub capabilities: u32,
    pub device_caps: u32,
    pub reserved: [u32; 3],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct FmtDesc {
    pub index: u32,
    pub type_: u32,
    pub flags: u32,
    pub description: [u8; 32],
    pub pixelformat: u32,
    pub mbus_code: u32,
    pub reserved: [u32; 3],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct FrmSizeEnum {
    pub index: u32,
    pub pixel_format: u32,
    pub type_: u32,
    /// discrete: [width, height]; stepwise: [min_w, max_w, step_w, min_h, max_h, step_h].
    pub size: [u32; 6],
    pub reserved: [u32; 2],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct FrmIvalEnum {
    pub index: u32,
    pub pixel_format: u32,
    pub width: u32,
    pub height: u32,
    pub type_: u32,
    /// discrete: [num, den]; stepwise: [min num, min den, max num, max den, step num, step den].
    pub interval: [u32; 6],
    pub reserved: [u32; 2],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct PixFormat {
    pub width: u32,
    pub height: u32,
    pub pixelformat: u32,
    pub field: u32,
    pub bytesperline: u32,
    pub sizeimage: u32,
    pub colorspace: u32,
    pub priv_: u32,
    pub flags: u32,
    pub ycbcr_enc: u32,
    pub quantization: u32,
    pub xfer_func: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct PlanePixFormat {
    pub sizeimage: u32,
    pub bytesperline: u32,
    pub reserved: [u16; 6],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct PixFormatMplane {
    pub width: u32,
    pub height: u32,
    pub pixelformat: u32,
    pub field: u32,
    pub colorspace: u32,
    pub plane_fmt: [PlanePixFormat; 8],
    pub num_planes: u8,
    pub flags: u8,
    pub ycbcr_enc: u8,
    pub quantization: u8,
    pub xfer_func: u8,
    pub reserved: [u8; 7],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub union FormatUnion {
    pub pix: PixFormat,
    pub pix_mp: PixFormatMplane,
    pub raw: [u8; 200],
    /// The kernel's union holds pointers (`v4l2_window`): pointer alignment.
    _align: [usize; 0],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct Format {
    pub type_: u32,
    pub fmt: FormatUnion,
}

impl Format {
    pub fn new(type_: u32) -> Self {
        Self {
            type_,
            fmt: FormatUnion { raw: [0; 200] },
        }
    }
    pub fn pix(&self) -> PixFormat {
        // SAFETY: plain data, every bit pattern valid (module rules).
        unsafe { self.fmt.pix }
    }
    pub fn pix_mut(&mut self) -> &mut PixFormat {
        // SAFETY: as above; writing a member of a plain-data union.
        unsafe { &mut self.fmt.pix }
    }
    pub fn pix_mp(&self) -> PixFormatMplane {
        // SAFETY: as above.
        unsafe { self.fmt.pix_mp }
    }
    pub fn pix_mp_mut(&mut self) -> &mut PixFormatMplane {
        // SAFETY: as above.
        unsafe { &mut self.fmt.pix_mp }
    }
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Fract {
    pub numerator: u32,
    pub denominator: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct CaptureParm {
    pub capability: u32,
    pub capturemode: u32,
    pub timeperframe: Fract,
    pub extendedmode: u32,
    pub readbuffers: u32,
    pub reserved: [u32; 4],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct StreamParm {
    pub type_: u32,
    /// `capture` or `output` (same layout for what picam uses), or 200 raw bytes.
    pub parm: [u32; 50],
}

impl StreamParm {
    pub fn new(type_: u32) -> Self {
        Self {
            type_,
            parm: [0; 50],
        }
    }
    pub fn capture(&self) -> CaptureParm {
        let p = &self.parm;
        CaptureParm {
            capability: p[0],
            capturemode: p[1],
            timeperframe: Fract {
                numerator: p[2],
                denominator: p[3],
            },
            extendedmode: p[4],
            readbuffers: p[5],
            reserved: [p[6], p[7], p[8], p[9]],
        }
    }
    pub fn set_timeperframe(&mut self, f: Fract) {
        self.parm[2] = f.numerator;
        self.parm[3] = f.denominator;
    }
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct RequestBuffers {
    pub count: u32,
    pub type_: u32,
    pub memory: u32,
    pub capabilities: u32,
    pub flags: u8,
    pub reserved: [u8; 3],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Timecode {
    pub type_: u32,
    pub flags: u32,
    pub frames: u8,
    pub seconds: u8,
    pub minutes: u8,
    pub hours: u8,
    pub userbits: [u8; 4],
}

/// `m` of `v4l2_buffer` and `v4l2_plane`: offset, user pointer, plane array or fd.
#[repr(C)]
#[derive(Clone, Copy)]
pub union BufferM {
    pub offset: u32,
    pub userptr: libc::c_ulong,
    pub planes: *mut Plane,
    pub fd: i32,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct Buffer {
    pub index: u32,
    pub type_: u32,
    pub bytesused: u32,
    pub flags: u32,
    pub field: u32,
    pub timestamp: libc::timeval,
    pub timecode: Timecode,
    pub sequence: u32,
    pub memory: u32,
    pub m: BufferM,
    pub length: u32,
    pub reserved2: u32,
    pub request_fd: i32,
}

// SAFETY: the raw pointer inside is only set by the ioctl wrappers below for the length
// of one call; a Buffer at rest holds no live pointer.
unsafe impl Send for Buffer {}

impl Buffer {
    pub fn new(type_: u32, memory: u32, index: u32) -> Self {
        Self {
            index,
            type_,
            bytesused: 0,
            flags: 0,
            field: 0,
            timestamp: libc::timeval {
                tv_sec: 0,
                tv_usec: 0,
            },
            timecode: Timecode::default(),
            sequence: 0,
            memory,
            m: BufferM { userptr: 0 },
            length: 0,
            reserved2: 0,
            request_fd: 0,
        }
    }
    /// The mmap offset of a single-planar MMAP buffer.
    pub fn offset(&self) -> u32 {
        // SAFETY: plain data.
        unsafe { self.m.offset }
    }
    pub fn set_fd(&mut self, fd: i32) {
        self.m.fd = fd;
    }
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct Plane {
    pub bytesused: u32,
    pub length: u32,
    pub m: PlaneM,
    pub data_offset: u32,
    pub reserved: [u32; 11],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub union PlaneM {
    pub mem_offset: u32,
    pub userptr: libc::c_ulong,
    pub fd: i32,
}

impl Default for Plane {
    fn default() -> Self {
        Self {
            bytesused: 0,
            length: 0,
            m: PlaneM { userptr: 0 },
            data_offset: 0,
            reserved: [0; 11],
        }
    }
}

impl Plane {
    pub fn mem_offset(&self) -> u32 {
        // SAFETY: plain data.
        unsafe { self.m.mem_offset }
    }
    pub fn set_fd(&mut self, fd: i32) {
        self.m.fd = fd;
    }
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Control {
    pub id: u32,
    pub value: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct QueryCtrl {
    pub id: u32,
    pub type_: u32,
    pub name: [u8; 32],
    pub minimum: i32,
    pub maximum: i32,
    pub step: i32,
    pub default_value: i32,
    pub flags: u32,
    pub reserved: [u32; 2],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ExportBuffer {
    pub type_: u32,
    pub index: u32,
    pub plane: u32,
    pub flags: u32,
    pub fd: i32,
    pub reserved: [u32; 11],
}

#[cfg(target_pointer_width = "64")]
const _: () = {
    use std::mem::size_of;
    assert!(size_of::<Capability>() == 104);
    assert!(size_of::<FmtDesc>() == 64);
    assert!(size_of::<FrmSizeEnum>() == 44);
    assert!(size_of::<FrmIvalEnum>() == 52);
    assert!(size_of::<PixFormatMplane>() == 192);
    assert!(size_of::<Format>() == 208);
    assert!(size_of::<StreamParm>() == 204);
    assert!(size_of::<RequestBuffers>() == 20);
    assert!(size_of::<Buffer>() == 88);
    assert!(size_of::<Plane>() == 64);
    assert!(size_of::<Control>() == 8);
    assert!(size_of::<QueryCtrl>() == 68);
    assert!(size_of::<ExportBuffer>() == 64);
};
