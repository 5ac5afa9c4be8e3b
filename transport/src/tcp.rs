//! TCP driver: the only code here that touches a stream socket.
//!
//! The sender connects to the receiver (as with UDP, the sender knows the viewer's
//! address), reconnecting with backoff whenever the connection is lost; the receiver
//! listens and replaces its connection when a newer one arrives (a restarted sender).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Buf;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::driver::{sleep_until, ReceiverHooks, SenderHooks};
use crate::framing::LengthPrefixed;
use crate::{wire, ReceivedFrame, Receiver, Sender, SenderEvent, TransportError};

const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// A peer that takes longer than this to accept one message is treated as gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// Feedback messages are tiny; anything bigger on the sender's read side is an error.
const MAX_FEEDBACK: usize = 1024;

async fn write_message(stream: &mut TcpStream, message: &[u8]) -> std::io::Result<()> {
    let prefix = (message.len() as u32).to_be_bytes();
    let mut both = Buf::chain(&prefix[..], message);
    match tokio::time::timeout(WRITE_TIMEOUT, stream.write_all_buf(&mut both)).await {
        Ok(result) => result,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "peer stopped reading",
        )),
    }
}

/// Why a connected session ended.
enum Ended {
    Shutdown,
    Disconnected,
}

/// Streams frames to `remote`, reconnecting with backoff, until the frame channel
/// closes or shutdown is signalled. While disconnected, frames are dropped (counted).
pub async fn run_sender<E: FnMut(SenderEvent)>(
    remote: SocketAddr,
    mut sender: Sender,
    mut hooks: SenderHooks<E>,
) -> Result<(), TransportError> {
    tracing::info!(%remote, session = format_args!("{:08x}", sender.session()), "sending over TCP");
    let mut backoff = BACKOFF_START;
    loop {
        let connect = TcpStream::connect(remote);
        tokio::pin!(connect);
        let stream = loop {
            tokio::select! {
                result = &mut connect => break result,
                frame = hooks.frames.recv() => match frame {
                    // Nobody to send to: take the frame so capture never blocks, count it.
                    Some(frame) => { sender.handle_frame(Instant::now(), frame); sender.drop_queued(); hooks.drain_events(&mut sender); }
                    None => return Ok(()),
                },
                _ = hooks.shutdown.changed() => return Ok(()),
            }
        };
        match stream {
            Ok(stream) => {
                backoff = BACKOFF_START;
                if let Err(e) = stream.set_nodelay(true) {
                    tracing::warn!(error = %e, "could not set TCP_NODELAY");
                }
                tracing::info!(%remote, "connected");
                match send_on(stream, &mut sender, &mut hooks).await {
                    Ended::Shutdown => return Ok(()),
                    Ended::Disconnected => {
                        tracing::warn!(%remote, "receiver disconnected; reconnecting")
                    }
                }
            }
            Err(e) => {
                tracing::debug!(%remote, error = %e, ?backoff, "connect failed");
                let pause = tokio::time::sleep(backoff);
                tokio::pin!(pause);
                // Keep draining frames during the pause so capture never blocks.
                loop {
                    tokio::select! {
                        _ = &mut pause => break,
                        frame = hooks.frames.recv() => match frame {
                            Some(frame) => { sender.handle_frame(Instant::now(), frame); sender.drop_queued(); hooks.drain_events(&mut sender); }
                            None => return Ok(()),
                        },
                        _ = hooks.shutdown.changed() => return Ok(()),
                    }
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

/// Kernel send buffer with the jam guard: bounds what one connection keeps queued in
/// the network (Linux doubles the value given).
const GUARDED_SEND_BUFFER: usize = 32 * 1024;
/// Unsent bytes the kernel may hold before the socket stops being writable.
const GUARDED_NOT_SENT_LOW_WATER: u32 = 16 * 1024;
/// A connection that accepts nothing for this long while we have data is dead.
const STALL_LIMIT: Duration = Duration::from_secs(5);
/// How long queued frames may take to leave once the source has ended.
const FLUSH_LIMIT: Duration = Duration::from_millis(500);

async fn send_on<E: FnMut(SenderEvent)>(
    stream: TcpStream,
    sender: &mut Sender,
    hooks: &mut SenderHooks<E>,
) -> Ended {
    if sender.jam_guard() {
        crate::sockopt::keep_tcp_send_queue_small(
            &stream,
            GUARDED_SEND_BUFFER,
            GUARDED_NOT_SENT_LOW_WATER,
        );
    }
    sender.handle_new_receiver(Instant::now());
    let mut packet = Vec::with_capacity(256 * 1024);
    // The message being written: length prefix and packet, and how much has gone.
    let mut pending: Vec<u8> = Vec::with_capacity(256 * 1024);
    let mut written = 0;
    let mut last_progress = Instant::now();
    let mut inbuf = vec![0u8; 4096];
    let mut feedback = LengthPrefixed::new(MAX_FEEDBACK);
    // Once the source has ended or we are stopping: what was captured still goes out,
    // within a bound.
    let mut stopping: Option<Instant> = None;
    loop {
        // Write without blocking: when the kernel's small queue is full, frames wait in
        // the sender, which drops the stale ones.
        loop {
            if written == pending.len() {
                if !sender.poll_transmit(Instant::now(), &mut packet) {
                    break;
                }
                pending.clear();
                pending.extend_from_slice(&(packet.len() as u32).to_be_bytes());
                pending.extend_from_slice(&packet);
                written = 0;
            }
            match stream.try_write(&pending[written..]) {
                Ok(n) => {
                    written += n;
                    last_progress = Instant::now();
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => return Ended::Disconnected,
            }
        }
        hooks.drain_events(sender);
        let blocked = written < pending.len();
        if let Some(deadline) = stopping {
            if (!blocked && sender.queued_frames() == 0) || Instant::now() >= deadline {
                return Ended::Shutdown;
            }
        }
        if blocked && last_progress.elapsed() > STALL_LIMIT {
            return Ended::Disconnected;
        }
        let wake = match (sender.poll_timeout(), blocked) {
            // While blocked, also wake to notice a stall.
            (t, true) => Some(t.map_or(Instant::now() + STALL_LIMIT, |t| {
                t.min(Instant::now() + STALL_LIMIT)
            })),
            (t, false) => t,
        };
        let wake = match (wake, stopping) {
            (Some(w), Some(d)) => Some(w.min(d)),
            (w, d) => w.or(d),
        };
        tokio::select! {
            frame = hooks.frames.recv(), if stopping.is_none() => match frame {
                Some(frame) => { sender.handle_frame(Instant::now(), frame); }
                None => stopping = Some(Instant::now() + FLUSH_LIMIT),
            },
            ready = stream.writable(), if blocked => {
                if ready.is_err() {
                    return Ended::Disconnected;
                }
            }
            ready = stream.readable() => {
                if ready.is_err() {
                    return Ended::Disconnected;
                }
                match stream.try_read(&mut inbuf) {
                    Ok(0) => return Ended::Disconnected,
                    Ok(n) => {
                        feedback.push(&inbuf[..n]);
                        loop {
                            match feedback.pull() {
                                Ok(Some(message)) => sender.handle_packet(Instant::now(), &message),
                                Ok(None) => break,
                                Err(_) => return Ended::Disconnected,
                            }
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => return Ended::Disconnected,
                }
            }
            _ = sleep_until(wake) => sender.handle_timeout(Instant::now()),
            _ = hooks.shutdown.changed(), if stopping.is_none() => {
                while let Ok(frame) = hooks.frames.try_recv() {
                    sender.handle_frame(Instant::now(), frame);
                }
                stopping = Some(Instant::now() + FLUSH_LIMIT);
            }
        }
    }
}

/// Listens on `bind`, receiving from the newest connected sender, until shutdown.
pub async fn run_receiver<F: FnMut(ReceivedFrame) -> bool>(
    bind_addr: SocketAddr,
    max_frame_bytes: usize,
    mut receiver: Receiver,
    mut hooks: ReceiverHooks<F>,
) -> Result<(), TransportError> {
    let listener = TcpListener::bind(bind_addr)
        .await
        .map_err(|source| TransportError::Io {
            context: "listening on TCP",
            addr: bind_addr,
            source,
        })?;
    tracing::info!(local = %bind_addr, "receiving over TCP");
    let max_message = max_frame_bytes + wire::FRAGMENT_HEADER;
    let mut conn: Option<(TcpStream, SocketAddr, LengthPrefixed)> = None;
    let mut inbuf = vec![0u8; 256 * 1024];
    loop {
        let transmits = hooks.drain(&mut receiver);
        if let Some((stream, peer, _)) = conn.as_mut() {
            for t in transmits {
                if write_message(stream, &t.payload).await.is_err() {
                    tracing::warn!(%peer, "sender connection lost while sending feedback");
                    conn = None;
                    break;
                }
            }
        }
        let read = async {
            match conn.as_mut() {
                Some((stream, _, _)) => stream.read(&mut inbuf).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    tracing::info!(%peer, "sender connected");
                    conn = Some((stream, peer, LengthPrefixed::new(max_message)));
                }
                Err(e) => tracing::warn!(error = %e, "accept failed"),
            },
            read = read => {
                let Some((_, peer, splitter)) = conn.as_mut() else { continue };
                let peer = *peer;
                match read {
                    Ok(0) | Err(_) => {
                        tracing::info!(%peer, "sender disconnected");
                        conn = None;
                    }
                    Ok(n) => {
                        splitter.push(&inbuf[..n]);
                        loop {
                            match splitter.pull() {
                                Ok(Some(message)) => receiver.handle_packet(Instant::now(), Some(peer), &message),
                                Ok(None) => break,
                                Err(e) => {
                                    tracing::warn!(%peer, error = %e, "dropping connection");
                                    conn = None;
                                    break;
                                }
                            }
                        }
                    }
                }
            },
            Some(command) = hooks.commands.recv() => hooks.handle_command(&mut receiver, command),
            _ = sleep_until(receiver.poll_timeout()) => receiver.handle_timeout(Instant::now()),
            _ = hooks.shutdown.changed() => break,
        }
    }
    receiver.close();
    let transmits = hooks.drain(&mut receiver);
    if let Some((stream, _, _)) = conn.as_mut() {
        for t in transmits {
            let _ = write_message(stream, &t.payload).await;
        }
    }
    Ok(())
}
