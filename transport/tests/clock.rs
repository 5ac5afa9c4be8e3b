//! The receiver learns the sender's clock offset over the feedback path, so latency is
//! true across two machines whose clocks disagree.

mod common;

use std::time::Duration;

use common::{base, LinkConfig, Pair, PairConfig};
use transport::clock::WallClock;
use transport::{ReceiverConfig, SenderConfig};

#[test]
fn receiver_measures_the_sender_clock_offset_despite_queueing() {
    for offset_ms in [-2_500i64, 0, 700] {
        let start = base();
        let ours = 1_790_000_000_000_000u64;
        let theirs = (ours as i64 + offset_ms * 1000) as u64;
        let mut pair = Pair::new(
            PairConfig {
                keep_clocks: true,
                sender: SenderConfig {
                    clock: WallClock::new(start, theirs),
                    ..Default::default()
                },
                receiver: ReceiverConfig {
                    feedback: transport::FeedbackConfig {
                        clock: WallClock::new(start, ours),
                        ..Default::default()
                    },
                    ..Default::default()
                },
                // Asymmetric jitter on the way back skews single exchanges; the minimum
                // round trip filter must see through it.
                forward: LinkConfig {
                    jitter: Duration::from_millis(3),
                    ..LinkConfig::ideal(Duration::from_millis(4))
                },
                backward: LinkConfig {
                    jitter: Duration::from_millis(30),
                    ..LinkConfig::ideal(Duration::from_millis(4))
                },
                ..PairConfig::default()
            },
            offset_ms.unsigned_abs(),
        );
        assert_eq!(
            pair.receiver.stats().clock_offset_us,
            None,
            "nothing measured yet"
        );
        pair.drive_for(Duration::from_secs(20));
        let stats = pair.receiver.stats();
        let measured = stats.clock_offset_us.expect("offset measured");
        let error_us = (measured - offset_ms * 1000).abs();
        assert!(
            error_us < 3_000,
            "offset {offset_ms} ms measured as {measured} µs"
        );
        let rtt = stats.rtt_us.expect("rtt measured");
        assert!((8_000..25_000).contains(&rtt), "rtt {rtt} µs");
    }
}
