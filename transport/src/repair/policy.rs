//! How much parity to send with a frame.
//!
//! On a clean link FEC costs bandwidth for nothing, so none is sent below 0.1 % loss.
//! Otherwise the parity count is the smallest that makes an unrepairable frame rare:
//! 1e-3 for keyframes (losing one costs a long stall), 1e-2 for P-frames (NACK
//! retransmission repairs most of the rest). Losses are modelled as bursts, because
//! Wi-Fi and congested queues drop runs of packets, not independent ones.
//!
//! Parity competes with retransmission. Parity costs bytes on every frame whether or not
//! anything is lost; a resend costs only the lost packet, but a round trip of time. So
//! the loss parity is sized for is the loss that is left after the resends that can
//! still arrive within the frame's deadline ([`resend_rounds`]): on a LAN (RTT well
//! under the deadline) a packet lost at 2 % is resent up to three times, the residual
//! loss 0.02^4 is far below [`CLEAN_LOSS`] and frames get no parity, so repair costs
//! about what the loss costs; on a long path (RTT 60 ms against a 100 ms deadline) no
//! resend arrives in time and parity is sized for the whole measured loss, as before.
//! Keyframes are credited one round fewer: they are paced out over longer (their last
//! packets' resends leave later) and losing one stalls the picture until the next.

use std::time::Duration;

/// Target probability that a keyframe is not repairable by its parity.
const KEYFRAME_TARGET: f64 = 1e-3;
/// Target probability that a P-frame is not repairable by its parity.
const P_FRAME_TARGET: f64 = 1e-2;
/// Below this loss rate no parity is sent.
const CLEAN_LOSS: f64 = 1e-3;
/// Hard cap on parity per frame (the wire field is u16; this bounds encoding work).
const MAX_PARITY: u16 = 255;

/// Time from a packet's send to its loss being NACKed, on top of the one-way delay:
/// the receiver's reorder wait (up to 20 ms when it has seen reordering, ~1 ms on a
/// clean LAN), the NACK timer's granularity and the frame's own pacing ahead of the
/// resend. Generous on purpose: counting a round that cannot arrive costs a frame,
/// sending parity that was not needed costs only bytes.
const NACK_SLACK: Duration = Duration::from_millis(10);
/// More resend rounds than this are not credited: the residual loss is already far
/// below anything parity would be sent for.
const MAX_ROUNDS: u32 = 3;

/// How many resends of one lost packet can arrive within `deadline` of its first send,
/// given the smoothed round trip `rtt` (`None`: not measured yet, so none are counted).
///
/// The first resend arrives after the one-way trip to the receiver, the slack before
/// it NACKs, and a round trip for the NACK and the resend: `1.5 rtt + NACK_SLACK`.
/// Each further one comes one NACK retry interval later (the receivers space repeated
/// NACKs by [`super::nack::retry_interval`]).
pub(crate) fn resend_rounds(rtt: Option<Duration>, deadline: Duration) -> u32 {
    let Some(rtt) = rtt else {
        return 0;
    };
    let retry = super::nack::retry_interval(rtt);
    let mut arrives = rtt.mul_f64(1.5) + NACK_SLACK;
    let mut rounds = 0;
    while rounds < MAX_ROUNDS && arrives <= deadline {
        rounds += 1;
        arrives += retry;
    }
    rounds
}

/// Parity packets for a frame when `rounds` resends of a lost packet can still arrive
/// in time ([`resend_rounds`]): parity only has to cover the packets every resend
/// misses too, `loss^(rounds + 1)` if each resend is lost like any packet (resends are
/// spread over time, so a burst that ate the original rarely eats its resend).
/// Keyframes are credited one round fewer. Below [`CLEAN_LOSS`] of measured loss there
/// is no parity, as in [`parity_count`].
pub(crate) fn parity_with_resends(
    data_packets: u16,
    keyframe: bool,
    loss: f64,
    mean_burst: f64,
    rounds: u32,
) -> u16 {
    let rounds = if keyframe {
        rounds.saturating_sub(1)
    } else {
        rounds
    };
    if rounds == 0 || loss.is_nan() || loss < CLEAN_LOSS {
        return parity_count(data_packets, keyframe, loss, mean_burst);
    }
    let loss = loss.min(0.5);
    let residual = loss.powi(rounds as i32 + 1);
    // One resend round: a lost packet is repaired unless its resend is lost too,
    // whatever the burst length; the residual loss events are single packets.
    let burst = if rounds > 0 { 1.0 } else { mean_burst };
    parity_count_at(data_packets, keyframe, residual, burst)
}

