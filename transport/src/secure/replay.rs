//! The receiving side of a sealed channel accepts each nonce once: a sliding window
//! over the highest nonce seen, as in IPsec and WireGuard (RFC 6479's idea, with a
//! plain bitmap).

/// Nonces this far behind the highest are still accepted once (reordering on a LAN
/// is a few packets; a keyframe burst reordered in a Wi-Fi driver a few hundred).
const WINDOW: u64 = 1024;

/// Which nonces have been seen.
#[derive(Debug, Clone)]
pub(crate) struct ReplayWindow {
    /// Highest nonce accepted, plus one (0: none yet).
    top: u64,
    /// Bit `i` of word `w`: nonce `top - 1 - (w * 64 + i)` has been seen.
    seen: [u64; (WINDOW / 64) as usize],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self {
            top: 0,
            seen: [0; (WINDOW / 64) as usize],
        }
    }
}

impl ReplayWindow {
    /// Whether `nonce` may be accepted (not seen, not too old). Does not record it:
    /// call [`ReplayWindow::accept`] once the packet has authenticated, so forged
    /// packets cannot move the window.
    pub fn check(&self, nonce: u64) -> bool {
        if nonce >= self.top {
            return true;
        }
        let behind = self.top - 1 - nonce;
        behind < WINDOW && !self.bit(behind)
    }

    /// Records an authenticated `nonce` (which passed `check`).
    pub fn accept(&mut self, nonce: u64) {
        if nonce >= self.top {
            let shift = nonce + 1 - self.top;
            self.shift(shift);
            self.top = nonce + 1;
            self.set(0);
        } else {
            self.set(self.top - 1 - nonce);
        }
    }

    fn bit(&self, behind: u64) -> bool {
        self.seen[(behind / 64) as usize] & (1 << (behind % 64)) != 0
    }

    fn set(&mut self, behind: u64) {
        self.seen[(behind / 64) as usize] |= 1 << (behind % 64);
    }

    /// Moves every bit `by` places further behind.
    fn shift(&mut self, by: u64) {
        if by >= WINDOW {
            self.seen = [0; (WINDOW / 64) as usize];
            return;
        }
        let words = (by / 64) as usize;
        let bits = (by % 64) as u32;
        let n = self.seen.len();
        for i in (0..n).rev() {
            let from = i.checked_sub(words);
            let hi = from.map_or(0, |j| self.seen[j]);
            let lo = from
                .and_then(|j| j.checked_sub(1))
                .map_or(0, |j| self.seen[j]);
            self.seen[i] = if bits == 0 {
                hi
            } else {
                (hi << bits) | (lo >> (64 - bits))
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(w: &mut ReplayWindow, n: u64) -> bool {
        let ok = w.check(n);
        if ok {
            w.accept(n);
        }
        ok
    }

    #[test]
    fn accepts_each_nonce_once_within_the_window() {
        let mut w = ReplayWindow::default();
        assert!(take(&mut w, 0));
        assert!(!take(&mut w, 0), "replayed");
        assert!(take(&mut w, 5));
        assert!(take(&mut w, 3), "late but unseen");
        assert!(!take(&mut w, 3));
        assert!(take(&mut w, 5000));
        assert!(!take(&mut w, 5000 - WINDOW - 1), "older than the window");
        assert!(take(&mut w, 5000 - WINDOW + 1));
        assert!(!take(&mut w, 5000 - WINDOW + 1));
        // A checked but unaccepted (forged) nonce does not move the window.
        assert!(w.check(u64::MAX));
        assert!(take(&mut w, 4999));
    }

    #[test]
    fn matches_a_set_under_random_order() {
        let mut w = ReplayWindow::default();
        let mut seen = std::collections::HashSet::new();
        let mut top = 0u64;
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for i in 0..200_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Mostly advancing, sometimes far back, sometimes far ahead.
            let n = match x % 10 {
                0 => i.saturating_sub(x % 3000),
                1 => i + x % 200,
                _ => i.saturating_sub(x % 40),
            };
            let expect = !seen.contains(&n) && (n >= top || top - 1 - n < WINDOW);
            assert_eq!(take(&mut w, n), expect, "nonce {n} at top {top}");
            if expect {
                seen.insert(n);
                top = top.max(n + 1);
            }
        }
    }
}
