//! The RFC 6184 depacketizer: see the contract in the module above.

use std::collections::VecDeque;

use media::annexb::nal;

use super::{FU_A, STAP_A, START_CODE};

/// Why a packet was refused. Every refusal names the packet, so it can be found in a
/// capture.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("RTP packet seq {seq} ts {timestamp}: {what}")]
pub struct DepacketizeError {
    /// Its sequence number.
    pub seq: u16,
    /// Its RTP timestamp.
    pub timestamp: u32,
    /// What is wrong with it.
    pub what: &'static str,
}

/// One access unit, depacketized.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DepacketizedFrame {
    /// Annex B bytes; SPS and PPS precede the slices of a keyframe.
    pub data: Vec<u8>,
    /// An IDR picture with its parameter sets: it decodes on its own.
    pub keyframe: bool,
    /// The RTP timestamp shared by its packets (90 kHz; not a wall clock).
    pub timestamp: u32,
}

/// What the depacketizer counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DepacketizerStats {
    /// Packets never seen (sequence-number gaps).
    pub packets_lost: u64,
    /// Packets arriving late or twice (at or before the newest sequence number seen).
    pub packets_stale: u64,
    /// Packets refused as malformed.
    pub packets_malformed: u64,
    /// Access units dropped because a packet of theirs was lost or malformed.
    pub frames_incomplete: u64,
    /// Complete access units dropped while waiting for a keyframe.
    pub frames_undecodable: u64,
    /// Access units dropped because the queue of finished ones was full.
    pub frames_overflow: u64,
    /// Access units handed out.
    pub frames_out: u64,
}

/// Access units finished and not yet pulled, at most: the caller pulls after every push,
/// so more only builds up when it does not.
const MAX_READY: usize = 4;

/// The access unit being gathered.
#[derive(Debug, Default)]
struct Building {
    timestamp: u32,
    data: Vec<u8>,
    broken: bool,
    vcl: bool,
    idr: bool,
    sps: bool,
    pps: bool,
    /// A FU-A is open: the NAL unit type it carries.
    fu: Option<u8>,
}

/// RFC 6184 depacketizer (packetization-mode 1: single NAL unit, STAP-A, FU-A). See the
/// module documentation for the contract.
#[derive(Debug)]
pub struct Depacketizer {
    max_frame_bytes: usize,
    last_seq: Option<u16>,
    cur: Option<Building>,
    waiting_keyframe: bool,
    sps: Option<Vec<u8>>,
    pps: Option<Vec<u8>>,
    ready: VecDeque<DepacketizedFrame>,
    stats: DepacketizerStats,
}

impl Depacketizer {
    /// A depacketizer that refuses access units over `max_frame_bytes`. It starts waiting
    /// for a keyframe.
    pub fn new(max_frame_bytes: usize) -> Self {
        Self {
            max_frame_bytes,
            last_seq: None,
            cur: None,
            waiting_keyframe: true,
            sps: None,
            pps: None,
            ready: VecDeque::new(),
            stats: DepacketizerStats::default(),
        }
    }

    /// The counters.
    pub fn stats(&self) -> DepacketizerStats {
        self.stats
    }

    /// True while nothing is handed out until a keyframe.
    pub fn waiting_keyframe(&self) -> bool {
        self.waiting_keyframe
    }

    /// Drops what is being gathered and waits for a keyframe (the decoder failed, or a
    /// frame handed out could not be queued).
    pub fn wait_keyframe(&mut self) {
        if let Some(cur) = self.cur.as_mut() {
            cur.broken = true;
        }
        self.waiting_keyframe = true;
    }

    /// Forgets the stream (a new sender): sequence numbers start over; the remembered
    /// parameter sets go too, they may not fit the new stream.
    pub fn reset(&mut self) {
        let stats = self.stats;
        *self = Self::new(self.max_frame_bytes);
        self.stats = stats;
    }

