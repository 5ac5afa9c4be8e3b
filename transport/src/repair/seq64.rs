//! Wire sequence numbers extended to 64 bits, so both wires' repair shares one
//! bookkeeping: RTP's 16-bit sequence number and picam's 32-bit packet counter are
//! both truncations of a 64-bit count that never wraps in practice.
//!
//! As in RFC 3550 appendix A.1, a wire number is placed nearest the highest one seen:
//! within half the wire's range after it is newer, within half the range before it
//! older. Extended numbers start at [`BASE`] (a multiple of every wire's range), so a
//! number from before the first one seen is still positive.

/// Where extended numbers start: far from zero, and a multiple of 2^16 and 2^32 so an
/// extended number's low bits are the wire's.
pub(crate) const BASE: u64 = 1 << 48;

/// The 64-bit number nearest `reference` whose low `bits` bits are `seq`'s (within
/// half the wire's range after it, or before it; never below zero). For machines that
/// keep their own reference (RTP's reorder buffer moves it back on a restart).
pub(crate) fn extend(reference: u64, seq: u64, bits: u32) -> u64 {
    let range = 1u64 << bits.clamp(1, 32);
    let forward = seq.wrapping_sub(reference) & (range - 1);
    if forward < range / 2 {
        reference.saturating_add(forward)
    } else {
        reference.saturating_sub(range - forward)
    }
}

/// Extends a `bits`-wide wire sequence number relative to the highest seen.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Extender {
    bits: u32,
    highest: Option<u64>,
}

impl Extender {
    /// An extender for a wire field of `bits` bits (1 to 32).
    pub(crate) fn new(bits: u32) -> Self {
        debug_assert!((1..=32).contains(&bits));
        Self {
            bits: bits.clamp(1, 32),
            highest: None,
        }
    }

    fn mask(&self) -> u64 {
        (1u64 << self.bits) - 1
    }

    /// The extended number of wire number `seq` (its bits beyond the field's are
    /// ignored), nearest the highest seen; `None` before any was seen.
    pub(crate) fn extend(&self, seq: u64) -> Option<u64> {
        Some(extend(self.highest?, seq, self.bits))
    }

    /// Extends `seq` as [`Self::extend`] does and makes it the highest if it is newer;
    /// the first number seen starts the count.
    pub(crate) fn push(&mut self, seq: u64) -> u64 {
        let ext = self.extend(seq).unwrap_or(BASE + (seq & self.mask()));
        self.highest = Some(self.highest.map_or(ext, |h| h.max(ext)));
        ext
    }

    /// The highest extended number seen.
    #[cfg(test)]
    pub(crate) fn highest(&self) -> Option<u64> {
        self.highest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extends_across_the_wrap_for_16_and_32_bits() {
        for bits in [16u32, 32] {
            let range = 1u64 << bits;
            let mut e = Extender::new(bits);
            assert_eq!(e.extend(5), None);
            let first = e.push(range - 3);
            assert_eq!(first & (range - 1), range - 3);
            // Forward through the wrap, one at a time.
            for i in 1..10u64 {
                let ext = e.push((range - 3 + i) & (range - 1));
                assert_eq!(ext, first + i, "bits {bits} step {i}");
            }
            let highest = e.highest().unwrap();
            // Older numbers (a NACK, a late packet) map below without moving the highest.
            assert_eq!(e.extend((range - 3) & (range - 1)), Some(first));
            assert_eq!(e.push(range - 2), first + 1);
            assert_eq!(e.highest(), Some(highest));
            // Half a range ahead is still ahead; further is behind.
            let low = highest & (range - 1);
            assert_eq!(e.extend(low + range / 2 - 1), Some(highest + range / 2 - 1));
            assert_eq!(
                e.extend((low + range / 2) & (range - 1)),
                Some(highest - range / 2)
            );
        }
    }

    #[test]
    fn the_free_rule_is_the_half_range_rule() {
        // As RTP's reorder buffer extended before it shared this: the signed 16-bit
        // distance from the reference.
        for reference in [1u64 << 32, (1 << 32) + 40_000, (1 << 32) + 65_535, 5] {
            for seq in [0u16, 1, 100, 32_767, 32_768, 40_000, 65_535] {
                let delta = i64::from(seq.wrapping_sub(reference as u16) as i16);
                let want = reference.saturating_add_signed(delta);
                assert_eq!(
                    extend(reference, u64::from(seq), 16),
                    want,
                    "{reference} {seq}"
                );
            }
        }
    }

    #[test]
    fn agrees_with_wrapping_distance() {
        // A spray of 16-bit numbers: each extension is within half a range of the
        // highest, and its low bits are the wire's.
        let mut e = Extender::new(16);
        let mut x = 12345u64;
        for _ in 0..10_000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let seq = (x >> 33) & 0xffff;
            let before = e.highest();
            let ext = e.push(seq);
            assert_eq!(ext & 0xffff, seq);
            if let Some(h) = before {
                assert!(ext.abs_diff(h) <= 1 << 15, "{ext} vs {h}");
            }
        }
    }
}
