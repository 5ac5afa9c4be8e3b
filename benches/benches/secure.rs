//! The cost of encryption (issue 10): every packet of a real encoded 720p and 1080p
//! keyframe and P-frame sealed by the Sender and opened by the Receiver (ChaCha20-Poly1305,
//! keys from the Noise handshake done first), against the plain fragment + reassemble
//! path of the same frame, measured in the same run.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use transport::secure::Psk;
use transport::{
    Machine, Output, ReceivedFrame, Receiver, ReceiverConfig, ReceiverEvent, ReceiverInput, Sender,
    SenderConfig, SenderInput,
};

const FROM: &str = "127.0.0.1:40000";

/// Carries one frame from `sender` to `receiver` through their `poll_output` loops, with
/// one reused packet buffer (as the drivers do), and returns what the receiver emits.
/// With `feedback`, what the receiver sends goes back to the sender (the handshake);
/// without, it is dropped (the data path alone, as in `benches/transport.rs`).
fn carry(
    sender: &mut Sender,
    receiver: &mut Receiver,
    frame: Option<media::EncodedFrame>,
    buf: &mut Vec<u8>,
    now: Instant,
    feedback: bool,
) -> Option<ReceivedFrame> {
    let from: SocketAddr = FROM.parse().unwrap();
    if let Some(frame) = frame {
        sender.handle_input(now, SenderInput::Frame(frame.into()));
    }
    let mut emitted = None;
    let mut back = Vec::new();
    loop {
        match sender.poll_output(now, buf) {
            Output::Transmit(_) => {
                receiver.handle_input(
                    now,
                    ReceiverInput::Packet {
                        from: Some(from),
                        data: buf,
                    },
                );
                loop {
                    match receiver.poll_output(now, &mut back) {
                        Output::Event(ReceiverEvent::Frame(f)) => emitted = Some(f),
                        Output::Transmit(_) => {
                            if feedback {
                                sender.handle_input(now, SenderInput::Packet(&back));
                            }
                        }
                        Output::Timeout(_) => break,
                    }
                }
            }
            Output::Event(_) => {}
            Output::Timeout(_) => return emitted,
        }
    }
}

/// A sender and receiver, encrypted with `key` or plain, past the handshake and the
/// first keyframe (so P-frames are emitted too).
fn pair(key: Option<&Psk>, keyframe: &media::EncodedFrame) -> (Sender, Receiver, Instant) {
    let mut sender = Sender::new(
        SenderConfig {
            max_packet: 1400,
            secure: key.cloned(),
            ..Default::default()
        },
        7,
    );
    let mut receiver = Receiver::new(ReceiverConfig {
        secure: key.cloned(),
        ..Default::default()
    });
    let mut buf = Vec::with_capacity(2048);
    let t0 = Instant::now();
    for round in 0..50u64 {
        // Time moves on a little each round so handshake retries come due.
        let now = t0 + Duration::from_millis(300 * round);
        if carry(
            &mut sender,
            &mut receiver,
            Some(keyframe.clone()),
            &mut buf,
            now,
            true,
        )
        .is_some()
        {
            return (sender, receiver, now);
        }
        sender.handle_input(now, SenderInput::Timeout);
        carry(&mut sender, &mut receiver, None, &mut buf, now, true);
    }
    panic!(
        "no frame emitted after the handshake (encrypted: {})",
        key.is_some()
    );
}

fn seal_and_open(c: &mut Criterion) {
    let key = Psk::generate().expect("randomness");
    let mut group = c.benchmark_group("secure");
    for (name, w, h, bitrate) in benches::SIZES {
        let frames = benches::encoded_frames(w, h, bitrate, 2);
        for (kind, frame) in [("keyframe", &frames[0]), ("pframe", &frames[1])] {
            let id = format!("{name}_{kind}_{}B", frame.data.len());
            group.throughput(Throughput::Bytes(frame.data.len() as u64));
            for (mode, key) in [("plain", None), ("sealed", Some(&key))] {
                group.bench_function(BenchmarkId::new(mode, &id), |b| {
                    let (mut sender, mut receiver, now) = pair(key, &frames[0]);
                    let mut buf = Vec::with_capacity(2048);
                    let mut missed = 0u64;
                    b.iter(|| {
                        let out = carry(
                            &mut sender,
                            &mut receiver,
                            Some(frame.clone()),
                            &mut buf,
                            now,
                            false,
                        );
                        missed += u64::from(out.is_none());
                        std::hint::black_box(out);
                    });
                    assert_eq!(missed, 0, "{mode} {id}: frames not emitted");
                    assert_eq!(
                        receiver.stats().secure.unauthenticated,
                        0,
                        "{mode} {id}: packets did not open"
                    );
                });
            }
        }
    }
    group.finish();
}

criterion_group!(benches, seal_and_open);
criterion_main!(benches);
