//! The I/O edge: one driver loop ([`driver::drive`]) around the sans-IO machines, the
//! carriers that move their packets (UDP in [`udp`], streams in [`tcp`]), and the hooks
//! that connect them to the neighbouring stages (here).

pub mod driver;
mod endpoint;
pub(crate) mod sockopt;
pub mod tcp;
pub mod udp;
pub mod web;

use std::future::Future;
use std::time::Instant;

use tokio::sync::{mpsc, watch};

use crate::machine::Machine;
use crate::{
    ReceivedFrame, ReceiverEvent, ReceiverInput, ReceiverStats, SenderEvent, SenderInput,
    SenderStats, SourceFrame,
};
use driver::{Endpoint, Hooks};

/// What a running receiver driver is connected to.
pub struct ReceiverHooks<F> {
    /// Takes each frame for the decoder; returns false when the decoder's queue is full
    /// (the frame is then dropped and a keyframe requested).
    pub on_frame: F,
    /// Commands from downstream (the decoder asking for a keyframe).
    pub commands: mpsc::Receiver<ReceiverCommand>,
    /// Latest counters, replaced after a drain at most every 10 ms, and when the driver
    /// stops.
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
    /// Latest counters, replaced after a drain at most every 10 ms, and when the driver
    /// stops.
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

impl<M, F> Hooks<M> for ReceiverHooks<F>
where
    M: Endpoint<Stats = ReceiverStats>
        + for<'a> Machine<Input<'a> = ReceiverInput<'a>, Event = ReceiverEvent>,
    F: FnMut(ReceivedFrame) -> bool,
{
    type Item = ReceiverCommand;

    fn next(&mut self) -> impl Future<Output = Option<ReceiverCommand>> + Send {
        // Downstream closing its command channel does not stop the receiver.
        let commands = &mut self.commands;
        async move {
            match commands.recv().await {
                Some(command) => Some(command),
                None => std::future::pending().await,
            }
        }
    }

    fn try_next(&mut self) -> Option<ReceiverCommand> {
        None
    }

    fn take(&mut self, machine: &mut M, now: Instant, command: ReceiverCommand) {
        match command {
            ReceiverCommand::RequestKeyframe => {
                machine.handle_input(now, ReceiverInput::RequestKeyframe)
            }
        }
    }

    fn on_event(&mut self, machine: &mut M, event: ReceiverEvent) {
        match event {
            ReceiverEvent::Frame(frame) => {
                if !(self.on_frame)(frame) {
                    machine.handle_input(Instant::now(), ReceiverInput::DownstreamFull);
                }
            }
        }
    }

    fn publish(&mut self, machine: &M) {
        self.stats.send_replace(machine.stats());
    }

    fn shutdown(&self) -> watch::Receiver<bool> {
        self.shutdown.clone()
    }
}

impl<M, E> Hooks<M> for SenderHooks<E>
where
    M: Endpoint<Stats = SenderStats>
        + for<'a> Machine<Input<'a> = SenderInput<'a>, Event = SenderEvent>,
    E: FnMut(SenderEvent),
{
    type Item = SourceFrame;

    fn next(&mut self) -> impl Future<Output = Option<SourceFrame>> + Send {
        self.frames.recv()
    }

    fn try_next(&mut self) -> Option<SourceFrame> {
        self.frames.try_recv().ok()
    }

    fn take(&mut self, machine: &mut M, now: Instant, frame: SourceFrame) {
        machine.handle_input(now, SenderInput::Frame(frame));
    }

    fn on_event(&mut self, _machine: &mut M, event: SenderEvent) {
        (self.on_event)(event)
    }

    fn publish(&mut self, machine: &M) {
        self.stats.send_replace(machine.stats());
    }

    fn shutdown(&self) -> watch::Receiver<bool> {
        self.shutdown.clone()
    }
}

/// Sleeps until `at`, or forever when there is no deadline.
pub(crate) async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
