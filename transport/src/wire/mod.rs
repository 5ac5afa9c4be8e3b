//! picam wire format, version 2. All integers big-endian.
//!
//! Every packet (a UDP datagram, or one length-prefixed TCP message) starts with:
//!
//! | offset | size | field                                                        |
//! |--------|------|--------------------------------------------------------------|
//! | 0      | 2    | magic `0x5043` ("PC")                                         |
//! | 2      | 1    | version, 2 (version 1 had no sequence numbers and no repair; it is refused with a message naming it) |
//! | 3      | 1    | kind: 1 fragment, 2 keyframe request, 3 bye, 4 report, 5 ping, 6 pong, 7 nack |
//! | 4      | 4    | session id of the media sender (feedback echoes it)          |
//!
//! A **fragment** (sender to receiver) continues with the packet sequence number (u32,
//! wraps; one per original packet of the session, data and parity alike, in send order;
//! a retransmission repeats its original's), frame number (u32, wraps), index (u16),
//! data fragment count `k` (u16, 1..), parity count `r` (u16: parity packets the frame
//! has), flags (u8: bit 0 keyframe, bit 1 parity, bit 2 retransmission; bit 7 reserved
//! for authentication, refused), a reserved zero byte, the frame's length in bytes
//! (u32), and the capture time (u64, sender wall clock, µs since the Unix epoch), then
//! the payload. A data fragment (`index < k`) carries bytes `index * n ..` of the
//! frame's Annex B data, where `n` (even) is the payload size of every fragment but the
//! last. A parity fragment (`index < r`) carries Reed-Solomon recovery shard `index`
//! over the `k` data fragments, each zero-padded to the shard size (the parity
//! payload's length), so any `k` of the `k + r` packets rebuild the frame.
//!
//! A **keyframe request** (receiver to sender) continues with the highest frame number
//! the receiver has seen (u32) and a flags byte (bit 0: that number is valid).
//! A **bye** (receiver to sender) has no body: the viewer is leaving.
//!
//! A **report** (receiver to sender, several times a second) continues with the highest
//! frame number seen (u32), flags (u8: bit 0 that number is valid, bit 1 the sequence
//! fields are valid), an entry count `n` (u8, at most [`MAX_REPORT_ENTRIES`]), the
//! highest packet sequence number received (u32), original packets received this
//! session (u32, wraps; retransmissions not counted), loss events (u32, wraps: holes
//! opened in the sequence), the report time (u64, receiver wall clock µs), then `n`
//! entries of frame number (u32), fragment index (u16) and age (u32: report time minus
//! that fragment's arrival time, µs). Entries sample first-transmission data arrivals:
//! every frame's last fragment, and inside large frames a fragment every few
//! milliseconds. The sender pairs them with its own send times to measure the queueing
//! delay trend, and the sequence fields with its own to measure loss and its burstiness.
//!
//! A **nack** (receiver to sender) continues with the newest frame the receiver has
//! emitted or given up (u32), flags (u8: bit 0 that number is valid), an entry count
//! `n` (u8, 1..=[`MAX_NACK_ENTRIES`]), then `n` entries of a missing sequence number
//! (u32) and a bitmap (u16) whose bit `i` asks for that number plus `i + 1` too, as in
//! RFC 4585's generic NACK.
//!
//! A **ping** (receiver to sender) carries an id (u32) and the receiver's send time t1
//! (u64 µs); the **pong** (sender to receiver) echoes both and adds the sender's receive
//! and send times t2, t3 (u64 µs each), from which the receiver estimates the sender's
//! clock offset for true end-to-end latency across machines.

pub mod framing;

use bytes::{Buf, BufMut};

use crate::TransportError;

/// The two bytes every packet starts with.
pub const MAGIC: u16 = 0x5043;
/// The wire version this build speaks.
pub const VERSION: u8 = 2;
/// Bytes of the common header.
pub const COMMON_HEADER: usize = 8;
/// Bytes before a fragment's payload.
pub const FRAGMENT_HEADER: usize = COMMON_HEADER + 28;
/// Bytes of a keyframe request.
pub const KEYFRAME_REQUEST_LEN: usize = COMMON_HEADER + 5;