/// Parity packets for a frame of `data_packets` data packets, given the measured
/// `loss` rate (fraction of packets) and `mean_burst` (mean packets per loss event).
///
/// Model: loss events ~ Binomial(k + r, loss / mean_burst), each wiping `mean_burst`
/// packets, so r parity packets repair `floor(r / mean_burst)` events. Returns the
/// smallest r whose failure probability is under the target, capped at
/// `max(2, k / 2)` (`max(2, k)` for keyframes) and 255. `loss` is clamped to
/// `[0, 0.5]` and `mean_burst` to `[1, 16]`; NaN counts as clean / random loss.
pub(crate) fn parity_count(data_packets: u16, keyframe: bool, loss: f64, mean_burst: f64) -> u16 {
    // NaN loss counts as clean (no measurement yet).
    if loss.is_nan() || loss < CLEAN_LOSS {
        return 0;
    }
    parity_count_at(data_packets, keyframe, loss, mean_burst)
}

/// [`parity_count`] without the clean-link cut-off (the residual loss after resends is
/// far below it yet may still call for a parity packet on a large keyframe).
fn parity_count_at(data_packets: u16, keyframe: bool, loss: f64, mean_burst: f64) -> u16 {
    if loss.is_nan() || loss <= 0.0 || data_packets == 0 {
        return 0;
    }
    let loss = loss.min(0.5);
    let burst = if mean_burst.is_nan() {
        1.0
    } else {
        mean_burst.clamp(1.0, 16.0)
    };
    let (target, cap) = if keyframe {
        (KEYFRAME_TARGET, data_packets.max(2))
    } else {
        (P_FRAME_TARGET, (data_packets / 2).max(2))
    };
    let cap = cap.min(MAX_PARITY);
    let p = loss / burst;
    for r in 0..=cap {
        let n = u32::from(data_packets) + u32::from(r);
        let repairable = (f64::from(r) / burst).floor() as u32;
        // Below the median the tail is at least 1/2: skip the sum (keeps the search
        // linear instead of quadratic at high loss).
        if f64::from(repairable) < (f64::from(n) * p).floor() {
            continue;
        }
        if binomial_tail(n, p, repairable) < target {
            return r;
        }
    }
    cap
}

