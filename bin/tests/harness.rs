//! The process-test harness itself (`common/`): ports handed out without the
//! bind-then-release race, and readiness read from what is really bound.

mod common;

use std::collections::HashSet;
use std::net::{TcpListener, UdpSocket};
use std::time::Duration;

use common::{free_port, key, port_bound, spawn, wait_for_port, Bound, Scratch};

fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768)
}

/// Ports come from below the ephemeral range, so no socket bound to port 0 (a sender's
/// own, another test's) can be handed one between `free_port` and the test's bind; and
/// one process never hands out the same port twice. (Binding port 0 and releasing it,
/// as before, gave ports inside the range.)
#[test]
fn free_ports_are_distinct_free_and_outside_the_ephemeral_range() {
    let low = ephemeral_low();
    let ports: Vec<u16> = (0..40).map(|_| free_port()).collect();
    let distinct: HashSet<u16> = ports.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        ports.len(),
        "a port handed out twice: {ports:?}"
    );
    for &port in &ports {
        assert!(
            (1024..low).contains(&port),
            "port {port} is not below the ephemeral range (from {low})"
        );
        assert!(
            UdpSocket::bind(("127.0.0.1", port)).is_ok(),
            "UDP {port} busy"
        );
        assert!(
            TcpListener::bind(("127.0.0.1", port)).is_ok(),
            "TCP {port} busy"
        );
    }
    // Port-0 binds, as a picam sender's socket makes, land elsewhere.
    let held: Vec<UdpSocket> = (0..100)
        .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    for s in &held {
        let got = s.local_addr().unwrap().port();
        assert!(
            !distinct.contains(&got),
            "port 0 gave a handed-out port {got}"
        );
    }
}

/// `port_bound` sees a UDP socket and a TCP listener, and not a port nobody holds.
#[test]
fn a_bound_port_is_seen_and_a_free_one_is_not() {
    let port = free_port();
    assert!(!port_bound(Bound::Udp, port));
    assert!(!port_bound(Bound::TcpListening, port));
    let udp = UdpSocket::bind(("127.0.0.1", port)).unwrap();
    assert!(port_bound(Bound::Udp, port));
    assert!(!port_bound(Bound::TcpListening, port));
    drop(udp);
    let tcp = TcpListener::bind(("127.0.0.1", port)).unwrap();
    assert!(port_bound(Bound::TcpListening, port));
    drop(tcp);
    assert!(!port_bound(Bound::TcpListening, port));
}

/// The line `wait_ready` waits for comes once the receiver's socket is bound: a sender
/// started then loses nothing to a socket not yet there.
#[test]
fn a_receiver_is_bound_when_it_says_it_is_ready() {
    let scratch = Scratch::new("harness-ready");
    let key = key(&scratch);
    for (protocol, how) in [("udp", Bound::Udp), ("tcp", Bound::TcpListening)] {
        let port = free_port().to_string();
        let mut recv = spawn(
            &scratch,
            &format!("recv-{protocol}"),
            &[
                "recv",
                "--headless",
                "--bind",
                "127.0.0.1",
                "--port",
                &port,
                "--protocol",
                protocol,
                "--duration",
                "10",
                "--key",
                &key,
            ],
        );
        recv.wait_ready();
        assert!(
            port_bound(how, port.parse().unwrap()),
            "{protocol}: ready before port {port} was bound: {}",
            recv.stderr_now()
        );
        // And a peer's readiness is seen the same way.
        wait_for_port(
            "picam recv",
            how,
            port.parse().unwrap(),
            Duration::from_secs(1),
        );
    }
}
