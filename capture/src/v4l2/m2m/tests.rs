//! The hardware-encoder path against a fake device (no m2m encoder exists in the test
//! kernel).

use super::*;
use crate::v4l2::ioctl;
use std::collections::HashMap;

/// An encoder that "encodes" by returning a canned access unit per input, and
/// records everything done to it.
#[derive(Default)]
struct FakeIo {
    stride: u32,
    log: Vec<String>,
    inputs: Vec<Vec<u8>>,
    queued: Vec<bool>,
    pending: Vec<(u64, bool)>,
    ctrls: FakeCtrls,
    stuck: bool,
    /// Coded buffers the encoder holds back until a drain (as a real one may).
    held: Vec<Coded>,
    drained: bool,
}

#[derive(Default)]
struct FakeCtrls {
    set: Vec<(u32, i64)>,
    values: HashMap<u32, i64>,
}

impl ControlDevice for FakeCtrls {
    fn range(&mut self, id: u32) -> Option<(i64, i64)> {
        (id != ioctl::CID_GOP_SIZE).then_some((0, 25_000_000))
    }
    fn set(&mut self, id: u32, value: i64) -> std::io::Result<()> {
        self.set.push((id, value));
        self.values.insert(id, value);
        Ok(())
    }
}

impl EncoderIo for FakeIo {
    fn configure(
        &mut self,
        input: PixelFormat,
        coded: PixelFormat,
        s: EncoderSettings,
    ) -> std::io::Result<InputLayout> {
        self.log.push(format!(
            "configure {input} {}x{} {coded}",
            s.width, s.height
        ));
        let h = s.height.div_ceil(16) * 16;
        let luma = (self.stride * h) as usize;
        Ok(InputLayout {
            format: input,
            stride: self.stride,
            luma_size: luma,
            size: luma * 3 / 2,
        })
    }
    fn controls(&mut self) -> &mut dyn ControlDevice {
        &mut self.ctrls
    }
    fn start(&mut self) -> std::io::Result<()> {
        self.log.push("start".into());
        self.inputs = vec![vec![0; 1 << 16]; 2];
        self.queued = vec![false; 2];
        Ok(())
    }
    fn free_input(&mut self) -> std::io::Result<Option<usize>> {
        Ok(self.queued.iter().position(|q| !q))
    }
    fn input_mut(&mut self, index: usize) -> &mut [u8] {
        &mut self.inputs[index]
    }
    fn queue_input(&mut self, index: usize, bytes: usize, ts: u64) -> std::io::Result<()> {
        if self.drained {
            return Err(std::io::Error::from_raw_os_error(libc::EPIPE));
        }
        self.log.push(format!("queue {index} {bytes}"));
        let key = self
            .ctrls
            .values
            .remove(&ioctl::CID_FORCE_KEY_FRAME)
            .is_some()
            || self.pending.is_empty() && ts == 1;
        self.queued[index] = true;
        self.pending.push((ts, key));
        Ok(())
    }
    fn dequeue_coded(&mut self, _timeout: Duration) -> std::io::Result<Option<Coded>> {
        if self.stuck || self.pending.is_empty() {
            return Ok(None);
        }
        let (ts, key) = self.pending.remove(0);
        self.queued.iter_mut().for_each(|q| *q = false);
        let data = if key {
            vec![
                0, 0, 0, 1, 0x67, 1, 0, 0, 0, 1, 0x68, 2, 0, 0, 0, 1, 0x65, 0x88,
            ]
        } else {
            vec![0, 0, 0, 1, 0x41, 0x9a]
        };
        Ok(Some(Coded {
            data,
            keyframe: key,
            timestamp_us: ts,
            ..Default::default()
        }))
    }
    fn use_dmabuf_input(&mut self, count: u32) -> std::io::Result<()> {
        self.log.push(format!("dmabuf {count}"));
        Ok(())
    }
    fn queue_input_dmabuf(
        &mut self,
        index: usize,
        _fd: std::os::fd::BorrowedFd<'_>,
        bytes: usize,
        _length: usize,
        ts: u64,
    ) -> std::io::Result<()> {
        self.log.push(format!("queue dmabuf {index} {bytes}"));
        self.queued[index] = true;
        self.pending.push((ts, false));
        Ok(())
    }
    fn drain(&mut self, _timeout: Duration) -> std::io::Result<Drained> {
        self.log.push("stop".into());
        self.drained = true;
        let mut frames = std::mem::take(&mut self.held);
        frames.push(Coded {
            last: true,
            ..Default::default()
        });
        Ok(Drained {
            frames,
            eos_event: true,
        })
    }
    fn restart(&mut self) -> std::io::Result<()> {
        self.log.push("restart".into());
        self.drained = false;
        self.pending.clear();
        self.queued.iter_mut().for_each(|q| *q = false);
        Ok(())
    }
}

