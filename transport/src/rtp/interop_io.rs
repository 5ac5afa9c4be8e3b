//! The interop wires' entry points: each picks a carrier (`io::udp`, `io::tcp`) and runs
//! the machine on the one driver loop (`io::driver`), as the native wire does. No loop
//! of its own.
//!
//! UDP: the sender sends RTP to `remote` and, unless muxed, RTCP to a second remote
//! (port + 1) from a second socket, the machine saying which (`Transmit::via`); the receiver
//! listens on its port and, unless muxed, on port + 1 for RTCP. TCP: the sender listens
//! and serves the newest client; the receiver connects to the sender and reconnects.

use std::net::SocketAddr;

use tokio::net::TcpListener;

use super::{InteropReceiver, InteropSender, StreamFraming};
use crate::driver::{drive, Endpoint};
use crate::io::tcp::{Framing, StreamCarrier};
use crate::io::udp::{self, UdpCarrier};
use crate::{
    ReceivedFrame, ReceiverHooks, ReceiverStats, SenderEvent, SenderHooks, SenderStats,
    TransportError,
};

/// Sends frames over UDP to `remote` (RTCP to `rtcp_remote` from a socket of its own when
/// given, else on the RTP socket) until the frame channel closes or shutdown, then
/// flushes.
pub async fn run_udp_sender<M, E>(
    bind: SocketAddr,
    remote: SocketAddr,
    rtcp_remote: Option<SocketAddr>,
    mut machine: M,
    mut hooks: SenderHooks<E>,
) -> Result<(), TransportError>
where
    M: InteropSender + Endpoint<Stats = SenderStats>,
    E: FnMut(SenderEvent),
{
    let socket = udp::bind(bind, "binding UDP socket").await?;
    let control = match rtcp_remote {
        Some(to) => Some((udp::bind(bind, "binding RTCP socket").await?, Some(to))),
        None => None,
    };
    tracing::info!(%remote, ?rtcp_remote, "sending over UDP (interop wire)");
    let mut carrier = UdpCarrier::new(socket, Some(remote), control).batched();
    drive(&mut machine, &mut carrier, &mut hooks).await;
    Ok(())
}

fn framing(framing: StreamFraming) -> Framing {
    match framing {
        StreamFraming::Rfc4571 => Framing::Rfc4571,
        StreamFraming::Raw => Framing::Raw,
    }
}

/// Listens on `listen` and streams to the newest client until the frame channel closes
/// or shutdown, then flushes. Frames while nobody is connected are dropped; a new
/// client gets a keyframe first.
pub async fn run_tcp_sender<M, E>(
    listen: SocketAddr,
    stream_framing: StreamFraming,
    mut machine: M,
    mut hooks: SenderHooks<E>,
) -> Result<(), TransportError>
where
    M: InteropSender + Endpoint<Stats = SenderStats>,
    E: FnMut(SenderEvent),
{
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| TransportError::Io {
            context: "listening on TCP",
            addr: listen,
            source,
        })?;
    tracing::info!(%listen, framing = ?stream_framing, "serving over TCP (interop wire): waiting for a viewer");
    // A raw viewer sends nothing; RTCP from an RTP viewer is RFC 4571-framed.
    let mut carrier = StreamCarrier::listen(listener, framing(stream_framing), "viewer")
        .small_send_queue(64 * 1024, 16 * 1024);
    drive(&mut machine, &mut carrier, &mut hooks).await;
    Ok(())
}

/// Receives on `bind` (and RTCP on `rtcp_bind` when given) until shutdown.
pub async fn run_udp_receiver<M, F>(
    bind: SocketAddr,
    rtcp_bind: Option<SocketAddr>,
    mut machine: M,
    mut hooks: ReceiverHooks<F>,
) -> Result<(), TransportError>
where
    M: InteropReceiver + Endpoint<Stats = ReceiverStats>,
    F: FnMut(ReceivedFrame) -> bool,
{
    let socket = udp::bind(bind, "binding UDP socket").await?;
    let control = match rtcp_bind {
        Some(addr) => Some((
            udp::bind(addr, "binding the RTCP port (port + 1)").await?,
            None,
        )),
        None => None,
    };
    tracing::info!(local = %bind, ?rtcp_bind, "receiving over UDP (interop wire)");
    let mut carrier = UdpCarrier::new(socket, None, control);
    drive(&mut machine, &mut carrier, &mut hooks).await;
    Ok(())
}

/// Connects to the sender at `remote` (reconnecting with backoff) and receives until
/// shutdown.
pub async fn run_tcp_receiver<M, F>(
    remote: SocketAddr,
    stream_framing: StreamFraming,
    mut machine: M,
    mut hooks: ReceiverHooks<F>,
) -> Result<(), TransportError>
where
    M: InteropReceiver + Endpoint<Stats = ReceiverStats>,
    F: FnMut(ReceivedFrame) -> bool,
{
    tracing::info!(%remote, framing = ?stream_framing, "receiving over TCP (interop wire): connecting");
    let mut carrier = StreamCarrier::dial(remote, framing(stream_framing), "sender");
    drive(&mut machine, &mut carrier, &mut hooks).await;
    Ok(())
}
