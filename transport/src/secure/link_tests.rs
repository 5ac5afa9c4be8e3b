//! Unit tests of `secure/link.rs`.

use super::*;

fn addr(n: u8) -> Option<SocketAddr> {
    Some(SocketAddr::from(([10, 0, 0, n], 5000)))
}

/// Runs a handshake between the two; returns false if it did not complete.
fn handshake(i: &mut Initiator, r: &mut Responder, now: Instant, time: u64) -> bool {
    let mut buf = Vec::new();
    if !i.poll_handshake(now, time, &mut buf) {
        return false;
    }
    if r.open(now, addr(1), &buf) != Opened::Handshake {
        return false;
    }
    let Some(_) = r.poll_handshake(&mut buf) else {
        return false;
    };
    i.open(now, &buf) == Opened::Established
}

#[test]
fn seals_both_ways_after_a_handshake_and_the_new_session_waits_for_proof() {
    let now = Instant::now();
    let key = Psk::from_bytes([3; 32]);
    let mut i = Initiator::new(key.clone(), 77);
    let mut r = Responder::new(key.clone());
    let mut buf = b"before keys".to_vec();
    assert!(!i.seal(&mut buf), "nothing leaves before the handshake");
    assert!(handshake(&mut i, &mut r, now, 1));
    assert_eq!(r.authenticated_peer(), None, "pending until data proves it");
    let mut media = b"fragment".to_vec();
    assert!(i.seal(&mut media));
    assert_eq!(
        r.open(now, addr(1), &media),
        Opened::Inner(b"fragment".to_vec())
    );
    assert_eq!(r.authenticated_peer(), addr(1));
    assert_eq!(r.open(now, addr(1), &media), Opened::Dropped, "replay");
    let mut report = b"report".to_vec();
    assert_eq!(r.seal(&mut report), Some(addr(1)));
    assert_eq!(i.open(now, &report), Opened::Inner(b"report".to_vec()));
    let s = r.stats();
    assert_eq!((s.handshakes, s.replayed), (1, 1));
}

#[test]
fn another_key_a_replayed_hello_and_a_flood_leave_the_session_alone() {
    let now = Instant::now();
    let key = Psk::from_bytes([3; 32]);
    let mut i = Initiator::new(key.clone(), 77);
    let mut r = Responder::new(key.clone());
    let mut hello = Vec::new();
    assert!(i.poll_handshake(now, 5, &mut hello));
    assert_eq!(r.open(now, addr(1), &hello), Opened::Handshake);
    let mut welcome = Vec::new();
    r.poll_handshake(&mut welcome).unwrap();
    assert_eq!(i.open(now, &welcome), Opened::Established);
    let mut media = b"m".to_vec();
    i.seal(&mut media);
    assert!(matches!(r.open(now, addr(1), &media), Opened::Inner(_)));
    // The same HELLO again (a replay): refused, nothing answered.
    assert_eq!(r.open(now, addr(9), &hello), Opened::Dropped);
    assert!(r.poll_handshake(&mut welcome).is_none());
    // A sender with another key: its HELLO does not authenticate, no answer.
    let mut intruder = Initiator::new(Psk::from_bytes([4; 32]), 78);
    let mut h2 = Vec::new();
    assert!(intruder.poll_handshake(now, 6, &mut h2));
    assert_eq!(r.open(now, addr(9), &h2), Opened::Dropped);
    assert!(r.poll_handshake(&mut welcome).is_none());
    // A flood of authentic HELLOs older than the newest answered (replays of earlier
    // sessions) is answered at the source's HELLO rate at most.
    let mut newer = Initiator::new(key.clone(), 79);
    let mut h = Vec::new();
    assert!(newer.poll_handshake(now, 1_000_000, &mut h));
    assert_eq!(r.open(now, addr(2), &h), Opened::Handshake);
    while r.poll_handshake(&mut welcome).is_some() {}
    let mut answered = 0;
    for n in 0..1000u64 {
        let mut flood = Initiator::new(key.clone(), 1000 + n as u32);
        let mut h = Vec::new();
        flood.poll_handshake(now, 10 + n, &mut h);
        if r.open(now, addr(9), &h) == Opened::Handshake {
            answered += 1;
        }
        while r.poll_handshake(&mut welcome).is_some() {}
    }
    assert!(answered <= HELLO_BURST_PER_SOURCE as usize, "{answered}");
    // The paired sender's session is untouched.
    let mut more = b"still here".to_vec();
    i.seal(&mut more);
    assert_eq!(
        r.open(now, addr(1), &more),
        Opened::Inner(b"still here".to_vec())
    );
    assert_eq!(r.authenticated_peer(), addr(1));
}

