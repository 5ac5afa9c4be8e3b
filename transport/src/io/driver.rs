//! The one driver loop: every wire (picam's own over UDP or TCP, RTP, raw H.264) runs
//! its machine through [`drive`], in both directions. What differs between wires lives
//! in two small traits beside it:
//!
//! - a [`Carrier`] moves packets: UDP datagrams on one or two sockets, or messages on a
//!   stream with its framing. Connection management (accept, reconnect with backoff,
//!   newest client wins) is the carrier's, never the loop's;
//! - an [`Endpoint`] says how a machine takes the loop's inputs (a timeout, a packet, a
//!   connection coming or going) and what it still has queued;
//! - [`Hooks`] connect the loop to the neighbouring stages (frames in, events out,
//!   counters).
//!
//! **Shutdown and flush, for every wire.** When the source ends or shutdown is
//! signalled, frames already waiting are taken, the machine gets its closing input (a
//! receiver's bye), and the loop keeps running, paced as usual, until the machine has
//! nothing left or [`FLUSH_LIMIT`] has passed: never stopping at the first event, and
//! with control packets (RTCP) still going to the control destination.

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::sleep_until;
use crate::machine::{Machine, Output, Transmit, Via};

/// How long queued frames may take to leave once the source has ended.
pub const FLUSH_LIMIT: Duration = Duration::from_millis(500);
/// While the carrier cannot take more, the machine still gets timeouts this often, so
/// pacing and deadline drops keep running.
const BLOCKED_WAKE: Duration = Duration::from_millis(20);
/// Publishing counters after every packet costs more than the packet itself under a
/// flood; whoever reads them does so once a second.
const PUBLISH_EVERY: Duration = Duration::from_millis(10);

/// Something a carrier took from the wire.
#[derive(Debug, PartialEq, Eq)]
pub enum Arrival<'a> {
    /// A datagram or one message of a stream.
    Packet {
        /// Who sent it (`None`: the one peer of a stream).
        from: Option<SocketAddr>,
        /// Our address it arrived on, when the carrier knows it.
        to: Option<SocketAddr>,
        /// The socket or stream it came on.
        via: Via,
        /// Its bytes.
        data: &'a [u8],
    },
    /// A peer connected (a stream): it starts at a keyframe.
    Connected,
    /// The peer is gone (a stream): nothing queued has anywhere to go.
    Disconnected,
}

/// Moves a machine's packets: sockets and framing, nothing of the protocol.
pub trait Carrier<M: ?Sized> {
    /// Completes when something has arrived (see [`Carrier::next_arrival`]), a
    /// connection came or went, or a blocked carrier can take more. Must be
    /// cancel-safe: the loop drops it when another input comes first.
    fn ready(&mut self) -> impl Future<Output = ()> + Send;

    /// The next thing taken from the wire, `None` when nothing more is waiting.
    fn next_arrival(&mut self) -> Option<Arrival<'_>>;

    /// Sends one packet, or keeps it when the wire is full (see [`Carrier::blocked`]).
    /// A packet with nowhere to go (no peer connected) is discarded.
    fn send(&mut self, transmit: Transmit, packet: &[u8]) -> impl Future<Output = ()> + Send;

    /// Sends what [`Carrier::send`] kept back to send together (a batch). The loop
    /// calls it whenever the machine stops handing out packets (a timeout: the next
    /// packet is paced later) and before it hands events on.
    fn flush(&mut self) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// Whether a packet is still waiting in the carrier after trying to write it: the
    /// loop then stops draining the machine, which keeps (and ages out) what it has.
    fn blocked(&mut self) -> bool {
        false
    }

    /// Whether a peer is there to send to (streams between connections are not).
    fn connected(&self) -> bool {
        true
    }

    /// Called after each drain: a carrier whose connections depend on the machine's
    /// state (which peer authenticated) settles them here.
    fn settle(&mut self, _machine: &M) {}

    /// When the carrier next wants [`Carrier::ready`] polled for a timer of its own.
    fn deadline(&self) -> Option<Instant> {
        None
    }
}

/// How a machine takes the driver's inputs.
pub trait Endpoint: Machine {
    /// Its counters.
    type Stats;

    /// The input for "the instant of the last timeout has come".
    fn timeout_input<'a>() -> Self::Input<'a>;

    /// The input for something the carrier took from the wire, if any.
    fn arrival_input(arrival: Arrival<'_>) -> Option<Self::Input<'_>>;

    /// Fed after an upstream input while no peer is connected (`None`: nothing).
    fn offline_input<'a>() -> Option<Self::Input<'a>> {
        None
    }

    /// Fed once when the driver stops, before the flush (a receiver's bye).
    fn closing_input<'a>() -> Option<Self::Input<'a>> {
        None
    }

    /// Packets or frames still queued (not yet handed out): the flush waits for none.
    fn queued(&self) -> usize;

    /// Its counters.
    fn stats(&self) -> Self::Stats;
}

/// What a running driver is connected to besides the wire.
pub trait Hooks<M: Machine> {
    /// What comes from upstream: frames, decoder commands.
    type Item: Send;

    /// The next upstream item; `None` when the source has ended (the driver stops and
    /// flushes). Must be cancel-safe.
    fn next(&mut self) -> impl Future<Output = Option<Self::Item>> + Send;

