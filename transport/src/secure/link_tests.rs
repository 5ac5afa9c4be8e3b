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
    // A flood of HELLOs is answered at the HELLO rate at most.
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
    assert!(answered <= HELLO_BURST as usize, "{answered}");
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
fn the_sender_retries_unanswered_hellos_and_rehandshakes_after_silence() {
    let start = Instant::now();
    let key = Psk::from_bytes([3; 32]);
    let mut i = Initiator::new(key.clone(), 77);
    let mut buf = Vec::new();
    let mut sent = Vec::new();
    let mut now = start;
    for _ in 0..8 {
        if i.poll_handshake(now, 1, &mut buf) {
            sent.push(now - start);
        }
        now = i.next_timeout(now).unwrap();
    }
    assert_eq!(sent[..4], [0, 250, 750, 1250].map(Duration::from_millis));
    assert!(sent.windows(2).all(|w| w[1] - w[0] <= HELLO_RETRY_MAX));
    // Answered: quiet until the receiver goes silent for REHANDSHAKE_AFTER.
    let mut r = Responder::new(key);
    assert!(handshake(&mut i, &mut r, now, 100));
    assert_eq!(i.next_timeout(now), Some(now + REHANDSHAKE_AFTER));
    assert!(!i.poll_handshake(now + Duration::from_secs(1), 101, &mut buf));
    assert!(i.poll_handshake(now + REHANDSHAKE_AFTER, 102, &mut buf));
    assert!(i.established(), "old keys stay in use meanwhile");
}
