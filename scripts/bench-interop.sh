#!/usr/bin/env bash
# Latency through the interop wires on loopback, in one run: picam's own wire, picam
# over RTP to picam, and picam over RTP to the original GStreamer receiver (as the old
# PC script ran it, and with one decoder thread), each read from the latency stamp in
# the decoded pixels (docs/STAMP.md). 1280x720, 30 fps, 4 Mbit/s. Prints a Markdown
# table; --write also puts it in docs/BENCHMARKS.md ("Interop latency").
# Usage: scripts/bench-interop.sh [SECONDS] [--write]   (default 20; needs gst-launch-1.0)
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-20}"
write="${2:-}"
command -v gst-launch-1.0 >/dev/null || { echo "gst-launch-1.0 is not installed" >&2; exit 1; }
cargo build --release -q -p bin
picam="$PWD/target/release/picam"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export PICAM_CONFIG_DIR="$work/config"
"$picam" keygen --out "$work/k" 2>/dev/null
port=47400
send_flags=(--width 1280 --height 720 --fps 30 --bitrate 4000000 --stats json --duration "$secs")

# Reads I420 frames (1280x720) from stdin, writes the latency of each stamped one in ms.
# (A file, not a heredoc: the heredoc would take the place of the frames on stdin.)
cat > "$work/stamp_reader.py" <<'PY'
import sys, time
w, h = 1280, 720
size = w * h * 3 // 2
per_row = w // 16
def crc16(data):
    crc = 0xFFFF
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc
out = open(sys.argv[1], "w")
src = sys.stdin.buffer
while True:
    frame = src.read(size)
    if len(frame) < size:
        break
    now_us = time.time() * 1e6
    bits = []
    for i in range(112):
        x0, y0 = (i % per_row) * 16 + 4, (i // per_row) * 16 + 4
        total = sum(frame[(y0 + y) * w + x0 + x] for y in range(8) for x in range(8))
        bits.append(1 if total / 64 >= 128 else 0)
    data = bytes(int("".join(map(str, bits[k:k + 8])), 2) for k in range(0, 112, 8))
    if crc16(data[:12]) != int.from_bytes(data[12:14], "big"):
        continue
    stamp_us = int.from_bytes(data[4:12], "big")
    print(f"{(now_us - stamp_us) / 1e3:.3f}", file=out)
PY
stamp_reader() { python3 "$work/stamp_reader.py" "$@"; }

summary() { # name, file of latencies in ms, frames sent
  python3 - "$@" <<'PY'
import sys
name, path, sent = sys.argv[1], sys.argv[2], sys.argv[3]
v = sorted(float(l) for l in open(path) if l.strip())
if not v:
    print(f"| {name} | - | - | - | 0 / {sent} |")
else:
    q = lambda p: v[min(len(v) - 1, int(len(v) * p))]
    print(f"| {name} | {q(0.5):.1f} | {q(0.95):.1f} | {v[-1]:.1f} | {len(v)} / {sent} |")
PY
}

picam_row() { # name, extra flags for both sides
  local name="$1"; shift
  "$picam" recv --headless --bind 127.0.0.1 --port $port "$@" --stats json \
    --duration $((secs + 2)) > "$work/recv.json" 2>/dev/null &
  local recv=$!
  sleep 0.5
  "$picam" send --remote 127.0.0.1 --port $port "$@" "${send_flags[@]}" > "$work/send.json" 2>/dev/null
  wait $recv
  python3 - "$name" "$work/recv.json" "$work/send.json" <<'PY'
import json, sys
name, recv, send = sys.argv[1:]
r = [json.loads(l) for l in open(recv) if l.startswith("{")][-1]
s = [json.loads(l) for l in open(send) if l.startswith("{")][-1]
l = r["latency_ms"]
print(f"| {name} | {l['p50']:.1f} | {l['p95']:.1f} | {l['max']:.1f} | {r['frames_shown']} / {s['frames_sent']} |")
PY
  port=$((port + 2))
}

gst_row() { # name, avdec_h264 options
  local name="$1" dec="$2"
  timeout -k 2 $((secs + 4)) gst-launch-1.0 -q udpsrc port=$port \
    caps="application/x-rtp,media=video,clock-rate=90000,encoding-name=H264,payload=96" \
    ! rtph264depay ! avdec_h264 $dec ! video/x-raw,format=I420 ! fdsink sync=false \
    | stamp_reader "$work/gst.txt" &
  local recv=$!
  sleep 1
  "$picam" send --wire rtp --remote 127.0.0.1 --port $port "${send_flags[@]}" > "$work/send.json" 2>/dev/null
  wait $recv || true
  local sent
  sent=$(python3 -c "import json,sys; print([json.loads(l) for l in open(sys.argv[1]) if l.startswith('{')][-1]['frames_sent'])" "$work/send.json")
  summary "$name" "$work/gst.txt" "$sent"
  port=$((port + 2))
}

table=$(
  echo "| path | p50 ms | p95 ms | max ms | pictures read / frames sent |"
  echo "|---|---|---|---|---|"
  picam_row "picam -> picam, own wire (encrypted)" --key "$work/k"
  picam_row "picam -> picam, --wire rtp" --wire rtp
  gst_row "picam --wire rtp -> GStreamer receiver (avdec_h264 defaults, the original script)" ""
  gst_row "picam --wire rtp -> GStreamer receiver (avdec_h264 max-threads=1)" "max-threads=1"
)
echo "$table"
if [[ "$write" == "--write" ]]; then
  python3 - "$table" "$secs" <<'PY'
import sys, datetime, re
table, secs = sys.argv[1], sys.argv[2]
path = "docs/BENCHMARKS.md"
text = open(path).read()
section = f"""## Interop latency

`scripts/bench-interop.sh {secs} --write`, {datetime.date.today()}, loopback on one 2-core
machine: 1280x720, 30 fps, 4 Mbit/s test pattern, {secs} s per row, one row after the
other. Latency is read from the stamp in the decoded pixels in every row: by picam recv
itself, and for GStreamer by a reader of the raw I420 frames `fdsink` writes (a Python
loop, so its rows include the pipe and the reader's own delay).

{table}
"""
text = re.sub(r"## Interop latency\n.*?(?=\n## |\Z)", "", text, flags=re.S).rstrip() + "\n\n" + section
open(path, "w").write(text)
PY
fi
