//! What sending a keyframe's packets in batches saves on the sender: one `send_to` per
//! packet against UDP GSO batches (through `quinn-udp`, as `io::udp::UdpCarrier`
//! sends when `batched`), on loopback, with a thread draining the receiving socket.
//! Absolute times depend on the machine; compare the ratio.
//!
//! `cargo bench -p benches --bench batch`

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

/// A 720p keyframe at picam's usual bitrates.
const KEYFRAME: usize = 200_000;
/// picam's datagram payload on a 1500-byte MTU.
const PACKET: usize = 1200;

fn keyframe(c: &mut Criterion) {
    let rx = UdpSocket::bind("127.0.0.1:0").expect("bind receiver");
    rx.set_read_timeout(Some(Duration::from_millis(50)))
        .expect("read timeout");
    let to = rx.local_addr().expect("receiver address");
    let stop = Arc::new(AtomicBool::new(false));
    let drain = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65_536];
            while !stop.load(Ordering::Relaxed) {
                let _ = rx.recv(&mut buf);
            }
        })
    };
    let tx = UdpSocket::bind("127.0.0.1:0").expect("bind sender");
    let data: Vec<u8> = (0..KEYFRAME).map(|i| i as u8).collect();
    let state = quinn_udp::UdpSocketState::new((&tx).into()).expect("socket state");
    let segments = state.max_gso_segments();
    // The batched path must really send (not fail fast): one batch, checked.
    state
        .try_send(
            (&tx).into(),
            &quinn_udp::Transmit {
                destination: to,
                ecn: None,
                contents: &data[..PACKET * segments.min(8)],
                segment_size: Some(PACKET),
                src_ip: None,
            },
        )
        .expect("a GSO batch on loopback");

    let mut group = c.benchmark_group("keyframe_200k_loopback");
    group.throughput(Throughput::Bytes(KEYFRAME as u64));
    group.sample_size(50);
    group.measurement_time(Duration::from_secs(4));
    group.bench_function("send_to_each_packet", |b| {
        b.iter(|| {
            for packet in data.chunks(PACKET) {
                let _ = tx.send_to(packet, to);
            }
        })
    });
    group.bench_function(format!("gso_batches_of_{segments}"), |b| {
        b.iter(|| {
            for batch in data.chunks(PACKET * segments) {
                let transmit = quinn_udp::Transmit {
                    destination: to,
                    ecn: None,
                    contents: batch,
                    segment_size: Some(PACKET),
                    src_ip: None,
                };
                let _ = state.try_send((&tx).into(), &transmit);
            }
        })
    });
    group.finish();
    stop.store(true, Ordering::Relaxed);
    let _ = drain.join();
}

criterion_group!(benches, keyframe);
criterion_main!(benches);
