//! Feeds a `Receiver` a sequence of (time advance, input) records, drains it after every
//! input as the call-order rule says, and checks its invariants after every step. A
//! panic is a bug, never bad input.
//!
//! Record layout: `dt_ms: u8`, `op: u8`, then by `op`:
//! * `0x00..=0x1F`: a raw packet from host A (`op` even) or B: `len: u16 le`, `len` bytes;
//! * `0x20..=0x9F`: a well-formed fragment (so the fuzzer reaches reassembly without
//!   guessing the magic), from the fields described at [`fragment`];
//! * `0xA0..=0xAF`: a well-formed pong or other feedback packet (see [`feedback`]);
//! * `0xB0..=0xC7`: a `Timeout` input at the current time;
//! * `0xC8..=0xD7`: time jumps to the instant the receiver last named, then `Timeout`
//!   (what a real driver does);
//! * `0xD8..=0xE3`: `RequestKeyframe` (the decoder failed);
//! * `0xE4..=0xEF`: `DownstreamFull` for the last frame handed out;
//! * `0xF0..=0xF5`: `Close`;
//! * `0xF6..=0xFF`: a large time advance, `secs: u16 le` seconds.
//!
//! Frame numbers follow a "current frame" that records move by small steps or by
//! arbitrary u32 jumps; fragment counts reach 65535; session ids are a few fixed ones
//! or arbitrary.
#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use transport::wire::{self, FragmentHeader};
use transport::{seq, Machine, Output, Receiver, ReceiverConfig, ReceiverEvent, ReceiverInput};

/// See the comment where it is used; `false` once the transport bug is fixed.
const KNOWN_STALE_FEEDBACK_TIMER: bool = false;

/// The receiver's `session_idle` (the default, which the config below keeps).
const SESSION_IDLE: Duration = Duration::from_millis(500);

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

/// Session ids the fuzzer reaches without spelling them out: the few it will reuse
/// most, including the extremes.
const SESSIONS: [u32; 4] = [0, 1, 0x8000_0000, u32::MAX];

/// The generator's state across records.
struct Gen {
    /// Frame number the next fragment is built around.
    frame: u32,
    /// Session of the last generated fragment.
    session: u32,
    /// Packet sequence number of the last generated fragment.
    seq: u32,
}

/// A session id: a fixed one, the last one used, or arbitrary.
fn session(input: &mut Input, gen: &mut Gen) -> u32 {
    let sel = input.byte();
    gen.session = match sel % 8 {
        0..=3 => SESSIONS[usize::from(sel % 4)],
        4 | 5 => gen.session,
        _ => input.u32(),
    };
    gen.session
}

/// Builds a fragment into `packet` from: `session_sel: u8` (+ `u32` for an arbitrary id),
/// `step: u8` (moves the current frame: small signed steps, or `+ u32` for any jump),
/// `count_sel: u8` (+ `u16` for any count), `index_sel: u8` (+ `u16`), `flags: u8`
/// (+ `u64` capture time), `len: u8`, then `len` payload bytes.
fn fragment(input: &mut Input, gen: &mut Gen, packet: &mut Vec<u8>) {
    let session = session(input, gen);
    let step = input.byte();
    gen.frame = match step {
        // Mostly small steps forward or back, as a real stream (with loss and
        // reordering) makes.
        0..=0xDF => gen.frame.wrapping_add((step as i8 >> 2) as i32 as u32),
        // Any jump: across the half range, to the wrap, anywhere.
        0xE0..=0xEF => gen.frame.wrapping_add(input.u32()),
        0xF0..=0xF7 => input.u32(),
        _ => gen.frame.wrapping_add(1 << 31),
    };
    let count_sel = input.byte();
    let count = match count_sel {
        // Biased toward small counts, which complete.
        0..=0xBF => u16::from(count_sel % 8) + 1,
        0xC0..=0xEF => u16::from(count_sel - 0xC0) + 1,
        0xF0..=0xFB => input.u16().max(1),
        _ => u16::MAX,
    };
    let index_sel = input.byte();
    let index = match index_sel {
        0xFF => count - 1,
        0xFE => input.u16() % count,
        0xFD => 0,
        _ => u16::from(index_sel) % count,
    };
    let flags = input.byte();
    let capture_us = if flags & 2 == 0 {
        u64::from(flags >> 2)
    } else {
        input.u64()
    };
    // Parity fragments and retransmissions too (wire version 2), with a parity count
    // that is mostly plausible and sometimes absurd, and a packet sequence number
    // that mostly advances and sometimes jumps anywhere.
    let is_parity = flags & 0x40 != 0;
    let parity = match input.byte() {
        0..=0x7F => 0,
        p @ 0x80..=0xEF => u16::from(p & 7) + 1,
        _ => input.u16(),
    };
    let index = if is_parity {
        index % parity.max(1)
    } else {
        index
    };
    gen.seq = match input.byte() {
        0..=0xDF => gen.seq.wrapping_add(1),
        0xE0..=0xEF => gen.seq.wrapping_sub(u32::from(input.byte())),
        _ => input.u32(),
    };
    let frame_len = match input.byte() {
        0..=0xBF => u32::from(count) * 64,
        _ => input.u32(),
    };
    let header = FragmentHeader {
        session,
        seq: gen.seq,
        frame: gen.frame,
        index,
        count,
        parity,
        keyframe: flags & 1 == 1,
        is_parity,
        retransmit: flags & 0x80 != 0,
        frame_len,
        capture_us,
    };
    let len = input.byte();
    packet.clear();
    header.write(packet);
    packet.extend_from_slice(input.take(usize::from(len)));
}

