//! Unit tests of the controller: the standing queue it settles at, the brake, the
//! ramp-up, the floor.

use super::*;

const MS: Duration = Duration::from_millis(1);

/// The sender clock's zero, shared by all runs of a test.
fn epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// A bottleneck of `capacity` bits/s fed at the controller's rate, reported every 30
/// ms: returns the queue (seconds) after `seconds`.
fn run_fluid(c: &mut Controller, t0: Instant, seconds: f64, capacity: f64, queue: &mut f64) {
    let steps = (seconds / 0.030).round() as u32;
    for i in 0..steps {
        let now = t0 + 30 * MS * i;
        let mut sent_us = (now - epoch()).as_micros() as u64;
        // Six samples per report, 5 ms apart.
        for _ in 0..6 {
            let rate = c.rate;
            *queue = (*queue + (rate - capacity) * 0.005 / capacity).max(0.0);
            sent_us += 5_000;
            let arrival = sent_us + 2_000 + (*queue * 1e6) as u64;
            let bytes = (rate.min(capacity) * 0.005 / 8.0) as usize;
            c.on_signal(
                now,
                Signal::Delivered {
                    sent_us,
                    arrival_us: arrival,
                    bytes,
                },
            );
        }
        c.on_signal(now, Signal::Report { loss: 0.0 });
        c.check_invariants();
        if std::env::var("TRACE").is_ok() {
            eprintln!(
                "{:?} rate {:.2} queue {:.1} ms",
                now - t0,
                c.rate / 1e6,
                *queue * 1e3
            );
        }
    }
}

fn config() -> CongestionConfig {
    CongestionConfig::for_stream(8_000_000, 30)
}

#[test]
fn settles_at_a_small_standing_queue_near_the_capacity() {
    let mut c = Controller::new(config());
    let mut q = 0.0;
    let t0 = epoch();
    run_fluid(&mut c, t0, 20.0, 3e6, &mut q);
    // Equilibrium: XREF * RMAX / r = 10 ms * 8 / 3 = 27 ms.
    assert!(q > 0.010 && q < 0.045, "queue {q}");
    assert!(c.rate > 2.7e6 && c.rate < 3.3e6, "rate {}", c.rate);
}

#[test]
fn a_capacity_drop_brakes_to_the_delivered_rate() {
    let mut c = Controller::new(config());
    let mut q = 0.0;
    let t0 = epoch();
    run_fluid(&mut c, t0, 10.0, 8e6, &mut q);
    assert!(
        c.rate > 6e6,
        "reaches the ceiling's neighbourhood: {}",
        c.rate
    );
    let mut peak = 0.0f64;
    for i in 0..20 {
        run_fluid(
            &mut c,
            t0 + Duration::from_secs(10) + 30 * MS * i,
            0.03,
            2e6,
            &mut q,
        );
        peak = peak.max(q);
    }
    assert!(peak < 0.2, "peak queue {peak}");
    assert!(c.rate < 2.5e6, "rate {}", c.rate);
}

#[test]
fn loss_after_repair_cuts_and_the_floor_holds() {
    let mut c = Controller::new(config());
    let t0 = epoch();
    for i in 0..200 {
        c.on_signal(t0 + 100 * MS * i, Signal::Report { loss: 0.2 });
        c.check_invariants();
    }
    assert_eq!(c.target_bitrate(), config().min_bitrate);
    assert!(c.target_fps() < 30, "fps lowered at the floor");
}

#[test]
fn round_trips_drive_it_as_one_way_delays_do() {
    let mut c = Controller::new(config());
    let t0 = epoch();
    for i in 0..50 {
        let now = t0 + 200 * MS * i;
        let rtt = if i < 10 { 2 * MS } else { 150 * MS };
        c.on_signal(now, Signal::RoundTrip(rtt));
        c.on_signal(now, Signal::Report { loss: 0.0 });
    }
    assert!(c.target_bitrate() < 1_000_000, "{}", c.target_bitrate());
}

#[test]
fn the_peer_estimate_is_a_ceiling() {
    let mut c = Controller::new(config());
    let t0 = epoch();
    c.on_signal(t0, Signal::PeerEstimate(1_000_000));
    c.on_signal(t0, Signal::Report { loss: 0.0 });
    assert_eq!(c.target_bitrate(), 1_000_000);
}

#[test]
fn a_drop_brakes_on_the_first_report_whose_newest_deliveries_all_queued() {
    let mut c = Controller::new(config());
    let mut q = 0.0;
    let t0 = epoch();
    run_fluid(&mut c, t0, 10.0, 8e6, &mut q);
    let before = c.rate;
    assert!(before > 6e6, "near the ceiling first: {before}");
    // The capacity drops to 2 Mbit/s: the next report's samples queue more and more,
    // but its largest (21 ms) is below the previous report's, so the queue has not
    // "risen" by the report's own measure.
    let now = t0 + Duration::from_secs(10) + 30 * MS;
    let mut sent_us = (now - epoch()).as_micros() as u64;
    for queue_ms in [6, 9, 12, 15, 18, 21] {
        sent_us += 5_000;
        c.on_signal(
            now,
            Signal::Delivered {
                sent_us,
                arrival_us: sent_us + 2_000 + queue_ms * 1_000,
                bytes: (2e6 * 0.005 / 8.0) as usize,
            },
        );
    }
    c.on_signal(now, Signal::Report { loss: 0.0 });
    assert!(c.braked_within(now, Duration::ZERO), "braked at once");
    assert!(
        c.rate < 2.2e6,
        "to what got through: {} (was {before})",
        c.rate
    );
}

#[test]
fn a_brake_to_a_rate_still_above_the_capacity_is_corrected() {
    let mut c = Controller::new(config());
    let mut q = 0.0;
    let t0 = epoch();
    run_fluid(&mut c, t0, 10.0, 8e6, &mut q);
    // The capacity drops to 2 Mbit/s just inside a report: its first samples still
    // came at 8, so the delivered rate the brake goes to is a mix of the two.
    let now = t0 + Duration::from_secs(10) + 30 * MS;
    // (arrival, queueing delay, bytes since the previous sample): 2 KB per 2 ms at 8
    // Mbit/s, then 1.25 KB per 5 ms at 2, the queue rising.
    let base_us = (now - epoch()).as_micros() as u64;
    for (at_ms, queue_ms, bytes) in [
        (0, 4, 2_000),
        (2, 4, 2_000),
        (4, 4, 2_000),
        (9, 8, 1_250),
        (14, 12, 1_250),
        (19, 16, 1_250),
        (24, 20, 1_250),
    ] {
        let arrival_us = base_us + at_ms * 1_000;
        c.on_signal(
            now,
            Signal::Delivered {
                sent_us: arrival_us - 2_000 - queue_ms * 1_000,
                arrival_us,
                bytes,
            },
        );
    }
    c.on_signal(now, Signal::Report { loss: 0.0 });
    assert!(c.braked_within(now, Duration::ZERO), "braked at once");
    let first = c.rate;
    assert!(
        first > 2.2e6,
        "the mixed window reads above the capacity: {first}"
    );
    // At 2 Mbit/s from here on, the queue grows while the rate is above it: a second
    // brake, to what now gets through, comes once the first one had time to show.
    q = 0.020;
    run_fluid(&mut c, now + 30 * MS, 0.3, 2e6, &mut q);
    assert!(
        c.rate < 2.0e6,
        "corrected to the capacity: {} (first brake {first})",
        c.rate
    );
    assert!(q < 0.080, "the queue it left: {q}");
}
