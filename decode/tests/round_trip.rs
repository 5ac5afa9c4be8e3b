//! Encoder and decoder together: what the sender encodes, the receiver decodes to the
//! same picture (within compression), and a damaged stream never yields a picture.

use capture::{EncoderSettings, Source, TestPatternSource};
use decode::{Decoded, Decoder};
use media::pattern::TestPattern;
use media::stamp;

fn settings() -> EncoderSettings {
    EncoderSettings {
        width: 640,
        height: 480,
        fps: 30,
        bitrate: 2_000_000,
        intra: 60,
    }
}

#[test]
fn decodes_the_test_pattern_with_its_stamps() {
    let mut source = TestPatternSource::new(settings()).unwrap().unpaced();
    let mut decoder = Decoder::new(1).unwrap();
    let pattern = TestPattern::new(640, 480);
    let band = stamp::band_height(640, 480).unwrap();
    for n in 0..30u32 {
        let frame = source.next_frame().unwrap().unwrap();
        assert_eq!(frame.keyframe, n == 0, "frame {n}");
        let Decoded::Picture(picture) = decoder.decode(&frame.data).unwrap() else {
            panic!("no picture for frame {n}: decoder is not low-delay");
        };
        let stamp = stamp::read(&picture).expect("stamp readable after compression");
        assert_eq!(stamp.frame, n);
        assert_eq!(stamp.time_us, frame.capture_us);
        let psnr = picture.luma_psnr(&pattern.picture(n), band).unwrap();
        assert!(psnr > 28.0, "frame {n}: psnr {psnr:.1} dB");
    }
}

#[test]
fn forced_keyframes_carry_parameter_sets_and_start_a_fresh_decoder() {
    let mut source = TestPatternSource::new(settings()).unwrap().unpaced();
    for _ in 0..5 {
        source.next_frame().unwrap();
    }
    source.control(capture::Control::ForceKeyframe);
    let key = source.next_frame().unwrap().unwrap();
    assert!(key.keyframe);
    let mut fresh = Decoder::new(1).unwrap();
    assert!(matches!(
        fresh.decode(&key.data).unwrap(),
        Decoded::Picture(_)
    ));
}

#[test]
fn a_p_frame_without_its_reference_gives_no_picture() {
    let mut source = TestPatternSource::new(settings()).unwrap().unpaced();
    let _key = source.next_frame().unwrap().unwrap();
    let p = source.next_frame().unwrap().unwrap();
    assert!(!p.keyframe);
    let mut fresh = Decoder::new(1).unwrap();
    // Without its keyframe the decoder must not invent a picture.
    assert!(!matches!(fresh.decode(&p.data), Ok(Decoded::Picture(_))));
}
