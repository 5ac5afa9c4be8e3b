//! Unit tests of `wire/mod.rs`.

use super::*;

fn fragment() -> FragmentHeader {
    FragmentHeader {
        session: 0xA1B2_C3D4,
        seq: u32::MAX - 1,
        frame: u32::MAX,
        index: 2,
        count: 3,
        parity: 1,
        keyframe: true,
        is_parity: false,
        retransmit: true,
        frame_len: 70_000,
        capture_us: 1_790_000_000_000_001,
    }
}

#[test]
fn fragment_round_trips() {
    let mut out = Vec::new();
    fragment().write(&mut out);
    assert_eq!(out.len(), FRAGMENT_HEADER);
    out.extend_from_slice(b"payload");
    assert_eq!(
        parse(&out).unwrap(),
        Packet::Fragment(fragment(), b"payload")
    );
}

#[test]
fn feedback_round_trips() {
    let mut out = Vec::new();
    write_keyframe_request(&mut out, 9, Some(77));
    assert_eq!(out.len(), KEYFRAME_REQUEST_LEN);
    assert_eq!(
        parse(&out).unwrap(),
        Packet::KeyframeRequest {
            session: 9,
            highest_seen: Some(77)
        }
    );
    out.clear();
    write_keyframe_request(&mut out, 9, None);
    assert_eq!(
        parse(&out).unwrap(),
        Packet::KeyframeRequest {
            session: 9,
            highest_seen: None
        }
    );
    out.clear();
    write_bye(&mut out, 4);
    assert_eq!(parse(&out).unwrap(), Packet::Bye { session: 4 });
}

#[test]
fn report_ping_and_pong_round_trip() {
    let mut out = Vec::new();
    let arrivals: Vec<Arrival> = (0..60)
        .map(|i| Arrival {
            frame: i,
            index: i as u16 * 3,
            at_us: 1_000_000 + i as u64 * 100,
        })
        .collect();
    let counts = SequenceCounts {
        highest: 77,
        received: 1234,
        loss_events: 3,
    };
    write_report(&mut out, 5, Some(59), Some(counts), 2_000_000, &arrivals);
    assert_eq!(out.len(), REPORT_HEADER + MAX_REPORT_ENTRIES * REPORT_ENTRY);
    assert_eq!(
        REPORT_HEADER + MAX_REPORT_ENTRIES * REPORT_ENTRY,
        514,
        "fits any MTU"
    );
    let Packet::Report(r) = parse(&out).unwrap() else {
        panic!("not a report")
    };
    assert_eq!(
        (r.session, r.highest_seen, r.sequence, r.report_us),
        (5, Some(59), Some(counts), 2_000_000)
    );
    let got: Vec<_> = r.arrivals().collect();
    // The newest entries are kept when there are too many.
    assert_eq!(got, arrivals[60 - MAX_REPORT_ENTRIES..]);
    for len in 0..out.len() {
        assert!(
            parse(&out[..len]).is_err(),
            "report truncated to {len} bytes accepted"
        );
    }
    let mut bad = out.clone();
    bad[13] = MAX_REPORT_ENTRIES as u8 + 1;
    assert!(matches!(parse(&bad), Err(TransportError::TooLarge { .. })));

    out.clear();
    write_ping(&mut out, 5, 9, 77);
    assert_eq!(out.len(), PING_LEN);
    assert_eq!(
        parse(&out).unwrap(),
        Packet::Ping {
            session: 5,
            id: 9,
            t1: 77
        }
    );
    out.clear();
    write_pong(&mut out, 5, 9, 77, 88, 99);
    assert_eq!(out.len(), PONG_LEN);
    assert_eq!(
        parse(&out).unwrap(),
        Packet::Pong {
            session: 5,
            id: 9,
            t1: 77,
            t2: 88,
            t3: 99
        }
    );
    for len in 0..PONG_LEN {
        assert!(parse(&out[..len]).is_err(), "pong len {len}");
    }
}

#[test]
fn nacks_round_trip_with_bitmaps_across_the_wrap() {
    let missing: Vec<u32> = [u32::MAX - 1, u32::MAX, 0, 3, 15, 16, 40]
        .into_iter()
        .chain((1000..1000 + 17 * 70).step_by(17))
        .collect();
    let packets = write_nacks(7, Some(99), &missing);
    assert_eq!(packets.len(), 2, "more entries than one nack carries");
    let mut got = Vec::new();
    for p in &packets {
        let Ok(Packet::Nack(n)) = parse(p) else {
            panic!("not a nack")
        };
        assert_eq!((n.session, n.done_through), (7, Some(99)));
        got.extend(n.missing());
        for len in 0..p.len() {
            assert!(parse(&p[..len]).is_err(), "nack cut to {len} parsed");
        }
    }
    assert_eq!(got, missing);
    assert_eq!(
        packets[0].len(),
        NACK_HEADER + MAX_NACK_ENTRIES * NACK_ENTRY
    );
    let mut empty = packets[0].clone();
    empty[13] = 0;
    assert!(parse(&empty).is_err(), "a nack with no entries");
}

#[test]
fn refuses_bad_headers() {
    let mut good = Vec::new();
    fragment().write(&mut good);
    let mutate = |at: usize, value: u8| {
        let mut p = good.clone();
        p[at] = value;
        parse(&p).map(|_| ()).unwrap_err()
    };
    assert!(matches!(mutate(0, 0), TransportError::BadMagic(_)));
    assert!(matches!(
        mutate(2, 3),
        TransportError::UnsupportedVersion(3)
    ));
    // An older picam is refused with a message that says so.
    let old = mutate(2, 1);
    assert!(matches!(old, TransportError::OlderVersion(1)));
    assert!(old.to_string().contains("older picam"), "{old}");
    assert!(matches!(mutate(3, 9), TransportError::UnknownKind(9)));
    assert_eq!(good[FRAGMENT_FLAGS_OFFSET], FLAG_KEYFRAME | FLAG_RETRANSMIT);
    assert!(matches!(
        mutate(FRAGMENT_FLAGS_OFFSET, 0x80),
        TransportError::UnsupportedFlags(_)
    ));
    assert!(matches!(
        mutate(FRAGMENT_FLAGS_OFFSET, 0x08),
        TransportError::UnsupportedFlags(_)
    ));
    // index 3 of 3 data fragments; parity index 2 of 1 parity fragment.
    assert!(matches!(mutate(17, 3), TransportError::BadFragment { .. }));
    assert!(matches!(
        mutate(FRAGMENT_FLAGS_OFFSET, FLAG_PARITY),
        TransportError::BadFragment { .. }
    ));
    let mut zero = good.clone();
    zero[18..20].fill(0);
    assert!(matches!(
        parse(&zero),
        Err(TransportError::BadFragment { .. })
    ));
    for len in 0..FRAGMENT_HEADER {
        assert!(
            matches!(parse(&good[..len]), Err(TransportError::Truncated { .. })),
            "len {len}"
        );
    }
}
