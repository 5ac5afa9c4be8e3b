//! The browser viewer's I/O edge: an HTTP listener for the page and WHEP signalling,
//! and one UDP socket (the same port number) that carries every viewer's WebRTC media.
//! The protocol logic lives in `web/` (sans-IO); this file only moves bytes and time.
//!
//! One task owns the signalling and the fan-out; each HTTP connection has a small task
//! that reads one bounded request and hands it over through a bounded channel.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, oneshot, watch, Semaphore};

use super::driver::{drive, Hooks};
use super::udp::UdpCarrier;
use crate::machine::Machine;
use crate::web::fanout::{FanoutEvent, FanoutInput, FanoutStats, OfferRefused, WebFanout};
use crate::web::http::{self, Request, Response};
use crate::web::signalling::{Action, Refusal, Signalling, SignallingStats};
use crate::web::viewer::WebFrame;
use crate::{SourceFrame, TransportError};

/// HTTP connections served at once; more wait in the kernel's backlog. Each holds at
/// most one bounded request, so this bounds the memory requests can take.
const MAX_CONNECTIONS: usize = 32;
/// Requests waiting for the web task. A full queue answers 503 at once.
const REQUEST_QUEUE: usize = 16;
/// A connection that has not sent a whole request by then is closed (slow clients
/// cannot hold a slot).
const REQUEST_DEADLINE: Duration = Duration::from_secs(5);

/// Counters of the web side, for the sender's stats.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WebStats {
    /// The viewers and their frames.
    pub fanout: FanoutStats,
    /// Requests, refusals, offers.
    pub signalling: SignallingStats,
    /// Datagrams the socket could not take at once (dropped: newest wins).
    pub send_drops: u64,
}

/// What a running web driver is connected to.
pub struct WebHooks<E> {
    /// Encoded frames from capture (a channel of its own, beside the native stream's).
    pub frames: mpsc::Receiver<SourceFrame>,
    /// Takes each fan-out event (keyframe, bitrate vote, viewers coming and going).
    pub on_event: E,
    /// Latest counters.
    pub stats: watch::Sender<WebStats>,
    /// Becomes true when the process is shutting down.
    pub shutdown: watch::Receiver<bool>,
}

/// The bound sockets, so the caller can print the address before serving.
pub struct WebListener {
    tcp: TcpListener,
    udp: UdpSocket,
    local: SocketAddr,
}

impl WebListener {
    /// Binds HTTP (TCP) on `addr` and media (UDP) on the same address and port. Port 0
    /// takes a free TCP port and then the same UDP port.
    pub async fn bind(addr: SocketAddr) -> Result<Self, TransportError> {
        let io_err = |context, addr| {
            move |source| TransportError::Io {
                context,
                addr,
                source,
            }
        };
        let tcp = TcpListener::bind(addr)
            .await
            .map_err(io_err("binding the web (HTTP) port", addr))?;
        let local = tcp
            .local_addr()
            .map_err(io_err("reading the web port", addr))?;
        let udp = UdpSocket::bind(local)
            .await
            .map_err(io_err("binding the web media (UDP) port", local))?;
        Ok(Self { tcp, udp, local })
    }

    /// The address both sockets are bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

struct PendingRequest {
    request: Request,
    peer: SocketAddr,
    /// Our address on that connection: the IP the browser reaches us at.
    local: SocketAddr,
    reply: oneshot::Sender<Response>,
}

/// What the web driver takes from upstream: frames, and signalling requests from the
/// HTTP side.
enum WebItem {
    Frame(SourceFrame),
    Request(PendingRequest),
}

/// The web side's hooks into the one driver loop: frames and requests in, fan-out
/// events out, counters; signalling (sans-IO) answers the requests here.
struct WebDriverHooks<E> {
    hooks: WebHooks<E>,
    signalling: Signalling,
    requests: mpsc::Receiver<PendingRequest>,
    udp_port: u16,
    local: SocketAddr,
    /// Why the source "ended" when it was not the frames.
    error: Option<TransportError>,
    stats: WebStats,
    drops: Arc<AtomicU64>,
    last_publish: Option<Instant>,
}

impl<E: FnMut(FanoutEvent)> Hooks<WebFanout> for WebDriverHooks<E> {
    type Item = WebItem;

