//! The RTP receiver (RTP/RTCP parsing, the reorder buffer and its NACKs, the RFC 6184
//! depacketizer, the never-corrupt rule), the RTP sender's RTCP handling (NACKs,
//! reports, PLI, with the jam guard on) and the raw Annex B receiver, on arbitrary
//! datagrams at arbitrary times: no panic, bounds kept.
#![no_main]

use std::time::{Duration, Instant};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use media::EncodedFrame;
use transport::rtp::{H264Receiver, RtpReceiver, RtpReceiverConfig, RtpSender, RtpSenderConfig};
use transport::{drain, JamGuardConfig, Machine, ReceiverInput, SenderInput, SourceFrame};

/// A small access unit for the sender: parameter sets and an IDR, or a P slice.
fn frame(n: u64) -> SourceFrame {
    let keyframe = n % 8 == 0;
    let mut data = Vec::new();
    if keyframe {
        data.extend_from_slice(&[0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1f, 0, 0, 0, 1, 0x68, 0xce]);
    }
    data.extend_from_slice(&[0, 0, 0, 1, if keyframe { 0x65 } else { 0x41 }, 0x88]);
    // Two to four FU-A packets at the sender's `max_packet` below: enough for its
    // history and resends, while the sender's NAL scan of the frame (most of this
    // target's time at 2-4 KiB frames) stays short.
    data.extend(std::iter::repeat(0x5a).take(400 + (n as usize % 7) * 100));
    SourceFrame {
        frame: EncodedFrame {
            data: Bytes::from(data),
            capture_us: n * 33_333,
            keyframe,
        },
        skipped_before: 0,
    }
}

fuzz_target!(|data: &[u8]| {
    let t0 = Instant::now();
    let mut rtp = RtpReceiver::new(RtpReceiverConfig {
        rtcp_mux: true,
        max_frame_bytes: 1 << 16,
        ..Default::default()
    });
    let mut tx = RtpSender::new(RtpSenderConfig {
        history_packets: 64,
        max_resend_queue: 32,
        jam_guard: Some(JamGuardConfig::for_stream(4_000_000, 30)),
        max_packet: 300,
        ..Default::default()
    });
    let mut raw = H264Receiver::new("fuzz");
    let from = Some("127.0.0.1:5000".parse().unwrap());
    // Datagrams: a length byte, a time step in ms, then that many bytes.
    let mut rest = data;
    let mut now = t0;
    let mut n = 0u64;
    while let [len, step, tail @ ..] = rest {
        let len = usize::from(*len).min(tail.len());
        let (packet, tail) = tail.split_at(len);
        rest = tail;
        now += Duration::from_millis(u64::from(*step));
        rtp.handle_input(now, ReceiverInput::Packet { from, data: packet });
        let _ = drain(&mut rtp, now);
        rtp.handle_input(now, ReceiverInput::Timeout);
        let _ = drain(&mut rtp, now);
        rtp.check_invariants();

        if step % 4 == 0 {
            tx.handle_input(now, SenderInput::Frame(frame(n)));
            n += 1;
        }
        tx.handle_input(now, SenderInput::Packet(packet));
        let _ = drain(&mut tx, now);
        tx.check_invariants();

        raw.handle_input(now, ReceiverInput::Packet { from, data: packet });
        raw.handle_input(now + Duration::from_millis(5), ReceiverInput::Timeout);
        let _ = drain(&mut raw, now);
        raw.check_invariants();
    }
});
