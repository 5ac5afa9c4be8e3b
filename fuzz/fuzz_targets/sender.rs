//! Feeds a `Sender` with the jam guard on (congestion control, deadline dropping,
//! pacing) a sequence of (time advance, input) records: frames from the source, feedback
//! from a receiver built with the wire writers (keyframe requests, reports, pings,
//! pongs, byes, for its own session or another), raw bytes, timeouts, receiver
//! connects and disconnects. It drains the sender after every input, as the call-order
//! rule says, and checks what came out and `check_invariants()` after every step. A
//! panic is a bug, never bad input.
//!
//! Layout: a config byte (packet size, queue length, first frame number), then records
//! of `dt_ms: u8`, `op: u8` and the op's fields (see the `match` below).
#![no_main]

use std::time::{Duration, Instant};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use media::EncodedFrame;
use transport::clock::WallClock;
use transport::wire::{self, Arrival, Packet, FRAGMENT_HEADER, MAX_REPORT_ENTRIES};
use transport::{JamGuardConfig, Machine, Output, Sender, SenderConfig, SenderInput, SourceFrame};

struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    /// Missing bytes read as zero, so a record cut short still does something.
    fn byte(&mut self) -> u8 {
        self.u8().unwrap_or(0)
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }

    fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | u64::from(self.u32()) << 32
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }
}

/// Frame payloads are slices of this (the sender never looks inside).
static PAYLOAD: [u8; 1 << 16] = [0x42; 1 << 16];

/// This sender's session id; feedback for another uses `OTHER` or an arbitrary one.
const SESSION: u32 = 0x5eed_0001;
const OTHER: u32 = 0x5eed_0002;

/// Wall-clock µs at the start instant (mid-2024, as a real sender would have).
const BASE_US: u64 = 1_720_000_000_000_000;

struct Harness {
    sender: Sender,
    max_packet: usize,
    clock: WallClock,
    /// What the sender last said it wants a timeout at.
    timeout: Option<Instant>,
    /// The newest frame numbers and fragment counts seen on the wire, for reports that
    /// name frames the sender knows.
    sent: Vec<(u32, u16)>,
    buf: Vec<u8>,
}

impl Harness {
    /// Feeds one input, drains every output, and checks what came out.
    fn step(&mut self, now: Instant, input: SenderInput<'_>) {
        let is_timeout = matches!(input, SenderInput::Timeout);
        self.sender.handle_input(now, input);
        let mut outputs = 0usize;
        loop {
            outputs += 1;
            assert!(outputs < 1 << 20, "poll_output never reached its timeout");
            match self.sender.poll_output(now, &mut self.buf) {
                Output::Event(_) => {}
                Output::Transmit(_) => {
                    assert!(
                        self.buf.len() <= self.max_packet,
                        "packet of {} bytes over max_packet {}",
                        self.buf.len(),
                        self.max_packet
                    );
                    match wire::parse(&self.buf) {
                        Ok(Packet::Fragment(header, _)) => {
                            assert_eq!(header.session, SESSION, "fragment of another session");
                            if header.index == 0 {
                                if self.sent.len() == 8 {
                                    self.sent.remove(0);
                                }
                                self.sent.push((header.frame, header.count));
                            }
                        }
                        Ok(Packet::Pong { session, .. }) => {
                            assert_eq!(session, SESSION, "pong for another session");
                        }
                        other => panic!("sender sent {other:?}"),
                    }
                }
                Output::Timeout(at) => {
                    if is_timeout {
                        if let Some(at) = at {
                            assert!(at > now, "timer not moved past now by a Timeout input");
                        }
                    }
                    self.timeout = at;
                    break;
                }
            }
        }
        self.sender.check_invariants();
    }

    /// A session id for feedback: mostly ours.
    fn session(&self, input: &mut Input) -> u32 {
        match input.byte() {
            0..=0xDF => SESSION,
            0xE0..=0xEF => OTHER,
            _ => input.u32(),
        }
    }

