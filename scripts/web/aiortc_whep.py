#!/usr/bin/env python3
"""A minimal, untuned WebRTC (WHEP) sender built on aiortc: the baseline picam's
`send --web` is measured against (scripts/bench-web.sh).

It speaks the same HTTP contract as picam's web port, so the same viewer page and the
same harness (scripts/web/measure.mjs) work on both:
  GET /                 the viewer page (the file given with --page)
  POST /whep            SDP offer in, 201 + SDP answer + Location: /whep/ID out
                        (Authorization: Bearer TOKEN; 401 / 400 / 413 / 503 as picam)
  DELETE /whep/ID       the viewer leaves
  OPTIONS /whep         CORS preflight
Differences from picam, all of them aiortc's defaults: a full ICE agent (not ICE-lite)
on an ephemeral UDP port per viewer rather than the HTTP port, one libx264 encoder per
viewer, and aiortc's own pacing and bitrate control (REMB from the browser).

Each picture is a moving 1280x720 test pattern with picam's latency stamp
(docs/STAMP.md) painted into its top band at the moment the frame is handed to aiortc,
so the browser measures the same stamp-to-presentation latency as with picam.

Usage: aiortc_whep.py [--page FILE] [--bind ADDR] [--port N] [--token HEX]
                      [--width W --height H --fps F --bitrate BPS] [--max-viewers N]
                      [--duration SECS]
Dependencies: scripts/web/requirements-bench.txt (pinned).
"""

import argparse
import asyncio
import fractions
import os
import secrets
import signal
import sys
import time
import uuid

import numpy as np
from aiohttp import web
from av import VideoFrame

import aiortc.codecs.h264 as aiortc_h264
from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import VideoStreamTrack

# docs/STAMP.md
STAMP_BITS = 112
BLOCK = 16
WHITE = 235
BLACK = 16

MAX_OFFER_BYTES = 64 * 1024


def crc16_ccitt_false(data: bytes) -> int:
    """CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, no final xor."""
    crc = 0xFFFF
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


def stamp_bytes(frame: int, time_us: int) -> bytes:
    """The 14 stamp bytes: frame (u32), time (u64), CRC of those 12, all big-endian."""
    head = (frame & 0xFFFFFFFF).to_bytes(4, "big") + time_us.to_bytes(8, "big")
    return head + crc16_ccitt_false(head).to_bytes(2, "big")


