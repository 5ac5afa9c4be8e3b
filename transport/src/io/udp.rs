//! UDP driver: the only code here that touches a datagram socket.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;

use super::{sleep_until, ReceiverHooks, SenderHooks, Throttle};
use crate::machine::{Machine, Output};
use crate::{
    ReceivedFrame, Receiver, ReceiverInput, Sender, SenderEvent, SenderInput, TransportError,
};

/// Largest datagram read; anything longer is truncated by the kernel and then fails to
/// parse (counted as malformed).
const RECV_BUFFER: usize = 65_536;
/// How long queued frames may take to leave once the source has ended.
const FLUSH_LIMIT: Duration = Duration::from_millis(500);

async fn bind(addr: SocketAddr) -> Result<UdpSocket, TransportError> {
    UdpSocket::bind(addr)
        .await
        .map_err(|source| TransportError::Io {
            context: "binding UDP socket",
            addr,
            source,
        })
}

/// Sends frames to `remote` from a socket bound to `bind` until the frame channel
/// closes or shutdown is signalled. Feedback arrives on the same socket.
pub async fn run_sender<E: FnMut(SenderEvent)>(
    bind_addr: SocketAddr,
    remote: SocketAddr,
    mut sender: Sender,
    mut hooks: SenderHooks<E>,
) -> Result<(), TransportError> {
    let socket = bind(bind_addr).await?;
    let local = socket.local_addr().map_err(|source| TransportError::Io {
        context: "reading local address",
        addr: bind_addr,
        source,
    })?;
    tracing::info!(%local, %remote, session = format_args!("{:08x}", sender.session()), "sending over UDP");
    let mut out = Vec::with_capacity(RECV_BUFFER);
    let mut inbuf = vec![0u8; RECV_BUFFER];
    let mut link = SenderLink {
        socket: &socket,
        remote,
        send_errors: 0,
        strangers: 0,
    };
    loop {
        let wake = link.drain(&mut sender, &mut hooks, &mut out).await;
        tokio::select! {
            frame = hooks.frames.recv() => match frame {
                Some(frame) => sender.handle_input(Instant::now(), SenderInput::Frame(frame)),
                None => break,
            },
            got = socket.recv_from(&mut inbuf) => {
                match got {
                    Ok((n, from)) if from_receiver(from, remote) => {
                        sender.handle_input(Instant::now(), SenderInput::Packet(&inbuf[..n]));
                    }
                    Ok((_, from)) => {
                        link.strangers += 1;
                        if link.strangers.is_power_of_two() {
                            tracing::debug!(%from, count = link.strangers, "ignoring a datagram not from the receiver");
                        }
                    }
                    Err(_) => {}
                }
            }
            _ = sleep_until(wake) => sender.handle_input(Instant::now(), SenderInput::Timeout),
            _ = hooks.shutdown.changed() => break,
        }
    }
    // The source ended (end of a file) or we are stopping: what was captured still goes
    // out, paced as usual, within a bound.
    while let Ok(frame) = hooks.frames.try_recv() {
        sender.handle_input(Instant::now(), SenderInput::Frame(frame));
    }
    let deadline = Instant::now() + FLUSH_LIMIT;
    loop {
        let wake = link.drain(&mut sender, &mut hooks, &mut out).await;
        if sender.queued_frames() == 0 || Instant::now() >= deadline {
            break;
        }
        let next = wake.unwrap_or_else(|| Instant::now() + Duration::from_millis(1));
        tokio::time::sleep_until(next.min(deadline).into()).await;
        sender.handle_input(Instant::now(), SenderInput::Timeout);
    }
    Ok(())
}

/// The sender's socket and where it sends.
struct SenderLink<'a> {
    socket: &'a UdpSocket,
    remote: SocketAddr,
    send_errors: u64,
    /// Datagrams ignored because they came from somewhere other than `remote`.
    strangers: u64,
}

