#!/usr/bin/env node
// Measures picam's browser viewer in real Chromium: frames presented, and for each the
// end-to-end latency from the sender's stamp (docs/STAMP.md) to the moment the browser
// handed the frame to its compositor.
//
//   node scripts/web/measure.mjs --url URL --seconds S [--browsers N] [--warmup SECS]
//        [--netns NS] [--chromium PATH]
//
// Starts N separate Chromium processes (a background tab presents no video, so several
// viewers need several browsers), opens URL in each, and after the warm-up collects for
// S seconds. Prints one JSON line per browser on stdout, then exits 0; exits 2 (message
// on stderr) when a browser cannot start. Progress goes to stderr, one line per event:
//   measure: browser I pid P          (the Chromium main process, for a caller to kill)
//   measure: browser I first frame after X ms
//   measure: collecting               (warm-up over)
// With --netns NS each browser runs inside network namespace NS (`ip netns exec`).

import { chromium } from 'playwright-core';
import { mkdtempSync, writeFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readStamp } from './stamp.mjs';

const USAGE = 'usage: measure.mjs --url URL --seconds S [--browsers N] [--warmup SECS] ' +
  '[--netns NS] [--chromium PATH]';

function parseArgs(argv) {
  const opts = { browsers: 1, warmup: 2, chromium: '/usr/bin/chromium' };
  for (let i = 0; i < argv.length; i++) {
    const name = argv[i];
    const value = argv[i + 1];
    const need = () => {
      if (value === undefined) fail(`${name} needs a value\n${USAGE}`);
      i++;
      return value;
    };
    const number = () => {
      const n = Number(need());
      if (!Number.isFinite(n) || n < 0) fail(`${name}: not a number: ${value}`);
      return n;
    };
    switch (name) {
      case '--url': opts.url = need(); break;
      case '--seconds': opts.seconds = number(); break;
      case '--browsers': opts.browsers = Math.max(1, Math.floor(number())); break;
      case '--warmup': opts.warmup = number(); break;
      case '--netns': opts.netns = need(); break;
      case '--chromium': opts.chromium = need(); break;
      case '-h': case '--help': process.stdout.write(`${USAGE}\n`); process.exit(0); break;
      default: fail(`unknown argument ${name}\n${USAGE}`);
    }
  }
  if (!opts.url || opts.seconds === undefined) fail(USAGE);
  return opts;
}

function fail(message, code = 2) {
  process.stderr.write(`measure: ${message}\n`);
  process.exit(code);
}

function log(message) {
  process.stderr.write(`measure: ${message}\n`);
}

// The flags picam's notes name for Chromium as root in a container, headless.
const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--disable-quic',
  '--autoplay-policy=no-user-gesture-required',
];

