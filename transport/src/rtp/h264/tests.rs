//! Packetizer and depacketizer tests: round trips, loss, and malformed payloads.

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