    /// A frame number: one the sender sent lately (give or take), or arbitrary.
    fn frame(&self, input: &mut Input) -> (u32, u16) {
        let sel = input.byte();
        match (sel, self.sent.len()) {
            (0..=0xBF, n) if n > 0 => {
                let (frame, count) = self.sent[usize::from(sel) % n];
                if sel & 0x80 == 0 {
                    (frame, count)
                } else {
                    (
                        frame.wrapping_add(u32::from(sel & 3)).wrapping_sub(2),
                        count,
                    )
                }
            }
            _ => (input.u32(), input.u16()),
        }
    }

    /// A receiver wall-clock time: near the sender's `now` (the clocks agree, or are off
    /// by a little), or anything at all, extremes included.
    fn time(&self, input: &mut Input, now: Instant) -> u64 {
        let base = self.clock.us(now);
        match input.byte() {
            0..=0x9F => base.wrapping_add(u64::from(input.u16()) * 64),
            0xA0..=0xBF => base.wrapping_sub(u64::from(input.u16()) * 64),
            0xC0..=0xCF => u64::MAX,
            0xD0..=0xD7 => 0,
            0xD8..=0xDF => base.wrapping_add(i64::from(input.u32() as i32) as u64),
            _ => input.u64(),
        }
    }

    /// A report of up to `MAX_REPORT_ENTRIES` arrivals.
    fn report(&self, input: &mut Input, now: Instant, packet: &mut Vec<u8>) {
        let session = self.session(input);
        let highest_seen = match input.byte() {
            0..=0x3F => None,
            _ => Some(self.frame(input).0),
        };
        let sequence = match input.byte() {
            0..=0x1F => None,
            _ => Some(wire::SequenceCounts {
                highest: input.u32(),
                received: input.u32(),
                loss_events: input.u32(),
            }),
        };
        let report_us = self.time(input, now);
        let n = usize::from(input.byte()) % (MAX_REPORT_ENTRIES + 2);
        let mut arrivals = Vec::with_capacity(n);
        let mut last_age = 0u32;
        for _ in 0..n {
            let (frame, count) = self.frame(input);
            let index_sel = input.byte();
            let index = match index_sel {
                0xFF => input.u16(),
                _ => u16::from(index_sel) % count.max(1),
            };
            // Ages are mostly decreasing (oldest first), as a receiver writes them.
            let age = match input.byte() {
                0..=0x7F => last_age.saturating_sub(u32::from(input.u16())),
                0x80..=0xEF => last_age.saturating_add(u32::from(input.byte())),
                0xF0..=0xF7 => u32::MAX,
                _ => input.u32(),
            };
            last_age = age;
            arrivals.push(Arrival {
                frame,
                index,
                at_us: report_us.saturating_sub(u64::from(age)),
            });
        }
        wire::write_report(
            packet,
            session,
            highest_seen,
            sequence,
            report_us,
            &arrivals,
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let start = Instant::now();
    let clock = WallClock::new(start, BASE_US);
    let setup = input.byte();
    let max_packet = [1400, 1200, 300, FRAGMENT_HEADER + 64][usize::from(setup & 3)];
    let config = SenderConfig {
        max_packet,
        queue_frames: usize::from(setup >> 2 & 3) + 1,
        first_frame: match setup >> 4 & 3 {
            0 => 0,
            1 => u32::MAX - 2,
            2 => 1 << 31,
            _ => input.u32(),
        },
        max_frame_bytes: 64 << 10,
        jam_guard: Some(JamGuardConfig::for_stream(4_000_000, 30)),
        // Repair on: parity per frame, history, nacks answered within the budget.
        repair: Some(transport::RepairConfig::for_bitrate(4_000_000)),
        clock,
        ..SenderConfig::default()
    };
    let mut h = Harness {
        sender: Sender::new(config, SESSION),
        max_packet,
        clock,
        timeout: None,
        sent: Vec::new(),
        buf: Vec::new(),
    };
    let mut now = start;
    // The events the constructor queued.
    h.step(now, SenderInput::Timeout);
    let mut packet = Vec::new();
    // Bounded by the input length: every record consumes at least two bytes.
    while let (Some(dt), Some(op)) = (input.u8(), input.u8()) {
        now += Duration::from_millis(u64::from(dt));
        match op {
            // A frame: `flags: u8` (bit 0 keyframe, bits 1-2 how `skipped_before` is
            // chosen), `size_sel: u8` (+ `u16` for any size up to 64 KiB), capture time.
            0x00..=0x3F => {
                let flags = input.byte();
                let skipped_before = match flags >> 1 & 3 {
                    0 | 1 => 0,
                    2 => u32::from(input.byte()),
                    _ => input.u32(),
                };
                // Mostly frames of a few packets: a frame of hundreds of fragments
                // exercises nothing a frame of twenty does not, and costs hundreds of
                // packets to build, parse and check (it was most of this target's
                // time). Any size up to 64 KiB stays one selector byte away.
                let size = match input.byte() {
                    s @ 0..=0xEF => usize::from(s) * 16,
                    0xF0..=0xFD => usize::from(input.u16()),
                    0xFE => 0,
                    _ => PAYLOAD.len(),
                };
                let frame = EncodedFrame {
                    data: Bytes::from_static(&PAYLOAD[..size]),
                    capture_us: h.clock.us(now),
                    keyframe: flags & 1 == 1,
                };
                h.step(
                    now,
                    SenderInput::Frame(SourceFrame {
                        frame,
                        skipped_before,
                    }),
                );
            }
            0x40..=0x5F => {
                packet.clear();
                h.report(&mut input, now, &mut packet);
                h.step(now, SenderInput::Packet(&packet));
            }
            0x60..=0x6F => {
                packet.clear();
                let session = h.session(&mut input);
                let highest_seen = match input.byte() {
                    0..=0x3F => None,
                    _ => Some(h.frame(&mut input).0),
                };
                wire::write_keyframe_request(&mut packet, session, highest_seen);
                h.step(now, SenderInput::Packet(&packet));
            }
            0x70..=0x7B => {
                packet.clear();
                let session = h.session(&mut input);
                let id = input.u32();
                let t1 = h.time(&mut input, now);
                wire::write_ping(&mut packet, session, id, t1);
                h.step(now, SenderInput::Packet(&packet));
            }
            0x7C..=0x7F => {
                packet.clear();
                let session = h.session(&mut input);
                let (id, t1, t2, t3) = (input.u32(), input.u64(), input.u64(), input.u64());
                wire::write_pong(&mut packet, session, id, t1, t2, t3);
                h.step(now, SenderInput::Packet(&packet));
            }
            0x80..=0x83 => {
                packet.clear();
                let session = h.session(&mut input);
                wire::write_bye(&mut packet, session);
                h.step(now, SenderInput::Packet(&packet));
            }
            // A nack: sequence numbers mostly among those sent lately (they start at 0),
            // sometimes anywhere, with a done-through frame.
            0x84..=0x89 => {
                let session = h.session(&mut input);
                let done = match input.byte() {
                    0..=0x3F => None,
                    _ => Some(h.frame(&mut input).0),
                };
                let n = usize::from(input.byte() % 80);
                let mut missing: Vec<u32> = (0..n)
                    .map(|_| match input.byte() {
                        0..=0xDF => u32::from(input.u16()),
                        _ => input.u32(),
                    })
                    .collect();
                if input.byte() & 1 == 0 {
                    missing.sort_unstable();
                }
                for nack in wire::write_nacks(session, done, &missing) {
                    h.step(now, SenderInput::Packet(&nack));
                }
            }
            // Raw bytes, mostly garbage; a fragment's kind is refused too.
            0x8A..=0x8F => {
                let len = input.byte();
                let bytes = input.take(usize::from(len));
                h.step(now, SenderInput::Packet(bytes));
            }
            0x90..=0xAF => h.step(now, SenderInput::Timeout),
            // Time jumps to the instant the sender named, as a driver sleeps until it.
            0xB0..=0xDF => {
                if let Some(at) = h.timeout {
                    now = now.max(at);
                }
                h.step(now, SenderInput::Timeout);
            }
            0xE0..=0xE7 => h.step(now, SenderInput::NewReceiver),
            0xE8..=0xEB => h.step(now, SenderInput::Disconnected),
            // A long silence: up to 18 hours in ms.
            _ => now += Duration::from_millis(u64::from(input.u16()) * 1000),
        }
    }
});
