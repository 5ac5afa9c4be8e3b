//! Tokio drivers for the interop wires: the only code in `rtp/` that touches sockets.
//! Four drivers (UDP and TCP, each a sender and a receiver), each with its own drain
//! loop over `poll_output`, as the native drivers have.
//!
//! UDP: the sender sends RTP to `remote` and, unless muxed, RTCP to a second remote
//! (port + 1) from a second socket, telling the two apart by packet type; the receiver
//! listens on its port and, unless muxed, on port + 1 for RTCP. TCP: the sender listens
//! and serves the newest client; the receiver connects to the sender and reconnects.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

use super::{is_rtcp, InteropReceiver, InteropSender, Rfc4571, StreamFraming};
use crate::io::sleep_until;
use crate::machine::Output;
use crate::{
    ReceivedFrame, ReceiverCommand, ReceiverHooks, ReceiverInput, SenderEvent, SenderHooks,
    SenderInput, TransportError,
};

const RECV_BUFFER: usize = 65_536;
/// A TCP peer that takes longer than this to accept one write is treated as gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

async fn bind_udp(addr: SocketAddr, context: &'static str) -> Result<UdpSocket, TransportError> {
    UdpSocket::bind(addr)
        .await
        .map_err(|source| TransportError::Io {
            context,
            addr,
            source,
        })
}

/// Receives a datagram from `socket` if there is one, else never completes.
async fn recv_opt(
    socket: Option<&UdpSocket>,
    buf: &mut [u8],
) -> std::io::Result<(usize, SocketAddr)> {
    match socket {
        Some(s) => s.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

/// Sends frames over UDP to `remote` (RTCP to `rtcp_remote` from a socket of its own when
/// given, else on the RTP socket) until the frame channel closes or shutdown.
pub async fn run_udp_sender<M: InteropSender, E: FnMut(SenderEvent)>(
    bind: SocketAddr,
    remote: SocketAddr,
    rtcp_remote: Option<SocketAddr>,
    mut machine: M,
    mut hooks: SenderHooks<E>,
) -> Result<(), TransportError> {
    let socket = bind_udp(bind, "binding UDP socket").await?;
    let rtcp_socket = match rtcp_remote {
        Some(_) => Some(bind_udp(bind, "binding RTCP socket").await?),
        None => None,
    };
    tracing::info!(%remote, ?rtcp_remote, "sending over UDP (interop wire)");
    let mut out = Vec::with_capacity(RECV_BUFFER);
    let mut inbuf = vec![0u8; RECV_BUFFER];
    let mut rtcp_buf = vec![0u8; RECV_BUFFER];
    let mut errors = 0u64;
    loop {
        // This driver's drain loop.
        let wake = loop {
            match machine.poll_output(Instant::now(), &mut out) {
                Output::Transmit(_) => {
                    let (s, to) = match (&rtcp_socket, rtcp_remote) {
                        (Some(s), Some(to)) if is_rtcp(&out) => (s, to),
                        _ => (&socket, remote),
                    };
                    if let Err(e) = s.send_to(&out, to).await {
                        errors += 1;
                        if errors.is_power_of_two() {
                            tracing::warn!(%to, error = %e, count = errors, "UDP send failed");
                        }
                    }
                }
                Output::Event(e) => (hooks.on_event)(e),
                Output::Timeout(at) => {
                    hooks.stats.send_replace(machine.stats());
                    break at;
                }
            }
        };
        tokio::select! {
            frame = hooks.frames.recv() => match frame {
                Some(frame) => machine.handle_input(Instant::now(), SenderInput::Frame(frame)),
                None => break,
            },
            got = socket.recv_from(&mut inbuf) => {
                if let Ok((n, _)) = got {
                    machine.handle_input(Instant::now(), SenderInput::Packet(&inbuf[..n]));
                }
            }
            got = recv_opt(rtcp_socket.as_ref(), &mut rtcp_buf) => {
                if let Ok((n, _)) = got {
                    machine.handle_input(Instant::now(), SenderInput::Packet(&rtcp_buf[..n]));
                }
            }
            _ = sleep_until(wake) => machine.handle_input(Instant::now(), SenderInput::Timeout),
            _ = hooks.shutdown.changed() => break,
        }
    }
    // What is queued is one frame at most: hand it out.
    while let Output::Transmit(_) = machine.poll_output(Instant::now(), &mut out) {
        let _ = socket.send_to(&out, remote).await;
    }
    Ok(())
}

/// Writes one message, framed.
async fn write_framed(
    stream: &mut TcpStream,
    framing: StreamFraming,
    message: &[u8],
) -> std::io::Result<()> {
    let write = async {
        if framing == StreamFraming::Rfc4571 {
            let Ok(len) = u16::try_from(message.len()) else {
                // Cannot be framed; packets are sized for UDP and never reach this.
                return Ok(());
            };
            stream.write_all(&len.to_be_bytes()).await?;
        }
        stream.write_all(message).await
    };
    match tokio::time::timeout(WRITE_TIMEOUT, write).await {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "peer stopped reading",
        )),
    }
}