const KIND_FRAGMENT: u8 = 1;
const KIND_KEYFRAME_REQUEST: u8 = 2;
const KIND_BYE: u8 = 3;
const KIND_REPORT: u8 = 4;
const KIND_PING: u8 = 5;
const KIND_PONG: u8 = 6;
const KIND_NACK: u8 = 7;
/// Most entries one nack carries (each names up to 17 packets).
pub const MAX_NACK_ENTRIES: usize = 64;
/// Bytes of a nack before its entries.
pub const NACK_HEADER: usize = COMMON_HEADER + 6;
const NACK_ENTRY: usize = 6;
/// Most frame entries one report carries.
pub const MAX_REPORT_ENTRIES: usize = 48;
/// Bytes of a report before its entries.
pub const REPORT_HEADER: usize = COMMON_HEADER + 26;
const REPORT_ENTRY: usize = 10;
/// Bytes of a ping.
pub const PING_LEN: usize = COMMON_HEADER + 12;
/// Bytes of a pong.
pub const PONG_LEN: usize = COMMON_HEADER + 28;
const FLAG_KEYFRAME: u8 = 0x01;
const FLAG_PARITY: u8 = 0x02;
const FLAG_RETRANSMIT: u8 = 0x04;
const FLAG_AUTHENTICATED: u8 = 0x80;
const KNOWN_FRAGMENT_FLAGS: u8 = FLAG_KEYFRAME | FLAG_PARITY | FLAG_RETRANSMIT;
/// Offset of a fragment's flags byte, so a retransmission can set its flag in a copy
/// of the packet as first sent.
pub const FRAGMENT_FLAGS_OFFSET: usize = COMMON_HEADER + 14;
/// The flag bit a retransmitted fragment carries.
pub const RETRANSMIT_FLAG: u8 = FLAG_RETRANSMIT;

/// The fixed fields of a fragment (data or parity).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FragmentHeader {
    /// Media session id.
    pub session: u32,
    /// Packet sequence number of the original transmission (wraps).
    pub seq: u32,
    /// Frame number (wraps).
    pub frame: u32,
    /// Index of this fragment: `0..count` for data, `0..parity` for parity.
    pub index: u16,
    /// Data fragments in the frame, at least 1.
    pub count: u16,
    /// Parity fragments the frame has (0 without forward error correction).
    pub parity: u16,
    /// The frame decodes on its own.
    pub keyframe: bool,
    /// This fragment is a parity shard, not data.
    pub is_parity: bool,
    /// This is a retransmission (its `seq` is the original's).
    pub retransmit: bool,
    /// Bytes in the whole frame.
    pub frame_len: u32,
    /// Sender wall-clock capture time, µs since the Unix epoch.
    pub capture_us: u64,
}

/// A parsed packet; a fragment's payload borrows from the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Packet<'a> {
    /// Part of a frame.
    Fragment(FragmentHeader, &'a [u8]),
    /// The receiver needs a keyframe.
    KeyframeRequest {
        /// The media session addressed.
        session: u32,
        /// The highest frame number the receiver has seen, if any.
        highest_seen: Option<u32>,
    },
    /// The receiver is leaving.
    Bye {
        /// The media session addressed.
        session: u32,
    },
    /// What the receiver saw since its last report.
    Report(Report<'a>),
    /// A clock probe from the receiver.
    Ping {
        /// The media session addressed.
        session: u32,
        /// Probe id.
        id: u32,
        /// Receiver's send time, µs.
        t1: u64,
    },
    /// The receiver misses these packets.
    Nack(Nack<'a>),
    /// The sender's answer to a ping.
    Pong {
        /// The media session.
        session: u32,
        /// Probe id, echoed.
        id: u32,
        /// Receiver's send time, echoed.
        t1: u64,
        /// Sender's receive time, µs.
        t2: u64,
        /// Sender's send time, µs.
        t3: u64,
    },
}

impl Packet<'_> {
    /// The packet's kind, for logs.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Packet::Fragment(..) => "fragment",
            Packet::KeyframeRequest { .. } => "keyframe request",
            Packet::Bye { .. } => "bye",
            Packet::Report(_) => "report",
            Packet::Ping { .. } => "ping",
            Packet::Pong { .. } => "pong",
            Packet::Nack(_) => "nack",
        }
    }

    /// The media session the packet names.
    pub fn session(&self) -> u32 {
        match *self {
            Packet::Fragment(header, _) => header.session,
            Packet::Report(report) => report.session,
            Packet::Nack(nack) => nack.session,
            Packet::KeyframeRequest { session, .. }
            | Packet::Bye { session }
            | Packet::Ping { session, .. }
            | Packet::Pong { session, .. } => session,
        }
    }
}

