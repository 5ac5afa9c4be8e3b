//! The receiver's vocabulary: its settings, what goes in, and what it hands out.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use media::EncodedFrame;

use super::FeedbackConfig;
#[cfg(doc)]
use super::Receiver;
#[cfg(doc)]
use crate::machine::Output;
use crate::secure::Psk;

/// Knobs of the receiver.
#[derive(Clone, Debug)]
pub struct ReceiverConfig {
    /// Largest frame accepted; larger ones are refused as malformed.
    pub max_frame_bytes: usize,
    /// Frames held at once (incomplete or waiting for order); also bounds the queue of
    /// frames waiting to be handed out.
    pub max_in_flight: usize,
    /// How long an incomplete frame waits for its next fragment before it is given up.
    pub frame_deadline: Duration,
    /// How long after its first fragment a frame may take to complete at most, however
    /// steadily its fragments arrive.
    pub max_frame_age: Duration,
    /// How long a complete frame waits for an earlier frame never seen at all.
    pub reorder_grace: Duration,
    /// Interval between repeated keyframe requests while waiting for one.
    pub keyframe_retry: Duration,
    /// Silence after which another sender's session is adopted.
    pub session_idle: Duration,
    /// Reports and clock pings to the sender.
    pub feedback: FeedbackConfig,
    /// Loss repair: nacks for missing packets, rebuilding from parity. `None` turns it
    /// off (`--no-repair`; and on a byte stream, which never loses a packet).
    pub repair: Option<ReceiverRepairConfig>,
    /// The paired key: only packets sealed by the sender holding it are heard, and
    /// feedback goes to that sender only. `None` (`--insecure`) takes packets in the
    /// clear.
    pub secure: Option<Psk>,
}

/// The receiver's loss repair knobs.
#[derive(Clone, Copy, Debug)]
pub struct ReceiverRepairConfig {
    /// A complete frame with an unseen frame before it waits this long (instead of
    /// `reorder_grace`) while packets are missing and being asked for: the unseen
    /// frame may be on its way as a retransmission.
    pub repair_wait: Duration,
    /// Round trip assumed until the clock pings have measured one.
    pub initial_rtt: Duration,
}

impl Default for ReceiverRepairConfig {
    fn default() -> Self {
        Self {
            repair_wait: Duration::from_millis(40),
            initial_rtt: Duration::from_millis(10),
        }
    }
}

impl Default for ReceiverConfig {
    fn default() -> Self {
        Self {
            max_frame_bytes: crate::DEFAULT_MAX_FRAME_BYTES,
            max_in_flight: 8,
            frame_deadline: Duration::from_millis(200),
            max_frame_age: Duration::from_millis(1000),
            reorder_grace: Duration::from_millis(15),
            keyframe_retry: Duration::from_millis(100),
            session_idle: Duration::from_millis(500),
            feedback: FeedbackConfig::default(),
            repair: None,
            secure: None,
        }
    }
}

/// A frame ready for the decoder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivedFrame {
    /// Wire frame number.
    pub number: u32,
    /// Session it belongs to (changes when the sender restarts).
    pub session: u32,
    /// The access unit.
    pub frame: EncodedFrame,
    /// When its last fragment arrived.
    pub arrived: Instant,
}

/// What goes into a [`Receiver`].
#[derive(Debug)]
pub enum ReceiverInput<'a> {
    /// A datagram (or one TCP message) from `from` (`None` on a stream socket whose
    /// peer is implied).
    Packet {
        /// Who sent it.
        from: Option<SocketAddr>,
        /// The bytes.
        data: &'a [u8],
    },
    /// The instant of the last [`Output::Timeout`] has come.
    Timeout,
    /// The decoder failed on a frame: nothing more can be decoded until a keyframe.
    RequestKeyframe,
    /// The last frame handed out could not be queued downstream and was dropped: the
    /// decoder will miss a reference, so wait for a keyframe.
    DownstreamFull,
    /// The viewer is leaving: say bye to the sender.
    Close,
}

/// What a [`Receiver`] asks of its surroundings besides sending packets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReceiverEvent {
    /// A frame for the decoder, in order and decodable.
    Frame(ReceivedFrame),
}
