use bytes::Bytes;

/// One encoded H.264 access unit (Annex B byte stream, exactly one picture).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedFrame {
    /// Annex B bytes: start codes and NAL units of one picture; SPS/PPS precede IDR slices.
    pub data: Bytes,
    /// Sender wall-clock time at capture, microseconds since the Unix epoch.
    pub capture_us: u64,
    /// True when the frame decodes on its own (IDR with parameter sets).
    pub keyframe: bool,
}
