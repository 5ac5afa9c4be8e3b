//! Shared inputs for picam's benches: real encoded frames from the test pattern, so the
//! benches measure what the pipeline actually carries.

#![forbid(unsafe_code)]

use capture::{Control, EncoderSettings, Source, TestPatternSource};
use media::EncodedFrame;

/// The two sizes the benches cover, with the bitrates they are usually streamed at.
pub const SIZES: [(&str, u32, u32, u32); 2] = [
    ("720p", 1280, 720, 4_000_000),
    ("1080p", 1920, 1080, 8_000_000),
];

/// `count` consecutive frames of the test pattern at 30 fps, starting with a keyframe.
pub fn encoded_frames(width: u32, height: u32, bitrate: u32, count: usize) -> Vec<EncodedFrame> {
    let settings = EncoderSettings {
        width,
        height,
        fps: 30,
        bitrate,
        intra: 600,
    };
    let mut source = TestPatternSource::new(settings)
        .expect("libx264 available")
        .unpaced();
    source.control(Control::ForceKeyframe);
    (0..count)
        .map(|_| source.next_frame().expect("encode").expect("frame"))
        .collect()
}
