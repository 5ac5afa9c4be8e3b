//! Per-frame Reed-Solomon forward error correction.
//!
//! A frame of `frame_len` bytes is sent as `k` data fragments of `payload` bytes (the
//! last one shorter). For FEC each fragment is a data shard zero-padded to
//! `shard_bytes`, and `r` recovery (parity) shards of `shard_bytes` each are computed
//! over the `k` data shards. Any `k` of the `k + r` shards rebuild the frame.
//!
//! The code itself is `reed-solomon-simd` (Leopard-style GF(2^16) codec, O(n log n));
//! this module only fixes the geometry, pads and trims, and turns every malformed
//! input into a `None`/[`FecReject`] instead of a panic, since the geometry and the
//! shards come off the network.

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};
use reed_solomon_simd::{ReedSolomonDecoder, ReedSolomonEncoder};

/// Most parity shards one frame may carry, whatever its size: bounds the decoder's
/// work and memory for a frame whose geometry came off the network.
pub(crate) const MAX_PARITY: u16 = 1024;

/// Why a parity packet's geometry was refused (counted by the receiver).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FecReject {
    /// `data` is 0: every frame has at least one data fragment.
    NoData,
    /// `parity` is 0: a parity packet cannot describe a frame without parity.
    NoParity,
    /// `shard_bytes` is 0 or odd (the codec works on 16-bit symbols).
    BadShardSize,
    /// `frame_len` exceeds the receiver's frame size limit.
    FrameTooLarge,
    /// `frame_len` cannot be cut into `data` shards of `shard_bytes`.
    Inconsistent,
    /// More parity than the cap (`data.max(8)` and [`MAX_PARITY`]).
    TooMuchParity,
    /// The codec does not support this `(data, parity)` combination.
    Unsupported,
}

/// The FEC layout of one frame, as carried in every parity packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Geometry {
    /// Number of data fragments (`k`).
    pub data: u16,
    /// Number of parity shards (`r`).
    pub parity: u16,
    /// Size of every shard; equals the fragment payload size when `data > 1`.
    pub shard_bytes: u16,
    /// Frame size in bytes.
    pub frame_len: u32,
}

/// `n` rounded up to the next even number (the codec needs even shard sizes).
fn round_up_even(n: usize) -> usize {
    n.saturating_add(n & 1)
}

impl Geometry {
    /// The geometry the sender uses for a frame of `frame_len` bytes cut into
    /// fragments of `payload` bytes, with `parity` recovery shards.
    ///
    /// `payload` must be even and at least 2 (the sender rounds it down); values that
    /// do not fit the wire fields saturate, so the result then fails [`validate`].
    ///
    /// [`validate`]: Geometry::validate
    pub(crate) fn for_frame(frame_len: usize, payload: usize, parity: u16) -> Geometry {
        debug_assert!(payload >= 2 && payload % 2 == 0, "payload {payload}");
        // A zero payload would divide by zero; it is a sender bug, not network input.
        let payload = payload.max(2);
        let data = frame_len.div_ceil(payload).max(1);
        let shard_bytes = round_up_even(frame_len.min(payload)).max(2);
        Geometry {
            data: u16::try_from(data).unwrap_or(u16::MAX),
            parity,
            shard_bytes: u16::try_from(shard_bytes).unwrap_or(u16::MAX),
            frame_len: u32::try_from(frame_len).unwrap_or(u32::MAX),
        }
    }

    /// Checks that the geometry is one a correct sender could have produced, within
    /// the receiver's `max_frame_bytes`.
    pub(crate) fn validate(&self, max_frame_bytes: usize) -> Result<(), FecReject> {
        let (k, r, shard) = (self.data, self.parity, self.shard_bytes);
        if k == 0 {
            return Err(FecReject::NoData);
        }
        if r == 0 {
            return Err(FecReject::NoParity);
        }
        if shard == 0 || shard % 2 != 0 {
            return Err(FecReject::BadShardSize);
        }
        if u64::from(self.frame_len) > max_frame_bytes as u64 {
            return Err(FecReject::FrameTooLarge);
        }
        let len = u64::from(self.frame_len);
        let consistent = if k == 1 {
            // One fragment: the shard is the frame rounded up to even, and at least 2
            // (a 0-byte frame is one empty fragment padded to 2).
            u64::from(shard) == (len + (len & 1)).max(2)
        } else {
            // Several fragments: all but the last are full, the last is non-empty.
            let shard = u64::from(shard);
            len > (u64::from(k) - 1) * shard && len <= u64::from(k) * shard
        };
        if !consistent {
            return Err(FecReject::Inconsistent);
        }
        if r > k.max(8) || r > MAX_PARITY {
            return Err(FecReject::TooMuchParity);
        }
        if !ReedSolomonEncoder::supports(usize::from(k), usize::from(r)) {
            return Err(FecReject::Unsupported);
        }
        Ok(())
    }