fn settings() -> EncoderSettings {
    EncoderSettings {
        width: 64,
        height: 40,
        fps: 30,
        bitrate: 1_000_000,
        intra: 30,
    }
}

fn open(format: PixelFormat, stride: u32) -> M2mEncoder<FakeIo> {
    let cam = Layout {
        format,
        width: 64,
        height: 40,
        stride: if format == PixelFormat::Yuyv { 128 } else { 64 },
    };
    M2mEncoder::with_io(
        FakeIo {
            stride,
            ..Default::default()
        },
        "/dev/video11",
        settings(),
        cam,
    )
    .unwrap()
}

#[test]
fn sets_up_formats_then_controls_then_starts() {
    let enc = open(PixelFormat::Nv12, 64);
    assert_eq!(enc.io.log, vec!["configure NV12 64x40 H264", "start"]);
    let set: Vec<u32> = enc.io.ctrls.set.iter().map(|(id, _)| *id).collect();
    assert!(set.contains(&ioctl::CID_BITRATE) && set.contains(&ioctl::CID_REPEAT_SEQ_HEADER));
    // MJPEG cameras feed it decoded pictures as YU12.
    let enc = open(PixelFormat::Mjpeg, 64);
    assert_eq!(enc.io.log[0], "configure YU12 64x40 H264");
}

#[test]
fn keyframe_request_reaches_the_device_before_the_next_frame() {
    let mut enc = open(PixelFormat::Yuv420, 64);
    let frame = vec![7u8; 64 * 40 * 3 / 2];
    let a = enc.encode_raw(&frame, 1).unwrap();
    assert!(a.keyframe && a.data.starts_with(&[0, 0, 0, 1, 0x67]));
    let b = enc.encode_raw(&frame, 2).unwrap();
    assert!(!b.keyframe);
    enc.control(Control::ForceKeyframe);
    let c = enc.encode_raw(&frame, 3).unwrap();
    assert!(c.keyframe, "forced");
    assert_eq!(c.capture_us, 3, "capture time comes back with the frame");
    enc.control(Control::SetBitrate(2_000_000));
    assert_eq!(
        enc.io.ctrls.values.get(&ioctl::CID_BITRATE),
        Some(&2_000_000)
    );
    assert_eq!(enc.settings().bitrate, 2_000_000);
}

#[test]
fn rows_are_restrided_into_the_encoders_layout() {
    // Encoder wants stride 96 and 48 rows (40 aligned to 16).
    let mut enc = open(PixelFormat::Yuv420, 96);
    let (w, h) = (64usize, 40usize);
    let mut frame = vec![0u8; w * h * 3 / 2];
    frame[..w].fill(1); // first luma row
    frame[w * h..w * h + w / 2].fill(2); // first U row
    frame[w * h + w * h / 4..w * h + w * h / 4 + w / 2].fill(3); // first V row
    enc.encode_raw(&frame, 1).unwrap();
    let buf = &enc.io.inputs[0];
    let luma = 96 * 48;
    assert!(buf[..64].iter().all(|&b| b == 1) && buf[64..96].iter().all(|&b| b == 0));
    assert!(buf[luma..luma + 32].iter().all(|&b| b == 2));
    assert!(buf[luma + luma / 4..luma + luma / 4 + 32]
        .iter()
        .all(|&b| b == 3));
    assert_eq!(enc.io.log[2], format!("queue 0 {}", luma * 3 / 2));
}

