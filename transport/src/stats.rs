//! Counters kept by the state machines, read by whoever prints stats.

/// Why the receiver dropped data, by reason. Every dropped datagram or frame is counted
/// under exactly one reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReceiverDrops {
    /// Datagrams that did not parse (bad magic, truncated, bad fields, impossible
    /// parity geometry).
    pub malformed: u64,
    /// Datagrams of another picam wire version (an older or newer peer).
    pub wrong_version: u64,
    /// Encrypted packets while this receiver runs with `--insecure`.
    pub encrypted: u64,
    /// Datagrams from a second sender while another session is active.
    pub other_sender: u64,
    /// Fragments repeated.
    pub duplicate: u64,
    /// Fragments of frames at or before the last frame emitted.
    pub stale: u64,
    /// Frames abandoned incomplete at their deadline.
    pub incomplete: u64,
    /// Frames pushed out of the in-flight set by newer ones.
    pub evicted: u64,
    /// Frame numbers never seen at all (a gap in the sequence).
    pub lost: u64,
    /// Complete frames that could not be decoded (waiting for a keyframe after a gap).
    pub undecodable: u64,
    /// Frames emitted but refused by a full downstream queue.
    pub queue_full: u64,
}

impl ReceiverDrops {
    /// Frames dropped, whatever the reason (not counting datagram-level drops).
    pub fn frames(&self) -> u64 {
        self.incomplete + self.evicted + self.lost + self.undecodable + self.queue_full
    }
}

/// What a receiver has seen since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReceiverStats {
    /// Datagrams (or TCP messages) taken in.
    pub datagrams: u64,
    /// Payload bytes taken in, headers included.
    pub bytes: u64,
    /// Frames reassembled completely.
    pub frames_complete: u64,
    /// Frames handed downstream.
    pub frames_emitted: u64,
    /// Keyframe requests sent.
    pub keyframe_requests: u64,
    /// Sessions adopted (1 plus the sender restarts seen).
    pub sessions: u64,
    /// Drops by reason.
    pub dropped: ReceiverDrops,
    /// The sender's wall clock minus ours, µs, from ping-pong (None until measured).
    /// A stamp's time `t` (sender clock) is `t - clock_offset_us` on our clock.
    pub clock_offset_us: Option<i64>,
    /// Smallest recent round trip to the sender, µs.
    pub rtt_us: Option<u64>,
    /// The current sender's address, once it has been heard.
    pub peer: Option<std::net::SocketAddr>,
    /// Loss repair at the receiver.
    pub repair: ReceiverRepairStats,
    /// The encrypted channel (zero with `--insecure`).
    pub secure: crate::secure::SecureStats,
}

/// What loss repair did at the receiver.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReceiverRepairStats {
    /// Nack packets sent.
    pub nacks_sent: u64,
    /// Packet sequence numbers asked for in them (repeats included).
    pub packets_requested: u64,
    /// Retransmissions that filled a hole.
    pub packets_retransmitted: u64,
    /// Retransmissions of packets already present (a repeat crossed a reply).
    pub retransmits_unneeded: u64,
    /// Bytes of retransmissions that filled a hole, headers included.
    pub retransmit_bytes: u64,
    /// Parity packets received.
    pub parity_received: u64,
    /// Bytes of parity received, headers included.
    pub parity_bytes: u64,
    /// Parity packets that arrived when their frame was complete or gone.
    pub parity_unused: u64,
    /// Data packets rebuilt from parity.
    pub packets_rebuilt: u64,
    /// Frames made whole by parity or retransmission (at least one packet repaired).
    pub frames_repaired: u64,
    /// Original packets that arrived after they had been nacked (reordering, not loss).
    pub spurious_nacks: u64,
    /// Original packets never received nor repaired before they were given up.
    pub packets_lost: u64,
    /// Original packets received (the loss figure's denominator with `packets_lost`).
    pub packets_received: u64,
}

/// What a sender has done since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SenderStats {
    /// Frames taken from the encoder.
    pub frames_in: u64,
    /// Frames whose every fragment was handed to the socket.
    pub frames_sent: u64,
    /// Frames dropped unsent: newer frames were waiting (the jam guard), they waited
    /// past the budget (`frames_late`), or were too large (`frames_too_large`).
    pub frames_dropped: u64,
    /// Frames refused because they exceed the largest frame the receiver accepts
    /// (part of `frames_dropped`).
    pub frames_too_large: u64,
    /// Frames the source dropped before they reached the sender (its queue was full);
    /// they still took frame numbers, so the receiver saw the gap.
    pub frames_skipped_at_source: u64,
    /// Feedback packets ignored: unparseable, another session's, or not feedback.
    pub feedback_ignored: u64,
    /// Packets handed out for the socket.
    pub datagrams: u64,
    /// Bytes handed out for the socket, headers included.
    pub bytes: u64,
    /// Keyframe requests received from receivers.
    pub keyframe_requests: u64,
    /// Keyframes the sender asked the encoder for (requests honoured, drops repaired).
    pub keyframes_forced: u64,
    /// Frames dropped unsent because they waited past the budget, or were made for the
    /// rate before a capacity drop and would cross it late (part of `frames_dropped`).
    pub frames_late: u64,
    /// Receiver reports taken in.
    pub reports: u64,
    /// Reports whose receiver clock ran backwards or read zero: no delay samples.
    pub reports_implausible: u64,
    /// The congestion controller's bitrate target, bits/s (0 without the jam guard).
    pub target_bitrate: u32,
    /// The congestion controller's frame-rate target (0 without the jam guard).
    pub target_fps: u32,
    /// Estimated queueing delay on the path, µs.
    pub queue_delay_us: u64,
    /// Packet loss on the link (before repair) over the last report interval, per
    /// mille.
    pub loss_permille: u32,
    /// Nack packets taken in.
    pub nacks_received: u64,
    /// Packets asked for in them.
    pub nack_requests: u64,
    /// Asked-for packets never sent, no longer kept, or repair off here.
    pub nack_unknown: u64,
    /// Asked-for packets of no more use (frame done at the receiver) or resent lately.
    pub nack_useless: u64,
    /// Asked-for packets refused by the retransmission budget.
    pub nack_over_budget: u64,
    /// Packets sent again.
    pub packets_retransmitted: u64,
    /// Bytes sent again, headers included (part of `bytes`).
    pub retransmit_bytes: u64,
    /// Parity packets sent.
    pub parity_packets: u64,
    /// Parity bytes sent, headers included (part of `bytes`).
    pub parity_bytes: u64,
    /// The encrypted channel (zero with `--insecure`).
    pub secure: crate::secure::SecureStats,
}
