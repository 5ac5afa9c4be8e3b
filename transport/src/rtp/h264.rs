//! H.264 over RTP (RFC 6184, packetization-mode 1): the packetizer and the depacketizer.
//!
//! Written by hand rather than taken from a crate: the depacketizer is where the classic
//! RTP CVEs live (STAP-A sizes running past the packet, FU-A fragments stitched across a
//! loss), and picam's never-corrupt rule must be kept inside it, not after it.
//!
//! **Depacketizer contract** (retina's): [`Depacketizer::push`] takes one RTP packet's
//! fields in arrival order and never panics, whatever the bytes; [`Depacketizer::pull`]
//! hands out the access units finished so far, oldest first. A malformed packet is an
//! error from `push` *and* counts as a lost packet: the access unit it belonged to is
//! dropped and nothing leaves until a decodable keyframe (IDR with SPS and PPS, in band
//! or remembered from earlier).

use std::collections::VecDeque;

use media::annexb::{nal, nal_units};

/// STAP-A (single-time aggregation packet) NAL unit type.
pub const STAP_A: u8 = 24;
/// FU-A (fragmentation unit) NAL unit type.
pub const FU_A: u8 = 28;

const START_CODE: [u8; 4] = [0, 0, 0, 1];

/// Splits one access unit (Annex B) into RTP payloads of at most `max_payload` bytes;
/// each payload comes with the marker bit (set on the last one). Parameter sets and other
/// small non-picture NAL units that precede a picture go together in one STAP-A when they
/// fit; NAL units larger than a packet are split into FU-As.
pub fn packetize(au: &[u8], max_payload: usize, mut emit: impl FnMut(&[u8], bool)) {
    // A payload must hold at least an FU-A's two header bytes and one byte of data.
    let max_payload = max_payload.max(3);
    let nals: Vec<&[u8]> = nal_units(au)
        .map(trim_trailing_zeros)
        .filter(|n| !n.is_empty())
        .collect();
    let mut payload = Vec::with_capacity(max_payload);
    let mut pending: Vec<&[u8]> = Vec::new();
    let mut i = 0;
    while i < nals.len() {
        let n = nals[i];
        let last_nal = i + 1 == nals.len();
        let t = n[0] & 0x1f;
        // Gather a run of small non-picture NAL units (SPS, PPS, SEI, AUD) for a STAP-A.
        if !(1..=5).contains(&t) && !last_nal {
            let mut size = 1;
            pending.clear();
            let mut j = i;
            while j + 1 < nals.len() {
                let m = nals[j];
                let mt = m[0] & 0x1f;
                if (1..=5).contains(&mt) || size + 2 + m.len() > max_payload || m.len() > 0xffff {
                    break;
                }
                size += 2 + m.len();
                pending.push(m);
                j += 1;
            }
            if pending.len() >= 2 {
                payload.clear();
                let f_nri = pending.iter().map(|m| m[0] & 0xe0).max().unwrap_or(0);
                payload.push(f_nri | STAP_A);
                for m in &pending {
                    payload.extend_from_slice(&(m.len() as u16).to_be_bytes());
                    payload.extend_from_slice(m);
                }
                emit(&payload, false);
                i = j;
                continue;
            }
        }
        if n.len() <= max_payload {
            emit(n, last_nal);
        } else {
            // FU-A: indicator (F, NRI, type 28), header (S, E, type), then the NAL unit's
            // bytes after its header byte.
            let indicator = (n[0] & 0xe0) | FU_A;
            let chunk = max_payload - 2;
            let body = &n[1..];
            let count = body.len().div_ceil(chunk);
            for (k, part) in body.chunks(chunk).enumerate() {
                let start = if k == 0 { 0x80 } else { 0 };
                let end = if k + 1 == count { 0x40 } else { 0 };
                payload.clear();
                payload.push(indicator);
                payload.push(start | end | t);
                payload.extend_from_slice(part);
                emit(&payload, last_nal && k + 1 == count);
            }
        }
        i += 1;
    }
}

/// Trailing zero bytes belong to the next start code (or are `trailing_zero_8bits`), not
/// to the NAL unit.
fn trim_trailing_zeros(nal: &[u8]) -> &[u8] {
    let end = nal.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
    &nal[..end]
}

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

#[cfg(test)]
mod tests {
    use super::*;

    const SPS: &[u8] = &[0x67, 0x42, 0xc0, 0x1f, 0x8c, 0x8d];
    const PPS: &[u8] = &[0x68, 0xce, 0x3c, 0x80];

    fn annexb(nals: &[&[u8]]) -> Vec<u8> {
        let mut v = Vec::new();
        for n in nals {
            v.extend_from_slice(&START_CODE);
            v.extend_from_slice(n);
        }
        v
    }

