//! UDP carrier: the only code here that touches a datagram socket. One socket, or two
//! (media, and control on port + 1 for RTP without mux); the machine's [`Via`] picks
//! the socket, so nothing is guessed from a packet's contents.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::net::UdpSocket;

use super::driver::{drive, Arrival, Carrier};
use super::{ReceiverHooks, SenderHooks};
use crate::machine::{Transmit, Via};
use crate::{ReceivedFrame, Receiver, Sender, SenderEvent, TransportError};

/// Largest datagram read; anything longer is truncated by the kernel and then fails to
/// parse (counted as malformed).
const RECV_BUFFER: usize = 65_536;

/// Binds a UDP socket, naming what it is for in the error.
pub(crate) async fn bind(
    addr: SocketAddr,
    context: &'static str,
) -> Result<UdpSocket, TransportError> {
    UdpSocket::bind(addr)
        .await
        .map_err(|source| TransportError::Io {
            context,
            addr,
            source,
        })
}

/// One socket and its destination.
struct Side {
    socket: UdpSocket,
    /// The kernel's batching (UDP GSO) for this socket, when asked for and available.
    gso: Option<quinn_udp::UdpSocketState>,
    /// Where a transmit with no address goes (`None`: nowhere, it is dropped).
    to: Option<SocketAddr>,
    buf: Vec<u8>,
    /// A datagram read and not yet taken.
    got: Option<(usize, SocketAddr)>,
}

impl Side {
    fn new(socket: UdpSocket, to: Option<SocketAddr>) -> Self {
        Self {
            socket,
            gso: None,
            to,
            buf: vec![0; RECV_BUFFER],
            got: None,
        }
    }
}

/// Datagrams on a media socket and, optionally, a control socket of its own.
pub struct UdpCarrier {
    media: Side,
    control: Option<Side>,
    /// Only datagrams from this address are taken (a sender listens to its receiver
    /// only); `None`: from anyone.
    only_from: Option<SocketAddr>,
    /// The media socket's own address.
    local: Option<SocketAddr>,
    send_errors: u64,
    /// Datagrams ignored because they did not come from `only_from`.
    strangers: u64,
    /// Never wait for the socket: a datagram it cannot take at once is dropped and
    /// counted here (NACK or the next keyframe repairs it; latency does not grow).
    never_wait: Option<Arc<AtomicU64>>,
    batch: Batch,
}

/// Packets waiting to leave in one system call (UDP GSO): same socket, same
/// destination, equal sizes (the last may be shorter). Only consecutive transmits of
/// one drain join a batch, and the driver flushes at every timeout the machine
/// returns, so a batch never spans a pacing gap.
#[derive(Default)]
struct Batch {
    buf: Vec<u8>,
    /// Size of each datagram but the last.
    segment: usize,
    count: usize,
    to: Option<SocketAddr>,
    control: bool,
    /// The last datagram was shorter than `segment`: nothing more may join.
    closed: bool,
}

/// The most one batch carries (the kernel's limit for one GSO send is 64 KiB).
const MAX_BATCH_BYTES: usize = 65_000;

impl UdpCarrier {
    /// A carrier on `media` sending to `to` by default, and on `control` (with its own
    /// default destination) when the wire has one.
    pub fn new(
        media: UdpSocket,
        to: Option<SocketAddr>,
        control: Option<(UdpSocket, Option<SocketAddr>)>,
    ) -> Self {
        Self {
            local: media.local_addr().ok(),
            media: Side::new(media, to),
            control: control.map(|(s, to)| Side::new(s, to)),
            only_from: None,
            send_errors: 0,
            strangers: 0,
            never_wait: None,
            batch: Batch::default(),
        }
    }

    /// Sends runs of datagrams with one system call where the kernel allows (UDP GSO,
    /// through `quinn-udp`); elsewhere one at a time, as without.
    pub fn batched(mut self) -> Self {
        for side in std::iter::once(&mut self.media).chain(self.control.as_mut()) {
            side.gso = quinn_udp::UdpSocketState::new((&side.socket).into())
                .ok()
                .filter(|state| state.max_gso_segments() > 1);
        }
        self
    }

