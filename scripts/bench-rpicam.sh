#!/usr/bin/env bash
# CPU per frame of `--source rpicam`'s two paths, measured in one run on this machine
# with the fake rpicam-vid (target/release/fake-rpicam-vid: the stamped test pattern):
#   raw   rpicam-vid writes raw I420, picam encodes (libx264 here; the default)
#   h264  rpicam-vid encodes H.264 itself (`--encoder rpicam`; the fake uses libx264,
#         as rpicam-vid does on a Pi 5), picam only splits it into frames
#   test  picam's own test pattern (no child), for reference
# picam's CPU comes from its stats (`cpu_ms_per_frame`), the fake's from its own report
# (`--fake-report`); latency from the stamp. Modes alternate, ROUNDS times, and the
# table gives the mean of each; the last lines are the ratios raw / h264.
# Usage: scripts/bench-rpicam.sh [SECONDS] [ROUNDS] [WIDTHxHEIGHT]   (default 10 2 1280x720)
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-10}" rounds="${2:-2}" size="${3:-1280x720}"
width="${size%x*}" height="${size#*x}"
cargo build --release -q -p bin
picam=target/release/picam fake="$PWD/target/release/fake-rpicam-vid"
port=47311
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export PICAM_CONFIG_DIR="$work/config"
"$picam" keygen --out "$work/k" 2>/dev/null
for round in $(seq "$rounds"); do
  for mode in raw h264 test; do
    tag="$mode.$round"
    case $mode in
      raw) src=(--source "rpicam:$fake --fake-report $work/$tag.fake") ;;
      h264) src=(--source "rpicam:$fake --fake-report $work/$tag.fake" --encoder rpicam) ;;
      test) src=(--source test) ;;
    esac
    "$picam" recv --headless --bind 127.0.0.1 --port $port --stats json --key "$work/k" \
      --duration $((secs + 3)) > "$work/$tag.recv" 2>/dev/null &
    recv=$!
    sleep 0.5
    "$picam" send --remote 127.0.0.1 --port $port --key "$work/k" --width "$width" \
      --height "$height" --fps 30 --bitrate 4000000 --intra 60 --stats json \
      --duration "$secs" "${src[@]}" > "$work/$tag.send" 2>"$work/$tag.err"
    wait $recv
    port=$((port + 1))
  done
done
python3 - "$work" "$rounds" "$width" "$height" <<'PY'
import json, statistics, sys
work, rounds, w, h = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
def last(path):
    return [json.loads(l) for l in open(path) if l.startswith("{")][-1]
rows = {}
for mode in ("raw", "h264", "test"):
    acc = {"picam": [], "fake": [], "p50": [], "p95": [], "shown": []}
    for r in range(1, rounds + 1):
        tag = f"{work}/{mode}.{r}"
        s, v = last(tag + ".send"), last(tag + ".recv")
        acc["picam"].append(s["cpu_ms_per_frame"])
        acc["p50"].append(v["latency_ms"]["p50"])
        acc["p95"].append(v["latency_ms"]["p95"])
        acc["shown"].append(v["frames_shown"])
        if mode != "test":
            rep = dict(kv.split("=") for kv in open(tag + ".fake").read().split())
            acc["fake"].append(float(rep["cpu_ms"]) / int(rep["frames"]))
    rows[mode] = {k: (statistics.mean(x) if x else None) for k, x in acc.items()}
print(f"{w}x{h}, 30 fps, 4 Mbit/s, loopback, mean of {rounds} alternating runs each\n")
print("| path | picam CPU ms/frame | fake rpicam-vid CPU ms/frame | together ms/frame | p50 ms | p95 ms | frames shown |")
print("|---|---|---|---|---|---|---|")
names = {"raw": "`rpicam` raw (picam encodes)", "h264": "`rpicam --encoder rpicam` (child encodes)", "test": "`test` (no child)"}
for mode, r in rows.items():
    fake = "-" if r["fake"] is None else f"{r['fake']:.2f}"
    both = r["picam"] + (r["fake"] or 0)
    print(f"| {names[mode]} | {r['picam']:.2f} | {fake} | {both:.2f} | {r['p50']:.1f} | {r['p95']:.1f} | {r['shown']:.0f} |")
raw, h = rows["raw"], rows["h264"]
print(f"\nraw / h264: picam {raw['picam'] / h['picam']:.1f}x, fake {raw['fake'] / h['fake']:.2f}x, "
      f"together {(raw['picam'] + raw['fake']) / (h['picam'] + h['fake']):.2f}x")
PY