/// Builds a well-formed non-fragment packet: a pong (which a receiver takes for its own
/// session), or a sender-bound kind a receiver must refuse. `kind: u8`, session fields,
/// then the kind's fields.
fn feedback(input: &mut Input, gen: &mut Gen, packet: &mut Vec<u8>) {
    let kind = input.byte();
    let session = session(input, gen);
    packet.clear();
    match kind % 7 {
        6 => {
            let missing: Vec<u32> = (0..input.byte() % 40).map(|_| input.u32()).collect();
            if let Some(nack) = wire::write_nacks(session, Some(input.u32()), &missing).pop() {
                packet.extend_from_slice(&nack);
            }
        }
        0..=2 => {
            let (id, t1, t2, t3) = (input.u32(), input.u64(), input.u64(), input.u64());
            wire::write_pong(packet, session, id, t1, t2, t3);
        }
        3 => wire::write_ping(packet, session, input.u32(), input.u64()),
        4 => wire::write_keyframe_request(packet, session, Some(input.u32())),
        _ => wire::write_bye(packet, session),
    }
}

struct Harness {
    receiver: Receiver,
    /// The last frame handed out: (session, number).
    last: Option<(u32, u32)>,
    /// `stats().sessions` when `last` was set.
    sessions: u64,
    /// What the receiver last said it wants a timeout at.
    timeout: Option<Instant>,
    /// When the newest fragment the receiver took for its session went in.
    heard: Option<Instant>,
    buf: Vec<u8>,
    /// In encrypted runs, the paired sender's end: it completes the handshake with the
    /// WELCOME the receiver sends, and seals the generated packets, so the fuzzer
    /// reaches the parser behind the secure layer too.
    initiator: Option<transport::secure::Initiator>,
}

impl Harness {
    /// Feeds one input, drains every output, and checks what came out.
    fn step(&mut self, now: Instant, input: ReceiverInput<'_>) {
        let is_timeout = matches!(input, ReceiverInput::Timeout);
        let fragment = match input {
            ReceiverInput::Packet { data, .. } => {
                matches!(wire::parse(data), Ok(wire::Packet::Fragment(..)))
            }
            _ => false,
        };
        let before = self.receiver.stats().dropped;
        self.receiver.handle_input(now, input);
        let after = self.receiver.stats().dropped;
        if fragment
            && after.malformed == before.malformed
            && after.other_sender == before.other_sender
        {
            // Taken for the current session (maybe as stale or duplicate, which still
            // counts as hearing the sender).
            self.heard = Some(now);
        }
        let mut outputs = 0usize;
        loop {
            outputs += 1;
            assert!(outputs < 1 << 20, "poll_output never reached its timeout");
            match self.receiver.poll_output(now, &mut self.buf) {
                Output::Event(ReceiverEvent::Frame(frame)) => {
                    let sessions = self.receiver.stats().sessions;
                    if sessions != self.sessions {
                        // A (re)adopted session starts its numbering afresh.
                        self.sessions = sessions;
                        self.last = None;
                    }
                    if let Some((session, number)) = self.last {
                        if session == frame.session {
                            assert!(
                                seq::after(frame.number, number),
                                "frames out of order: {} after {number}",
                                frame.number
                            );
                        }
                    }
                    self.last = Some((frame.session, frame.number));
                }
                Output::Transmit(_) => match self.initiator.as_mut() {
                    Some(initiator) => {
                        assert!(
                            transport::secure::is_secure_packet(&self.buf),
                            "an encrypting receiver sent a plain packet: {:02x?}",
                            self.buf
                        );
                        let _ = initiator.open(now, &self.buf);
                    }
                    None => assert!(
                        wire::parse(&self.buf).is_ok(),
                        "receiver sent a packet it cannot parse: {:02x?}",
                        self.buf
                    ),
                },
                Output::Timeout(at) => {
                    if let (true, Some(at)) = (is_timeout, at) {
                        // KNOWN BUG (transport/src/recv/mod.rs, `poll_feedback` and
                        // `next_timeout`): a Timeout input that comes after the session has
                        // gone idle skips the feedback that was due, yet `next_timeout` still
                        // names that past instant (it only filters on `due < last_heard +
                        // session_idle`), so a driver spins until the next packet. Artifacts:
                        // fuzz/artifacts/receiver/crash-0f881706d4b03a9f72afddc6a67a82e4883545ef
                        // and crash-9bf1f5acdade43b9d6d6e0ce2108f02885e034b2. Tolerated only
                        // while the session is idle by the harness's reckoning (`heard` is
                        // never later than the receiver's own `last_heard`). Set
                        // KNOWN_STALE_FEEDBACK_TIMER to false once fixed.
                        let known_stale_feedback = KNOWN_STALE_FEEDBACK_TIMER
                            && self.heard.is_some_and(|h| now >= h + SESSION_IDLE);
                        assert!(
                            at > now || known_stale_feedback,
                            "timer not moved past now by a Timeout input: {:?} before now: {:#?}",
                            now - at,
                            self.receiver
                        );
                    }
                    self.timeout = at;
                    break;
                }
            }
        }
        self.receiver.check_invariants();
    }
}