/// Listens on `listen` and streams to the newest client until the frame channel closes
/// or shutdown. Frames while nobody is connected are dropped; a new client gets a
/// keyframe first.
pub async fn run_tcp_sender<M: InteropSender, E: FnMut(SenderEvent)>(
    listen: SocketAddr,
    framing: StreamFraming,
    mut machine: M,
    mut hooks: SenderHooks<E>,
) -> Result<(), TransportError> {
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| TransportError::Io {
            context: "listening on TCP",
            addr: listen,
            source,
        })?;
    tracing::info!(%listen, ?framing, "serving over TCP (interop wire): waiting for a viewer");
    let mut conn: Option<(TcpStream, SocketAddr)> = None;
    let mut out = Vec::with_capacity(RECV_BUFFER);
    let mut inbuf = vec![0u8; 4096];
    let mut deframer = Rfc4571::default();
    loop {
        let wake = loop {
            match machine.poll_output(Instant::now(), &mut out) {
                Output::Transmit(_) => {
                    if let Some((stream, peer)) = conn.as_mut() {
                        if let Err(e) = write_framed(stream, framing, &out).await {
                            tracing::warn!(%peer, error = %e, "viewer gone");
                            conn = None;
                            machine.handle_input(Instant::now(), SenderInput::Disconnected);
                        }
                    }
                }
                Output::Event(e) => (hooks.on_event)(e),
                Output::Timeout(at) => {
                    hooks.stats.send_replace(machine.stats());
                    break at;
                }
            }
        };
        let read = async {
            match conn.as_mut() {
                Some((s, _)) => s.read(&mut inbuf).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    crate::io::sockopt::keep_tcp_send_queue_small(&stream, 64 * 1024, 16 * 1024);
                    tracing::info!(%peer, "viewer connected");
                    conn = Some((stream, peer));
                    deframer = Rfc4571::default();
                    machine.handle_input(Instant::now(), SenderInput::NewReceiver);
                }
                Err(e) => tracing::warn!(error = %e, "accept failed"),
            },
            read = read => match read {
                Ok(0) | Err(_) => {
                    tracing::info!("viewer disconnected");
                    conn = None;
                    machine.handle_input(Instant::now(), SenderInput::Disconnected);
                }
                Ok(n) => {
                    // RTCP from the viewer, RFC 4571-framed; a raw viewer sends nothing.
                    if framing == StreamFraming::Rfc4571 {
                        deframer.push(&inbuf[..n]);
                        while let Some(p) = deframer.pull() {
                            machine.handle_input(Instant::now(), SenderInput::Packet(p));
                        }
                    }
                }
            },
            frame = hooks.frames.recv() => match frame {
                Some(frame) => {
                    machine.handle_input(Instant::now(), SenderInput::Frame(frame));
                    if conn.is_none() {
                        machine.handle_input(Instant::now(), SenderInput::Disconnected);
                    }
                }
                None => break,
            },
            _ = sleep_until(wake) => machine.handle_input(Instant::now(), SenderInput::Timeout),
            _ = hooks.shutdown.changed() => break,
        }
    }
    if let Some((mut stream, _)) = conn {
        while let Output::Transmit(_) = machine.poll_output(Instant::now(), &mut out) {
            if write_framed(&mut stream, framing, &out).await.is_err() {
                break;
            }
        }
    }
    Ok(())
}

/// One step of the receiver's drain loop: hands frames on until the machine has a
/// packet to send (`Ok(to)`, in `out`) or wants a timeout (`Err(at)`).
fn drain_step<M: InteropReceiver, F: FnMut(ReceivedFrame) -> bool>(
    machine: &mut M,
    hooks: &mut ReceiverHooks<F>,
    out: &mut Vec<u8>,
) -> Result<Option<SocketAddr>, Option<Instant>> {
    loop {
        match machine.poll_output(Instant::now(), out) {
            Output::Event(crate::ReceiverEvent::Frame(frame)) => {
                if !(hooks.on_frame)(frame) {
                    machine.handle_input(Instant::now(), ReceiverInput::DownstreamFull);
                }
            }
            Output::Transmit(t) => return Ok(t.to),
            Output::Timeout(at) => {
                hooks.stats.send_replace(machine.stats());
                return Err(at);
            }
        }
    }
}