def band_height(width: int) -> int:
    cols = width // BLOCK
    return -(-STAMP_BITS // cols) * BLOCK


def paint_stamp(yuv: np.ndarray, width: int, height: int, frame: int, time_us: int) -> None:
    """Paints the stamp into a yuv420p picture laid out as numpy (height*3/2, width)."""
    cols = width // BLOCK
    rows = -(-STAMP_BITS // cols)
    bits = np.unpackbits(np.frombuffer(stamp_bytes(frame, time_us), dtype=np.uint8))
    y = yuv[:height]
    # The squares of all full rows, then the last partial row: one 16x16 block per bit.
    for r in range(rows):
        row_bits = bits[r * cols:(r + 1) * cols]
        values = np.where(row_bits == 1, WHITE, BLACK).astype(np.uint8)
        strip = np.repeat(values, BLOCK)
        y[r * BLOCK:(r + 1) * BLOCK, :strip.size] = strip
    # Chroma under the band neutral (both planes, all band rows): in yuv420p the U and V
    # planes follow Y, each (height/2) rows of width/2, stored two per numpy row.
    band_chroma_rows = rows * BLOCK // 2
    chroma = yuv[height:].reshape(2, height // 2, width // 2)
    chroma[:, :band_chroma_rows, :] = 128


class StampedPattern(VideoStreamTrack):
    """A moving test picture (diagonal bands sliding, a bright box crossing), stamped."""

    def __init__(self, width: int, height: int, fps: int):
        super().__init__()
        self.width, self.height, self.fps = width, height, fps
        self.frame_no = 0
        xs = np.arange(width + 512)
        ys = np.arange(height)[:, None]
        # A wide luma pattern; each picture is a window into it shifted by the frame number.
        self.luma = ((xs[None, :] + ys) * 2 % 220 + 16).astype(np.uint8)
        cw, ch = width // 2, height // 2
        # Colour ramps: U across, V down.
        self.u = np.tile((np.arange(cw) * 255 // cw).astype(np.uint8), (ch, 1))
        self.v = np.tile((np.arange(ch) * 255 // ch).astype(np.uint8)[:, None], (1, cw))
        self.start = None
        self.ticks = 0

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_pts()
        w, h = self.width, self.height
        yuv = np.empty((h * 3 // 2, w), dtype=np.uint8)
        shift = (self.frame_no * 4) % 512
        yuv[:h] = self.luma[:, shift:shift + w]
        box = (self.frame_no * 8) % (w - 160)
        yuv[h // 2 - 80:h // 2 + 80, box:box + 160] = 235
        chroma = yuv[h:].reshape(2, h // 2, w // 2)
        chroma[0] = self.u
        chroma[1] = self.v
        # Stamped last, with the time at which the picture goes to aiortc's encoder.
        paint_stamp(yuv, w, h, self.frame_no, time.time_ns() // 1000)
        frame = VideoFrame.from_ndarray(yuv, format="yuv420p")
        frame.pts = pts
        frame.time_base = time_base
        self.frame_no += 1
        return frame

    async def next_pts(self):
        """Sleeps until this frame's turn at `fps` on a 90 kHz clock: the scheme of
        aiortc's own VideoStreamTrack.next_timestamp, which is fixed at 30 fps."""
        clock_rate = 90000
        if self.start is None:
            self.start = time.time()
        else:
            self.ticks += clock_rate // self.fps
            wait = self.start + self.ticks / clock_rate - time.time()
            if wait > 0:
                await asyncio.sleep(wait)
        return self.ticks, fractions.Fraction(1, clock_rate)


def cors(resp: web.StreamResponse) -> web.StreamResponse:
    resp.headers["Access-Control-Allow-Origin"] = "*"
    resp.headers["Access-Control-Expose-Headers"] = "Location"
    resp.headers["Connection"] = "close"
    resp.force_close()
    return resp


def text(status: int, body: str, **headers) -> web.Response:
    return cors(web.Response(status=status, text=body + "\n", headers=headers))


class Server:
    def __init__(self, args):
        self.args = args
        self.viewers: dict[str, RTCPeerConnection] = {}

    def authorized(self, request: web.Request) -> bool:
        auth = request.headers.get("Authorization", "")
        given = auth[len("Bearer "):].strip() if auth.startswith("Bearer ") else ""
        return secrets.compare_digest(given.encode(), self.args.token.encode())

    async def page(self, request: web.Request) -> web.Response:
        try:
            with open(self.args.page, "rb") as f:
                body = f.read()
        except OSError as e:
            return text(500, f"cannot read the page {self.args.page}: {e}")
        resp = web.Response(body=body, content_type="text/html", charset="utf-8")
        resp.headers["Cache-Control"] = "no-store"
        return cors(resp)

    async def options(self, request: web.Request) -> web.Response:
        resp = web.Response(status=204)
        resp.headers["Access-Control-Allow-Methods"] = "POST, DELETE, OPTIONS"
        resp.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
        return cors(resp)

    async def whep(self, request: web.Request) -> web.Response:
        if not self.authorized(request):
            return text(401, "wrong or missing access token")
        if request.content_length and request.content_length > MAX_OFFER_BYTES:
            return text(413, "offer too large")
        body = await request.content.read(MAX_OFFER_BYTES + 1)
        if len(body) > MAX_OFFER_BYTES:
            return text(413, "offer too large")
        sdp = body.decode("utf-8", "replace")
        if not sdp.startswith("v=0") or "m=video" not in sdp:
            return text(400, "the body is not an SDP offer with video")
        if len(self.viewers) >= self.args.max_viewers:
            return text(503, "all viewer slots are taken", **{"Retry-After": "2"})

        pc = RTCPeerConnection()
        vid = uuid.uuid4().hex
        self.viewers[vid] = pc

        @pc.on("connectionstatechange")
        async def on_state():
            log(f"viewer {vid[:8]}: {pc.connectionState}")
            if pc.connectionState in ("failed", "closed"):
                await self.drop(vid)

        try:
            # H.264 only: aiortc would answer VP8 (its first preference). aiortc applies
            # codec preferences when the offer is set, so the sending transceiver (with
            # its track and preferences) exists before; the offer's video m-line takes it.
            track = StampedPattern(self.args.width, self.args.height, self.args.fps)
            transceiver = pc.addTransceiver(track, direction="sendonly")
            transceiver.setCodecPreferences(
                [c for c in RTCRtpSender.getCapabilities("video").codecs
                 if c.mimeType in ("video/H264", "video/rtx")])
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as e:  # a bad offer must not take the server down
            await self.drop(vid)
            return text(400, f"cannot answer this offer: {e}")
        log(f"viewer {vid[:8]} joined ({len(self.viewers)} watching)")
        resp = web.Response(status=201, text=pc.localDescription.sdp,
                            content_type="application/sdp")
        resp.headers["Location"] = f"/whep/{vid}"
        return cors(resp)

    async def delete(self, request: web.Request) -> web.Response:
        if not self.authorized(request):
            return text(401, "wrong or missing access token")
        vid = request.match_info["id"]
        if vid not in self.viewers:
            return text(404, "no such viewer")
        await self.drop(vid)
        return text(200, "bye")

    async def drop(self, vid: str) -> None:
        pc = self.viewers.pop(vid, None)
        if pc is not None:
            await pc.close()
            log(f"viewer {vid[:8]} left ({len(self.viewers)} watching)")

    async def other(self, request: web.Request) -> web.Response:
        known = request.path in ("/", "/whep") or request.path.startswith("/whep/")
        return text(405 if known else 404, "method not allowed" if known else "not found")


def log(msg: str) -> None:
    print(f"aiortc_whep: {msg}", file=sys.stderr, flush=True)


async def main(args) -> None:
    # aiortc caps its H.264 encoder at 3 Mbit/s and starts at 1 Mbit/s; the baseline runs
    # at the same 4 Mbit/s as picam. The browser's REMB still moves it (clamped here).
    aiortc_h264.DEFAULT_BITRATE = args.bitrate
    aiortc_h264.MAX_BITRATE = max(args.bitrate, aiortc_h264.MAX_BITRATE)

    server = Server(args)
    app = web.Application(client_max_size=MAX_OFFER_BYTES)
    app.router.add_get("/", server.page)
    app.router.add_route("OPTIONS", "/whep", server.options)
    app.router.add_post("/whep", server.whep)
    app.router.add_delete("/whep/{id}", server.delete)
    app.router.add_route("*", "/{tail:.*}", server.other)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, args.bind, args.port).start()
    host = args.bind if args.bind not in ("0.0.0.0", "") else "127.0.0.1"
    print(f"aiortc_whep: watch in a browser: http://{host}:{args.port}/#t={args.token}",
          file=sys.stderr, flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        if args.duration:
            await asyncio.wait_for(stop.wait(), timeout=args.duration)
        else:
            await stop.wait()
    except asyncio.TimeoutError:
        pass
    for vid in list(server.viewers):
        await server.drop(vid)
    await runner.cleanup()


def parse_args():
    here = os.path.dirname(os.path.abspath(__file__))
    default_page = os.path.join(here, "..", "..", "transport", "src", "web", "page", "index.html")
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--page", default=os.path.normpath(default_page),
                   help="the viewer page served at / (default: picam's)")
    p.add_argument("--bind", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--token", default=secrets.token_hex(16),
                   help="32 lowercase hex characters (default: a fresh random one)")
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=720)
    p.add_argument("--fps", type=int, default=30)
    p.add_argument("--bitrate", type=int, default=4_000_000)
    p.add_argument("--max-viewers", type=int, default=8)
    p.add_argument("--duration", type=float, default=0, help="seconds; 0 = until SIGINT/SIGTERM")
    args = p.parse_args()
    if args.width % BLOCK or args.height % 2 or band_height(args.width) > args.height:
        p.error("the picture must be a multiple of 16 wide, even in height, and hold the stamp")
    return args


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