/// The key of encrypted runs.
const KEY: [u8; 32] = [0x5A; 32];

fuzz_target!(|data: &[u8]| {
    // A first byte of 0xFF picks an encrypted run: rare, because each costs a Noise
    // handshake (two X25519 operations), which would otherwise cap the whole target
    // at about a thousand runs a second.
    let encrypted = data.first() == Some(&0xFF);
    let data = data.get(1..).unwrap_or_default();
    let key = transport::secure::Psk::from_bytes(KEY);
    let config = ReceiverConfig {
        max_frame_bytes: 64 << 10,
        max_in_flight: 4,
        session_idle: SESSION_IDLE,
        // Repair on, so nacks, parity and the loss tracker are fuzzed too.
        repair: Some(transport::ReceiverRepairConfig::default()),
        secure: encrypted.then(|| key.clone()),
        ..ReceiverConfig::default()
    };
    let mut h = Harness {
        receiver: Receiver::new(config),
        last: None,
        sessions: 0,
        timeout: None,
        heard: None,
        buf: Vec::new(),
        initiator: encrypted.then(|| transport::secure::Initiator::new(key, 0)),
    };
    let mut now = Instant::now();
    let a = SocketAddr::from(([10, 0, 0, 1], 5000));
    let mut hello = Vec::new();
    if let Some(initiator) = h.initiator.as_mut() {
        if initiator.poll_handshake(now, 1, &mut hello) {
            h.step(
                now,
                ReceiverInput::Packet {
                    from: Some(a),
                    data: &hello,
                },
            );
        }
    }
    let b = SocketAddr::from(([10, 0, 0, 2], 5000));
    let mut gen = Gen {
        frame: 0u32.wrapping_sub(128),
        session: 0,
        seq: 0u32.wrapping_sub(64),
    };
    let mut input = Input(data);
    let mut packet = Vec::new();
    // Bounded by the input length: every record consumes at least two bytes.
    while let (Some(dt), Some(op)) = (input.u8(), input.u8()) {
        now += Duration::from_millis(u64::from(dt));
        let from = if op & 1 == 0 { a } else { b };
        match op {
            0x00..=0x1F => {
                let len = input.u16();
                let bytes = input.take(usize::from(len));
                h.step(
                    now,
                    ReceiverInput::Packet {
                        from: Some(from),
                        data: bytes,
                    },
                );
            }
            0x20..=0x9F => {
                fragment(&mut input, &mut gen, &mut packet);
                if let Some(initiator) = h.initiator.as_mut() {
                    initiator.seal(&mut packet);
                }
                h.step(
                    now,
                    ReceiverInput::Packet {
                        from: Some(from),
                        data: &packet,
                    },
                );
            }
            0xA0..=0xAF => {
                feedback(&mut input, &mut gen, &mut packet);
                if let Some(initiator) = h.initiator.as_mut() {
                    initiator.seal(&mut packet);
                }
                h.step(
                    now,
                    ReceiverInput::Packet {
                        from: Some(from),
                        data: &packet,
                    },
                );
            }
            0xB0..=0xC7 => h.step(now, ReceiverInput::Timeout),
            0xC8..=0xD7 => {
                if let Some(at) = h.timeout {
                    now = now.max(at);
                }
                h.step(now, ReceiverInput::Timeout);
            }
            0xD8..=0xE3 => h.step(now, ReceiverInput::RequestKeyframe),
            0xE4..=0xEF => h.step(now, ReceiverInput::DownstreamFull),
            0xF0..=0xF5 => h.step(now, ReceiverInput::Close),
            0xF6..=0xFF => now += Duration::from_secs(u64::from(input.u16())),
        }
    }
});
