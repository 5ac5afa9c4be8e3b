//! Runs picam's memory-to-memory encoder plumbing against a kernel encoder and checks
//! every buffer it gives back. Made for vicodec (the kernel's virtual FWHT encoder) in
//! the qemu test (`scripts/qemu-v4l2/run.sh`); the code under test is the same
//! `M2mEncoder` + `V4l2EncoderIo` that drives a Raspberry Pi 4's H.264 encoder.
//!
//! ```text
//! m2m_check [--device /dev/videoN] [--frames N] [--width W] [--height H]
//!           [--dmabuf-from /dev/videoC] [--dmabuf-frames N] [--roundtrip-frames N]
//! ```
//! Without `--device` it takes the first memory-to-memory FWHT encoder. It encodes N
//! test-pattern frames, drains with STOP, restarts (STREAMOFF/STREAMON), encodes N/2
//! more and drains again, closes and reopens the device and encodes N/2 more. Each coded
//! buffer must start with an FWHT header (magic, version, the asked size, a payload
//! that fits the buffer), come back with its input's timestamp, carry the next driver
//! sequence number, and agree with the header on key/inter frame. With `--dmabuf-from`
//! it then captures from that camera (YU12 at the same size), hands each camera buffer
//! to a third encoder as DMABUF (no copy) and the same frame, copied, to a fourth: the
//! coded bytes must be identical. Before that, `--roundtrip-frames` frames go through
//! vicodec's decoder and back (SOURCE_CHANGE handled), and their luma PSNR against the
//! pictures sent must be at least 30 dB. It prints one
//! `key=value` line per step and `result=pass` last; any failed check prints
//! `result=fail: <why>` and exits 1.

#![forbid(unsafe_code)]

mod roundtrip;

use std::time::Instant;

use capture::v4l2::convert::Layout;
use capture::v4l2::device::CaptureQueue;
use capture::v4l2::formats::PixelFormat;
use capture::v4l2::ioctl::{self, QueueType};
use capture::v4l2::m2m::M2mEncoder;
use capture::v4l2::{device_paths, Device};
use capture::EncoderSettings;
use std::os::fd::AsFd;

/// The FWHT header (`struct fwht_cframe_hdr`): two magic words, then big-endian
/// version, width, height, flags, colour fields (4) and payload size: 44 bytes.
const HEADER: usize = 44;
const MAGIC1: u32 = 0x4f4f_4f4f;
const MAGIC2: u32 = 0xffff_ffff;
const FWHT_VERSION: u32 = 3;
/// `V4L2_FWHT_FL_I_FRAME`.
const FL_I_FRAME: u32 = 1 << 10;

struct Args {
    device: Option<String>,
    dmabuf_from: Option<String>,
    dmabuf_frames: u32,
    roundtrip_frames: u32,
    frames: u32,
    width: u32,
    height: u32,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        device: None,
        dmabuf_from: None,
        dmabuf_frames: 20,
        roundtrip_frames: 10,
        frames: 60,
        width: 640,
        height: 480,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().ok_or(format!("{k} needs a value"))?;
        let num = || v.parse::<u32>().map_err(|e| format!("{k} {v}: {e}"));
        match k.as_str() {
            "--device" => a.device = Some(v.clone()),
            "--dmabuf-from" => a.dmabuf_from = Some(v.clone()),
            "--dmabuf-frames" => a.dmabuf_frames = num()?.clamp(1, 10_000),
            "--roundtrip-frames" => a.roundtrip_frames = num()?.min(10_000),
            "--frames" => a.frames = num()?.clamp(2, 10_000),
            "--width" => a.width = num()?,
            "--height" => a.height = num()?,
            _ => return Err(format!("unknown argument {k}")),
        }
    }
    Ok(a)
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// A YU12 test picture: a diagonal ramp with a bright bar, and chroma ramps.
fn base_pattern(w: usize, h: usize) -> Vec<u8> {
    let mut f = vec![128u8; w * h * 3 / 2];
    for y in 0..h {
        for x in 0..w {
            f[y * w + x] = if x < w / 8 {
                235
            } else {
                ((x + y) % 200 + 16) as u8
            };
        }
    }
    let (cw, ch) = (w / 2, h / 2);
    for i in 0..cw * ch {
        f[w * h + i] = (64 + (i / cw) % 128) as u8;
        f[w * h + cw * ch + i] = (192 - (i % cw) % 128) as u8;
    }
    f
}

