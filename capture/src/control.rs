/// A command to a running source, applied between frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// Make the next frame a keyframe (IDR with SPS/PPS), so a receiver can start or
    /// recover without waiting for the keyframe period.
    ForceKeyframe,
    /// Change the target bitrate, bits per second.
    SetBitrate(u32),
    /// Change the frame rate, frames per second.
    SetFps(u32),
}