// Runs in the page before its own script. Keeps every RTCPeerConnection the page makes
// (for getStats at the end) and, once the <video> exists, reads the stamp of every
// presented frame. Counting starts when the harness calls __measure.start().
function pageProbe(readStamp) {
  const peers = [];
  const Native = window.RTCPeerConnection;
  if (Native) {
    window.RTCPeerConnection = class extends Native {
      constructor(...args) {
        super(...args);
        peers.push(this);
      }
    };
  }
  const m = {
    peers,
    collecting: false,
    startWall: 0,
    firstFrameMs: null,   // presentationTime of the very first frame (from navigation)
    seen: 0,              // frames presented since load, warm-up included
    presented: 0,
    stamped: 0,
    unstamped: 0,
    latency: [],          // presentationTime (wall) minus stamp, ms
    latencyAt: [],        // the second of the collection each latency was presented in
    expected: [],         // expectedDisplayTime (wall) minus stamp, ms
    received: [],         // receiveTime (wall) minus stamp, ms, where the browser gives it
    perSecond: [],        // frames presented in each second of the collection
    lastWall: 0,
    maxGapMs: 0,
    lastPresentedCount: null,
    missedCallbacks: 0,   // frames the compositor presented without our callback seeing them
    unstampedAt: [],      // the first few unstamped frames: [ms into the count, width, height]
    repeated: 0,          // stamped frames whose stamp we had just read (no new latency)
    backwards: 0,         // stamped frames older than the one presented before them
    lastStampUs: null,
    start() {
      Object.assign(m, { collecting: true, startWall: performance.timeOrigin + performance.now(),
        presented: 0, stamped: 0, unstamped: 0, latency: [], latencyAt: [], expected: [], received: [],
        perSecond: [], maxGapMs: 0, lastWall: 0, lastPresentedCount: null,
        missedCallbacks: 0, unstampedAt: [], repeated: 0, backwards: 0 });
    },
    stop() { m.collecting = false; },
  };
  window.__measure = m;

  const canvas = document.createElement('canvas');
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  function onFrame(video, meta) {
    const origin = performance.timeOrigin;
    const shown = origin + meta.presentationTime;
    m.seen++;
    if (m.firstFrameMs === null) m.firstFrameMs = meta.presentationTime;
    if (!m.collecting) return;
    m.presented++;
    // presentedFrames counts per source: it starts again after a reconnection.
    const last = m.lastPresentedCount;
    if (last !== null && meta.presentedFrames > last) m.missedCallbacks += meta.presentedFrames - last - 1;
    m.lastPresentedCount = meta.presentedFrames;
    if (m.lastWall) m.maxGapMs = Math.max(m.maxGapMs, shown - m.lastWall);
    m.lastWall = shown;
    const second = Math.max(0, Math.floor((shown - m.startWall) / 1000));
    while (m.perSecond.length <= second) m.perSecond.push(0);
    m.perSecond[second]++;
    const width = video.videoWidth;
    const band = Math.ceil(112 / Math.max(1, Math.floor(width / 16))) * 16;
    const unstamped = () => {
      m.unstamped++;
      if (m.unstampedAt.length < 10) {
        m.unstampedAt.push([Math.round(shown - m.startWall), width, video.videoHeight]);
      }
    };
    if (width < 16 || band > video.videoHeight) {
      unstamped();
      return;
    }
    if (canvas.width !== width || canvas.height !== band) {
      canvas.width = width;
      canvas.height = band;
    }
    // Inside the callback drawImage paints the frame this metadata describes.
    ctx.drawImage(video, 0, 0, width, band, 0, 0, width, band);
    const stamp = readStamp(ctx.getImageData(0, 0, width, band).data, width, band);
    if (!stamp) {
      unstamped();
      return;
    }
    m.stamped++;
    // Right after a reconnection Chromium may hand drawImage the old stream's last
    // picture once more: that picture was measured when it was new, so its age now is
    // no latency of anything.
    if (stamp.timeUs === m.lastStampUs) {
      m.repeated++;
      return;
    }
    // Frames presented out of their order (a relay reordering, a decoder fed late
    // packets) show as a stamp older than the previous one.
    if (m.lastStampUs !== null && stamp.timeUs < m.lastStampUs) m.backwards++;
    m.lastStampUs = stamp.timeUs;
    const sent = stamp.timeUs / 1000;
    m.latency.push(shown - sent);
    m.latencyAt.push(second);
    m.expected.push(origin + meta.expectedDisplayTime - sent);
    if (meta.receiveTime !== undefined) m.received.push(origin + meta.receiveTime - sent);
  }
  function attach() {
    const video = document.querySelector('video');
    if (!video || !video.requestVideoFrameCallback) {
      setTimeout(attach, 50);
      return;
    }
    const loop = (_now, meta) => {
      try { onFrame(video, meta); } catch (e) { m.error = String(e); }
      video.requestVideoFrameCallback(loop);
    };
    video.requestVideoFrameCallback(loop);
  }
  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', attach);
  } else {
    attach();
  }
}