/// Frame `n`: the base picture's luma moved 4 pixels along per frame, so that inter
/// frames have something to code (a rotation: a memmove, cheap under emulation).
fn pattern(base: &[u8], w: usize, h: usize, n: usize) -> Vec<u8> {
    let mut f = base.to_vec();
    f[..w * h].rotate_right((4 * n) % (w * h));
    f
}

/// Checks of one run of frames.
#[derive(Default)]
struct Run {
    frames: u32,
    bytes_min: usize,
    bytes_max: usize,
    bytes_total: usize,
    keyframes: u32,
    first_sequence: Option<u32>,
    elapsed_ms: u128,
}

fn check_frame(
    data: &[u8],
    w: u32,
    h: u32,
    keyframe: bool,
    capture_us: u64,
    sent_us: u64,
) -> Result<(), String> {
    if data.len() < HEADER {
        return Err(format!(
            "{} bytes, shorter than the FWHT header",
            data.len()
        ));
    }
    let (m1, m2) = (be32(data, 0), be32(data, 4));
    if (m1, m2) != (MAGIC1, MAGIC2) {
        return Err(format!("bad magic {m1:08x} {m2:08x}"));
    }
    let (version, hw, hh, flags) = (
        be32(data, 8),
        be32(data, 12),
        be32(data, 16),
        be32(data, 20),
    );
    if version != FWHT_VERSION || (hw, hh) != (w, h) {
        return Err(format!(
            "header says version {version} {hw}x{hh}, asked {w}x{h}"
        ));
    }
    let payload = be32(data, 40) as usize;
    if HEADER + payload > data.len() || payload == 0 {
        return Err(format!(
            "payload {payload} + header in a {}-byte buffer",
            data.len()
        ));
    }
    if (flags & FL_I_FRAME != 0) != keyframe {
        return Err(format!(
            "header flags {flags:#x} disagree with the keyframe flag {keyframe}"
        ));
    }
    if capture_us != sent_us {
        return Err(format!("timestamp {capture_us} came back for {sent_us}"));
    }
    Ok(())
}

fn encode_run(enc: &mut M2mEncoder, args: &Args, count: u32, ts_base: u64) -> Result<Run, String> {
    let (w, h) = (args.width as usize, args.height as usize);
    let mut run = Run {
        bytes_min: usize::MAX,
        ..Default::default()
    };
    let base = base_pattern(w, h);
    let start = Instant::now();
    let mut prev_seq: Option<u32> = None;
    for n in 0..count {
        let frame = pattern(&base, w, h, n as usize);
        let sent_us = ts_base + u64::from(n) * 33_333 + 1;
        let out = enc
            .encode_raw(&frame, sent_us)
            .map_err(|e| format!("frame {n}: {e}"))?;
        check_frame(
            &out.data,
            args.width,
            args.height,
            out.keyframe,
            out.capture_us,
            sent_us,
        )
        .map_err(|e| format!("frame {n}: {e}"))?;
        let seq = enc.last_sequence().unwrap_or(0);
        if let Some(p) = prev_seq {
            if seq != p.wrapping_add(1) {
                return Err(format!("frame {n}: driver sequence {seq} after {p}"));
            }
        }
        prev_seq = Some(seq);
        run.first_sequence.get_or_insert(seq);
        if n == 0 && !out.keyframe {
            return Err("the first frame of a stream is not a keyframe".into());
        }
        run.frames += 1;
        run.keyframes += u32::from(out.keyframe);
        run.bytes_min = run.bytes_min.min(out.data.len());
        run.bytes_max = run.bytes_max.max(out.data.len());
        run.bytes_total += out.data.len();
    }
    run.elapsed_ms = start.elapsed().as_millis();
    Ok(run)
}

fn print_run(name: &str, r: &Run) {
    println!(
        "{name} frames={} keyframes={} bytes_min={} bytes_max={} bytes_avg={} first_sequence={} ms_per_frame={}",
        r.frames,
        r.keyframes,
        r.bytes_min,
        r.bytes_max,
        r.bytes_total / r.frames.max(1) as usize,
        r.first_sequence.unwrap_or(0),
        r.elapsed_ms / u128::from(r.frames.max(1)),
    );
}

fn drain(enc: &mut M2mEncoder, name: &str) -> Result<(), String> {
    let d = enc.drain().map_err(|e| format!("{name}: {e}"))?;
    let last = d.frames.last().is_some_and(|c| c.last);
    let with_data = d.frames.iter().filter(|c| !c.data.is_empty()).count();
    println!(
        "{name} buffers={} with_data={with_data} last_flag={} eos_event={}",
        d.frames.len(),
        u8::from(last),
        u8::from(d.eos_event)
    );
    if !last {
        return Err(format!("{name}: no buffer marked LAST"));
    }
    Ok(())
}

