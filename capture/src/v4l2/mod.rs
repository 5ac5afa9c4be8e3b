//! V4L2 cameras and encoders (Linux only).
//!
//! - [`ioctl`]: the kernel interface: thin adapters over the `v4l2r` crate's ioctls.
//! - [`formats`]: what a device offers and the choice for the asked size and rate.
//! - [`device`]: opening, enumerating, controls, a streaming capture queue.
//! - [`convert`]: raw buffers (YUYV, NV12, YU12, MJPEG) to I420 for libx264.
//! - [`controls`]: H.264 encoder controls and the command mapping.
//! - [`m2m`]: the memory-to-memory encoder (H.264 on a Raspberry Pi 4; FWHT on vicodec).
//! - [`source`]: the `v4l2:/dev/videoN` source.
//! - [`auto`]: `--source auto`: which camera and encoder to use, and why.

pub mod auto;
pub mod controls;
#[allow(unsafe_code)]
pub mod convert;
pub mod device;
pub mod formats;
#[allow(unsafe_code)]
pub mod ioctl;
pub mod m2m;
pub mod source;

pub use device::{Device, DeviceInfo, Kind};
pub use source::{EncoderChoice, V4l2Options, V4l2Source};

/// The `/dev/video*` nodes, in numeric order.
pub fn device_paths() -> Vec<String> {
    let mut paths: Vec<(u32, String)> = std::fs::read_dir("/dev")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let n: u32 = name.strip_prefix("video")?.parse().ok()?;
            Some((n, format!("/dev/{name}")))
        })
        .collect();
    paths.sort();
    paths.into_iter().map(|(_, p)| p).collect()
}

/// Every V4L2 device that opens, with what it offers; those that fail to open are
/// returned with the error (busy, permission) so `picam devices` can say so.
pub fn list_devices() -> Vec<Result<DeviceInfo, crate::CaptureError>> {
    device_paths()
        .iter()
        .map(|p| Device::open(p).map(|d| d.info()))
        .collect()
}

/// The first memory-to-memory H.264 encoder found, by capability.
pub fn find_encoder() -> Option<String> {
    device_paths()
        .into_iter()
        .find(|p| Device::open(p).is_ok_and(|d| d.kind() == Kind::Encoder))
}