    /// Sends one datagram and counts a failure.
    async fn send_one(&mut self, control: bool, packet: &[u8], to: SocketAddr) {
        let side = match (control, self.control.as_ref()) {
            (true, Some(control)) => control,
            _ => &self.media,
        };
        if let Err(e) = side.socket.send_to(packet, to).await {
            // A peer that is not up yet (ICMP unreachable) must not stop us.
            self.send_errors += 1;
            if self.send_errors.is_power_of_two() {
                tracing::warn!(%to, error = %e, count = self.send_errors, "UDP send failed");
            }
        }
    }

    /// Sends the batch, if any.
    async fn send_batch(&mut self) {
        let Some(to) = self.batch.to.take() else {
            return;
        };
        let mut buf = std::mem::take(&mut self.batch.buf);
        let (segment, count, control) = (self.batch.segment, self.batch.count, self.batch.control);
        self.batch.count = 0;
        self.batch.closed = false;
        let side = match (control, self.control.as_ref()) {
            (true, Some(control)) => control,
            _ => &self.media,
        };
        let sent = match (&side.gso, count > 1) {
            (Some(state), true) => {
                let transmit = quinn_udp::Transmit {
                    destination: to,
                    ecn: None,
                    contents: &buf,
                    segment_size: Some(segment),
                    src_ip: None,
                };
                side.socket
                    .async_io(tokio::io::Interest::WRITABLE, || {
                        state.try_send((&side.socket).into(), &transmit)
                    })
                    .await
                    .is_ok()
            }
            _ => false,
        };
        if !sent {
            // One at a time: no GSO, a single datagram, or the batch failed (the kernel
            // refusing GSO on this route, or the peer not up yet).
            for chunk in buf.chunks(segment.max(1)) {
                self.send_one(control, chunk, to).await;
            }
        }
        buf.clear();
        self.batch.buf = buf;
    }

    /// Never waits for a full socket: drops the datagram instead, counting it in
    /// `drops`.
    pub fn never_wait(mut self, drops: Arc<AtomicU64>) -> Self {
        self.never_wait = Some(drops);
        self
    }

    /// Takes media datagrams from `peer` only.
    pub fn only_from(mut self, peer: SocketAddr) -> Self {
        self.only_from = Some(peer);
        self
    }

    fn waiting(&self) -> bool {
        self.media.got.is_some() || self.control.as_ref().is_some_and(|c| c.got.is_some())
    }
}

/// Receives into `side` if there is one, else never completes.
async fn recv_side(side: Option<&mut Side>) {
    match side {
        Some(side) => {
            if let Ok((n, from)) = side.socket.recv_from(&mut side.buf).await {
                side.got = Some((n, from));
            }
        }
        None => std::future::pending().await,
    }
}

impl<M: ?Sized> Carrier<M> for UdpCarrier {
    async fn ready(&mut self) {
        if self.waiting() {
            return;
        }
        // Both reads are cancel-safe: a datagram is either in `got` or still queued.
        tokio::select! {
            () = recv_side(Some(&mut self.media)) => {}
            () = recv_side(self.control.as_mut()) => {}
        }
    }