    /// Wire length of data fragment `index` (the last one is the remainder).
    /// Only meaningful for a validated geometry.
    fn fragment_len(&self, index: u16) -> usize {
        let shard = usize::from(self.shard_bytes);
        if index + 1 < self.data {
            shard
        } else {
            // Validated: (k-1)*shard < frame_len <= k*shard, or k == 1.
            (self.frame_len as usize).saturating_sub(usize::from(self.data - 1) * shard)
        }
    }
}

/// A reusable parity encoder: keeps the codec's working memory and the padding buffer
/// between frames, so a steady stream of same-sized frames allocates only the output.
#[derive(Default)]
pub(crate) struct FecEncoder {
    /// The codec, created on first use and `reset` to each frame's geometry after.
    rs: Option<ReedSolomonEncoder>,
    /// Scratch for the zero-padded last shard.
    pad: Vec<u8>,
}

impl FecEncoder {
    /// A new encoder; allocates nothing until the first frame.
    pub(crate) fn new() -> FecEncoder {
        FecEncoder::default()
    }

    /// The `parity` recovery shards of `frame` cut into fragments of `payload` bytes
    /// (each `shard_bytes` long, in parity index order).
    ///
    /// Returns an empty vector when `parity` is 0 or the geometry is not codable
    /// (sender-side misuse: the caller sizes `parity` with [`Geometry::validate`]).
    pub(crate) fn encode(&mut self, frame: &[u8], payload: usize, parity: u16) -> Vec<Bytes> {
        let geometry = Geometry::for_frame(frame.len(), payload, parity);
        if geometry.validate(usize::MAX).is_err() {
            return Vec::new();
        }
        let (k, r) = (usize::from(geometry.data), usize::from(parity));
        let shard = usize::from(geometry.shard_bytes);
        let rs = match &mut self.rs {
            Some(rs) => match rs.reset(k, r, shard) {
                Ok(()) => rs,
                Err(_) => return Vec::new(),
            },
            slot @ None => match ReedSolomonEncoder::new(k, r, shard) {
                Ok(rs) => slot.insert(rs),
                Err(_) => return Vec::new(),
            },
        };
        // Full fragments go in as slices of the frame; only the last is copied to pad.
        let full = if frame.len() % shard == 0 && !frame.is_empty() {
            k
        } else {
            k - 1
        };
        for chunk in frame[..full * shard].chunks_exact(shard) {
            if rs.add_original_shard(chunk).is_err() {
                return Vec::new();
            }
        }
        if full < k {
            self.pad.clear();
            self.pad.extend_from_slice(&frame[full * shard..]);
            self.pad.resize(shard, 0);
            if rs.add_original_shard(&self.pad).is_err() {
                return Vec::new();
            }
        }
        let Ok(result) = rs.encode() else {
            return Vec::new();
        };
        // One allocation for all parity shards, split into shared views.
        let mut out = BytesMut::with_capacity(r * shard);
        for recovery in result.recovery_iter() {
            out.extend_from_slice(recovery);
        }
        let mut out = out.freeze();
        (0..r).map(|_| out.split_to(shard)).collect()
    }
}

/// The `parity` recovery shards of `frame` (see [`FecEncoder::encode`]); allocates a
/// fresh codec, so hot paths keep a [`FecEncoder`] instead.
pub(crate) fn parity_shards(frame: &[u8], payload: usize, parity: u16) -> Vec<Bytes> {
    FecEncoder::new().encode(frame, payload, parity)
}

