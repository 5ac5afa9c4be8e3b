//! H.264 over RTP (RFC 6184, packetization-mode 1): the packetizer and the depacketizer.
//!
//! Written by hand rather than taken from a crate: the depacketizer is where the classic
//! RTP CVEs live (STAP-A sizes running past the packet, FU-A fragments stitched across a
//! loss), and picam's never-corrupt rule must be kept inside it, not after it.
//!
//! **Depacketizer contract** (retina's): [`Depacketizer::push`] takes one RTP packet's
//! fields in arrival order and never panics, whatever the bytes; [`Depacketizer::pull`]
//! hands out the access units finished so far, oldest first. A malformed packet is an
//! error from `push` *and* counts as a lost packet: the access unit it belonged to is
//! dropped and nothing leaves until a decodable keyframe (IDR with SPS and PPS, in band
//! or remembered from earlier).
//!
//! Files: `packetize.rs` (access unit -> payloads), `depacketize.rs` (payloads -> access
//! units, with the never-corrupt rule).

mod depacketize;
mod packetize;

pub use depacketize::{DepacketizeError, DepacketizedFrame, Depacketizer, DepacketizerStats};
pub use packetize::packetize;

/// STAP-A (single-time aggregation packet) NAL unit type.
pub const STAP_A: u8 = 24;
/// FU-A (fragmentation unit) NAL unit type.
pub const FU_A: u8 = 28;

const START_CODE: [u8; 4] = [0, 0, 0, 1];

#[cfg(test)]
mod tests;