    fn slice(t: u8, len: usize, seed: u8) -> Vec<u8> {
        let mut v = vec![0x60 | t, 0x88];
        v.extend((0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) | 1));
        v
    }

    fn packets(au: &[u8], max: usize) -> Vec<(Vec<u8>, bool)> {
        let mut out = Vec::new();
        packetize(au, max, |p, m| out.push((p.to_vec(), m)));
        out
    }

    /// Feeds packets with consecutive sequence numbers from `seq`.
    fn feed(d: &mut Depacketizer, seq: &mut u16, ts: u32, pkts: &[(Vec<u8>, bool)]) {
        for (p, m) in pkts {
            let _ = d.push(*seq, ts, *m, p);
            d.check_invariants();
            *seq = seq.wrapping_add(1);
        }
    }

    #[test]
    fn keyframe_goes_as_stap_a_then_fu_a_with_the_marker_last() {
        let idr = slice(5, 3000, 1);
        let au = annexb(&[SPS, PPS, &idr]);
        let pkts = packets(&au, 1200);
        assert_eq!(pkts[0].0[0] & 0x1f, STAP_A);
        assert!(pkts[1..].iter().all(|(p, _)| p[0] & 0x1f == FU_A));
        assert!(pkts.iter().all(|(p, _)| p.len() <= 1200));
        let markers: Vec<bool> = pkts.iter().map(|p| p.1).collect();
        assert_eq!(markers.iter().filter(|m| **m).count(), 1);
        assert!(markers[markers.len() - 1]);
    }

    #[test]
    fn round_trip_at_many_sizes_and_across_sequence_wrap() {
        for max in [3, 4, 16, 100, 1188, 1400, 65_000] {
            let mut d = Depacketizer::new(1 << 22);
            let mut seq = 65_530u16;
            let idr = slice(5, 5000, 2);
            let p1 = slice(1, 700, 3);
            let p2 = slice(1, 10, 4);
            let aus = [annexb(&[SPS, PPS, &idr]), annexb(&[&p1]), annexb(&[&p2])];
            for (i, au) in aus.iter().enumerate() {
                feed(&mut d, &mut seq, i as u32 * 3000, &packets(au, max));
                let got = d.pull().unwrap_or_else(|| panic!("max {max} frame {i}"));
                assert_eq!(&got.data, au, "max {max} frame {i}");
                assert_eq!(got.keyframe, i == 0);
            }
            assert_eq!(d.stats().packets_lost, 0);
        }
    }

    #[test]
    fn a_frame_without_marker_ends_at_the_next_timestamp() {
        let mut d = Depacketizer::new(1 << 20);
        let au = annexb(&[SPS, PPS, &slice(5, 50, 1)]);
        let mut pkts = packets(&au, 1400);
        pkts.last_mut().unwrap().1 = false;
        let mut seq = 0;
        feed(&mut d, &mut seq, 0, &pkts);
        assert!(d.pull().is_none());
        feed(
            &mut d,
            &mut seq,
            3000,
            &packets(&annexb(&[&slice(1, 20, 2)]), 1400),
        );
        assert_eq!(d.pull().unwrap().data, au);
        assert!(d.pull().is_some());
    }

    #[test]
    fn after_a_loss_nothing_leaves_until_a_keyframe_and_parameter_sets_are_remembered() {
        let mut d = Depacketizer::new(1 << 20);
        let mut seq = 100;
        let key = annexb(&[SPS, PPS, &slice(5, 3000, 1)]);
        feed(&mut d, &mut seq, 0, &packets(&key, 1000));
        assert!(d.pull().unwrap().keyframe);
        // Lose the middle of a P-frame.
        let p = packets(&annexb(&[&slice(1, 3000, 2)]), 1000);
        feed(&mut d, &mut seq, 3000, &p[..1]);
        seq += 1;
        feed(&mut d, &mut seq, 3000, &p[2..]);
        assert!(d.pull().is_none());
        assert!(d.waiting_keyframe());
        // A whole P-frame is not decodable now.
        feed(
            &mut d,
            &mut seq,
            6000,
            &packets(&annexb(&[&slice(1, 30, 3)]), 1000),
        );
        assert!(d.pull().is_none());
        // An IDR without in-band parameter sets is completed from the remembered ones.
        let idr = slice(5, 40, 4);
        feed(&mut d, &mut seq, 9000, &packets(&annexb(&[&idr]), 1000));
        let got = d.pull().expect("keyframe after loss");
        assert!(got.keyframe);
        assert_eq!(got.data, annexb(&[SPS, PPS, &idr]));
        let s = d.stats();
        assert_eq!(
            (s.packets_lost, s.frames_incomplete, s.frames_undecodable),
            (1, 1, 1)
        );
    }

    #[test]
    fn an_idr_before_any_parameter_set_is_not_a_keyframe() {
        let mut d = Depacketizer::new(1 << 20);
        let mut seq = 0;
        feed(
            &mut d,
            &mut seq,
            0,
            &packets(&annexb(&[&slice(5, 30, 1)]), 1400),
        );
        assert!(d.pull().is_none());
    }

    #[test]
    fn every_truncation_of_every_packet_is_refused_or_harmless() {
        let au = annexb(&[SPS, PPS, &slice(5, 2500, 1)]);
        let pkts = packets(&au, 1000);
        for (k, (p, _)) in pkts.iter().enumerate() {
            for len in 0..p.len() {
                let mut d = Depacketizer::new(1 << 20);
                for (j, (q, m)) in pkts.iter().enumerate() {
                    let q = if j == k { &q[..len] } else { &q[..] };
                    let _ = d.push(j as u16, 0, *m, q);
                    d.check_invariants();
                }
                // A shortened FU-A fragment still parses, so the unit may come out
                // shorter; a shortened STAP-A never comes out as the whole unit.
                if let Some(f) = d.pull() {
                    assert_ne!(f.data, au, "packet {k} cut to {len}");
                }
            }
        }
    }

    #[test]
    fn malformed_stap_a_lengths_are_refused() {
        let cases: &[&[u8]] = &[
            &[0x18],                               // no unit
            &[0x18, 0x00],                         // truncated size
            &[0x18, 0x00, 0x00],                   // size 0
            &[0x18, 0x00, 0x05, 0x67, 0x42],       // size past the end
            &[0x18, 0xff, 0xff, 0x67],             // huge size
            &[0x18, 0x00, 0x01, 0x18],             // nested STAP-A
            &[0x18, 0x00, 0x02, 0x67, 0x42, 0x00], // trailing half size
        ];
        for c in cases {
            let mut d = Depacketizer::new(1 << 20);
            assert!(d.push(0, 0, true, c).is_err(), "{c:02x?}");
            d.check_invariants();
            assert!(d.pull().is_none());
        }
    }

    #[test]
    fn fu_a_start_and_end_bit_abuse_never_yields_a_frame() {
        let key = annexb(&[SPS, PPS, &slice(5, 30, 1)]);
        let cases: &[&[&[u8]]] = &[
            &[&[0x7c, 0xc5, 1, 2]],                   // start and end together
            &[&[0x7c, 0x05, 1, 2], &[0x7c, 0x45, 3]], // no start
            &[&[0x7c, 0x85, 1], &[0x7c, 0x85, 2], &[0x7c, 0x45, 3]], // two starts
            &[&[0x7c, 0x85, 1], &[0x7c, 0x41, 3]],    // type changes midway
            &[&[0x7c, 0x85, 1], &[0x65, 9, 9]],       // single NAL inside a FU-A
            &[&[0x7c, 0x85, 1]],                      // never ends (marker on start)
            &[&[0x7c]],                               // no FU header
            &[&[0x7c, 0x98, 1]],                      // carries a STAP-A
            &[&[0x7d, 0x85, 1]],                      // FU-B
        ];
        for c in cases {
            let mut d = Depacketizer::new(1 << 20);
            let mut seq = 0;
            feed(&mut d, &mut seq, 0, &packets(&key, 1400));
            assert!(d.pull().is_some());
            for (i, p) in c.iter().enumerate() {
                let _ = d.push(seq, 3000, i + 1 == c.len(), p);
                d.check_invariants();
                seq += 1;
            }
            assert!(d.pull().is_none(), "{c:02x?}");
            assert!(d.waiting_keyframe(), "{c:02x?}");
        }
    }

    #[test]
    fn stale_and_duplicate_packets_are_ignored() {
        let mut d = Depacketizer::new(1 << 20);
        let key = packets(&annexb(&[SPS, PPS, &slice(5, 30, 1)]), 1400);
        let _ = d.push(10, 0, false, &key[0].0);
        let _ = d.push(10, 0, false, &key[0].0);
        let _ = d.push(9, 0, false, &key[0].0);
        let _ = d.push(11, 0, true, &key[1].0);
        assert!(d.pull().unwrap().keyframe);
        assert_eq!(d.stats().packets_stale, 2);
    }

    #[test]
    fn oversized_frames_are_dropped_and_bounded() {
        let mut d = Depacketizer::new(2000);
        let mut seq = 0;
        feed(
            &mut d,
            &mut seq,
            0,
            &packets(&annexb(&[SPS, PPS, &slice(5, 5000, 1)]), 1000),
        );
        assert!(d.pull().is_none());
        assert_eq!(d.stats().frames_incomplete, 1);
    }
}