    fn next(&mut self) -> impl std::future::Future<Output = Option<WebItem>> + Send {
        let frames = &mut self.hooks.frames;
        let requests = &mut self.requests;
        let error = &mut self.error;
        let local = self.local;
        async move {
            tokio::select! {
                frame = frames.recv() => frame.map(WebItem::Frame),
                pending = requests.recv() => match pending {
                    Some(pending) => Some(WebItem::Request(pending)),
                    None => {
                        *error = Some(TransportError::Io {
                            context: "accepting web connections",
                            addr: local,
                            source: std::io::Error::other("the listener stopped"),
                        });
                        None
                    }
                },
            }
        }
    }

    fn try_next(&mut self) -> Option<WebItem> {
        self.hooks.frames.try_recv().ok().map(WebItem::Frame)
    }

    fn take(&mut self, fanout: &mut WebFanout, now: Instant, item: WebItem) {
        match item {
            WebItem::Frame(source) => {
                // One copy per frame, shared by every viewer. An SPS that does not
                // promise "no reordering" is rewritten to (browsers would otherwise
                // hold frames back for reordering that picam's encoders never do).
                // Parameter sets come with keyframes only: other frames are not
                // scanned.
                let rewritten = source
                    .frame
                    .keyframe
                    .then(|| media::h264_sps::rewrite_access_unit(&source.frame.data))
                    .flatten();
                let data: Arc<[u8]> = match rewritten {
                    Some(rewritten) => Arc::from(rewritten),
                    None => Arc::from(&source.frame.data[..]),
                };
                let frame = WebFrame {
                    data,
                    capture_us: source.frame.capture_us,
                    keyframe: source.frame.keyframe,
                    skipped_before: source.skipped_before,
                };
                fanout.handle_input(now, FanoutInput::Frame(&frame));
            }
            WebItem::Request(pending) => {
                let response = serve(&mut self.signalling, fanout, &pending, self.udp_port);
                let _ = pending.reply.send(response);
            }
        }
    }

    fn on_event(&mut self, _fanout: &mut WebFanout, event: FanoutEvent) {
        log_event(&event);
        (self.hooks.on_event)(event);
    }

    fn publish(&mut self, fanout: &WebFanout) {
        if self
            .last_publish
            .is_none_or(|t| t.elapsed() >= Duration::from_millis(250))
        {
            self.last_publish = Some(Instant::now());
            self.publish_now(fanout);
        }
    }