/// A parsed report; entries are read lazily from the packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Report<'a> {
    /// The media session addressed.
    pub session: u32,
    /// Highest frame number seen, if any.
    pub highest_seen: Option<u32>,
    /// Packet sequence counters, when the receiver has any.
    pub sequence: Option<SequenceCounts>,
    /// Receiver wall clock at the report, µs.
    pub report_us: u64,
    entries: &'a [u8],
}

impl Report<'_> {
    /// The sampled arrivals since the last report, oldest first.
    pub fn arrivals(&self) -> impl Iterator<Item = Arrival> + '_ {
        let report_us = self.report_us;
        self.entries.chunks_exact(REPORT_ENTRY).map(move |mut e| {
            let frame = e.get_u32();
            let index = e.get_u16();
            let age = e.get_u32() as u64;
            Arrival {
                frame,
                index,
                at_us: report_us.saturating_sub(age),
            }
        })
    }
}

/// What a receiver has seen of the packet sequence, carried in reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SequenceCounts {
    /// Highest packet sequence number received.
    pub highest: u32,
    /// Original packets received this session (wraps).
    pub received: u32,
    /// Holes opened in the sequence this session (wraps).
    pub loss_events: u32,
}

/// A parsed nack; entries are read lazily from the packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Nack<'a> {
    /// The media session addressed.
    pub session: u32,
    /// Newest frame the receiver has emitted or given up: packets of frames up to it
    /// are of no more use.
    pub done_through: Option<u32>,
    entries: &'a [u8],
}

impl Nack<'_> {
    /// The sequence numbers asked for, in entry order (bitmap bits ascending).
    pub fn missing(&self) -> impl Iterator<Item = u32> + '_ {
        self.entries.chunks_exact(NACK_ENTRY).flat_map(|mut e| {
            let first = e.get_u32();
            let bitmap = e.get_u16();
            std::iter::once(first).chain(
                (0..16u32)
                    .filter(move |i| bitmap & (1 << i) != 0)
                    .map(move |i| first.wrapping_add(i + 1)),
            )
        })
    }
}

/// Appends nacks for `missing` (sequence numbers in increasing wrapping order) to
/// `out`, one packet per [`MAX_NACK_ENTRIES`] entries; returns the packets written.
/// Consecutive numbers within 16 of an entry's first share its bitmap.
pub fn write_nacks(session: u32, done_through: Option<u32>, missing: &[u32]) -> Vec<Vec<u8>> {
    let mut entries: Vec<(u32, u16)> = Vec::new();
    for &seq in missing {
        match entries.last_mut() {
            Some((first, bitmap)) if (1..=16).contains(&seq.wrapping_sub(*first)) => {
                *bitmap |= 1 << (seq.wrapping_sub(*first) - 1);
            }
            _ => entries.push((seq, 0)),
        }
    }
    entries
        .chunks(MAX_NACK_ENTRIES)
        .map(|chunk| {
            let mut out = Vec::with_capacity(NACK_HEADER + chunk.len() * NACK_ENTRY);
            write_common(&mut out, KIND_NACK, session);
            out.put_u32(done_through.unwrap_or(0));
            out.put_u8(u8::from(done_through.is_some()));
            out.put_u8(chunk.len() as u8);
            for &(first, bitmap) in chunk {
                out.put_u32(first);
                out.put_u16(bitmap);
            }
            out
        })
        .collect()
}