    /// An item already waiting, without waiting (taken when stopping).
    fn try_next(&mut self) -> Option<Self::Item>;

    /// Feeds an upstream item in.
    fn take(&mut self, machine: &mut M, now: Instant, item: Self::Item);

    /// Hands an event on (a refused frame may be fed back as an input).
    fn on_event(&mut self, machine: &mut M, event: M::Event);

    /// Publishes the counters.
    fn publish(&mut self, machine: &M);

    /// Becomes true when the process is shutting down.
    fn shutdown(&self) -> watch::Receiver<bool>;
}

/// Where a drain stopped.
enum Drained {
    /// The machine handed out everything; it next wants a timeout then.
    Idle(Option<Instant>),
    /// The carrier cannot take more: the rest waits in the machine.
    Blocked,
}

/// The loop's state besides the machine, the carrier and the hooks.
struct Loop {
    out: Vec<u8>,
    last_publish: Option<Instant>,
}

impl Loop {
    fn publish<M: Machine, H: Hooks<M>>(&mut self, machine: &M, hooks: &mut H, force: bool) {
        let now = Instant::now();
        if force || self.last_publish.is_none_or(|t| now >= t + PUBLISH_EVERY) {
            self.last_publish = Some(now);
            hooks.publish(machine);
        }
    }

    /// The one drain: after every input, the machine's outputs until it wants a timeout
    /// (or the carrier is full).
    async fn drain<M, C, H>(&mut self, machine: &mut M, carrier: &mut C, hooks: &mut H) -> Drained
    where
        M: Endpoint,
        C: Carrier<M>,
        H: Hooks<M>,
    {
        loop {
            if carrier.blocked() {
                carrier.flush().await;
                self.publish(machine, hooks, false);
                return Drained::Blocked;
            }
            match machine.poll_output(Instant::now(), &mut self.out) {
                Output::Transmit(t) => carrier.send(t, &self.out).await,
                Output::Event(event) => {
                    carrier.flush().await;
                    hooks.on_event(machine, event)
                }
                Output::Timeout(at) => {
                    // A batch never spans a pacing gap: what was handed out before the
                    // machine's timeout leaves now.
                    carrier.flush().await;
                    self.publish(machine, hooks, false);
                    carrier.settle(machine);
                    return Drained::Idle(at);
                }
            }
        }
    }
}

/// Feeds everything the carrier took in.
fn take_arrivals<M: Endpoint, C: Carrier<M>>(machine: &mut M, carrier: &mut C) {
    while let Some(arrival) = carrier.next_arrival() {
        if let Some(input) = M::arrival_input(arrival) {
            machine.handle_input(Instant::now(), input);
        }
    }
}

fn take_item<M: Endpoint, C: Carrier<M>, H: Hooks<M>>(
    machine: &mut M,
    carrier: &C,
    hooks: &mut H,
    item: H::Item,
) {
    let now = Instant::now();
    hooks.take(machine, now, item);
    if !carrier.connected() {
        if let Some(input) = M::offline_input() {
            machine.handle_input(now, input);
        }
    }
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Runs `machine` over `carrier` until the source ends or shutdown, then flushes (see
/// the module's policy). One loop for every wire and both directions.
pub async fn drive<M, C, H>(machine: &mut M, carrier: &mut C, hooks: &mut H)
where
    M: Endpoint,
    C: Carrier<M>,
    H: Hooks<M>,
{
    let mut shutdown = hooks.shutdown();
    let mut state = Loop {
        out: Vec::with_capacity(65_536),
        last_publish: None,
    };
    loop {
        let wake = match state.drain(machine, carrier, hooks).await {
            Drained::Idle(at) => at,
            Drained::Blocked => Some(Instant::now() + BLOCKED_WAKE),
        };
        let wake = earliest(wake, carrier.deadline());
        tokio::select! {
            () = carrier.ready() => take_arrivals(machine, carrier),
            item = hooks.next() => match item {
                Some(item) => take_item(machine, carrier, hooks, item),
                None => break,
            },
            () = sleep_until(wake) => machine.handle_input(Instant::now(), M::timeout_input()),
            _ = shutdown.changed() => break,
        }
    }
    // Stopping: what was captured still goes out, paced as usual, within a bound.
    while let Some(item) = hooks.try_next() {
        take_item(machine, carrier, hooks, item);
    }
    if let Some(input) = M::closing_input() {
        machine.handle_input(Instant::now(), input);
    }
    let deadline = Instant::now() + FLUSH_LIMIT;
    loop {
        let wake = match state.drain(machine, carrier, hooks).await {
            Drained::Idle(_) if machine.queued() == 0 => break,
            Drained::Idle(at) => at.unwrap_or_else(|| Instant::now() + Duration::from_millis(1)),
            Drained::Blocked => Instant::now() + BLOCKED_WAKE,
        };
        if Instant::now() >= deadline {
            break;
        }
        tokio::select! {
            () = carrier.ready() => take_arrivals(machine, carrier),
            () = sleep_until(Some(wake.min(deadline))) => {
                machine.handle_input(Instant::now(), M::timeout_input());
            }
        }
    }
    state.publish(machine, hooks, true);
}