#[test]
fn the_sender_retries_fast_then_backs_off_and_rehandshakes_after_silence() {
    let start = Instant::now();
    let key = Psk::from_bytes([3; 32]);
    let mut i = Initiator::new(key.clone(), 77);
    let mut buf = Vec::new();
    let mut sent = Vec::new();
    let mut now = start;
    for _ in 0..12 {
        if i.poll_handshake(now, 1 + sent.len() as u64, &mut buf) {
            sent.push(now - start);
        }
        i.check_invariants();
        now = i.next_timeout(now).unwrap();
    }
    // Tens of milliseconds at first (a lost HELLO costs about a round trip), then
    // backing off to the cap.
    assert_eq!(
        sent[..9],
        [0, 20, 40, 60, 100, 180, 340, 660, 1160].map(Duration::from_millis)
    );
    assert!(sent.windows(2).all(|w| w[1] - w[0] <= HELLO_RETRY_MAX));
    assert!(i.pending.len() <= HELLOS_IN_PROGRESS);
    // Answered: quiet until the receiver goes silent for REHANDSHAKE_AFTER.
    let mut r = Responder::new(key);
    assert!(handshake(&mut i, &mut r, now, 100));
    assert_eq!(i.next_timeout(now), Some(now + REHANDSHAKE_AFTER));
    assert!(!i.poll_handshake(now + Duration::from_secs(1), 101, &mut buf));
    let again = now + REHANDSHAKE_AFTER;
    assert!(i.poll_handshake(again, 102, &mut buf));
    assert!(i.established(), "old keys stay in use meanwhile");
    // The rehandshake retries fast too (a restarted receiver).
    assert_eq!(
        i.next_timeout(again),
        Some(again + Duration::from_millis(20))
    );
}

/// A HELLO-shaped packet of random bytes: right kind, length and header, no key.
fn forged_hello(session: u32, epoch: u8, seed: u64) -> Vec<u8> {
    let mut out = Vec::new();
    common(&mut out, KIND_HELLO, session);
    out.push(epoch);
    let mut x = seed | 1;
    while out.len() < HELLO_LEN {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.push(x as u8);
    }
    out
}

/// The WELCOME the responder queued, if any.
fn welcome_from(r: &mut Responder) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    r.poll_handshake(&mut buf)?;
    Some(buf)
}

#[test]
fn a_welcome_for_any_hello_in_progress_completes_the_handshake() {
    // The round trip is longer than the retry interval: the answer to the first HELLO
    // arrives after three retries went out. It must not be thrown away.
    let now = Instant::now();
    let key = Psk::from_bytes([3; 32]);
    let mut i = Initiator::new(key.clone(), 77);
    let mut r = Responder::new(key);
    let mut first = Vec::new();
    assert!(i.poll_handshake(now, 10, &mut first));
    let mut retry = Vec::new();
    let mut t = now;
    for n in 0..3 {
        t = i.next_timeout(t).unwrap();
        assert!(i.poll_handshake(t, 11 + n, &mut retry));
    }
    assert_eq!(r.open(now, addr(1), &first), Opened::Handshake);
    let welcome = welcome_from(&mut r).unwrap();
    assert_eq!(i.open(t, &welcome), Opened::Established);
    let mut media = b"after a slow answer".to_vec();
    assert!(i.seal(&mut media));
    assert!(matches!(r.open(t, addr(1), &media), Opened::Inner(_)));
    // Answers to the retries arriving later are stale, not a new session.
    assert_eq!(r.open(t, addr(1), &retry), Opened::Handshake);
    let late = welcome_from(&mut r).unwrap();
    assert_eq!(i.open(t, &late), Opened::Dropped);
    assert_eq!(i.stats().handshakes, 1);
}

#[test]
fn a_forged_welcome_leaves_the_handshake_in_progress() {
    let now = Instant::now();
    let key = Psk::from_bytes([3; 32]);
    let mut i = Initiator::new(key.clone(), 77);
    let mut r = Responder::new(key);
    let mut hello = Vec::new();
    assert!(i.poll_handshake(now, 10, &mut hello));
    assert_eq!(r.open(now, addr(1), &hello), Opened::Handshake);
    let real = welcome_from(&mut r).unwrap();
    // Forged answers for the epoch in progress: random body, short, long, damaged.
    let mut forged = real.clone();
    for b in &mut forged[COMMON_HEADER + 1..] {
        *b = b.wrapping_mul(7).wrapping_add(1);
    }
    let mut damaged = real.clone();
    *damaged.last_mut().unwrap() ^= 1;
    for bad in [
        forged,
        real[..real.len() - 1].to_vec(),
        [real.clone(), vec![0]].concat(),
        damaged,
    ] {
        assert_eq!(i.open(now, &bad), Opened::Dropped);
        assert!(!i.established());
    }
    assert_eq!(i.stats().unauthenticated, 4);
    assert_eq!(i.open(now, &real), Opened::Established);
}