// In the page at the end: the newest peer connection's inbound video counters.
async function pageReport() {
  const m = window.__measure;
  const status = (document.getElementById('status') || {}).textContent || '';
  const stats = {};
  const pc = m.peers[m.peers.length - 1];
  if (pc) {
    try {
      const report = await pc.getStats();
      const byId = new Map();
      report.forEach((s) => byId.set(s.id, s));
      report.forEach((s) => {
        if (s.type === 'inbound-rtp' && (s.kind || s.mediaType) === 'video') {
          Object.assign(stats, {
            framesReceived: s.framesReceived,
            framesDecoded: s.framesDecoded,
            keyFramesDecoded: s.keyFramesDecoded,
            framesDropped: s.framesDropped,
            packetsReceived: s.packetsReceived,
            packetsLost: s.packetsLost,
            nackCount: s.nackCount,
            retransmittedPacketsReceived: s.retransmittedPacketsReceived,
            pliCount: s.pliCount,
            firCount: s.firCount,
            freezeCount: s.freezeCount,
            totalFreezesDurationMs: s.totalFreezesDuration * 1000,
            bytesReceived: s.bytesReceived,
            jitterBufferDelayMs: s.jitterBufferEmittedCount
              ? (s.jitterBufferDelay / s.jitterBufferEmittedCount) * 1000 : null,
            decodeMs: s.framesDecoded ? (s.totalDecodeTime / s.framesDecoded) * 1000 : null,
            frameWidth: s.frameWidth,
            frameHeight: s.frameHeight,
            decoderImplementation: s.decoderImplementation,
            codec: s.codecId && byId.get(s.codecId)
              ? `${byId.get(s.codecId).mimeType} ${byId.get(s.codecId).sdpFmtpLine || ''}`.trim()
              : undefined,
          });
        }
        if (s.type === 'candidate-pair' && s.state === 'succeeded' && s.nominated &&
            s.currentRoundTripTime !== undefined) {
          stats.rttMs = s.currentRoundTripTime * 1000;
        }
      });
    } catch (e) {
      stats.error = String(e);
    }
  }
  return {
    status,
    connections: m.peers.length,
    seen: m.seen,
    firstFrameMs: m.firstFrameMs,
    presented: m.presented,
    stamped: m.stamped,
    unstamped: m.unstamped,
    latency: m.latency,
    latencyAt: m.latencyAt,
    startWall: m.startWall,
    expected: m.expected,
    received: m.received,
    perSecond: m.perSecond,
    maxGapMs: m.maxGapMs,
    lastAgeMs: m.lastWall ? performance.timeOrigin + performance.now() - m.lastWall : null,
    missedCallbacks: m.missedCallbacks,
    unstampedAt: m.unstampedAt,
    repeated: m.repeated,
    backwards: m.backwards,
    error: m.error,
    stats,
  };
}

function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  const at = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return Math.round(sorted[Math.max(0, at)] * 10) / 10;
}

function summary(values) {
  const sorted = Float64Array.from(values).sort();
  return {
    p50: percentile(sorted, 50),
    p95: percentile(sorted, 95),
    p99: percentile(sorted, 99),
    max: sorted.length ? Math.round(sorted[sorted.length - 1] * 10) / 10 : null,
  };
}