/// Receives on `bind` (and RTCP on `rtcp_bind` when given) until shutdown.
pub async fn run_udp_receiver<M: InteropReceiver, F: FnMut(ReceivedFrame) -> bool>(
    bind: SocketAddr,
    rtcp_bind: Option<SocketAddr>,
    mut machine: M,
    mut hooks: ReceiverHooks<F>,
) -> Result<(), TransportError> {
    let socket = bind_udp(bind, "binding UDP socket").await?;
    let rtcp_socket = match rtcp_bind {
        Some(addr) => Some(bind_udp(addr, "binding the RTCP port (port + 1)").await?),
        None => None,
    };
    tracing::info!(local = %bind, ?rtcp_bind, "receiving over UDP (interop wire)");
    let mut inbuf = vec![0u8; RECV_BUFFER];
    let mut rtcp_buf = vec![0u8; RECV_BUFFER];
    let mut out = Vec::with_capacity(1500);
    loop {
        // This driver's drain loop.
        let wake = loop {
            match drain_step(&mut machine, &mut hooks, &mut out) {
                Ok(Some(to)) => {
                    let s = rtcp_socket.as_ref().unwrap_or(&socket);
                    if let Err(e) = s.send_to(&out, to).await {
                        tracing::debug!(%to, error = %e, "RTCP send failed");
                    }
                }
                Ok(None) => {}
                Err(at) => break at,
            }
        };
        tokio::select! {
            got = socket.recv_from(&mut inbuf) => match got {
                Ok((n, from)) => machine.handle_input(Instant::now(), ReceiverInput::Packet { from: Some(from), data: &inbuf[..n] }),
                Err(e) => tracing::debug!(error = %e, "UDP receive error"),
            },
            got = recv_opt(rtcp_socket.as_ref(), &mut rtcp_buf) => {
                if let Ok((n, from)) = got {
                    machine.handle_input(Instant::now(), ReceiverInput::Packet { from: Some(from), data: &rtcp_buf[..n] });
                }
            }
            Some(ReceiverCommand::RequestKeyframe) = hooks.commands.recv() => {
                machine.handle_input(Instant::now(), ReceiverInput::RequestKeyframe);
            }
            _ = sleep_until(wake) => machine.handle_input(Instant::now(), ReceiverInput::Timeout),
            _ = hooks.shutdown.changed() => break,
        }
    }
    Ok(())
}

/// Connects to the sender at `remote` (reconnecting with backoff) and receives until
/// shutdown.
pub async fn run_tcp_receiver<M: InteropReceiver, F: FnMut(ReceivedFrame) -> bool>(
    remote: SocketAddr,
    framing: StreamFraming,
    mut machine: M,
    mut hooks: ReceiverHooks<F>,
) -> Result<(), TransportError> {
    tracing::info!(%remote, ?framing, "receiving over TCP (interop wire): connecting");
    let mut inbuf = vec![0u8; 256 * 1024];
    let mut out = Vec::with_capacity(1500);
    let mut backoff = BACKOFF_START;
    let mut conn: Option<TcpStream> = None;
    let mut deframer = Rfc4571::default();
    let mut next_attempt = Instant::now();
    loop {
        // This driver's drain loop.
        let wake = loop {
            match drain_step(&mut machine, &mut hooks, &mut out) {
                Ok(_) => {
                    if let Some(stream) = conn.as_mut() {
                        if write_framed(stream, framing, &out).await.is_err() {
                            conn = None;
                        }
                    }
                }
                Err(at) => break at,
            }
        };
        let connected = conn.is_some();
        let connect = async {
            if connected {
                return std::future::pending().await;
            }
            tokio::time::sleep_until(next_attempt.into()).await;
            tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(remote)).await
        };
        let read = async {
            match conn.as_mut() {
                Some(s) => s.read(&mut inbuf).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            attempt = connect => match attempt {
                Ok(Ok(stream)) => {
                    let _ = stream.set_nodelay(true);
                    tracing::info!(%remote, "connected to the sender");
                    conn = Some(stream);
                    deframer = Rfc4571::default();
                    backoff = BACKOFF_START;
                }
                _ => {
                    tracing::debug!(%remote, "connect failed; retrying");
                    next_attempt = Instant::now() + backoff;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            },
            read = read => match read {
                Ok(0) | Err(_) => {
                    tracing::info!(%remote, "sender closed the connection; reconnecting");
                    conn = None;
                    next_attempt = Instant::now() + backoff;
                    machine.handle_input(Instant::now(), ReceiverInput::RequestKeyframe);
                }
                Ok(n) => match framing {
                    StreamFraming::Rfc4571 => {
                        deframer.push(&inbuf[..n]);
                        while let Some(p) = deframer.pull() {
                            machine.handle_input(Instant::now(), ReceiverInput::Packet { from: None, data: p });
                        }
                    }
                    StreamFraming::Raw => machine.handle_input(Instant::now(), ReceiverInput::Packet { from: None, data: &inbuf[..n] }),
                },
            },
            Some(ReceiverCommand::RequestKeyframe) = hooks.commands.recv() => {
                machine.handle_input(Instant::now(), ReceiverInput::RequestKeyframe);
            }
            _ = sleep_until(wake) => machine.handle_input(Instant::now(), ReceiverInput::Timeout),
            _ = hooks.shutdown.changed() => break,
        }
    }
    Ok(())
}