    fn next_arrival(&mut self) -> Option<Arrival<'_>> {
        if let Some((n, from)) = self.media.got.take() {
            if self
                .only_from
                .is_some_and(|peer| !same_host_port(from, peer))
            {
                self.strangers += 1;
                if self.strangers.is_power_of_two() {
                    tracing::debug!(%from, count = self.strangers, "ignoring a datagram not from the receiver");
                }
                return <UdpCarrier as Carrier<M>>::next_arrival(self);
            }
            return Some(Arrival::Packet {
                from: Some(from),
                to: self.local,
                via: Via::Media,
                data: &self.media.buf[..n],
            });
        }
        let control = self.control.as_mut()?;
        let (n, from) = control.got.take()?;
        Some(Arrival::Packet {
            from: Some(from),
            to: self.local,
            via: Via::Control,
            data: &control.buf[..n],
        })
    }

    async fn send(&mut self, transmit: Transmit, packet: &[u8]) {
        let side = match (transmit.via, self.control.as_ref()) {
            (Via::Control, Some(control)) => control,
            _ => &self.media,
        };
        let Some(to) = transmit.to.or(side.to) else {
            return;
        };
        if let Some(drops) = &self.never_wait {
            if side.socket.try_send_to(packet, to).is_err() {
                drops.fetch_add(1, Ordering::Relaxed);
            }
            return;
        }
        let control = transmit.via == Via::Control && self.control.is_some();
        let max_segments = match &side.gso {
            Some(state) => state.max_gso_segments(),
            None => return self.send_one(control, packet, to).await,
        };
        let b = &self.batch;
        let joins = b.to == Some(to)
            && b.control == control
            && !b.closed
            && packet.len() <= b.segment
            && b.count < max_segments
            && b.buf.len() + packet.len() <= MAX_BATCH_BYTES;
        if !joins {
            self.send_batch().await;
            self.batch.to = Some(to);
            self.batch.control = control;
            self.batch.segment = packet.len();
        }
        self.batch.buf.extend_from_slice(packet);
        self.batch.count += 1;
        self.batch.closed = packet.len() < self.batch.segment;
    }

    async fn flush(&mut self) {
        self.send_batch().await;
    }
}

/// Whether a datagram comes from the peer we send to. Anyone can send to the sender's
/// port; what does not come from `remote` (a forged WELCOME from another host, stray
/// traffic) never reaches the machine. One spoofed from `remote` itself still does, and
/// is refused there by authentication. An IPv4 address and its IPv4-mapped IPv6 form (a
/// dual-stack socket) are the same host.
fn same_host_port(from: SocketAddr, remote: SocketAddr) -> bool {
    let canonical = |a: SocketAddr| (a.ip().to_canonical(), a.port());
    canonical(from) == canonical(remote)
}

/// Sends frames to `remote` from a socket bound to `bind` until the frame channel
/// closes or shutdown is signalled, then flushes. Feedback arrives on the same socket.
pub async fn run_sender<E: FnMut(SenderEvent)>(
    bind_addr: SocketAddr,
    remote: SocketAddr,
    mut sender: Sender,
    mut hooks: SenderHooks<E>,
) -> Result<(), TransportError> {
    let socket = bind(bind_addr, "binding UDP socket").await?;
    let local = socket.local_addr().map_err(|source| TransportError::Io {
        context: "reading local address",
        addr: bind_addr,
        source,
    })?;
    tracing::info!(%local, %remote, session = format_args!("{:08x}", sender.session()), "sending over UDP");
    let mut carrier = UdpCarrier::new(socket, Some(remote), None)
        .only_from(remote)
        .batched();
    drive(&mut sender, &mut carrier, &mut hooks).await;
    Ok(())
}

/// Receives on `bind`, handing frames on, until shutdown; sends a bye on the way out.
pub async fn run_receiver<F: FnMut(ReceivedFrame) -> bool>(
    bind_addr: SocketAddr,
    mut receiver: Receiver,
    mut hooks: ReceiverHooks<F>,
) -> Result<(), TransportError> {
    let socket = bind(bind_addr, "binding UDP socket").await?;
    tracing::info!(local = %bind_addr, "receiving over UDP");
    let mut carrier = UdpCarrier::new(socket, None, None);
    drive(&mut receiver, &mut carrier, &mut hooks).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::same_host_port as from_receiver;

    #[test]
    fn only_datagrams_from_the_receiver_are_taken() {
        let remote = "192.168.1.20:5000".parse().unwrap();
        assert!(from_receiver(remote, remote));
        assert!(from_receiver(
            "[::ffff:192.168.1.20]:5000".parse().unwrap(),
            remote
        ));
        assert!(!from_receiver("192.168.1.21:5000".parse().unwrap(), remote));
        assert!(!from_receiver("192.168.1.20:5001".parse().unwrap(), remote));
    }
}
