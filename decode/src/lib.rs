//! picam decode stage: low-delay H.264 decoding with FFmpeg
