//! Wrapping sequence arithmetic for 32-bit frame numbers.
//!
//! Frame numbers wrap at 2^32. `a` is after `b` when the forward distance from `b` to
//! `a` is less than half the range (RFC 1982 serial number arithmetic), so ordering
//! stays correct across the wrap as long as compared numbers are within 2^31.

/// True when `a` comes strictly after `b`.
pub fn after(a: u32, b: u32) -> bool {
    a != b && a.wrapping_sub(b) < 1 << 31
}

/// Signed distance from `b` to `a` (positive when `a` is after `b`).
pub fn distance(a: u32, b: u32) -> i64 {
    a.wrapping_sub(b) as i32 as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_across_the_wrap() {
        let cases = [
            (1, 0, true),
            (0, 1, false),
            (5, 5, false),
            (0, u32::MAX, true),
            (u32::MAX, 0, false),
            (10, u32::MAX - 10, true),
            ((1 << 31) - 1, 0, true),
            (1 << 31, 0, false),
        ];
        for (a, b, want) in cases {
            assert_eq!(after(a, b), want, "after({a}, {b})");
        }
        assert_eq!(distance(2, u32::MAX), 3);
        assert_eq!(distance(u32::MAX, 2), -3);
    }
}
