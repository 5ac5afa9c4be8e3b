//! Pure geometry: where the picture goes in the window, and text sizes.

/// A rectangle in output pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Area {
    pub(crate) x: i32,
    pub(crate) y: i32,
    pub(crate) w: u32,
    pub(crate) h: u32,
}

/// The largest rectangle of the picture's aspect ratio (square pixels) that fits the
/// output, centred: bars left and right, or top and bottom, stay black.
pub(crate) fn letterbox(picture: (u32, u32), output: (u32, u32)) -> Area {
    let (pw, ph) = (u64::from(picture.0.max(1)), u64::from(picture.1.max(1)));
    let (ow, oh) = (u64::from(output.0), u64::from(output.1));
    let (w, h) = if ow * ph <= oh * pw {
        (ow, (ow * ph + pw / 2) / pw)
    } else {
        ((oh * pw + ph / 2) / ph, oh)
    };
    let (w, h) = (w.min(ow), h.min(oh));
    Area {
        x: ((ow - w) / 2) as i32,
        y: ((oh - h) / 2) as i32,
        w: w as u32,
        h: h as u32,
    }
}

/// Pixel size of the stats overlay's text for an output height: readable on a small
/// window, not huge on a 4K screen.
pub(crate) fn stats_px(output_h: u32) -> u16 {
    (output_h / 45).clamp(11, 40) as u16
}

/// Pixel size of the centred status message.
pub(crate) fn status_px(output_h: u32) -> u16 {
    (output_h / 22).clamp(14, 80) as u16
}

/// The top of the latency graph's scale: a round number of milliseconds above the
/// largest sample, at least 50 ms, so the scale does not jitter frame to frame.
pub(crate) fn graph_top_ms(samples: &[f32]) -> u32 {
    let max = samples
        .iter()
        .copied()
        .filter(|s| s.is_finite())
        .fold(0.0f32, f32::max);
    const STEPS: [u32; 12] = [
        50, 100, 200, 300, 500, 1000, 2000, 3000, 5000, 10_000, 20_000, 60_000,
    ];
    STEPS
        .iter()
        .copied()
        .find(|&s| max <= s as f32)
        .unwrap_or(60_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letterbox_keeps_the_aspect_ratio_and_centres() {
        let cases = [
            // picture, output, expected
            (
                (1280, 720),
                (1280, 720),
                Area {
                    x: 0,
                    y: 0,
                    w: 1280,
                    h: 720,
                },
            ),
            (
                (1280, 720),
                (640, 480),
                Area {
                    x: 0,
                    y: 60,
                    w: 640,
                    h: 360,
                },
            ),
            (
                (1280, 720),
                (1000, 360),
                Area {
                    x: 180,
                    y: 0,
                    w: 640,
                    h: 360,
                },
            ),
            (
                (640, 480),
                (1920, 1080),
                Area {
                    x: 240,
                    y: 0,
                    w: 1440,
                    h: 1080,
                },
            ),
            (
                (2, 2),
                (3, 1),
                Area {
                    x: 1,
                    y: 0,
                    w: 1,
                    h: 1,
                },
            ),
            (
                (1920, 1080),
                (0, 0),
                Area {
                    x: 0,
                    y: 0,
                    w: 0,
                    h: 0,
                },
            ),
        ];
        for (picture, output, want) in cases {
            assert_eq!(
                letterbox(picture, output),
                want,
                "{picture:?} in {output:?}"
            );
        }
    }

    #[test]
    fn text_sizes_follow_the_window_and_stay_bounded() {
        assert_eq!(stats_px(720), 16);
        assert_eq!(stats_px(100), 11);
        assert_eq!(stats_px(4320), 40);
        assert!(status_px(1080) > status_px(720));
    }

    #[test]
    fn graph_scale_is_a_round_number_above_the_samples() {
        assert_eq!(graph_top_ms(&[]), 50);
        assert_eq!(graph_top_ms(&[12.0, 49.9]), 50);
        assert_eq!(graph_top_ms(&[51.0, f32::NAN]), 100);
        assert_eq!(graph_top_ms(&[1e9]), 60_000);
    }
}
