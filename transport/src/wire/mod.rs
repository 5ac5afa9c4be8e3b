//! picam wire format, version 1. All integers big-endian.
//!
//! Every packet (a UDP datagram, or one length-prefixed TCP message) starts with:
//!
//! | offset | size | field                                                        |
//! |--------|------|--------------------------------------------------------------|
//! | 0      | 2    | magic `0x5043` ("PC")                                         |
//! | 2      | 1    | version, 1                                                   |
//! | 3      | 1    | kind: 1 fragment, 2 keyframe request, 3 bye, 4 report, 5 ping, 6 pong |
//! | 4      | 4    | session id of the media sender (feedback echoes it)          |
//!
//! A **fragment** (sender to receiver) continues with frame number (u32, wraps),
//! fragment index (u16), fragment count (u16, 1..), flags (u8: bit 0 keyframe; bit 7
//! reserved for a trailing authentication tag, refused by version 1), a reserved zero
//! byte, and the capture time (u64, sender wall clock, µs since the Unix epoch), then
//! the payload: bytes `index * n ..` of the frame's Annex B data, where `n` is the
//! payload size of every fragment but the last.
//!
//! A **keyframe request** (receiver to sender) continues with the highest frame number
//! the receiver has seen (u32) and a flags byte (bit 0: that number is valid).
//! A **bye** (receiver to sender) has no body: the viewer is leaving.
//!
//! A **report** (receiver to sender, several times a second) continues with the highest
//! frame number seen (u32), flags (u8: bit 0 that number is valid), an entry count
//! `n` (u8, at most [`MAX_REPORT_ENTRIES`]), packets received this session up to the
//! newest entry's arrival (u32, wraps), the report time (u64, receiver wall clock µs),
//! then `n` entries of frame number (u32), fragment index (u16) and age (u32: report
//! time minus that fragment's arrival time, µs). Entries sample arrivals: every frame's
//! last fragment, and inside large frames a fragment every few milliseconds. The sender
//! pairs them with its own send times to measure the queueing delay trend, and the
//! packet count with its own count through the newest entry to measure loss.
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
pub const VERSION: u8 = 1;
/// Bytes of the common header.
pub const COMMON_HEADER: usize = 8;
/// Bytes before a fragment's payload.
pub const FRAGMENT_HEADER: usize = COMMON_HEADER + 18;
/// Bytes of a keyframe request.
pub const KEYFRAME_REQUEST_LEN: usize = COMMON_HEADER + 5;

const KIND_FRAGMENT: u8 = 1;
const KIND_KEYFRAME_REQUEST: u8 = 2;
const KIND_BYE: u8 = 3;
const KIND_REPORT: u8 = 4;
const KIND_PING: u8 = 5;
const KIND_PONG: u8 = 6;
/// Most frame entries one report carries.
pub const MAX_REPORT_ENTRIES: usize = 48;
/// Bytes of a report before its entries.
pub const REPORT_HEADER: usize = COMMON_HEADER + 18;
const REPORT_ENTRY: usize = 10;
/// Bytes of a ping.
pub const PING_LEN: usize = COMMON_HEADER + 12;
/// Bytes of a pong.
pub const PONG_LEN: usize = COMMON_HEADER + 28;
const FLAG_KEYFRAME: u8 = 0x01;
const FLAG_AUTHENTICATED: u8 = 0x80;
const KNOWN_FRAGMENT_FLAGS: u8 = FLAG_KEYFRAME;