    fn shutdown(&self) -> watch::Receiver<bool> {
        self.hooks.shutdown.clone()
    }
}

impl<E> WebDriverHooks<E> {
    fn publish_now(&mut self, fanout: &WebFanout) {
        self.stats.fanout = fanout.stats();
        self.stats.signalling = self.signalling.stats();
        self.stats.send_drops = self.drops.load(Ordering::Relaxed);
        self.hooks.stats.send_replace(self.stats);
    }
}

/// Serves the page, WHEP and media until the frame channel closes or shutdown. The
/// media runs on the one driver loop (`io::driver`) over a UDP carrier that never
/// waits for the socket; the HTTP accept loop is a task of its own.
pub async fn run<E: FnMut(FanoutEvent)>(
    listener: WebListener,
    signalling: Signalling,
    mut fanout: WebFanout,
    hooks: WebHooks<E>,
) -> Result<(), TransportError> {
    let WebListener { tcp, udp, local } = listener;
    let (request_tx, requests) = mpsc::channel::<PendingRequest>(REQUEST_QUEUE);
    let accept_task = tokio::spawn(accept_loop(tcp, request_tx));
    let drops = Arc::new(AtomicU64::new(0));
    let mut carrier = UdpCarrier::new(udp, None, None).never_wait(drops.clone());
    let mut hooks = WebDriverHooks {
        hooks,
        signalling,
        requests,
        udp_port: local.port(),
        local,
        error: None,
        stats: WebStats::default(),
        drops,
        last_publish: None,
    };
    drive(&mut fanout, &mut carrier, &mut hooks).await;
    accept_task.abort();
    hooks.publish_now(&fanout);
    match hooks.error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn log_event(event: &FanoutEvent) {
    match event {
        FanoutEvent::ViewerConnected(id) => tracing::info!("browser viewer {id} connected"),
        FanoutEvent::ViewerLeft(id, why) => {
            tracing::info!("browser viewer left: {id} ({why}); its slot is free")
        }
        FanoutEvent::SetBitrate(Some(bps)) => {
            tracing::debug!(bps, "browser viewers' bitrate vote")
        }
        FanoutEvent::SetBitrate(None) => tracing::debug!("no browser viewers: no bitrate vote"),
        FanoutEvent::ForceKeyframe => tracing::debug!("a browser viewer needs a keyframe"),
    }
}

/// Turns one request into a response: signalling decides, the fan-out admits.
fn serve(
    signalling: &mut Signalling,
    fanout: &mut WebFanout,
    pending: &PendingRequest,
    udp_port: u16,
) -> Response {
    let now = Instant::now();
    match signalling.handle(now, pending.peer.ip(), &pending.request) {
        Action::Respond(response) => response,
        Action::Offer { sdp } => {
            // The browser reached us at `local`: that IP, with the media port, is the
            // one candidate it is given.
            let candidate = SocketAddr::new(pending.local.ip(), udp_port);
            match fanout.offer(now, &sdp, candidate) {
                Ok((id, answer)) => {
                    tracing::debug!("browser viewer {id}: offer\n{sdp}\nanswer\n{answer}");
                    tracing::info!(peer = %pending.peer, "browser viewer {id} joined ({} of at most {})", fanout.viewers(), fanout.max_viewers());
                    signalling.answer(&id.to_string(), &answer)
                }
                Err(OfferRefused::Full) => {
                    tracing::info!(peer = %pending.peer, "a browser viewer was turned away: all slots taken");
                    signalling.refused(Refusal::Full)
                }
                Err(OfferRefused::Bad(e)) => {
                    tracing::info!(peer = %pending.peer, "a browser's offer was refused: {e}");
                    signalling.refused(Refusal::BadOffer(e.to_string()))
                }
            }
        }
        Action::Leave { viewer } => {
            let known = viewer
                .parse()
                .ok()
                .filter(|id| fanout.has_viewer(*id))
                .map(|id| fanout.handle_input(now, FanoutInput::Leave(id)))
                .is_some();
            signalling.left(known)
        }
    }
}

async fn accept_loop(tcp: TcpListener, requests: mpsc::Sender<PendingRequest>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok((stream, peer)) = tcp.accept().await else {
            // Out of descriptors or similar: wait a little rather than spin.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            // All slots busy: close at once (the browser retries).
            drop(stream);
            continue;
        };
        let requests = requests.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(
                REQUEST_DEADLINE * 2,
                serve_connection(stream, peer, requests),
            )
            .await;
            drop(permit);
        });
    }
}

/// Reads one request, has the web task answer it, writes the answer, closes.
async fn serve_connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    requests: mpsc::Sender<PendingRequest>,
) {
    let _ = stream.set_nodelay(true);
    let Ok(local) = stream.local_addr() else {
        return;
    };
    let response = match tokio::time::timeout(REQUEST_DEADLINE, read_request(&mut stream)).await {
        Err(_) => Response::text(408, "the request took too long"),
        Ok(Err(response)) => response,
        Ok(Ok(request)) => {
            let (reply, answer) = oneshot::channel();
            let pending = PendingRequest {
                request,
                peer,
                local,
                reply,
            };
            match requests.try_send(pending) {
                Ok(()) => match answer.await {
                    Ok(response) => response,
                    Err(_) => Response::text(503, "picam is stopping"),
                },
                Err(_) => Response::text(503, "busy: try again"),
            }
        }
    };
    let _ = stream.write_all(&response.encode()).await;
    let _ = stream.shutdown().await;
}

/// Reads until one whole request is in, within the parser's bounds.
async fn read_request(stream: &mut TcpStream) -> Result<Request, Response> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        match http::parse_request(&buf) {
            Ok(Some((request, _))) => return Ok(request),
            Ok(None) => {}
            Err(e) => return Err(http::error_response(&e)),
        }
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|_| Response::text(400, "connection error"))?;
        if n == 0 {
            return Err(Response::text(400, "the request ended early"));
        }
        buf.extend_from_slice(&chunk[..n]);
        // The parser refuses anything over its bounds; this only stops a client that
        // keeps sending after a complete-looking head without a parse (never expected).
        if buf.len() > http::MAX_HEAD + http::MAX_BODY {
            return Err(Response::text(413, "request too large"));
        }
    }
}
