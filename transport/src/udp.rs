//! UDP driver: the only code here that touches a datagram socket.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;

use crate::driver::{sleep_until, ReceiverHooks, SenderHooks};
use crate::{ReceivedFrame, Receiver, Sender, SenderEvent, TransportError};

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
    tracing::info!(local = %socket.local_addr().map_err(|source| TransportError::Io { context: "reading local address", addr: bind_addr, source })?, %remote, session = format_args!("{:08x}", sender.session()), "sending over UDP");
    let mut out = Vec::with_capacity(RECV_BUFFER);
    let mut inbuf = vec![0u8; RECV_BUFFER];
    let mut send_errors = 0u64;
    loop {
        let now = Instant::now();
        while sender.poll_transmit(now, &mut out) {
            if let Err(e) = socket.send_to(&out, remote).await {
                // A receiver that is not up yet (ICMP unreachable) must not stop us.
                send_errors += 1;
                if send_errors.is_power_of_two() {
                    tracing::warn!(%remote, error = %e, count = send_errors, "UDP send failed");
                }
            }
        }
        hooks.drain_events(&mut sender);
        tokio::select! {
            frame = hooks.frames.recv() => match frame {
                Some(frame) => { sender.handle_frame(Instant::now(), frame); }
                None => break,
            },
            got = socket.recv_from(&mut inbuf) => {
                if let Ok((n, _from)) = got {
                    sender.handle_packet(Instant::now(), &inbuf[..n]);
                }
            }
            _ = sleep_until(sender.poll_timeout()) => sender.handle_timeout(Instant::now()),
            _ = hooks.shutdown.changed() => break,
        }
    }
    // The source ended (end of a file) or we are stopping: what was captured still goes
    // out, paced as usual, within a bound.
    while let Ok(frame) = hooks.frames.try_recv() {
        sender.handle_frame(Instant::now(), frame);
    }
    let deadline = Instant::now() + FLUSH_LIMIT;
    while sender.queued_frames() > 0 && Instant::now() < deadline {
        let now = Instant::now();
        while sender.poll_transmit(now, &mut out) {
            let _ = socket.send_to(&out, remote).await;
        }
        let next = sender
            .poll_timeout()
            .unwrap_or(now + Duration::from_millis(1));
        tokio::time::sleep_until(next.min(deadline).into()).await;
        sender.handle_timeout(Instant::now());
    }
    Ok(())
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
    loop {
        for t in hooks.drain(&mut receiver) {
            if let Some(to) = t.to {
                let _ = socket.send_to(&t.payload, to).await;
            }
        }
        tokio::select! {
            got = socket.recv_from(&mut inbuf) => match got {
                Ok((n, from)) => receiver.handle_packet(Instant::now(), Some(from), &inbuf[..n]),
                Err(e) => tracing::debug!(error = %e, "UDP receive error"),
            },
            Some(command) = hooks.commands.recv() => hooks.handle_command(&mut receiver, command),
            _ = sleep_until(receiver.poll_timeout()) => receiver.handle_timeout(Instant::now()),
            _ = hooks.shutdown.changed() => break,
        }
    }
    receiver.close();
    for t in hooks.drain(&mut receiver) {
        if let Some(to) = t.to {
            let _ = socket.send_to(&t.payload, to).await;
        }
    }
    Ok(())
}
