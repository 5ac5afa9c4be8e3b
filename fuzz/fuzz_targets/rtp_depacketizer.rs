//! The RTP receiver (RTP/RTCP parsing, the RFC 6184 depacketizer, the never-corrupt
//! rule) and the raw Annex B receiver on arbitrary datagrams: no panic, bounds kept.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use transport::rtp::{H264Receiver, RtpReceiver, RtpReceiverConfig};
use transport::{drain, Machine, ReceiverInput};

fuzz_target!(|data: &[u8]| {
    let t0 = Instant::now();
    let mut rtp = RtpReceiver::new(RtpReceiverConfig {
        rtcp_mux: true,
        max_frame_bytes: 1 << 16,
        ..Default::default()
    });
    let mut raw = H264Receiver::new("fuzz");
    let from = Some("127.0.0.1:5000".parse().unwrap());
    // Datagrams: a length byte, then that many bytes.
    let mut rest = data;
    let mut i = 0u64;
    while let Some((&len, tail)) = rest.split_first() {
        let n = usize::from(len).min(tail.len());
        let (packet, tail) = tail.split_at(n);
        rest = tail;
        let now = t0 + Duration::from_millis(i);
        i += 1;
        rtp.handle_input(now, ReceiverInput::Packet { from, data: packet });
        let _ = drain(&mut rtp, now);
        rtp.check_invariants();
        raw.handle_input(now, ReceiverInput::Packet { from, data: packet });
        raw.handle_input(now + Duration::from_millis(5), ReceiverInput::Timeout);
        let _ = drain(&mut raw, now);
        raw.check_invariants();
    }
});
