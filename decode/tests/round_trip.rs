//! Encoder and decoder together: what the sender encodes, the receiver decodes to the
//! same picture (within compression), and a damaged stream never yields a picture.

use capture::{EncoderSettings, Source, TestPatternSource};
use decode::{DecodeError, Decoded, Decoder};
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

/// The size cap reaches FFmpeg: a stream larger than the decoder accepts is refused at
/// its parameter sets (no picture, no buffers of its size), while the same stream
/// decodes under the default 8192x8192 cap. A 640x480 stream against a 320x240 cap
/// stands in for a forged 16384x16384 SPS against 8192x8192: same mechanism, no
/// gigabyte allocation if it failed.
#[test]
fn pictures_larger_than_the_cap_are_refused() {
    let mut source = TestPatternSource::new(settings()).unwrap().unpaced();
    let key = source.next_frame().unwrap().unwrap();
    assert!(key.keyframe);

    let mut capped = Decoder::with_max_size(1, 320, 240).unwrap();
    for _ in 0..3 {
        match capped.decode(&key.data) {
            // FFmpeg decoded the picture, caught only afterwards: `max_pixels` missing.
            Err(DecodeError::TooLarge { .. }) => {
                panic!("the 640x480 picture was decoded: max_pixels did not reach FFmpeg")
            }
            Err(_) => {}
            Ok(Decoded::Nothing) => {}
            Ok(Decoded::Picture(p)) => {
                panic!(
                    "a {}x{} picture came out of a 320x240 decoder",
                    p.width, p.height
                )
            }
        }
    }
    // One side over, the other under: FFmpeg's pixel count allows 640x120, this does not.
    let mut narrow = Decoder::with_max_size(1, 320, 960).unwrap();
    let err = narrow.decode(&key.data).unwrap_err();
    assert!(
        matches!(
            err,
            DecodeError::TooLarge {
                width: 640,
                height: 480,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("640x480 is larger than the 320x960"),
        "{err}"
    );

    let mut default = Decoder::new(1).unwrap();
    assert!(matches!(
        default.decode(&key.data).unwrap(),
        Decoded::Picture(_)
    ));
    assert_eq!(decode::MAX_SIDE, 8192);
}
