#!/usr/bin/env bash
# End-to-end latency on loopback (stamp painted before encoding, read after decoding):
# 1280x720, 30 fps, 4 Mbit/s, over UDP and TCP, with CPU time per frame on each side.
# Prints one Markdown row per protocol. picam runs encrypted, as by default (a fresh
# key from `picam keygen` on both sides).
# Usage: scripts/bench-loopback.sh [SECONDS]   (default 20)
# PICAM_BASE=/path/to/older/picam adds rows for that build, measured in the same run,
# alternating with this one (a before/after comparison; a build from before encryption
# runs without a key).
# PICAM_COMPARE_INSECURE=1 adds `--insecure` rows beside the encrypted ones, alternating
# with them in the same run (the cost of encryption).
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-20}"
cargo build --release -q -p bin
port=47123
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export PICAM_CONFIG_DIR="$work/config"
target/release/picam keygen --out "$work/k" 2>/dev/null
builds=("this:target/release/picam")
if [[ -n "${PICAM_BASE:-}" ]]; then builds+=("base:$PICAM_BASE"); fi
modes=(encrypted)
if [[ -n "${PICAM_COMPARE_INSECURE:-}" ]]; then modes+=(insecure); fi
echo "| build | protocol | security | p50 ms | p95 ms | max ms | frames shown | sender CPU ms/frame | receiver CPU ms/frame |"
echo "|---|---|---|---|---|---|---|---|---|"
for proto in udp tcp; do
for build in "${builds[@]}"; do
for mode in "${modes[@]}"; do
  name="${build%%:*}" picam="${build#*:}"
  # A build from before encryption knows neither --key nor --insecure: one plain row.
  if ! "$picam" keygen --help >/dev/null 2>&1; then
    [[ "$mode" == encrypted ]] || continue
    flags=() shown_mode="none (old build)"
  elif [[ "$mode" == encrypted ]]; then
    flags=(--key "$work/k") shown_mode="encrypted"
  else
    flags=(--insecure) shown_mode="--insecure"
  fi
  recv_log="$work/recv.json" send_log="$work/send.json"
  "$picam" recv --headless --bind 127.0.0.1 --port $port --protocol $proto --stats json \
    --duration $((secs + 2)) "${flags[@]}" > "$recv_log" 2>/dev/null &
  recv=$!
  sleep 0.5
  "$picam" send --remote 127.0.0.1 --port $port --protocol $proto --width 1280 --height 720 \
    --fps 30 --bitrate 4000000 --stats json --duration "$secs" "${flags[@]}" > "$send_log" 2>/dev/null
  wait $recv
  python3 - "$name" "$proto" "$shown_mode" "$recv_log" "$send_log" <<'PY'
import json, sys
name, proto, mode, recv, send = sys.argv[1:]
r = [json.loads(l) for l in open(recv) if l.startswith("{")][-1]
s = [json.loads(l) for l in open(send) if l.startswith("{")][-1]
l = r["latency_ms"]
print(f"| {name} | {proto} | {mode} | {l['p50']:.1f} | {l['p95']:.1f} | {l['max']:.1f} | {r['frames_shown']} | "
      f"{s['cpu_ms_per_frame']:.2f} | {r['cpu_ms_per_frame']:.2f} |")
PY
  port=$((port + 1))
done
done
done