fn settings(args: &Args) -> EncoderSettings {
    EncoderSettings {
        width: args.width,
        height: args.height,
        fps: 30,
        bitrate: 2_000_000,
        intra: 30,
    }
}

fn open(path: &str, args: &Args) -> Result<M2mEncoder, String> {
    let settings = settings(args);
    let camera = Layout {
        format: PixelFormat::Yuv420,
        width: args.width,
        height: args.height,
        stride: args.width,
    };
    M2mEncoder::open_coded(path, PixelFormat::FWHT, settings, camera).map_err(|e| e.to_string())
}

fn run(args: &Args) -> Result<(), String> {
    let path = match &args.device {
        Some(p) => p.clone(),
        None => device_paths()
            .into_iter()
            .find(|p| Device::open(p).is_ok_and(|d| d.is_m2m_encoder_of(PixelFormat::FWHT)))
            .ok_or("no memory-to-memory FWHT encoder (is vicodec loaded?)")?,
    };
    let mut enc = open(&path, args)?;
    let layout = enc.input_layout();
    let io = enc.io();
    println!(
        "device path={path} driver={} api={} input={} stride={} size={}",
        io.device().driver(),
        if io.multiplanar() { "mplane" } else { "single" },
        layout.format,
        layout.stride,
        layout.size
    );
    let applied = enc.controls_applied();
    println!(
        "controls set={} missing={}",
        applied.set.join(","),
        applied.missing.join(",")
    );
    // The GOP the device settled on (picam asked 30; controls clamp to the range), read
    // back on the encoder's own descriptor (m2m controls are per open file).
    let gop = ioctl::g_ctrl(enc.io().device().file(), ioctl::CID_GOP_SIZE)
        .map_err(|e| format!("reading video_gop_size: {e}"))?
        .max(1) as u32;
    println!("gop size={gop}");
    let keyframes_ok = |name: &str, r: &Run| {
        if r.keyframes == r.frames.div_ceil(gop) {
            Ok(())
        } else {
            Err(format!(
                "{name}: {} keyframes in {} frames with a GOP of {gop}",
                r.keyframes, r.frames
            ))
        }
    };
    let r = encode_run(&mut enc, args, args.frames, 0)?;
    print_run("run1", &r);
    keyframes_ok("run1", &r)?;
    drain(&mut enc, "drain1")?;
    enc.restart().map_err(|e| e.to_string())?;
    let r = encode_run(&mut enc, args, args.frames / 2, 10_000_000)?;
    print_run("run2_after_restart", &r);
    keyframes_ok("run2", &r)?;
    drain(&mut enc, "drain2")?;
    drop(enc);
    let mut enc = open(&path, args)?;
    let r = encode_run(&mut enc, args, args.frames / 2, 20_000_000)?;
    print_run("run3_after_reopen", &r);
    keyframes_ok("run3", &r)?;
    drain(&mut enc, "drain3")?;
    drop(enc);
    if args.roundtrip_frames > 0 {
        roundtrip_run(&path, args)?;
    }
    if let Some(camera) = &args.dmabuf_from {
        dmabuf_run(&path, camera, args)?;
    }
    Ok(())
}

/// Lowest acceptable luma PSNR after encode + decode at QP 20: vicodec gave 35.4-35.7
/// dB on this pattern (2026-11-29); a wrong stride, plane or frame gives well under 20.
const MIN_PSNR_DB: f64 = 30.0;

/// Encoder -> vicodec's decoder -> compare with what went in.
fn roundtrip_run(path: &str, args: &Args) -> Result<(), String> {
    let dec_path = roundtrip::find_decoder().ok_or("no FWHT decoder beside the encoder")?;
    let mut enc = open(path, args)?;
    let mut dec = roundtrip::Decoder::open(&dec_path, args.width, args.height)?;
    let (w, h) = (args.width as usize, args.height as usize);
    let base = base_pattern(w, h);
    let (mut min, mut sum) = (f64::MAX, 0.0);
    for n in 0..args.roundtrip_frames {
        let frame = pattern(&base, w, h, n as usize);
        let ts = 40_000_000 + u64::from(n) * 33_333 + 1;
        let coded = enc
            .encode_raw(&frame, ts)
            .map_err(|e| format!("roundtrip frame {n}: {e}"))?;
        let luma = dec
            .decode(&coded.data, ts)
            .map_err(|e| format!("roundtrip frame {n}: {e}"))?;
        let db = roundtrip::psnr(&frame[..w * h], &luma);
        min = min.min(db);
        sum += db;
    }
    let frames = args.roundtrip_frames;
    println!(
        "roundtrip decoder={dec_path} frames={frames} source_change={} psnr_min={min:.1} psnr_avg={:.1}",
        u8::from(dec.source_change_seen),
        sum / f64::from(frames.max(1))
    );
    if !dec.source_change_seen || min < MIN_PSNR_DB {
        return Err(format!(
            "roundtrip: source change {}, PSNR min {min:.1} dB (needs {MIN_PSNR_DB})",
            dec.source_change_seen
        ));
    }
    Ok(())
}