    /// Takes one RTP packet's fields. Never panics; see the module documentation.
    pub fn push(
        &mut self,
        seq: u16,
        timestamp: u32,
        marker: bool,
        payload: &[u8],
    ) -> Result<(), DepacketizeError> {
        if let Some(last) = self.last_seq {
            let delta = seq.wrapping_sub(last);
            if delta == 0 || delta >= 0x8000 {
                // Late (its place was already taken as lost) or repeated.
                self.stats.packets_stale += 1;
                return Ok(());
            }
            if delta > 1 {
                self.stats.packets_lost += u64::from(delta - 1);
                self.lose();
            }
        }
        self.last_seq = Some(seq);
        if self.cur.as_ref().is_some_and(|c| c.timestamp != timestamp) {
            // A new timestamp without the last one's marker: the last one ended (its
            // marker packet may have been the one lost, which `lose` has noted).
            self.finish();
        }
        let cur = self.cur.get_or_insert_with(|| Building {
            timestamp,
            ..Default::default()
        });
        let result = Self::add_payload(cur, payload, &mut self.sps, &mut self.pps);
        if cur.data.len() > self.max_frame_bytes {
            cur.data = Vec::new();
            cur.broken = true;
        }
        let result = result.map_err(|what| DepacketizeError {
            seq,
            timestamp,
            what,
        });
        if result.is_err() {
            self.stats.packets_malformed += 1;
            // Its bytes are gone: as good as lost.
            self.lose();
        }
        if marker {
            self.finish();
        }
        result
    }

    /// The next finished access unit, oldest first.
    pub fn pull(&mut self) -> Option<DepacketizedFrame> {
        self.ready.pop_front()
    }

    /// Panics if an internal bound is broken (tests and fuzzers call it after each step).
    pub fn check_invariants(&self) {
        assert!(self.ready.len() <= MAX_READY, "ready queue over its bound");
        if let Some(cur) = &self.cur {
            assert!(
                cur.data.len() <= self.max_frame_bytes,
                "frame over its bound"
            );
        }
        for f in &self.ready {
            assert!(f.data.len() <= self.max_frame_bytes + 1024);
        }
    }

    /// A packet is missing: the access unit being gathered cannot be whole, and the
    /// frames after it may reference what was lost.
    fn lose(&mut self) {
        if let Some(cur) = self.cur.as_mut() {
            cur.broken = true;
        }
        self.waiting_keyframe = true;
    }

