//! One recording file: libavformat muxing the H.264 access units as they are (no
//! decoding, no re-encoding) into Matroska, MPEG-TS or fragmented MP4.
//!
//! `unsafe` is confined to this file: ffmpeg-next has no safe way to set a stream's
//! codec parameters (width, height, extradata) or to hand libavformat a packet that
//! borrows the frame's bytes instead of copying them.
//!
//! Crash safety (a file must play after SIGKILL or a power cut, losing at most about
//! half a second):
//! - `flush_packets=1`: the I/O buffer is flushed after every packet, so what the muxer
//!   has written is in the kernel (the page cache survives a SIGKILL; a power cut is the
//!   file system's business).
//! - Matroska holds a cluster in memory until it closes: `cluster_time_limit=500` (ms)
//!   closes one at least every half second. Cues and the duration are written only by
//!   the trailer; players play a file without them (seeking is slower).
//! - MP4 written plainly has its index (`moov`) at the end, written by the trailer: a
//!   killed recording would not play at all. Fragmented MP4 (`empty_moov`, then a
//!   `moof`+`mdat` pair per fragment) plays up to its last complete fragment;
//!   `frag_keyframe` starts a fragment at each keyframe and `frag_duration=500000` (µs)
//!   bounds a fragment to half a second when keyframes are further apart.
//!   `default_base_moof` makes fragments self-contained, as browsers' MSE wants.
//! - MPEG-TS has no index at all: every packet is playable as soon as it is written.
//!
//! Timestamps: pts = dts = capture time minus the file's first capture time, in µs
//! (time base 1/1,000,000, which each muxer rescales to its own: 1/1000 Matroska,
//! 1/90000 MPEG-TS). pts equals dts because picam's streams have no B-frames (its
//! encoders are configured for low latency, and it sends nothing that reorders).

#![allow(unsafe_code)]

use std::path::{Path, PathBuf};

use ffmpeg_next as ffmpeg;
use ffmpeg_next::ffi;
use ffmpeg_next::{Dictionary, Rational, Rescale};

use crate::{Container, RecordError};

/// The time base frames are stamped in: microseconds, the capture clock's unit.
const MICROS: Rational = Rational(1, 1_000_000);

/// libavformat's name for `container`'s muxer. (Free functions, not methods: what
/// libavformat calls a container is this file's concern, and `Container`'s own methods
/// stay in lib.rs.)
fn muxer_name(container: Container) -> &'static str {
    match container {
        Container::Matroska => "matroska",
        Container::MpegTs => "mpegts",
        Container::FragmentedMp4 => "mp4",
    }
}

/// The muxer options for a file that plays after a crash (see the module docs).
fn crash_safe_options(container: Container) -> Dictionary<'static> {
    let mut d = Dictionary::new();
    d.set("flush_packets", "1");
    match container {
        Container::Matroska => d.set("cluster_time_limit", "500"),
        Container::FragmentedMp4 => {
            d.set("movflags", "frag_keyframe+empty_moov+default_base_moof");
            d.set("frag_duration", "500000");
        }
        Container::MpegTs => {}
    }
    d
}

/// The SPS and PPS NAL units of an access unit, each with a 4-byte start code (Annex B):
/// the stream's extradata. Matroska and MP4 convert it to an `avcC` record themselves.
pub fn parameter_sets(access_unit: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for nal in media::annexb::nal_units(access_unit) {
        if matches!(media::annexb::nal_type(nal), Some(7) | Some(8)) {
            out.extend_from_slice(&[0, 0, 0, 1]);
            // Trailing zero bytes belong to the next start code, not to the NAL unit.
            let end = nal.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
            out.extend_from_slice(&nal[..end]);
        }
    }
    out
}

/// The picture size from the first SPS in an access unit, if it has one.
pub fn sps_size(access_unit: &[u8]) -> Option<Result<(u32, u32), media::MediaError>> {
    media::annexb::nal_units(access_unit)
        .find(|nal| media::annexb::nal_type(nal) == Some(7))
        .map(|sps| media::h264_sps::sps_reorder_info(sps).map(|i| (i.width, i.height)))
}

/// An open recording file.
pub struct Muxer {
    out: ffmpeg::format::context::Output,
    path: PathBuf,
    /// The stream's time base after the header (the muxer's choice).
    time_base: Rational,
    first_us: u64,
    last_ts: Option<i64>,
    /// Reused for every frame; it only ever borrows the frame's bytes.
    packet: *mut ffi::AVPacket,
}

// SAFETY: the packet is owned by this Muxer alone and used only through `&mut self`;
// the output context is `Send` already.
unsafe impl Send for Muxer {}

