//! Fragment + reassemble throughput: a real encoded keyframe and P-frame at 720p and
//! 1080p through Sender -> Receiver, against a plain copy of the same bytes (the
//! baseline: the least any transport must do).

use std::time::Instant;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use transport::{Receiver, ReceiverConfig, Sender, SenderConfig};

fn fragment_and_reassemble(c: &mut Criterion) {
    let mut group = c.benchmark_group("fragment_reassemble");
    for (name, w, h, bitrate) in benches::SIZES {
        let frames = benches::encoded_frames(w, h, bitrate, 2);
        for (kind, frame) in [("keyframe", &frames[0]), ("pframe", &frames[1])] {
            let id = format!("{name}_{kind}_{}B", frame.data.len());
            group.throughput(Throughput::Bytes(frame.data.len() as u64));
            group.bench_function(BenchmarkId::new("transport", &id), |b| {
                let mut sender = Sender::new(
                    SenderConfig {
                        max_packet: 1400,
                        ..Default::default()
                    },
                    7,
                );
                let mut receiver = Receiver::new(ReceiverConfig::default());
                let mut buf = Vec::with_capacity(2048);
                let t0 = Instant::now();
                // Prime with a keyframe so the receiver emits (and assembles) P-frames too.
                sender.handle_frame(t0, frames[0].clone());
                while sender.poll_transmit(t0, &mut buf) {
                    receiver.handle_packet(t0, None, &buf);
                }
                assert!(receiver.poll_frame().is_some(), "keyframe not emitted");
                b.iter(|| {
                    sender.handle_frame(t0, frame.clone());
                    while sender.poll_transmit(t0, &mut buf) {
                        receiver.handle_packet(t0, None, &buf);
                    }
                    let out = receiver.poll_frame();
                    debug_assert!(out.is_some());
                    std::hint::black_box(out);
                });
            });
            group.bench_function(BenchmarkId::new("memcpy_baseline", &id), |b| {
                b.iter(|| std::hint::black_box(frame.data.to_vec()));
            });
        }
    }
    group.finish();
}

criterion_group!(benches, fragment_and_reassemble);
criterion_main!(benches);
