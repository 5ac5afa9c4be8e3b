//! The I/O edge: tokio drivers for UDP ([`udp`]) and TCP ([`tcp`]) around the sans-IO
//! machines, and the hooks that connect them to the neighbouring stages. Each driver
//! has exactly one loop over `poll_output`; what the hooks do with events is shared
//! here.

pub(crate) mod sockopt;
pub mod tcp;
pub mod udp;
pub mod web;

use std::time::Instant;

use tokio::sync::{mpsc, watch};

use crate::machine::Machine;
use crate::{
    ReceivedFrame, Receiver, ReceiverEvent, ReceiverInput, ReceiverStats, Sender, SenderEvent,
    SenderStats, SourceFrame,
};

/// What a running receiver driver is connected to.
pub struct ReceiverHooks<F> {
    /// Takes each frame for the decoder; returns false when the decoder's queue is full
    /// (the frame is then dropped and a keyframe requested).
    pub on_frame: F,
    /// Commands from downstream (the decoder asking for a keyframe).
    pub commands: mpsc::Receiver<ReceiverCommand>,
    /// Latest counters, replaced after every drain.
    pub stats: watch::Sender<ReceiverStats>,
    /// Becomes true when the process is shutting down.
    pub shutdown: watch::Receiver<bool>,
}

/// What a running sender driver is connected to.
pub struct SenderHooks<E> {
    /// Encoded frames from capture, each with the count of frames capture dropped
    /// before it.
    pub frames: mpsc::Receiver<SourceFrame>,
    /// Takes each event (force a keyframe, set the bitrate) for capture.
    pub on_event: E,
    /// Latest counters, replaced after every drain.
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
    /// Hands a receiver event downstream; a refused frame is reported back as an input.
    pub(crate) fn on_event(&mut self, receiver: &mut Receiver, event: ReceiverEvent) {
        match event {
            ReceiverEvent::Frame(frame) => {
                if !(self.on_frame)(frame) {
                    receiver.handle_input(Instant::now(), ReceiverInput::DownstreamFull);
                }
            }
        }
    }

    /// Feeds a downstream command in.
    pub(crate) fn on_command(&mut self, receiver: &mut Receiver, command: ReceiverCommand) {
        match command {
            ReceiverCommand::RequestKeyframe => {
                receiver.handle_input(Instant::now(), ReceiverInput::RequestKeyframe)
            }
        }
    }

    /// Publishes the counters (at the end of a drain, when `throttle` allows).
    pub(crate) fn publish(&self, receiver: &Receiver, throttle: &mut Throttle) {
        if throttle.due() {
            self.stats.send_replace(receiver.stats());
        }
    }
}

/// Publishing counters after every packet costs more than the packet itself under a
/// flood; whoever reads them does so once a second. So at most every 10 ms, and always
/// when `force`d (the last drain before the driver returns).
#[derive(Debug, Default)]
pub(crate) struct Throttle {
    last: Option<Instant>,
    /// Publish on the next call whatever the time.
    pub force: bool,
}

const PUBLISH_EVERY: std::time::Duration = std::time::Duration::from_millis(10);

impl Throttle {
    fn due(&mut self) -> bool {
        let now = Instant::now();
        if self.force || self.last.is_none_or(|t| now >= t + PUBLISH_EVERY) {
            self.last = Some(now);
            return true;
        }
        false
    }
}

impl<E: FnMut(SenderEvent)> SenderHooks<E> {
    /// Publishes the counters (at the end of each drain).
    pub(crate) fn publish(&self, sender: &Sender) {
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