/// One sampled fragment arrival in a report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arrival {
    /// Frame number.
    pub frame: u32,
    /// Fragment index.
    pub index: u16,
    /// Arrival time, receiver wall clock µs.
    pub at_us: u64,
}

/// Appends a report to `out`; `arrivals` beyond [`MAX_REPORT_ENTRIES`] are left out.
pub fn write_report(
    out: &mut impl BufMut,
    session: u32,
    highest_seen: Option<u32>,
    sequence: Option<SequenceCounts>,
    report_us: u64,
    arrivals: &[Arrival],
) {
    let n = arrivals.len().min(MAX_REPORT_ENTRIES);
    write_common(out, KIND_REPORT, session);
    out.put_u32(highest_seen.unwrap_or(0));
    out.put_u8(u8::from(highest_seen.is_some()) | (u8::from(sequence.is_some()) << 1));
    out.put_u8(n as u8);
    let counts = sequence.unwrap_or_default();
    out.put_u32(counts.highest);
    out.put_u32(counts.received);
    out.put_u32(counts.loss_events);
    out.put_u64(report_us);
    for a in &arrivals[arrivals.len() - n..] {
        out.put_u32(a.frame);
        out.put_u16(a.index);
        out.put_u32(report_us.saturating_sub(a.at_us).min(u32::MAX as u64) as u32);
    }
}

/// Appends a ping to `out`.
pub fn write_ping(out: &mut impl BufMut, session: u32, id: u32, t1: u64) {
    write_common(out, KIND_PING, session);
    out.put_u32(id);
    out.put_u64(t1);
}

/// Appends a pong to `out`.
pub fn write_pong(out: &mut impl BufMut, session: u32, id: u32, t1: u64, t2: u64, t3: u64) {
    write_common(out, KIND_PONG, session);
    out.put_u32(id);
    out.put_u64(t1);
    out.put_u64(t2);
    out.put_u64(t3);
}

impl FragmentHeader {
    /// Appends the header to `out`.
    pub fn write(&self, out: &mut impl BufMut) {
        write_common(out, KIND_FRAGMENT, self.session);
        out.put_u32(self.seq);
        out.put_u32(self.frame);
        out.put_u16(self.index);
        out.put_u16(self.count);
        out.put_u16(self.parity);
        let mut flags = 0;
        for (set, bit) in [
            (self.keyframe, FLAG_KEYFRAME),
            (self.is_parity, FLAG_PARITY),
            (self.retransmit, FLAG_RETRANSMIT),
        ] {
            if set {
                flags |= bit;
            }
        }
        out.put_u8(flags);
        out.put_u8(0);
        out.put_u32(self.frame_len);
        out.put_u64(self.capture_us);
    }
}

fn write_common(out: &mut impl BufMut, kind: u8, session: u32) {
    out.put_u16(MAGIC);
    out.put_u8(VERSION);
    out.put_u8(kind);
    out.put_u32(session);
}

/// Appends a keyframe request to `out`.
pub fn write_keyframe_request(out: &mut impl BufMut, session: u32, highest_seen: Option<u32>) {
    write_common(out, KIND_KEYFRAME_REQUEST, session);
    out.put_u32(highest_seen.unwrap_or(0));
    out.put_u8(u8::from(highest_seen.is_some()));
}

/// Appends a bye to `out`.
pub fn write_bye(out: &mut impl BufMut, session: u32) {
    write_common(out, KIND_BYE, session);
}

fn need(what: &'static str, needed: usize, got: usize) -> Result<(), TransportError> {
    if got < needed {
        return Err(TransportError::Truncated { what, needed, got });
    }
    Ok(())
}