/// The fixed fields of a fragment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FragmentHeader {
    /// Media session id.
    pub session: u32,
    /// Frame number (wraps).
    pub frame: u32,
    /// Index of this fragment, `0..count`.
    pub index: u16,
    /// Fragments in the frame, at least 1.
    pub count: u16,
    /// The frame decodes on its own.
    pub keyframe: bool,
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
        }
    }

    /// The media session the packet names.
    pub fn session(&self) -> u32 {
        match *self {
            Packet::Fragment(header, _) => header.session,
            Packet::Report(report) => report.session,
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
    /// Packets received this session up to the newest entry's arrival (wraps).
    pub packets_received: u32,
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
    packets_received: u32,
    report_us: u64,
    arrivals: &[Arrival],
) {
    let n = arrivals.len().min(MAX_REPORT_ENTRIES);
    write_common(out, KIND_REPORT, session);
    out.put_u32(highest_seen.unwrap_or(0));
    out.put_u8(u8::from(highest_seen.is_some()));
    out.put_u8(n as u8);
    out.put_u32(packets_received);
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
        out.put_u32(self.frame);
        out.put_u16(self.index);
        out.put_u16(self.count);
        out.put_u8(if self.keyframe { FLAG_KEYFRAME } else { 0 });
        out.put_u8(0);
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
    if version != VERSION {
        return Err(TransportError::UnsupportedVersion(version));
    }
    let kind = buf.get_u8();
    let session = buf.get_u32();
    match kind {
        KIND_FRAGMENT => {
            need("fragment header", FRAGMENT_HEADER, packet.len())?;
            let frame = buf.get_u32();
            let index = buf.get_u16();
            let count = buf.get_u16();
            let flags = buf.get_u8();
            let _reserved = buf.get_u8();
            let capture_us = buf.get_u64();
            if flags & FLAG_AUTHENTICATED != 0 || flags & !KNOWN_FRAGMENT_FLAGS != 0 {
                return Err(TransportError::UnsupportedFlags(flags));
            }
            if count == 0 || index >= count {
                return Err(TransportError::BadFragment {
                    frame,
                    index,
                    count,
                });
            }
            let header = FragmentHeader {
                session,
                frame,
                index,
                count,
                keyframe: flags & FLAG_KEYFRAME != 0,
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
            let valid = buf.get_u8() & 1 == 1;
            let n = buf.get_u8() as usize;
            let packets_received = buf.get_u32();
            let report_us = buf.get_u64();
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
                packets_received,
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
        other => Err(TransportError::UnknownKind(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fragment() -> FragmentHeader {
        FragmentHeader {
            session: 0xA1B2_C3D4,
            frame: u32::MAX,
            index: 2,
            count: 3,
            keyframe: true,
            capture_us: 1_790_000_000_000_001,
        }
    }

    #[test]
    fn fragment_round_trips() {
        let mut out = Vec::new();
        fragment().write(&mut out);
        assert_eq!(out.len(), FRAGMENT_HEADER);
        out.extend_from_slice(b"payload");
        assert_eq!(
            parse(&out).unwrap(),
            Packet::Fragment(fragment(), b"payload")
        );
    }

    #[test]
    fn feedback_round_trips() {
        let mut out = Vec::new();
        write_keyframe_request(&mut out, 9, Some(77));
        assert_eq!(out.len(), KEYFRAME_REQUEST_LEN);
        assert_eq!(
            parse(&out).unwrap(),
            Packet::KeyframeRequest {
                session: 9,
                highest_seen: Some(77)
            }
        );
        out.clear();
        write_keyframe_request(&mut out, 9, None);
        assert_eq!(
            parse(&out).unwrap(),
            Packet::KeyframeRequest {
                session: 9,
                highest_seen: None
            }
        );
        out.clear();
        write_bye(&mut out, 4);
        assert_eq!(parse(&out).unwrap(), Packet::Bye { session: 4 });
    }

    #[test]
    fn report_ping_and_pong_round_trip() {
        let mut out = Vec::new();
        let arrivals: Vec<Arrival> = (0..60)
            .map(|i| Arrival {
                frame: i,
                index: i as u16 * 3,
                at_us: 1_000_000 + i as u64 * 100,
            })
            .collect();
        write_report(&mut out, 5, Some(59), 1234, 2_000_000, &arrivals);
        assert_eq!(out.len(), REPORT_HEADER + MAX_REPORT_ENTRIES * REPORT_ENTRY);
        assert_eq!(
            REPORT_HEADER + MAX_REPORT_ENTRIES * REPORT_ENTRY,
            506,
            "fits any MTU"
        );
        let Packet::Report(r) = parse(&out).unwrap() else {
            panic!("not a report")
        };
        assert_eq!(
            (r.session, r.highest_seen, r.packets_received, r.report_us),
            (5, Some(59), 1234, 2_000_000)
        );
        let got: Vec<_> = r.arrivals().collect();
        // The newest entries are kept when there are too many.
        assert_eq!(got, arrivals[60 - MAX_REPORT_ENTRIES..]);
        for len in 0..out.len() {
            assert!(
                parse(&out[..len]).is_err(),
                "report truncated to {len} bytes accepted"
            );
        }
        let mut bad = out.clone();
        bad[13] = MAX_REPORT_ENTRIES as u8 + 1;
        assert!(matches!(parse(&bad), Err(TransportError::TooLarge { .. })));

        out.clear();
        write_ping(&mut out, 5, 9, 77);
        assert_eq!(out.len(), PING_LEN);
        assert_eq!(
            parse(&out).unwrap(),
            Packet::Ping {
                session: 5,
                id: 9,
                t1: 77
            }
        );
        out.clear();
        write_pong(&mut out, 5, 9, 77, 88, 99);
        assert_eq!(out.len(), PONG_LEN);
        assert_eq!(
            parse(&out).unwrap(),
            Packet::Pong {
                session: 5,
                id: 9,
                t1: 77,
                t2: 88,
                t3: 99
            }
        );
        for len in 0..PONG_LEN {
            assert!(parse(&out[..len]).is_err(), "pong len {len}");
        }
    }

    #[test]
    fn refuses_bad_headers() {
        let mut good = Vec::new();
        fragment().write(&mut good);
        let mutate = |at: usize, value: u8| {
            let mut p = good.clone();
            p[at] = value;
            parse(&p).map(|_| ()).unwrap_err()
        };
        assert!(matches!(mutate(0, 0), TransportError::BadMagic(_)));
        assert!(matches!(
            mutate(2, 2),
            TransportError::UnsupportedVersion(2)
        ));
        assert!(matches!(mutate(3, 9), TransportError::UnknownKind(9)));
        assert!(matches!(
            mutate(16, 0x80),
            TransportError::UnsupportedFlags(_)
        ));
        assert!(matches!(
            mutate(16, 0x02),
            TransportError::UnsupportedFlags(_)
        ));
        assert!(matches!(mutate(13, 3), TransportError::BadFragment { .. })); // index 3 of 3
        let mut zero = good.clone();
        zero[14..16].fill(0);
        assert!(matches!(
            parse(&zero),
            Err(TransportError::BadFragment { .. })
        ));
        for len in 0..FRAGMENT_HEADER {
            assert!(
                matches!(parse(&good[..len]), Err(TransportError::Truncated { .. })),
                "len {len}"
            );
        }
    }
}