#[test]
fn a_stuck_encoder_or_short_frame_is_an_error() {
    let mut enc = open(PixelFormat::Yuyv, 128);
    assert!(enc.encode_raw(&[0; 100], 1).is_err(), "short frame");
    enc.io.stuck = true;
    assert!(matches!(
        enc.encode_raw(&vec![0; 128 * 40], 1),
        Err(CaptureError::NoOutput { .. })
    ));
}

#[test]
fn drain_returns_what_the_encoder_held_and_restart_takes_frames_again() {
    let mut enc = open(PixelFormat::Yuv420, 64);
    let frame = vec![7u8; 64 * 40 * 3 / 2];
    enc.encode_raw(&frame, 1).unwrap();
    enc.io.held.push(Coded {
        data: vec![1, 2, 3],
        timestamp_us: 9,
        ..Default::default()
    });
    let drained = enc.drain().unwrap();
    assert_eq!(drained.frames.len(), 2);
    assert_eq!(drained.frames[0].data, vec![1, 2, 3]);
    assert!(drained.frames[1].last && drained.eos_event);
    // Drained: the device refuses frames (EPIPE) until restarted, and that is an error
    // naming the device, not a panic.
    let err = enc.encode_raw(&frame, 2).unwrap_err().to_string();
    assert!(err.contains("/dev/video11"), "{err}");
    enc.restart().unwrap();
    assert!(enc.encode_raw(&frame, 3).is_ok());
    let log = enc.io.log.join(",");
    assert!(log.ends_with("stop,restart,queue 0 4608"), "{log}");
}

#[test]
fn a_non_h264_encoder_keeps_its_bytes_and_gets_its_own_controls() {
    let cam = Layout {
        format: PixelFormat::Yuv420,
        width: 64,
        height: 40,
        stride: 64,
    };
    let io = FakeIo {
        stride: 64,
        ..Default::default()
    };
    let mut enc =
        M2mEncoder::with_io_coded(io, "/dev/video1", PixelFormat::FWHT, settings(), cam).unwrap();
    assert_eq!(enc.io.log[0], "configure YU12 64x40 FWHT");
    assert!(enc.controls_applied().set.contains(&"fwht_i_frame_qp"));
    // No H.264 parameter-set bookkeeping: the coded bytes come back as they are.
    let out = enc.encode_raw(&vec![0u8; 64 * 40 * 3 / 2], 5).unwrap();
    assert_eq!(&out.data[..], &[0, 0, 0, 1, 0x41, 0x9a]);
    assert_eq!(out.capture_us, 5);
}

#[test]
fn fwht_intra_frames_are_read_from_the_header() {
    let mut h = vec![0x4f, 0x4f, 0x4f, 0x4f, 0xff, 0xff, 0xff, 0xff];
    h.extend_from_slice(&[0, 0, 0, 3, 0, 0, 2, 0x80, 0, 0, 1, 0xe0]);
    let mut intra = h.clone();
    intra.extend_from_slice(&(1u32 << 10 | 0xa0000).to_be_bytes());
    let mut inter = h.clone();
    inter.extend_from_slice(&0xa0000u32.to_be_bytes());
    assert!(fwht_is_intra(&intra));
    assert!(!fwht_is_intra(&inter));
    assert!(!fwht_is_intra(&intra[..20]), "short");
    let mut bad = intra.clone();
    bad[0] = 0;
    assert!(!fwht_is_intra(&bad), "no magic");
}

#[test]
fn a_dmabuf_frame_is_queued_without_touching_the_encoders_memory() {
    let mut enc = open(PixelFormat::Nv12, 64);
    let file = std::fs::File::open("/dev/null").unwrap();
    use std::os::fd::AsFd;
    let out = enc.encode_dmabuf(file.as_fd(), 3840, 4096, 7).unwrap();
    assert_eq!(out.capture_us, 7);
    assert_eq!(enc.io.log.last().unwrap(), "queue dmabuf 0 3840");
    assert!(enc.io.inputs[0].iter().all(|&b| b == 0), "nothing copied");
}
