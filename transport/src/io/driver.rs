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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc;

    /// Hands out `queued` packets paced `gap` apart, an event before the first, and an
    /// RTCP-like control packet after the last.
    struct Paced {
        queued: usize,
        gap: Duration,
        next: Option<Instant>,
        event_due: bool,
        control_due: bool,
    }

    impl Machine for Paced {
        type Input<'a> = Option<usize>;
        type Event = ();
        fn handle_input(&mut self, _now: Instant, input: Option<usize>) {
            if let Some(n) = input {
                self.queued += n;
                self.event_due = true;
            }
        }
        fn poll_output(&mut self, now: Instant, buf: &mut Vec<u8>) -> Output<()> {
            if std::mem::take(&mut self.event_due) {
                return Output::Event(());
            }
            if self.queued > 0 {
                if self.next.is_some_and(|t| now < t) {
                    return Output::Timeout(self.next);
                }
                self.queued -= 1;
                self.control_due = self.queued == 0;
                self.next = Some(now + self.gap);
                *buf = vec![1; 100];
                return Output::Transmit(Transmit {
                    to: None,
                    via: Via::Media,
                });
            }
            if std::mem::take(&mut self.control_due) {
                *buf = vec![2; 40];
                return Output::Transmit(Transmit {
                    to: None,
                    via: Via::Control,
                });
            }
            Output::Timeout(None)
        }
    }

    impl Endpoint for Paced {
        type Stats = ();
        fn timeout_input<'a>() -> Self::Input<'a> {
            None
        }
        fn arrival_input(_: Arrival<'_>) -> Option<Self::Input<'_>> {
            None
        }
        fn queued(&self) -> usize {
            self.queued + usize::from(self.control_due)
        }
        fn stats(&self) {}
    }

    struct TestHooks {
        frames: mpsc::Receiver<usize>,
        events: usize,
        shutdown: watch::Receiver<bool>,
    }

    impl Hooks<Paced> for TestHooks {
        type Item = usize;
        fn next(&mut self) -> impl Future<Output = Option<usize>> + Send {
            self.frames.recv()
        }
        fn try_next(&mut self) -> Option<usize> {
            self.frames.try_recv().ok()
        }
        fn take(&mut self, m: &mut Paced, now: Instant, n: usize) {
            m.handle_input(now, Some(n));
        }
        fn on_event(&mut self, _: &mut Paced, _: ()) {
            self.events += 1;
        }
        fn publish(&mut self, _: &Paced) {}
        fn shutdown(&self) -> watch::Receiver<bool> {
            self.shutdown.clone()
        }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    /// The policy every wire now shares: when the source ends, the flush keeps pacing
    /// (never stopping at the first event), finishes what is queued, and the control
    /// packet goes to the control socket's destination, not the media port.
    #[test]
    fn the_flush_is_paced_finishes_the_queue_and_sends_control_to_its_own_port() {
        runtime().block_on(async {
            let media_rx = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let control_rx = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let media_tx = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let control_tx = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let mut carrier = crate::io::udp::UdpCarrier::new(
                media_tx,
                Some(media_rx.local_addr().unwrap()),
                Some((control_tx, Some(control_rx.local_addr().unwrap()))),
            )
            .batched();
            let (tx, frames) = mpsc::channel(4);
            let (_stop, shutdown) = watch::channel(false);
            let mut hooks = TestHooks {
                frames,
                events: 0,
                shutdown,
            };
            let gap = Duration::from_millis(3);
            let mut machine = Paced {
                queued: 0,
                gap,
                next: None,
                event_due: false,
                control_due: false,
            };
            // One "frame" of 10 packets, then the source ends at once.
            tx.send(10).await.unwrap();
            drop(tx);
            let started = Instant::now();
            drive(&mut machine, &mut carrier, &mut hooks).await;
            let took = started.elapsed();
            assert_eq!(hooks.events, 1);
            assert_eq!(machine.queued(), 0, "the flush stopped early");
            // Paced: 9 gaps at least; bounded by the flush limit (generously: a loaded
            // machine oversleeps).
            assert!(took >= gap * 9, "unpaced flush: {took:?}");
            assert!(took < FLUSH_LIMIT + Duration::from_secs(1), "{took:?}");
            let mut buf = [0u8; 256];
            for _ in 0..10 {
                let n = tokio::time::timeout(Duration::from_secs(1), media_rx.recv(&mut buf))
                    .await
                    .expect("a media packet")
                    .unwrap();
                assert_eq!(buf[..n], [1; 100]);
            }
            let n = tokio::time::timeout(Duration::from_secs(1), control_rx.recv(&mut buf))
                .await
                .expect("the control packet on the control port")
                .unwrap();
            assert_eq!(buf[..n], [2; 40]);
            assert!(
                media_rx.try_recv(&mut buf).is_err(),
                "control sent to the media port"
            );
        });
    }

    /// Unpaced packets handed out in one drain leave batched where the kernel allows,
    /// and all arrive, in order.
    #[test]
    fn a_burst_of_equal_datagrams_arrives_whole_and_in_order() {
        runtime().block_on(async {
            let rx = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let tx = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let mut carrier =
                crate::io::udp::UdpCarrier::new(tx, Some(rx.local_addr().unwrap()), None).batched();
            let mut sent = Vec::new();
            for i in 0..150u16 {
                let len = if i == 149 { 300 } else { 1200 };
                let mut packet = vec![0u8; len];
                packet[..2].copy_from_slice(&i.to_be_bytes());
                Carrier::<Paced>::send(
                    &mut carrier,
                    Transmit {
                        to: None,
                        via: Via::Media,
                    },
                    &packet,
                )
                .await;
                sent.push(packet);
                // Keep within the receive buffer of a default socket.
                if i % 40 == 39 {
                    Carrier::<Paced>::flush(&mut carrier).await;
                    for p in sent.drain(..) {
                        let mut buf = vec![0u8; 2048];
                        let n = rx.recv(&mut buf).await.unwrap();
                        assert_eq!(&buf[..n], &p[..]);
                    }
                }
            }
            Carrier::<Paced>::flush(&mut carrier).await;
            for p in sent {
                let mut buf = vec![0u8; 2048];
                let n = rx.recv(&mut buf).await.unwrap();
                assert_eq!(&buf[..n], &p[..]);
            }
        });
    }
}
