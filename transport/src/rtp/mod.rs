//! The interop wires beside picam's own: RTP (RFC 3550/6184, over UDP or RFC 4571 TCP
//! framing) and raw Annex B H.264 (`h264`, as `rpicam-vid -o udp://` or
//! `--listen -o tcp://` sends it), so GStreamer, ffmpeg, VLC and rpicam-vid peers
//! interoperate one side at a time.
//!
//! The machines are sans-IO with the crate's [`Machine`] shape and the native machines'
//! input and event types ([`SenderInput`]/[`SenderEvent`], [`ReceiverInput`]/
//! [`ReceiverEvent`]), so `bin` feeds them from the same capture and decode stages:
//! [`RtpSender`], [`RtpReceiver`] (RTP), [`H264Sender`], [`H264Receiver`] (raw). The
//! H.264 payload format is in [`h264`] (packetizer and the never-corrupt depacketizer),
//! RTCP in `rtcp.rs` (over the `rtcp-types` crate; RTP headers come from `rtp-types`),
//! the tokio drivers in [`interop_io`].
//!
//! On TCP the roles are those of the peers: the sender listens (as `rpicam-vid --listen`
//! and GStreamer's `tcpserversink` do) and the receiver connects to `--remote`.

pub mod h264;
pub mod interop_io;
mod raw;
mod receiver;
mod rtcp;
mod sender;
pub mod twcc;

pub use raw::{H264Receiver, H264Sender, FLUSH_AFTER};
pub use receiver::{RtpReceiver, RtpReceiverConfig};
pub use rtcp::is_rtcp;
pub use sender::{RtpSender, RtpSenderConfig, RTP_HEADER};

use crate::machine::Machine;
use crate::{ReceiverEvent, ReceiverInput, ReceiverStats, SenderEvent, SenderInput, SenderStats};

/// A sender machine the interop drivers can run.
pub trait InteropSender: for<'a> Machine<Input<'a> = SenderInput<'a>, Event = SenderEvent> {
    /// Its counters.
    fn stats(&self) -> SenderStats;
}

/// A receiver machine the interop drivers can run.
pub trait InteropReceiver:
    for<'a> Machine<Input<'a> = ReceiverInput<'a>, Event = ReceiverEvent>
{
    /// Its counters.
    fn stats(&self) -> ReceiverStats;
}

impl InteropSender for RtpSender {
    fn stats(&self) -> SenderStats {
        RtpSender::stats(self)
    }
}
impl InteropSender for H264Sender {
    fn stats(&self) -> SenderStats {
        H264Sender::stats(self)
    }
}
impl InteropReceiver for RtpReceiver {
    fn stats(&self) -> ReceiverStats {
        RtpReceiver::stats(self)
    }
}
impl InteropReceiver for H264Receiver {
    fn stats(&self) -> ReceiverStats {
        H264Receiver::stats(self)
    }
}

/// How messages are delimited on a TCP stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamFraming {
    /// RFC 4571: each RTP or RTCP packet after a 16-bit length (GStreamer's
    /// `rtpstreampay`/`rtpstreamdepay`).
    Rfc4571,
    /// None: a raw Annex B byte stream.
    Raw,
}

/// RFC 4571 deframer, check-then-parse: [`Rfc4571::pull`] hands out a packet only once
/// all its bytes are in.
#[derive(Debug, Default)]
pub struct Rfc4571 {
    buf: Vec<u8>,
    at: usize,
}

impl Rfc4571 {
    /// Appends bytes read from the stream.
    pub fn push(&mut self, data: &[u8]) {
        if self.at > 0 {
            self.buf.drain(..self.at);
            self.at = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// The next whole packet (zero-length ones are skipped), `None` when more bytes are
    /// needed. Memory is bounded by one packet (64 KiB) plus one read.
    pub fn pull(&mut self) -> Option<&[u8]> {
        loop {
            let rest = &self.buf[self.at..];
            if rest.len() < 2 {
                return None;
            }
            let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
            if rest.len() < 2 + len {
                return None;
            }
            let start = self.at + 2;
            self.at = start + len;
            if len > 0 {
                return Some(&self.buf[start..start + len]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4571_split_anywhere() {
        let mut stream = Vec::new();
        for p in [&b"abc"[..], b"", b"defgh"] {
            stream.extend_from_slice(&(p.len() as u16).to_be_bytes());
            stream.extend_from_slice(p);
        }
        for cut in 0..stream.len() {
            let mut d = Rfc4571::default();
            let mut got = Vec::new();
            d.push(&stream[..cut]);
            while let Some(p) = d.pull() {
                got.push(p.to_vec());
            }
            d.push(&stream[cut..]);
            while let Some(p) = d.pull() {
                got.push(p.to_vec());
            }
            assert_eq!(got, vec![b"abc".to_vec(), b"defgh".to_vec()], "cut {cut}");
        }
    }
}