#[test]
fn forged_hellos_spend_no_budget_and_the_real_one_is_answered() {
    // 5,000 forged HELLOs a second from one address (and, for the total budget, from
    // a thousand others), for two seconds; the real sender's HELLOs go in between.
    let start = Instant::now();
    let key = Psk::from_bytes([3; 32]);
    let mut r = Responder::new(key.clone());
    let mut i = Initiator::new(key, 77);
    let mut hello = Vec::new();
    let (mut sent, mut answered) = (0, 0);
    for n in 0..10_000u64 {
        let now = start + Duration::from_micros(200 * n);
        let from = if n % 2 == 0 {
            addr(9)
        } else {
            Some(SocketAddr::from((
                [10, 1, (n % 250) as u8, (n / 250 % 4) as u8],
                6000,
            )))
        };
        let forged = forged_hello(n as u32, n as u8, n);
        assert_eq!(r.open(now, from, &forged), Opened::Dropped);
        r.check_invariants();
        if n % 500 == 250 && i.poll_handshake(now, 1_000 + n, &mut hello) {
            sent += 1;
            if r.open(now, addr(1), &hello) == Opened::Handshake {
                answered += 1;
            }
            while welcome_from(&mut r).is_some() {}
        }
    }
    assert!(sent >= 8, "{sent}");
    assert_eq!(answered, sent, "every real HELLO answered");
    assert_eq!(r.stats().unauthenticated, 10_000);
}

#[test]
fn an_earlier_sessions_hello_replayed_after_each_real_one_does_not_replace_it() {
    let now = Instant::now();
    let key = Psk::from_bytes([3; 32]);
    // Captured from an earlier session (same key, an older sender clock).
    let mut earlier = Initiator::new(key.clone(), 41);
    let mut old = Vec::new();
    for n in 0..4 {
        let mut h = Vec::new();
        assert!(earlier.poll_handshake(now + Duration::from_secs(n), 500 + n, &mut h));
        old.push(h);
    }
    let mut r = Responder::new(key.clone());
    let mut i = Initiator::new(key, 42);
    let mut t = now;
    let mut welcomes = Vec::new();
    for n in 0..4u64 {
        let mut hello = Vec::new();
        assert!(i.poll_handshake(t, 10_000 + n, &mut hello));
        assert_eq!(r.open(t, addr(1), &hello), Opened::Handshake);
        welcomes.push(welcome_from(&mut r).unwrap());
        // The replay, right after it, from the attacker's address.
        assert_eq!(r.open(t, addr(9), &old[n as usize]), Opened::Handshake);
        let _ = welcome_from(&mut r);
        // ... and again: the same HELLO twice is a replay within its session.
        assert_eq!(r.open(t, addr(9), &old[n as usize]), Opened::Dropped);
        r.check_invariants();
        t = i.next_timeout(t).unwrap();
    }
    // The answer to the first real HELLO still completes, and the receiver adopts it.
    assert_eq!(i.open(t, &welcomes[0]), Opened::Established);
    let mut media = b"real".to_vec();
    assert!(i.seal(&mut media));
    assert_eq!(r.open(t, addr(1), &media), Opened::Inner(b"real".to_vec()));
    assert_eq!(r.authenticated_peer(), addr(1));
    assert!(
        r.handshaking_peers().all(|a| Some(a) == addr(9)),
        "the real sender's other handshakes are done with"
    );
}

