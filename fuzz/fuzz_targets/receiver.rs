//! Feeds a `Receiver` a sequence of (time advance, input) records and checks its
//! invariants after every step. A panic is a bug, never bad input.
//!
//! Record layout: `dt_ms: u8`, `op: u8`, then by `op`:
//! * `0x00..=0x3F`: a raw packet from host A: `len: u16 le` then `len` bytes;
//! * `0x40..=0x7F`: the same from host B (a second sender);
//! * `0x80..=0xBF`: a well-formed fragment built from `session_sel: u8, frame: u8,
//!   index: u8, count: u8, flags: u8, len: u8` and `len` payload bytes, so the fuzzer
//!   reaches reassembly without guessing the magic;
//! * `0xC0..=0xDF`: `handle_timeout` at the current time;
//! * `0xE0..=0xEF`: `request_keyframe` (the decoder failed);
//! * `0xF0..=0xFF`: `note_downstream_full` for the last frame handed out.
#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use transport::wire::FragmentHeader;
use transport::{seq, Receiver, ReceiverConfig};

struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes([self.u8()?, self.u8()?]))
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }
}

fuzz_target!(|data: &[u8]| {
    let config = ReceiverConfig {
        max_frame_bytes: 64 << 10,
        max_in_flight: 4,
        ..ReceiverConfig::default()
    };
    let mut receiver = Receiver::new(config);
    let mut now = Instant::now();
    let a = SocketAddr::from(([10, 0, 0, 1], 5000));
    let b = SocketAddr::from(([10, 0, 0, 2], 5000));
    let mut last: Option<(u32, u32)> = None;
    let mut sessions = 0;
    let mut input = Input(data);
    let mut packet = Vec::new();
    // Bounded by the input length: every record consumes at least two bytes.
    while let (Some(dt), Some(op)) = (input.u8(), input.u8()) {
        now += Duration::from_millis(u64::from(dt));
        match op {
            0x00..=0x7F => {
                let Some(len) = input.u16() else { break };
                let bytes = input.take(len as usize);
                let from = if op < 0x40 { a } else { b };
                receiver.handle_packet(now, Some(from), bytes);
            }
            0x80..=0xBF => {
                let mut field = || input.u8().unwrap_or(0);
                let (session, frame, index, count, flags, len) =
                    (field(), field(), field(), field(), field(), field());
                let count = u16::from(count % 8) + 1;
                let header = FragmentHeader {
                    session: u32::from(session % 3),
                    // Near the wrap, so wrapping order is exercised too.
                    frame: u32::from(frame).wrapping_sub(128),
                    index: u16::from(index) % count,
                    count,
                    keyframe: flags & 1 == 1,
                    capture_us: u64::from(flags >> 1),
                };
                packet.clear();
                header.write(&mut packet);
                packet.extend_from_slice(input.take(len as usize));
                let from = if session & 0x80 == 0 { a } else { b };
                receiver.handle_packet(now, Some(from), &packet);
            }
            0xC0..=0xDF => {
                receiver.handle_timeout(now);
                if let Some(next) = receiver.poll_timeout() {
                    assert!(next > now, "timer not moved past now by handle_timeout");
                }
            }
            0xE0..=0xEF => receiver.request_keyframe(now),
            0xF0..=0xFF => receiver.note_downstream_full(now),
        }
        // The call-order rule: drain everything after every input.
        if receiver.stats().sessions != sessions {
            // A (re)adopted session starts its numbering afresh.
            sessions = receiver.stats().sessions;
            last = None;
        }
        while let Some(frame) = receiver.poll_frame() {
            if let Some((session, number)) = last {
                if session == frame.session {
                    assert!(seq::after(frame.number, number), "frames out of order");
                }
            }
            last = Some((frame.session, frame.number));
        }
        while receiver.poll_transmit().is_some() {}
        receiver.check_invariants();
    }
});
