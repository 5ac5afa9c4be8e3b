//! H.264 Annex B helpers: they live in `media` (transport's raw `h264` wire splits with
//! them too, and stage crates never depend on each other); re-exported here so capture's
//! users keep their paths.

pub use media::annexb::*;
