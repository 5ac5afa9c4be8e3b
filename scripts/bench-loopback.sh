#!/usr/bin/env bash
# End-to-end latency on loopback (stamp painted before encoding, read after decoding):
# 1280x720, 30 fps, 4 Mbit/s, over UDP and TCP, with CPU time per frame on each side.
# Prints one Markdown row per protocol.
# Usage: scripts/bench-loopback.sh [SECONDS]   (default 20)
# PICAM_BASE=/path/to/older/picam adds rows for that build, measured in the same run,
# alternating with this one (a before/after comparison).
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-20}"
cargo build --release -q -p bin
port=47123
builds=("this:target/release/picam")
if [[ -n "${PICAM_BASE:-}" ]]; then builds+=("base:$PICAM_BASE"); fi
echo "| build | protocol | p50 ms | p95 ms | max ms | frames shown | sender CPU ms/frame | receiver CPU ms/frame |"
echo "|---|---|---|---|---|---|---|---|"
for proto in udp tcp; do
for build in "${builds[@]}"; do
  name="${build%%:*}" picam="${build#*:}"
  recv_log=$(mktemp) send_log=$(mktemp)
  "$picam" recv --headless --bind 127.0.0.1 --port $port --protocol $proto --stats json \
    --duration $((secs + 2)) > "$recv_log" 2>/dev/null &
  recv=$!
  sleep 0.5
  "$picam" send --remote 127.0.0.1 --port $port --protocol $proto --width 1280 --height 720 \
    --fps 30 --bitrate 4000000 --stats json --duration "$secs" > "$send_log" 2>/dev/null
  wait $recv
  python3 - "$name" "$proto" "$recv_log" "$send_log" <<'PY'
import json, sys
name, proto, recv, send = sys.argv[1:]
r = [json.loads(l) for l in open(recv) if l.startswith("{")][-1]
s = [json.loads(l) for l in open(send) if l.startswith("{")][-1]
l = r["latency_ms"]
print(f"| {name} | {proto} | {l['p50']:.1f} | {l['p95']:.1f} | {l['max']:.1f} | {r['frames_shown']} | "
      f"{s['cpu_ms_per_frame']:.2f} | {r['cpu_ms_per_frame']:.2f} |")
PY
  rm -f "$recv_log" "$send_log"
done
done
