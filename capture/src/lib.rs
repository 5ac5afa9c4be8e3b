//! picam capture stage: cameras, files and the synthetic test pattern, yielding encoded H.264 frames
