//! Decode time per frame at 720p and 1080p: a keyframe followed by 29 P-frames of the
//! test pattern, decoded in order by a low-delay decoder (one slice thread and two).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use decode::{Decoded, Decoder};

fn decode_gop(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode_30_frames");
    group.sample_size(20);
    for (name, w, h, bitrate) in benches::SIZES {
        let frames = benches::encoded_frames(w, h, bitrate, 30);
        group.throughput(Throughput::Elements(frames.len() as u64));
        for threads in [1, 2] {
            group.bench_function(BenchmarkId::new(format!("{threads}_thread"), name), |b| {
                b.iter(|| {
                    let mut decoder = Decoder::new(threads).expect("decoder");
                    for f in &frames {
                        match decoder.decode(&f.data) {
                            Ok(Decoded::Picture(p)) => {
                                std::hint::black_box(p);
                            }
                            other => panic!("frame did not decode: {other:?}"),
                        }
                    }
                });
            });
        }
    }
    group.finish();
}

criterion_group!(benches, decode_gop);
criterion_main!(benches);