/// Camera buffers into the encoder as DMABUF, checked against the copying path.
fn dmabuf_run(path: &str, camera: &str, args: &Args) -> Result<(), String> {
    let cam = Device::open(camera).map_err(|e| e.to_string())?;
    let pix = cam
        .set_capture_format(PixelFormat::Yuv420, args.width, args.height)
        .map_err(|e| e.to_string())?;
    if (
        pix.width,
        pix.height,
        PixelFormat::from_fourcc(pix.pixelformat),
    ) != (args.width, args.height, PixelFormat::Yuv420)
    {
        return Err(format!(
            "{camera} gave {pix:?}, not YU12 {}x{}",
            args.width, args.height
        ));
    }
    cam.set_capture_rate(QueueType::VideoCapture, 25.0);
    let layout = Layout {
        format: PixelFormat::Yuv420,
        width: pix.width,
        height: pix.height,
        stride: pix.bytesperline.max(pix.width),
    };
    let mut queue = CaptureQueue::start(&cam).map_err(|e| e.to_string())?;
    let fds = queue.export(&cam).map_err(|e| e.to_string())?;
    let (s, n) = (settings(args), fds.len() as u32);
    let mut zero_copy = M2mEncoder::open_coded_dmabuf(path, PixelFormat::FWHT, s, layout, n)
        .map_err(|e| e.to_string())?;
    let mut copying =
        M2mEncoder::open_coded(path, PixelFormat::FWHT, s, layout).map_err(|e| e.to_string())?;
    let enc_layout = zero_copy.input_layout();
    if enc_layout.stride != layout.stride || fds.iter().any(|(_, len)| *len < enc_layout.size) {
        return Err(format!(
            "camera layout {layout:?} does not fit the encoder's {enc_layout:?}: no DMABUF"
        ));
    }
    let (mut identical, mut bytes, mut keyframes) = (0u32, 0usize, 0u32);
    let deadline = Instant::now() + std::time::Duration::from_secs(60);
    for n in 0..args.dmabuf_frames {
        if Instant::now() > deadline {
            return Err(format!("dmabuf: only {n} frames in 60 s"));
        }
        let ts = 30_000_000 + u64::from(n) * 40_000 + 1;
        let got = queue
            .next(&cam, std::time::Duration::from_secs(3), |data, meta| {
                let (fd, len) = &fds[meta.index as usize];
                let a = zero_copy.encode_dmabuf(fd.as_fd(), meta.bytesused, *len, ts);
                let b = copying.encode_raw(data, ts);
                (a, b)
            })
            .map_err(|e| e.to_string())?;
        let Some((a, b)) = got else {
            return Err(format!("dmabuf: no frame {n} from {camera} in 3 s"));
        };
        let a = a.map_err(|e| format!("dmabuf frame {n}: {e}"))?;
        let b = b.map_err(|e| format!("copied frame {n}: {e}"))?;
        check_frame(
            &a.data,
            args.width,
            args.height,
            a.keyframe,
            a.capture_us,
            ts,
        )
        .map_err(|e| format!("dmabuf frame {n}: {e}"))?;
        identical += u32::from(a.data == b.data);
        bytes += a.data.len();
        keyframes += u32::from(a.keyframe);
    }
    queue.stop(&cam);
    println!(
        "dmabuf camera={camera} driver={} frames={} identical_to_copy={identical} keyframes={keyframes} bytes_avg={}",
        cam.driver(),
        args.dmabuf_frames,
        bytes / args.dmabuf_frames.max(1) as usize
    );
    if identical != args.dmabuf_frames {
        return Err(format!(
            "dmabuf: {identical} of {} frames coded identically to the copied ones",
            args.dmabuf_frames
        ));
    }
    Ok(())
}

fn main() {
    let result = parse_args().and_then(|a| run(&a));
    match result {
        Ok(()) => println!("result=pass"),
        Err(e) => {
            println!("result=fail: {e}");
            std::process::exit(1);
        }
    }
}
