//! The RFC 6184 packetizer: one access unit into single NAL unit, STAP-A and FU-A
//! payloads.

use media::annexb::nal_units;

use super::{FU_A, STAP_A};

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
