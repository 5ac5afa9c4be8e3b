//! WHEP signalling fed arbitrary bytes: `http::parse_request` on what a connection
//! received, and every request it yields handed to `Signalling::handle`. A panic is a
//! bug, never bad input.
//!
//! Layout: byte 0 picks the peer (low 3 bits: one of 8 IPv4 addresses, or an IPv6 one
//! for 7) and how far the clock moves between requests (high 5 bits, in 50 ms steps);
//! the rest is the connection's bytes, parsed as requests one after another (as if
//! pipelined), so budgets, lockouts and the source table see many requests per input.
//!
//! Checked on every step: a request is consumed whole and within the bounds, every
//! prefix of a parsed request is incomplete (split reads give the same request), the
//! same bytes parse the same way twice, and `check_invariants` holds.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use transport::web::http::{self, parse_request, MAX_BODY, MAX_HEAD};
use transport::web::signalling::{Action, Signalling, SignallingConfig};
use transport::web::token::WebToken;

fuzz_target!(|data: &[u8]| {
    let Some((&control, mut rest)) = data.split_first() else {
        return;
    };
    let peer = match control & 7 {
        7 => IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
        n => IpAddr::V4(Ipv4Addr::new(10, 0, 0, n)),
    };
    let step = Duration::from_millis(50 * u64::from(control >> 3));
    let token = WebToken::from_bytes(*b"0123456789abcdef");
    let mut signalling = Signalling::new(token, SignallingConfig::default());
    let mut now = Instant::now();
    // Bounded: each round consumes at least one byte.
    while !rest.is_empty() {
        let parsed = parse_request(rest);
        assert_eq!(
            format!("{parsed:?}"),
            format!("{:?}", parse_request(rest)),
            "parsing is not deterministic"
        );
        let (request, consumed) = match parsed {
            Ok(Some(done)) => done,
            Ok(None) => {
                assert!(
                    rest.len() <= MAX_HEAD + MAX_BODY,
                    "incomplete past the bounds"
                );
                return;
            }
            Err(err) => {
                let response = http::error_response(&err);
                assert!((400..500).contains(&response.status), "{response:?}");
                let _ = response.encode();
                return;
            }
        };
        assert!(
            consumed > 0 && consumed <= rest.len(),
            "consumed {consumed}"
        );
        assert!(request.body.len() <= MAX_BODY);
        // Split reads: every prefix is incomplete (checked on small requests only,
        // the sweep is quadratic).
        if consumed <= 512 {
            for cut in 0..consumed {
                assert!(
                    matches!(parse_request(&rest[..cut]), Ok(None)),
                    "prefix of {cut} bytes of a {consumed}-byte request is not incomplete"
                );
            }
        }
        match signalling.handle(now, peer, &request) {
            Action::Respond(response) => {
                let wire = response.encode();
                assert!(wire.starts_with(b"HTTP/1.1 "));
            }
            Action::Offer { sdp } => {
                assert!(sdp.starts_with("v=0"));
                let _ = signalling.answer("v1", &sdp).encode();
            }
            Action::Leave { viewer } => {
                assert!(!viewer.is_empty() && viewer.len() <= 64);
                let _ = signalling.left(viewer.len() % 2 == 0).encode();
            }
        }
        signalling.check_invariants();
        rest = &rest[consumed..];
        now += step;
    }
});