/// P(X > e) for X ~ Binomial(n, p), with 0 <= p <= 0.5.
///
/// Sums the head P(X <= e) term by term with the ratio recurrence
/// pmf(i+1) = pmf(i) * (n-i)/(i+1) * p/(1-p), starting from (1-p)^n in log space:
/// O(e), no factorials, no overflow. The subtraction from 1 loses about 1e-16
/// absolute, far below the targets compared against.
fn binomial_tail(n: u32, p: f64, e: u32) -> f64 {
    if e >= n {
        return 0.0;
    }
    if p <= 0.0 {
        return 0.0;
    }
    let ratio = p / (1.0 - p);
    let mut pmf = (f64::from(n) * (-p).ln_1p()).exp();
    let mut head = pmf;
    for i in 0..e {
        pmf *= f64::from(n - i) / f64::from(i + 1) * ratio;
        head += pmf;
    }
    (1.0 - head).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binomial_tail_matches_closed_forms() {
        // P(X > 0) = 1 - (1-p)^n.
        let t = binomial_tail(12, 0.02, 0);
        assert!((t - (1.0 - 0.98f64.powi(12))).abs() < 1e-12, "{t}");
        // P(X > 1) = 1 - (1-p)^n - n p (1-p)^(n-1).
        let t = binomial_tail(13, 0.02, 1);
        let want = 1.0 - 0.98f64.powi(13) - 13.0 * 0.02 * 0.98f64.powi(12);
        assert!((t - want).abs() < 1e-12, "{t} vs {want}");
        // Symmetric case: P(X > 5) for n = 10, p = 0.5 is (1 - P(X = 5)) / 2.
        let t = binomial_tail(10, 0.5, 5);
        assert!((t - (1.0 - 252.0 / 1024.0) / 2.0).abs() < 1e-12, "{t}");
        assert_eq!(binomial_tail(10, 0.3, 10), 0.0);
        assert_eq!(binomial_tail(10, 0.0, 0), 0.0);
        // Large n at the highest loss does not underflow into nonsense.
        let t = binomial_tail(510, 0.5, 300);
        assert!(t > 0.0 && t < 1e-3, "{t}");
    }

    #[test]
    fn table() {
        let cases: &[(u16, bool, f64, f64, std::ops::RangeInclusive<u16>)] = &[
            (12, false, 0.0, 1.0, 0..=0),
            (12, true, 0.0, 1.0, 0..=0),
            (12, false, 0.0009, 1.0, 0..=0),
            (12, false, 0.02, 1.0, 1..=3),
            (12, true, 0.02, 1.0, 2..=4),
            (12, false, 0.10, 1.0, 3..=6),
            (1, false, 0.02, 1.0, 0..=1),
            (1, true, 0.02, 1.0, 1..=2),
            (84, false, 0.01, 1.0, 2..=5),
            (84, true, 0.05, 3.0, 10..=40),
            (12, false, 0.5, 1.0, 6..=6),
            (12, true, 0.5, 16.0, 12..=12),
            (2000, true, 0.5, 1.0, 255..=255),
            (0, true, 0.1, 1.0, 0..=0),
            (12, false, f64::NAN, 1.0, 0..=0),
            (12, false, 0.02, f64::NAN, 1..=3),
            (12, false, 7.0, -3.0, 6..=6),
        ];
        for (k, key, loss, burst, want) in cases {
            let r = parity_count(*k, *key, *loss, *burst);
            assert!(
                want.contains(&r),
                "k={k} key={key} loss={loss} burst={burst}: r={r}, want {want:?}"
            );
        }
    }

    #[test]
    fn monotone_in_loss_and_keyframes_get_more() {
        for k in [1u16, 2, 5, 12, 40, 84, 300, 2000] {
            for burst in [1.0, 1.5, 3.0, 8.0] {
                let mut last = (0, 0);
                for step in 0..=500 {
                    let loss = f64::from(step) / 1000.0;
                    let p = parity_count(k, false, loss, burst);
                    let key = parity_count(k, true, loss, burst);
                    assert!(
                        key >= p,
                        "k={k} burst={burst} loss={loss}: key {key} < p {p}"
                    );
                    assert!(
                        p >= last.0 && key >= last.1,
                        "k={k} burst={burst} loss={loss}"
                    );
                    assert!(p <= (k / 2).clamp(2, 255) && key <= k.clamp(2, 255));
                    last = (p, key);
                }
            }
        }
    }

    #[test]
    fn grows_with_burst_length() {
        for k in [12u16, 40, 84] {
            for key in [false, true] {
                let random = parity_count(k, key, 0.03, 1.0);
                let bursty = parity_count(k, key, 0.03, 4.0);
                let very = parity_count(k, key, 0.03, 8.0);
                assert!(
                    random <= bursty && bursty <= very,
                    "k={k} key={key}: {random} {bursty} {very}"
                );
                assert!(random < very, "k={k} key={key}: {random} {very}");
            }
        }
    }

    #[test]
    fn resend_rounds_follow_the_round_trip_against_the_deadline() {
        let d = Duration::from_millis;
        let cases = [
            (None, d(100), 0),
            (Some(Duration::from_micros(100)), d(100), MAX_ROUNDS),
            (Some(d(5)), d(100), MAX_ROUNDS),
            (Some(d(20)), d(100), 3),
            (Some(d(30)), d(100), 2),
            // The long path: 1.5 x 60 + 10 = 100 ms is just in time, 61 is not.
            (Some(d(61)), d(100), 0),
            (Some(d(200)), d(100), 0),
            (Some(d(1)), d(5), 0),
        ];
        for (rtt, deadline, want) in cases {
            assert_eq!(resend_rounds(rtt, deadline), want, "{rtt:?} {deadline:?}");
        }
    }

    #[test]
    fn resends_that_fit_take_the_place_of_parity() {
        for k in [1u16, 12, 40, 84] {
            for key in [false, true] {
                for (loss, burst) in [(0.005, 1.0), (0.02, 1.0), (0.05, 3.0), (0.2, 1.0)] {
                    let none = parity_with_resends(k, key, loss, burst, 0);
                    assert_eq!(none, parity_count(k, key, loss, burst));
                    let mut last = none;
                    for rounds in 1..=MAX_ROUNDS {
                        let r = parity_with_resends(k, key, loss, burst, rounds);
                        assert!(r <= last, "k={k} key={key} loss={loss} rounds={rounds}");
                        last = r;
                    }
                }
            }
            // 2 % random loss with resends: little or no parity on P-frames, one round fewer on
            // keyframes (so one round leaves them their full parity).
            // (A P-frame of 13 packets, 720p30 at 4 Mbit/s, gets none; a larger one
            // may get one packet for the 4e-4 left after the resend.)
            assert!(parity_with_resends(k, false, 0.02, 1.0, 1) <= u16::from(k > 13));
            assert_eq!(
                parity_with_resends(k, true, 0.02, 1.0, 1),
                parity_count(k, true, 0.02, 1.0)
            );
            assert!(parity_with_resends(k, true, 0.02, 1.0, 2) <= 1, "k={k}");
        }
        assert_eq!(parity_with_resends(12, false, 0.0, 1.0, 3), 0);
        assert_eq!(parity_with_resends(12, false, f64::NAN, 1.0, 3), 0);
    }

    #[test]
    fn grows_with_frame_size() {
        let mut last = 0;
        for k in 1..=400u16 {
            let r = parity_count(k, true, 0.02, 1.0);
            assert!(r + 1 >= last, "k={k}: {r} after {last}");
            last = last.max(r);
        }
        assert!(parity_count(400, true, 0.02, 1.0) > parity_count(10, true, 0.02, 1.0));
    }
}