function perSecondLatency(values, seconds) {
  const buckets = [];
  values.forEach((v, i) => {
    const s = seconds[i];
    if (s === undefined) return;
    while (buckets.length <= s) buckets.push([]);
    buckets[s].push(v);
  });
  return buckets.map((b) => (b.length ? { n: b.length, ...summary(b) } : null));
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: timed out after ${ms} ms`)), ms); }),
  ]).finally(() => clearTimeout(timer));
}

async function launch(index, opts, scratch) {
  let executablePath = opts.chromium;
  if (opts.netns) {
    // Chromium runs inside the namespace; `ip netns exec` and /usr/bin/chromium both
    // exec, so the pid we see is Chromium's own.
    executablePath = join(scratch, `chromium-netns-${index}.sh`);
    writeFileSync(executablePath,
      `#!/bin/sh\nexec ip netns exec '${opts.netns}' '${opts.chromium}' "$@"\n`, { mode: 0o755 });
  }
  // launchServer, not launch: it hands out the browser's process, whose pid a caller
  // may want to kill mid-run. Playwright gives each launch a fresh temporary profile.
  const server = await chromium.launchServer({
    executablePath, headless: true, args: CHROMIUM_ARGS, timeout: 30000,
  });
  const browser = await withTimeout(chromium.connect(server.wsEndpoint()), 30000, 'connect');
  const pid = server.process().pid;
  log(`browser ${index} pid ${pid}`);
  return { index, server, browser, pid, gone: false };
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (!opts.netns && !existsSync(opts.chromium)) fail(`no Chromium at ${opts.chromium}`);
  // Nothing may hang: whatever happens, the process ends a minute after its work should.
  const hardLimitMs = (opts.warmup + opts.seconds) * 1000 + 60000 + opts.browsers * 30000;
  setTimeout(() => fail(`gave up after ${hardLimitMs} ms`, 3), hardLimitMs).unref();

  const scratch = mkdtempSync(join(tmpdir(), 'picam-measure-'));
  const sessions = [];
  const stopAll = async () => {
    for (const s of sessions) {
      await withTimeout(s.server.close(), 10000, 'close').catch(() => s.server.kill().catch(() => {}));
    }
    rmSync(scratch, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < opts.browsers; i++) sessions.push(await launch(i, opts, scratch));
  } catch (e) {
    await stopAll();
    fail(`cannot start Chromium: ${e.message.split('\n')[0]}`);
  }

  // The stamp reader travels as source text inside the init script (no eval in the
  // page, so a Content-Security-Policy cannot stop it).
  const probeSource = `(${pageProbe})(${readStamp});`;
  for (const s of sessions) {
    s.browser.on('disconnected', () => { s.gone = true; });
    s.page = await s.browser.newPage();
    s.page.on('pageerror', (e) => log(`browser ${s.index} page error: ${e.message}`));
    await s.page.addInitScript(probeSource);
  }
  // All pages load at once, so N viewers arrive as N people opening the link together.
  await Promise.all(sessions.map(async (s) => {
    try {
      await s.page.goto(opts.url, { timeout: 15000, waitUntil: 'load' });
    } catch (e) {
      s.loadError = e.message.split('\n')[0];
      log(`browser ${s.index}: ${s.loadError}`);
    }
  }));

  // Poll for first frames (progress for a caller) and keep the last snapshot of each
  // page, so a browser killed mid-run still reports what it saw.
  const poll = async (s) => {
    if (s.gone) return;
    try {
      s.snap = await withTimeout(s.page.evaluate(() => {
        const m = window.__measure;
        return { seen: m.seen, firstFrameMs: m.firstFrameMs, presented: m.presented,
          stamped: m.stamped, unstamped: m.unstamped,
          status: (document.getElementById('status') || {}).textContent || '' };
      }), 5000, 'poll');
      if (s.snap.firstFrameMs !== null && !s.toldFirst) {
        s.toldFirst = true;
        log(`browser ${s.index} first frame after ${Math.round(s.snap.firstFrameMs)} ms`);
      }
    } catch (e) {
      if (!s.gone) s.pollError = e.message.split('\n')[0];
    }
  };
  const pollUntil = async (deadline) => {
    while (Date.now() < deadline) {
      await Promise.all(sessions.map(poll));
      await sleep(Math.min(250, Math.max(0, deadline - Date.now())));
    }
  };

  await pollUntil(Date.now() + opts.warmup * 1000);
  await Promise.all(sessions.map((s) => !s.gone && s.page.evaluate(() => window.__measure.start())
    .catch(() => {})));
  log('collecting');
  const started = Date.now();
  await pollUntil(started + opts.seconds * 1000);
  const elapsed = (Date.now() - started) / 1000;

  const lines = [];
  for (const s of sessions) {
    let r = null;
    if (!s.gone) {
      r = await withTimeout(s.page.evaluate(pageReport), 10000, 'report').catch((e) => {
        s.pollError = e.message.split('\n')[0];
        return null;
      });
    }
    const snap = s.snap || {};
    const base = r || { status: snap.status || '', presented: snap.presented || 0,
      stamped: snap.stamped || 0, unstamped: snap.unstamped || 0, latency: [], expected: [],
      received: [], perSecond: [], stats: {}, firstFrameMs: snap.firstFrameMs ?? null };
    const lat = summary(base.latency);
    const exp = summary(base.expected);
    const rec = summary(base.received);
    const line = {
      browser: s.index,
      presented: base.presented,
      stamped: base.stamped,
      unstamped: base.unstamped,
      fps: Math.round((base.presented / elapsed) * 10) / 10,
      p50_ms: lat.p50,
      p95_ms: lat.p95,
      max_ms: lat.max,
      p99_ms: lat.p99,
      // Latency in each second of the collection (null: no stamped frame that second),
      // for time series such as a rate step's transient; start_wall_ms is that
      // collection's start on the wall clock (ms since the epoch).
      latency_per_second: perSecondLatency(base.latency, base.latencyAt || []),
      start_wall_ms: base.startWall ? Math.round(base.startWall) : null,
      expected_p50_ms: exp.p50,
      expected_p95_ms: exp.p95,
      expected_max_ms: exp.max,
      received_p50_ms: rec.p50,
      received_p95_ms: rec.p95,
      first_frame_ms: base.firstFrameMs === null ? null : Math.round(base.firstFrameMs),
      max_gap_ms: base.maxGapMs === undefined ? null : Math.round(base.maxGapMs),
      last_frame_age_ms: base.lastAgeMs === undefined || base.lastAgeMs === null
        ? null : Math.round(base.lastAgeMs),
      per_second: base.perSecond,
      missed_callbacks: base.missedCallbacks ?? null,
      unstamped_at: base.unstampedAt ?? [],
      repeated: base.repeated ?? 0,
      backwards: base.backwards ?? 0,
      connections: base.connections ?? null,
      status: base.status,
      pid: s.pid,
      stats: base.stats,
    };
    const error = s.gone ? 'browser gone' : s.loadError || (r ? base.error : s.pollError);
    if (error) line.error = error;
    lines.push(JSON.stringify(line));
  }
  await stopAll();
  process.stdout.write(`${lines.join('\n')}\n`);
  process.exit(0);
}

main().catch((e) => fail(`failed: ${e.stack || e}`, 3));