/// Rebuilds the missing data fragments of a frame.
///
/// `data` holds the received data fragments by index, as they came off the wire (full
/// `shard_bytes`, or the remainder for the last); `parity` the received parity shards
/// by parity index. Returns the missing fragments with their exact wire lengths, in
/// index order (empty when nothing is missing).
///
/// Returns `None` when there are fewer than `k` shards in all, the geometry is invalid,
/// or any shard has an out-of-range index or the wrong length: all of these can come
/// from the network, so none panics.
pub(crate) fn recover(
    geometry: &Geometry,
    data: &BTreeMap<u16, Bytes>,
    parity: &BTreeMap<u16, Bytes>,
) -> Option<Vec<(u16, Bytes)>> {
    // Frame size limits are the caller's business (checked on arrival); here only
    // codability matters.
    geometry.validate(usize::MAX).ok()?;
    let (k, r) = (geometry.data, geometry.parity);
    let shard = usize::from(geometry.shard_bytes);
    if data.keys().any(|&i| i >= k) || parity.keys().any(|&i| i >= r) {
        return None;
    }
    if data
        .iter()
        .any(|(&i, d)| d.len() != geometry.fragment_len(i))
        || parity.values().any(|p| p.len() != shard)
    {
        return None;
    }
    if data.len() == usize::from(k) {
        return Some(Vec::new());
    }
    if data.len() + parity.len() < usize::from(k) {
        return None;
    }
    let mut rs = ReedSolomonDecoder::new(usize::from(k), usize::from(r), shard).ok()?;
    let mut pad = Vec::new();
    for (&i, fragment) in data {
        if fragment.len() == shard {
            rs.add_original_shard(usize::from(i), fragment).ok()?;
        } else {
            pad.clear();
            pad.extend_from_slice(fragment);
            pad.resize(shard, 0);
            rs.add_original_shard(usize::from(i), &pad).ok()?;
        }
    }
    for (&i, shard) in parity {
        rs.add_recovery_shard(usize::from(i), shard).ok()?;
    }
    let result = rs.decode().ok()?;
    let mut missing = Vec::with_capacity(usize::from(k) - data.len());
    for i in (0..k).filter(|i| !data.contains_key(i)) {
        let restored = result.restored_original(usize::from(i))?;
        let len = geometry.fragment_len(i);
        missing.push((i, Bytes::copy_from_slice(restored.get(..len)?)));
    }
    Some(missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic, non-repeating test frame.
    fn frame(len: usize, seed: u32) -> Vec<u8> {
        let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect()
    }

    /// The data fragments as the sender puts them on the wire.
    fn fragments(frame: &[u8], payload: usize) -> Vec<Bytes> {
        if frame.is_empty() {
            return vec![Bytes::new()];
        }
        frame.chunks(payload).map(Bytes::copy_from_slice).collect()
    }

    /// Drops the data fragments in `lost_data` and parity shards in `lost_parity`, then
    /// recovers and checks the result against the originals.
    fn check_recovery(
        g: &Geometry,
        frags: &[Bytes],
        parity: &[Bytes],
        lost_data: &[u16],
        lost_parity: &[u16],
    ) -> Option<()> {
        let data: BTreeMap<u16, Bytes> = (0..g.data)
            .filter(|i| !lost_data.contains(i))
            .map(|i| (i, frags[usize::from(i)].clone()))
            .collect();
        let par: BTreeMap<u16, Bytes> = (0..g.parity)
            .filter(|i| !lost_parity.contains(i))
            .map(|i| (i, parity[usize::from(i)].clone()))
            .collect();
        let got = recover(g, &data, &par)?;
        let mut want: Vec<u16> = lost_data.to_vec();
        want.sort_unstable();
        want.dedup();
        assert_eq!(got.iter().map(|(i, _)| *i).collect::<Vec<_>>(), want);
        for (i, bytes) in got {
            assert_eq!(bytes, frags[usize::from(i)], "fragment {i} of {g:?}");
        }
        Some(())
    }

    /// Tiny deterministic generator for sampled loss patterns.
    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((self.0 >> 33) % n as u64) as usize
        }
    }

    #[test]
    fn geometry_for_frame_matches_the_wire_rules() {
        let cases = [
            // (frame_len, payload, data, shard_bytes)
            (0, 1200, 1, 2),
            (1, 1200, 1, 2),
            (2, 1200, 1, 2),
            (3, 1200, 1, 4),
            (1200, 1200, 1, 1200),
            (1201, 1200, 2, 1200),
            (2400, 1200, 2, 1200),
            (100_000, 1200, 84, 1200),
            (65_534, 65_534, 1, 65_534),
        ];
        for (len, payload, data, shard) in cases {
            let g = Geometry::for_frame(len, payload, 3);
            assert_eq!((g.data, g.shard_bytes), (data, shard), "{len}/{payload}");
            assert_eq!(g.frame_len as usize, len);
            assert_eq!(g.validate(1 << 20), Ok(()), "{g:?}");
        }
    }

    #[test]
    fn round_trips_and_recovers_every_loss_pattern_up_to_r() {
        let cases: &[(usize, usize, u16)] = &[
            (0, 1200, 1),
            (0, 1200, 2),
            (1, 1200, 1),
            (1, 2, 2),
            (7, 1200, 3),
            (1200, 1200, 2),
            (1201, 1200, 2),
            (2399, 1200, 3),
            (2400, 1200, 1),
            (5000, 64, 8),
            (1000, 100, 4),
            (333, 2, 8),
        ];
        for (n, &(len, payload, r)) in cases.iter().enumerate() {
            let f = frame(len, n as u32);
            let frags = fragments(&f, payload);
            let g = Geometry::for_frame(len, payload, r);
            assert_eq!(usize::from(g.data), frags.len());
            let parity = parity_shards(&f, payload, r);
            assert_eq!(parity.len(), usize::from(r));
            assert!(parity.iter().all(|p| p.len() == usize::from(g.shard_bytes)));
            let total = usize::from(g.data + r);
            // Every subset of lost shards (data and parity) of size <= r, when small.
            if total <= 16 {
                for mask in 0u32..1 << total {
                    if mask.count_ones() > u32::from(r) {
                        continue;
                    }
                    let lost: Vec<u16> = (0..total as u16).filter(|i| mask >> i & 1 == 1).collect();
                    let lost_data: Vec<u16> =
                        lost.iter().copied().filter(|&i| i < g.data).collect();
                    let lost_parity: Vec<u16> = lost
                        .iter()
                        .filter(|&&i| i >= g.data)
                        .map(|&i| i - g.data)
                        .collect();
                    check_recovery(&g, &frags, &parity, &lost_data, &lost_parity)
                        .unwrap_or_else(|| panic!("{g:?} lost {lost:?}"));
                }
            } else {
                let mut rng = Rng(n as u64);
                for _ in 0..50 {
                    let lost_data: Vec<u16> = (0..r)
                        .map(|_| rng.below(usize::from(g.data)) as u16)
                        .collect();
                    check_recovery(&g, &frags, &parity, &lost_data, &[]).unwrap();
                }
            }
        }
    }

    #[test]
    fn large_frames_recover_sampled_losses() {
        for (len, payload, r) in [(100_000, 1200, 8), (100_000, 1400, 20), (99_999, 1000, 3)] {
            let f = frame(len, 7);
            let frags = fragments(&f, payload);
            let g = Geometry::for_frame(len, payload, r);
            let parity = parity_shards(&f, payload, r);
            let mut rng = Rng(len as u64 + u64::from(r));
            for round in 0..20 {
                // Always include the short last fragment in some rounds.
                let mut lost_data: Vec<u16> = (0..r.min(g.data))
                    .map(|_| rng.below(usize::from(g.data)) as u16)
                    .collect();
                if round % 2 == 0 {
                    lost_data[0] = g.data - 1;
                }
                lost_data.sort_unstable();
                lost_data.dedup();
                // Lose parity too, up to the total budget of r.
                let spare = usize::from(r) - lost_data.len();
                let lost_parity: Vec<u16> = (0..spare as u16).collect();
                check_recovery(&g, &frags, &parity, &lost_data, &lost_parity).unwrap();
            }
        }
    }

    #[test]
    fn one_loss_too_many_is_none() {
        for (len, payload, r) in [(0, 1200, 1), (5000, 1000, 2), (100_000, 1200, 4)] {
            let f = frame(len, 1);
            let frags = fragments(&f, payload);
            let g = Geometry::for_frame(len, payload, r);
            let parity = parity_shards(&f, payload, r);
            // r + 1 data fragments lost (or all of them, for small frames).
            let lost: Vec<u16> = (0..(r + 1).min(g.data)).collect();
            let spare = usize::from(r + 1) - lost.len();
            let lost_parity: Vec<u16> = (0..spare as u16).collect();
            assert_eq!(
                check_recovery(&g, &frags, &parity, &lost, &lost_parity),
                None
            );
        }
    }

    #[test]
    fn nothing_missing_is_empty() {
        let f = frame(3000, 2);
        let frags = fragments(&f, 1000);
        let g = Geometry::for_frame(3000, 1000, 2);
        let parity = parity_shards(&f, 1000, 2);
        assert_eq!(check_recovery(&g, &frags, &parity, &[], &[1]), Some(()));
    }

    #[test]
    fn malformed_geometry_is_rejected() {
        let g = |data, parity, shard_bytes, frame_len| Geometry {
            data,
            parity,
            shard_bytes,
            frame_len,
        };
        let cases = [
            (g(0, 1, 2, 0), Err(FecReject::NoData)),
            (g(1, 0, 2, 0), Err(FecReject::NoParity)),
            (g(1, 1, 0, 0), Err(FecReject::BadShardSize)),
            (g(2, 1, 1201, 2000), Err(FecReject::BadShardSize)),
            (g(2, 1, 1200, 2_000_000), Err(FecReject::FrameTooLarge)),
            (g(2, 1, 1200, 1200), Err(FecReject::Inconsistent)),
            (g(2, 1, 1200, 2401), Err(FecReject::Inconsistent)),
            (g(1, 1, 1200, 5), Err(FecReject::Inconsistent)),
            (g(1, 1, 4, 0), Err(FecReject::Inconsistent)),
            (g(1, 1, 2, 3), Err(FecReject::Inconsistent)),
            (g(3, 9, 1200, 3000), Err(FecReject::TooMuchParity)),
            (g(2000, 1025, 2, 4000), Err(FecReject::TooMuchParity)),
            (g(65_535, 1024, 2, 131_070), Err(FecReject::Unsupported)),
            (g(1, 1, 2, 0), Ok(())),
            (g(1, 8, 2, 1), Ok(())),
            (g(3, 8, 1200, 3000), Ok(())),
            (g(2000, 1024, 2, 4000), Ok(())),
            (
                g(u16::MAX, u16::MAX, u16::MAX, u32::MAX),
                Err(FecReject::BadShardSize),
            ),
            (
                g(u16::MAX, u16::MAX, 65_534, u32::MAX),
                Err(FecReject::FrameTooLarge),
            ),
        ];
        for (geometry, want) in cases {
            assert_eq!(geometry.validate(1 << 20), want, "{geometry:?}");
            // recover refuses the same geometries without panicking.
            if want.is_err() && want != Err(FecReject::FrameTooLarge) {
                assert_eq!(recover(&geometry, &BTreeMap::new(), &BTreeMap::new()), None);
            }
        }
    }

    #[test]
    fn wrong_shard_lengths_or_indexes_are_none() {
        let f = frame(2500, 3);
        let frags = fragments(&f, 1000);
        let g = Geometry::for_frame(2500, 1000, 2);
        let parity = parity_shards(&f, 1000, 2);
        let good_data: BTreeMap<u16, Bytes> = [(0, frags[0].clone()), (2, frags[2].clone())].into();
        let good_parity: BTreeMap<u16, Bytes> = [(0, parity[0].clone())].into();
        assert!(recover(&g, &good_data, &good_parity).is_some());

        let mut data = good_data.clone();
        data.insert(0, frags[0].slice(..999));
        assert_eq!(
            recover(&g, &data, &good_parity),
            None,
            "short full fragment"
        );
        let mut data = good_data.clone();
        data.insert(2, frags[1].clone());
        assert_eq!(
            recover(&g, &data, &good_parity),
            None,
            "last fragment full-size"
        );
        let mut data = good_data.clone();
        data.insert(2, Bytes::new());
        assert_eq!(
            recover(&g, &data, &good_parity),
            None,
            "empty last fragment"
        );
        let par: BTreeMap<u16, Bytes> = [(0, parity[0].slice(..998))].into();
        assert_eq!(recover(&g, &good_data, &par), None, "short parity");
        let par: BTreeMap<u16, Bytes> = [(0, Bytes::from(vec![0; 1002]))].into();
        assert_eq!(recover(&g, &good_data, &par), None, "long parity");
        let par: BTreeMap<u16, Bytes> = [(2, parity[0].clone())].into();
        assert_eq!(
            recover(&g, &good_data, &par),
            None,
            "parity index out of range"
        );
        let mut data = good_data.clone();
        data.insert(3, frags[0].clone());
        assert_eq!(
            recover(&g, &data, &good_parity),
            None,
            "data index out of range"
        );
        // Too few shards.
        assert_eq!(recover(&g, &good_data, &BTreeMap::new()), None);
    }

    #[test]
    fn encoder_is_reusable_across_geometries() {
        let mut enc = FecEncoder::new();
        for (n, (len, payload, r)) in [
            (5000, 1000, 2),
            (10, 1000, 1),
            (100_000, 1200, 5),
            (5000, 1000, 2),
        ]
        .into_iter()
        .enumerate()
        {
            let f = frame(len, n as u32);
            assert_eq!(enc.encode(&f, payload, r), parity_shards(&f, payload, r));
        }
        assert!(enc.encode(&frame(10, 0), 1000, 0).is_empty());
    }
}
