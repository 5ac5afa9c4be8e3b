//! What the UDP and TCP drivers share: the hooks to the neighbouring stages and the
//! drain-after-every-input step of the call-order rule.

use std::time::Instant;

use tokio::sync::{mpsc, watch};

use crate::receiver::Transmit;
use crate::{ReceivedFrame, Receiver, ReceiverStats, Sender, SenderEvent, SenderStats};

/// What a running receiver driver is connected to.
pub struct ReceiverHooks<F> {
    /// Takes each frame for the decoder; returns false when the decoder's queue is full
    /// (the frame is then dropped and a keyframe requested).
    pub on_frame: F,
    /// Commands from downstream (the decoder asking for a keyframe).
    pub commands: mpsc::Receiver<ReceiverCommand>,
    /// Latest counters, replaced after every input.
    pub stats: watch::Sender<ReceiverStats>,
    /// Becomes true when the process is shutting down.
    pub shutdown: watch::Receiver<bool>,
}

/// What a running sender driver is connected to.
pub struct SenderHooks<E> {
    /// Encoded frames from capture.
    pub frames: mpsc::Receiver<media::EncodedFrame>,
    /// Takes each event (force a keyframe) for capture.
    pub on_event: E,
    /// Latest counters, replaced after every input.
    pub stats: watch::Sender<SenderStats>,
    /// Becomes true when the process is shutting down.
    pub shutdown: watch::Receiver<bool>,
}

/// A request from downstream stages to the receiver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReceiverCommand {
    /// The decoder failed: wait for and ask for a keyframe.
    RequestKeyframe,
}

impl<F: FnMut(ReceivedFrame) -> bool> ReceiverHooks<F> {
    /// Drains frames downstream and returns the packets to send, per the call-order rule.
    pub(crate) fn drain(&mut self, receiver: &mut Receiver) -> Vec<Transmit> {
        while let Some(frame) = receiver.poll_frame() {
            if !(self.on_frame)(frame) {
                receiver.note_downstream_full(Instant::now());
            }
        }
        let out = std::iter::from_fn(|| receiver.poll_transmit()).collect();
        self.stats.send_replace(receiver.stats());
        out
    }

    pub(crate) fn handle_command(&mut self, receiver: &mut Receiver, command: ReceiverCommand) {
        match command {
            ReceiverCommand::RequestKeyframe => receiver.request_keyframe(Instant::now()),
        }
    }
}

impl<E: FnMut(SenderEvent)> SenderHooks<E> {
    /// Hands events on and publishes stats; transmits are drained by the driver, which
    /// owns the socket.
    pub(crate) fn drain_events(&mut self, sender: &mut Sender) {
        while let Some(event) = sender.poll_event() {
            (self.on_event)(event);
        }
        self.stats.send_replace(sender.stats());
    }
}

/// Sleeps until `at`, or forever when there is no deadline.
pub(crate) async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