impl Muxer {
    /// Opens `path` (which exists and is empty: the caller created it to claim the
    /// name) as `container` with one H.264 stream of `size`, whose parameter sets are
    /// those in `keyframe`, the file's first frame, stamped `start_us`.
    pub fn open(
        path: &Path,
        container: Container,
        size: (u32, u32),
        keyframe: &[u8],
        start_us: u64,
    ) -> Result<Muxer, RecordError> {
        let err = |action: &'static str| {
            let path = path.to_path_buf();
            move |source| RecordError::Mux {
                action,
                path,
                source,
            }
        };
        ffmpeg::init().map_err(err("initialising libavformat for"))?;
        // `file:` so that a name with a colon is never taken for a protocol.
        let url = format!(
            "file:{}",
            path.to_str().ok_or(RecordError::NotUtf8 {
                path: path.to_path_buf(),
            })?
        );
        let mut out =
            ffmpeg::format::output_as(&url, muxer_name(container)).map_err(err("opening"))?;
        let extradata = parameter_sets(keyframe);
        // SAFETY: `out` is a valid output context; the new stream's codecpar is owned
        // by it; extradata is allocated with av_mallocz (padding zeroed) as the field's
        // documentation demands, and freed by libavformat with the context.
        unsafe {
            let st = ffi::avformat_new_stream(out.as_mut_ptr(), std::ptr::null());
            if st.is_null() {
                return Err(err("adding a stream to")(ffmpeg::Error::Unknown));
            }
            (*st).time_base = MICROS.into();
            let par = (*st).codecpar;
            (*par).codec_type = ffi::AVMediaType::AVMEDIA_TYPE_VIDEO;
            (*par).codec_id = ffi::AVCodecID::AV_CODEC_ID_H264;
            (*par).width = size.0 as i32;
            (*par).height = size.1 as i32;
            if !extradata.is_empty() {
                let pad = ffi::AV_INPUT_BUFFER_PADDING_SIZE as usize;
                let buf = ffi::av_mallocz(extradata.len() + pad) as *mut u8;
                if buf.is_null() {
                    return Err(err("allocating the header of")(ffmpeg::Error::Other {
                        errno: ffmpeg::error::ENOMEM,
                    }));
                }
                std::ptr::copy_nonoverlapping(extradata.as_ptr(), buf, extradata.len());
                (*par).extradata = buf;
                (*par).extradata_size = extradata.len() as i32;
            }
        }
        {
            let left = out
                .write_header_with(crash_safe_options(container))
                .map_err(err("writing the header of"))?;
            for (k, v) in left.iter() {
                tracing::debug!("muxer option {k}={v} not used");
            }
        }
        // SAFETY: stream 0 exists (added above); av_packet_alloc returns an owned
        // packet or null.
        let (time_base, packet) = unsafe {
            let st = *(*out.as_ptr()).streams;
            (Rational::from((*st).time_base), ffi::av_packet_alloc())
        };
        if packet.is_null() {
            return Err(err("allocating a packet for")(ffmpeg::Error::Other {
                errno: ffmpeg::error::ENOMEM,
            }));
        }
        Ok(Muxer {
            out,
            path: path.to_path_buf(),
            time_base,
            first_us: start_us,
            last_ts: None,
            packet,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes one access unit captured at `capture_us` (not before the file's first
    /// frame: the plan starts a new file when time goes backwards).
    pub fn write(
        &mut self,
        data: &[u8],
        capture_us: u64,
        keyframe: bool,
    ) -> Result<(), RecordError> {
        let us = capture_us
            .saturating_sub(self.first_us)
            .min(i64::MAX as u64) as i64;
        let mut ts = us.rescale(MICROS, self.time_base);
        // Two frames closer than the muxer's tick (1 ms in Matroska) would share a
        // timestamp, which MPEG-TS and MP4 refuse: the later one moves a tick on.
        if let Some(last) = self.last_ts {
            if ts <= last {
                ts = last.saturating_add(1);
            }
        }
        // SAFETY: the packet borrows `data` for the duration of av_write_frame, which
        // does not keep a reference to an unreferenced packet's data past the call
        // (it copies what it must keep); data and size are reset before returning.
        let r = unsafe {
            let p = self.packet;
            (*p).data = data.as_ptr() as *mut u8;
            (*p).size = data.len().min(i32::MAX as usize) as i32;
            (*p).pts = ts;
            (*p).dts = ts;
            (*p).duration = 0;
            (*p).flags = if keyframe { ffi::AV_PKT_FLAG_KEY } else { 0 };
            (*p).stream_index = 0;
            (*p).pos = -1;
            let r = ffi::av_write_frame(self.out.as_mut_ptr(), p);
            (*p).data = std::ptr::null_mut();
            (*p).size = 0;
            r
        };
        if r < 0 {
            return Err(RecordError::Mux {
                action: "writing a frame to",
                path: self.path.clone(),
                source: ffmpeg::Error::from(r),
            });
        }
        self.last_ts = Some(ts);
        Ok(())
    }

    /// Writes the trailer (Matroska's cues and duration, MP4's last fragment) and
    /// closes the file.
    pub fn finish(mut self) -> Result<(), RecordError> {
        self.out.write_trailer().map_err(|source| RecordError::Mux {
            action: "closing",
            path: self.path.clone(),
            source,
        })
    }
}

impl Drop for Muxer {
    fn drop(&mut self) {
        // SAFETY: the packet came from av_packet_alloc and holds no buffer of its own.
        unsafe { ffi::av_packet_free(&mut self.packet) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_sets_keep_sps_and_pps_only() {
        let au = [
            0, 0, 0, 1, 0x67, 1, 2, 0, // SPS with a trailing zero
            0, 0, 1, 0x68, 3, // PPS
            0, 0, 1, 0x06, 9, // SEI
            0, 0, 1, 0x65, 4, 5, // IDR
        ];
        assert_eq!(
            parameter_sets(&au),
            vec![0, 0, 0, 1, 0x67, 1, 2, 0, 0, 0, 1, 0x68, 3]
        );
        assert!(parameter_sets(&[0, 0, 1, 0x41, 1]).is_empty());
        assert!(sps_size(&[0, 0, 1, 0x41, 1]).is_none());
        assert!(sps_size(&[0, 0, 1, 0x67]).unwrap().is_err());
    }
}