/// Whether a datagram comes from the receiver we send to. Anyone can send to the
/// sender's port; what does not come from `remote` (a forged WELCOME from another
/// host, stray traffic) never reaches the machine. One spoofed from `remote` itself
/// still does, and is refused there by authentication. An IPv4 address and its
/// IPv4-mapped IPv6 form (a dual-stack socket) are the same host.
fn from_receiver(from: SocketAddr, remote: SocketAddr) -> bool {
    let canonical = |a: SocketAddr| (a.ip().to_canonical(), a.port());
    canonical(from) == canonical(remote)
}

impl SenderLink<'_> {
    /// The sender's one drain loop: sends, hands events on, publishes the counters and
    /// returns when the machine next wants a timeout.
    async fn drain<E: FnMut(SenderEvent)>(
        &mut self,
        sender: &mut Sender,
        hooks: &mut SenderHooks<E>,
        out: &mut Vec<u8>,
    ) -> Option<Instant> {
        loop {
            match sender.poll_output(Instant::now(), out) {
                Output::Transmit(t) => {
                    let to = t.to.unwrap_or(self.remote);
                    if let Err(e) = self.socket.send_to(out, to).await {
                        // A receiver that is not up yet (ICMP unreachable) must not stop us.
                        self.send_errors += 1;
                        if self.send_errors.is_power_of_two() {
                            tracing::warn!(%to, error = %e, count = self.send_errors, "UDP send failed");
                        }
                    }
                }
                Output::Event(event) => (hooks.on_event)(event),
                Output::Timeout(at) => {
                    hooks.publish(sender);
                    return at;
                }
            }
        }
    }
}

/// Receives on `bind`, handing frames on, until shutdown; sends a bye on the way out.
pub async fn run_receiver<F: FnMut(ReceivedFrame) -> bool>(
    bind_addr: SocketAddr,
    mut receiver: Receiver,
    mut hooks: ReceiverHooks<F>,
) -> Result<(), TransportError> {
    let socket = bind(bind_addr).await?;
    tracing::info!(local = %bind_addr, "receiving over UDP");
    let mut inbuf = vec![0u8; RECV_BUFFER];
    let mut out = Vec::with_capacity(1500);
    let mut throttle = Throttle::default();
    loop {
        let wake =
            drain_receiver(&socket, &mut receiver, &mut hooks, &mut out, &mut throttle).await;
        tokio::select! {
            got = socket.recv_from(&mut inbuf) => match got {
                Ok((n, from)) => receiver.handle_input(Instant::now(), ReceiverInput::Packet { from: Some(from), data: &inbuf[..n] }),
                Err(e) => tracing::debug!(error = %e, "UDP receive error"),
            },
            Some(command) = hooks.commands.recv() => hooks.on_command(&mut receiver, command),
            _ = sleep_until(wake) => receiver.handle_input(Instant::now(), ReceiverInput::Timeout),
            _ = hooks.shutdown.changed() => break,
        }
    }
    receiver.handle_input(Instant::now(), ReceiverInput::Close);
    throttle.force = true;
    drain_receiver(&socket, &mut receiver, &mut hooks, &mut out, &mut throttle).await;
    Ok(())
}

/// The receiver's one drain loop: hands frames on, sends feedback, publishes the
/// counters and returns when the machine next wants a timeout.
async fn drain_receiver<F: FnMut(ReceivedFrame) -> bool>(
    socket: &UdpSocket,
    receiver: &mut Receiver,
    hooks: &mut ReceiverHooks<F>,
    out: &mut Vec<u8>,
    throttle: &mut Throttle,
) -> Option<Instant> {
    loop {
        match receiver.poll_output(Instant::now(), out) {
            Output::Event(event) => hooks.on_event(receiver, event),
            Output::Transmit(t) => {
                if let Some(to) = t.to {
                    if let Err(e) = socket.send_to(out, to).await {
                        tracing::debug!(%to, error = %e, "feedback send failed");
                    }
                }
            }
            Output::Timeout(at) => {
                hooks.publish(receiver, throttle);
                return at;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::from_receiver;

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