/// Parses one packet. Check-then-parse: every length is checked before it is read, so
/// no input can panic.
pub fn parse(packet: &[u8]) -> Result<Packet<'_>, TransportError> {
    need("common header", COMMON_HEADER, packet.len())?;
    let mut buf = packet;
    let magic = buf.get_u16();
    if magic != MAGIC {
        return Err(TransportError::BadMagic(magic));
    }
    let version = buf.get_u8();
    if version < VERSION {
        return Err(TransportError::OlderVersion(version));
    }
    if version != VERSION {
        return Err(TransportError::UnsupportedVersion(version));
    }
    let kind = buf.get_u8();
    let session = buf.get_u32();
    match kind {
        KIND_FRAGMENT => {
            need("fragment header", FRAGMENT_HEADER, packet.len())?;
            let seq = buf.get_u32();
            let frame = buf.get_u32();
            let index = buf.get_u16();
            let count = buf.get_u16();
            let parity = buf.get_u16();
            let flags = buf.get_u8();
            let _reserved = buf.get_u8();
            let frame_len = buf.get_u32();
            let capture_us = buf.get_u64();
            if flags & FLAG_AUTHENTICATED != 0 || flags & !KNOWN_FRAGMENT_FLAGS != 0 {
                return Err(TransportError::UnsupportedFlags(flags));
            }
            let is_parity = flags & FLAG_PARITY != 0;
            let bound = if is_parity { parity } else { count };
            if count == 0 || index >= bound {
                return Err(TransportError::BadFragment {
                    frame,
                    index,
                    count,
                });
            }
            let header = FragmentHeader {
                session,
                seq,
                frame,
                index,
                count,
                parity,
                keyframe: flags & FLAG_KEYFRAME != 0,
                is_parity,
                retransmit: flags & FLAG_RETRANSMIT != 0,
                frame_len,
                capture_us,
            };
            Ok(Packet::Fragment(header, buf))
        }
        KIND_KEYFRAME_REQUEST => {
            need("keyframe request", KEYFRAME_REQUEST_LEN, packet.len())?;
            let highest = buf.get_u32();
            let valid = buf.get_u8() & 1 == 1;
            Ok(Packet::KeyframeRequest {
                session,
                highest_seen: valid.then_some(highest),
            })
        }
        KIND_BYE => Ok(Packet::Bye { session }),
        KIND_REPORT => {
            need("report header", REPORT_HEADER, packet.len())?;
            let highest = buf.get_u32();
            let flags = buf.get_u8();
            let n = buf.get_u8() as usize;
            let sequence = SequenceCounts {
                highest: buf.get_u32(),
                received: buf.get_u32(),
                loss_events: buf.get_u32(),
            };
            let report_us = buf.get_u64();
            let valid = flags & 1 == 1;
            if n > MAX_REPORT_ENTRIES {
                return Err(TransportError::TooLarge {
                    what: "report entry count",
                    size: n,
                    max: MAX_REPORT_ENTRIES,
                });
            }
            need(
                "report entries",
                REPORT_HEADER + n * REPORT_ENTRY,
                packet.len(),
            )?;
            Ok(Packet::Report(Report {
                session,
                highest_seen: valid.then_some(highest),
                sequence: (flags & 2 != 0).then_some(sequence),
                report_us,
                entries: &buf[..n * REPORT_ENTRY],
            }))
        }
        KIND_PING => {
            need("ping", PING_LEN, packet.len())?;
            Ok(Packet::Ping {
                session,
                id: buf.get_u32(),
                t1: buf.get_u64(),
            })
        }
        KIND_PONG => {
            need("pong", PONG_LEN, packet.len())?;
            Ok(Packet::Pong {
                session,
                id: buf.get_u32(),
                t1: buf.get_u64(),
                t2: buf.get_u64(),
                t3: buf.get_u64(),
            })
        }
        KIND_NACK => {
            need("nack header", NACK_HEADER, packet.len())?;
            let done = buf.get_u32();
            let valid = buf.get_u8() & 1 == 1;
            let n = buf.get_u8() as usize;
            if n == 0 || n > MAX_NACK_ENTRIES {
                return Err(TransportError::TooLarge {
                    what: "nack entry count (1.. allowed)",
                    size: n,
                    max: MAX_NACK_ENTRIES,
                });
            }
            need("nack entries", NACK_HEADER + n * NACK_ENTRY, packet.len())?;
            Ok(Packet::Nack(Nack {
                session,
                done_through: valid.then_some(done),
                entries: &buf[..n * NACK_ENTRY],
            }))
        }
        other => Err(TransportError::UnknownKind(other)),
    }
}

#[cfg(test)]
mod tests;
