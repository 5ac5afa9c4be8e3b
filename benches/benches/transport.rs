//! Fragment + reassemble throughput: a real encoded keyframe and P-frame at 720p and
//! 1080p through Sender -> Receiver, against a plain copy of the same bytes (the
//! baseline: the least any transport must do).

use std::time::Instant;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use transport::{
    Machine, Output, ReceivedFrame, Receiver, ReceiverConfig, ReceiverEvent, ReceiverInput, Sender,
    SenderConfig, SenderInput,
};

/// Carries one frame from `sender` to `receiver` through their `poll_output` loops, with
/// one reused packet buffer (as the drivers do), and returns what the receiver emits.
fn carry(
    sender: &mut Sender,
    receiver: &mut Receiver,
    frame: media::EncodedFrame,
    buf: &mut Vec<u8>,
    now: Instant,
) -> Option<ReceivedFrame> {
    sender.handle_input(now, SenderInput::Frame(frame.into()));
    let mut emitted = None;
    let mut feedback = Vec::new();
    loop {
        match sender.poll_output(now, buf) {
            Output::Transmit(_) => {
                receiver.handle_input(
                    now,
                    ReceiverInput::Packet {
                        from: None,
                        data: buf,
                    },
                );
                // Feedback is not carried back: this measures the data path.
                loop {
                    match receiver.poll_output(now, &mut feedback) {
                        Output::Event(ReceiverEvent::Frame(f)) => emitted = Some(f),
                        Output::Transmit(_) => {}
                        Output::Timeout(_) => break,
                    }
                }
            }
            Output::Event(_) => {}
            Output::Timeout(_) => return emitted,
        }
    }
}

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
                let first = carry(&mut sender, &mut receiver, frames[0].clone(), &mut buf, t0);
                assert!(first.is_some(), "keyframe not emitted");
                b.iter(|| {
                    let out = carry(&mut sender, &mut receiver, frame.clone(), &mut buf, t0);
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