#[test]
fn replays_fill_the_tables_only_to_their_bounds_and_the_newest_handshake_stays() {
    let now = Instant::now();
    let key = Psk::from_bytes([3; 32]);
    let mut r = Responder::new(key.clone());
    let hello_of = |session: u32, time: u64| {
        let mut i = Initiator::new(key.clone(), session);
        let mut h = Vec::new();
        assert!(i.poll_handshake(now, time, &mut h));
        (i, h)
    };
    // Many distinct old HELLOs (each answered once), from many addresses.
    let replay = |r: &mut Responder, from_session: u32, count: u32| {
        for n in 0..count {
            let (_, h) = hello_of(from_session + n, 100 + n as u64);
            let from = Some(SocketAddr::from(([10, 2, (n / 200) as u8, n as u8], 7000)));
            r.open(now, from, &h);
            while welcome_from(r).is_some() {}
            r.check_invariants();
        }
    };
    replay(&mut r, 1_000, 40);
    let (mut real, hello) = hello_of(77, 1_000_000);
    assert_eq!(r.open(now, addr(1), &hello), Opened::Handshake);
    let welcome = welcome_from(&mut r).unwrap();
    // More old HELLOs after the real one: they evict each other, not it.
    replay(&mut r, 2_000, 300);
    assert!(r.newest_per_session.len() <= SESSIONS_REMEMBERED);
    assert!(r.pending.len() <= HANDSHAKES_IN_PROGRESS);
    assert!(r.source_budgets.len() <= SOURCES_REMEMBERED);
    assert!(r.handshaking_peers().any(|a| Some(a) == addr(1)));
    assert_eq!(real.open(now, &welcome), Opened::Established);
    let mut media = b"m".to_vec();
    real.seal(&mut media);
    assert!(matches!(r.open(now, addr(1), &media), Opened::Inner(_)));
}

#[test]
fn one_source_gets_its_own_budget_and_others_are_still_answered() {
    let now = Instant::now();
    let key = Psk::from_bytes([3; 32]);
    let mut r = Responder::new(key.clone());
    let mut from_one = 0;
    // Old (replayed) HELLOs, so the newest-HELLO rule does not apply: budgets only.
    let mut newest = Initiator::new(key.clone(), 5);
    let mut h = Vec::new();
    newest.poll_handshake(now, 1_000_000, &mut h);
    assert_eq!(r.open(now, addr(2), &h), Opened::Handshake);
    for n in 0..100u32 {
        let mut i = Initiator::new(key.clone(), 100 + n);
        let mut h = Vec::new();
        i.poll_handshake(now, 10 + n as u64, &mut h);
        if r.open(now, addr(9), &h) == Opened::Handshake {
            from_one += 1;
        }
        while welcome_from(&mut r).is_some() {}
    }
    assert_eq!(from_one, HELLO_BURST_PER_SOURCE as usize);
    let mut others = 0;
    for n in 0..100u32 {
        let mut i = Initiator::new(key.clone(), 300 + n);
        let mut h = Vec::new();
        i.poll_handshake(now, 1_000 + n as u64, &mut h);
        let from = Some(SocketAddr::from(([10, 3, 0, n as u8], 7000)));
        if r.open(now, from, &h) == Opened::Handshake {
            others += 1;
        }
        while welcome_from(&mut r).is_some() {}
    }
    // The total budget (its burst, less what the first source spent) bounds the rest;
    // the newest HELLO (addr 2's) did not spend it.
    assert_eq!(others, HELLO_BURST as usize - from_one);
    // A second later the budgets have refilled at their rates.
    let later = now + Duration::from_secs(1);
    let mut i = Initiator::new(key, 999);
    let mut h = Vec::new();
    i.poll_handshake(later, 5_000, &mut h);
    assert_eq!(r.open(later, addr(9), &h), Opened::Handshake);
}

#[test]
fn replays_spoofed_from_the_senders_address_do_not_delay_its_handshake() {
    // A receiver just restarted; an attacker holding 40 HELLOs of earlier sessions
    // replays them in the order they were made, spoofed from the sender's address, to
    // spend that address's budget before the real sender's HELLO arrives.
    let now = Instant::now();
    let key = Psk::from_bytes([3; 32]);
    let mut r = Responder::new(key.clone());
    let captured: Vec<Vec<u8>> = (0..40u32)
        .map(|n| {
            let mut i = Initiator::new(key.clone(), 500 + n);
            let mut h = Vec::new();
            assert!(i.poll_handshake(now, 1_000 + u64::from(n), &mut h));
            h
        })
        .collect();
    for h in &captured {
        r.open(now, addr(1), h);
        while welcome_from(&mut r).is_some() {}
    }
    let mut real = Initiator::new(key, 77);
    let mut hello = Vec::new();
    assert!(real.poll_handshake(now, 5_000_000, &mut hello));
    assert_eq!(r.open(now, addr(1), &hello), Opened::Handshake);
    let welcome = welcome_from(&mut r).unwrap();
    assert_eq!(real.open(now, &welcome), Opened::Established);
}