    /// Appends one payload's NAL units to `cur`. Checks each structure completely before
    /// appending anything from it.
    fn add_payload(
        cur: &mut Building,
        payload: &[u8],
        sps: &mut Option<Vec<u8>>,
        pps: &mut Option<Vec<u8>>,
    ) -> Result<(), &'static str> {
        let Some(&header) = payload.first() else {
            return Err("empty payload");
        };
        if header & 0x80 != 0 {
            return Err("forbidden_zero_bit set");
        }
        let t = header & 0x1f;
        match t {
            1..=23 => {
                if cur.fu.take().is_some() {
                    cur.broken = true;
                    return Err("NAL unit inside an unfinished FU-A");
                }
                Self::add_nal(cur, payload, sps, pps);
                Ok(())
            }
            STAP_A => {
                if cur.fu.take().is_some() {
                    cur.broken = true;
                    return Err("STAP-A inside an unfinished FU-A");
                }
                // Check every size first: a size that runs past the packet is refused
                // before any of its NAL units is used.
                let mut pos = 1;
                let mut count = 0;
                while pos < payload.len() {
                    if payload.len() - pos < 2 {
                        return Err("STAP-A: truncated NAL unit size");
                    }
                    let size = usize::from(u16::from_be_bytes([payload[pos], payload[pos + 1]]));
                    if size == 0 {
                        return Err("STAP-A: NAL unit of size 0");
                    }
                    if size > payload.len() - pos - 2 {
                        return Err("STAP-A: NAL unit size runs past the packet");
                    }
                    let inner = payload[pos + 2] & 0x1f;
                    if inner == 0 || inner >= STAP_A {
                        return Err("STAP-A: aggregated unit of a reserved or aggregation type");
                    }
                    pos += 2 + size;
                    count += 1;
                }
                if count == 0 {
                    return Err("STAP-A with no NAL unit");
                }
                let mut pos = 1;
                while pos < payload.len() {
                    let size = usize::from(u16::from_be_bytes([payload[pos], payload[pos + 1]]));
                    Self::add_nal(cur, &payload[pos + 2..pos + 2 + size], sps, pps);
                    pos += 2 + size;
                }
                Ok(())
            }
            FU_A => {
                let Some(&fu_header) = payload.get(1) else {
                    return Err("FU-A: no FU header");
                };
                let (start, end) = (fu_header & 0x80 != 0, fu_header & 0x40 != 0);
                let inner = fu_header & 0x1f;
                if start && end {
                    cur.fu = None;
                    return Err("FU-A with both start and end bits");
                }
                if inner == 0 || inner >= STAP_A {
                    cur.fu = None;
                    return Err("FU-A carrying a reserved or aggregation type");
                }
                if start {
                    if cur.fu.is_some() {
                        // The last fragments of the previous one never came.
                        cur.broken = true;
                        cur.fu = None;
                        return Err("FU-A start inside an unfinished FU-A");
                    }
                    let nal_header = (header & 0xe0) | inner;
                    cur.data.extend_from_slice(&START_CODE);
                    cur.data.push(nal_header);
                    cur.data.extend_from_slice(&payload[2..]);
                    Self::note(cur, inner);
                    cur.fu = Some(inner);
                } else {
                    match cur.fu {
                        Some(open) if open == inner => {
                            cur.data.extend_from_slice(&payload[2..]);
                        }
                        Some(_) => {
                            cur.broken = true;
                            cur.fu = None;
                            return Err("FU-A continues a NAL unit of another type");
                        }
                        // The start was lost (a gap noted it) or never sent: the
                        // fragment is useless; `lose` already marked the unit broken if
                        // a packet was missing.
                        None => {
                            cur.broken = true;
                            return Err("FU-A continuation without a start");
                        }
                    }
                    if end {
                        cur.fu = None;
                    }
                }
                Ok(())
            }
            _ => {
                cur.fu = None;
                Err("NAL unit type not allowed in packetization-mode 1 (STAP-B, MTAP, FU-B or reserved)")
            }
        }
    }

    /// Appends one whole NAL unit, remembering parameter sets.
    fn add_nal(cur: &mut Building, n: &[u8], sps: &mut Option<Vec<u8>>, pps: &mut Option<Vec<u8>>) {
        let t = n[0] & 0x1f;
        match t {
            nal::SPS => *sps = Some(n.to_vec()),
            nal::PPS => *pps = Some(n.to_vec()),
            _ => {}
        }
        cur.data.extend_from_slice(&START_CODE);
        cur.data.extend_from_slice(n);
        Self::note(cur, t);
    }

    fn note(cur: &mut Building, t: u8) {
        match t {
            1..=5 => {
                cur.vcl = true;
                cur.idr |= t == nal::IDR;
            }
            nal::SPS => cur.sps = true,
            nal::PPS => cur.pps = true,
            _ => {}
        }
    }

    /// The access unit being gathered has ended: hand it out if it is whole and
    /// decodable.
    fn finish(&mut self) {
        let Some(cur) = self.cur.take() else { return };
        if cur.broken || cur.fu.is_some() {
            self.stats.frames_incomplete += 1;
            self.waiting_keyframe = true;
            return;
        }
        if !cur.vcl {
            // Parameter sets (remembered) or SEI alone: nothing to decode.
            return;
        }
        let sets_known = (cur.sps || self.sps.is_some()) && (cur.pps || self.pps.is_some());
        let keyframe = cur.idr && sets_known;
        if self.waiting_keyframe && !keyframe {
            self.stats.frames_undecodable += 1;
            return;
        }
        let mut data = cur.data;
        if keyframe && !(cur.sps && cur.pps) {
            // Parameter sets sent earlier (or out of band once): put them in front so
            // the frame decodes on its own.
            let mut with = Vec::with_capacity(data.len() + 64);
            for (have, set) in [(cur.sps, &self.sps), (cur.pps, &self.pps)] {
                if let (false, Some(set)) = (have, set) {
                    with.extend_from_slice(&START_CODE);
                    with.extend_from_slice(set);
                }
            }
            with.extend_from_slice(&data);
            data = with;
        }
        self.waiting_keyframe = false;
        if self.ready.len() >= MAX_READY {
            self.ready.pop_front();
            self.stats.frames_overflow += 1;
            // The dropped frame is a reference of what follows: only a keyframe may
            // come next. This one is kept only if it is one.
            if !keyframe {
                self.waiting_keyframe = true;
                return;
            }
        }
        self.stats.frames_out += 1;
        self.ready.push_back(DepacketizedFrame {
            data,
            keyframe,
            timestamp: cur.timestamp,
        });
    }
}
