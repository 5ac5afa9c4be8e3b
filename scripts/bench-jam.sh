#!/usr/bin/env bash
# Issue 22's before/after benchmark: an older picam (the baseline) and a newer one, run
# alternately in the same invocation through the same router, side by side:
#   jam    tbf rate 3mbit burst 32kbit latency 400ms on the router's link to the
#          receiver, sender asked for 8 Mbit/s: settled latency (after 5 s) p50/p95/max,
#          frames shown of those sent, bytes through the tbf (`tc -s`, Mbit/s and % of 3);
#   step   the same tbf at 8 Mbit/s, changed to 2 at 1/3 of the run and back to 8 at 2/3
#          (10 s and 20 s of 30): the transient (largest latency in the seconds overlapping
#          the 2 s after each change) and the time to recover (until a whole second's p95
#          is back under the settled p95 of the period before);
#   loss   2% random loss (nftables `numgen random mod 1000 < 20 drop` on the router's
#          forward chain, both directions), no rate limit: frames shown / sent, repair
#          overhead (the sender's own figure where it reports one) and the sender's bytes
#          into the router beside its clean run's, p95;
#   clean  no limit, no loss: p50 / p95 / p99 (issue 22's target: p99 <= 1.5 x p50);
#          after each picam-wire run, a machine-noise baseline in the default namespace:
#          scripts/cpu-noise.py times a constant amount of CPU work as long as the run's
#          settled frames' p50, at 30 Hz, for as long as the run, and its p99 / p50 is
#          reported beside the pipeline's (noise.json in the run's directory).
# each for `--wire picam` (UDP, encrypted), `--wire rtp` (UDP, in the clear) and a browser
# viewer (`picam send --web`, headless Chromium in the receiver's namespace driven by
# scripts/web/measure.mjs). All at 1280x720, 30 fps, test pattern, `--bitrate 8000000`.
# Each scenario builds its own network namespaces (sender -> router -> receiver,
# scripts/netns.sh), named with "jb".
#
# Usage: [PICAM_BASE=OLD] [PICAM_NEW=NEW] scripts/bench-jam.sh [SECONDS] [--write]
#   SECONDS  per run (default 30, at least 8)
#   --write  also replace the "## One transport edge and one controller (issue 22)"
#            section of docs/BENCHMARKS.md
#   PICAM_BASE  the baseline binary (default: none, only the new binary runs). To make
#            one: `git worktree add /tmp/picam-old COMMIT && (cd /tmp/picam-old &&
#            cargo build --release -p bin)`, then PICAM_BASE=/tmp/picam-old/target/release/picam
#   PICAM_NEW   the binary under test (default: `cargo build --release -p bin`, then
#            target/release/picam)
#   PICAM_JAM_WIRES      default "picam rtp web"
#   PICAM_JAM_SCENARIOS  default "jam step loss clean"
# Needs root, iproute2 (ip, tc), nftables, python3; for the browser rows chromium and
# node + npm (scripts/install-deps.sh --test). CI runs bin/tests/jam_netns.rs by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
secs=30 write=0
for arg in "$@"; do
  case "$arg" in
    --write) write=1 ;;
    *[!0-9]* | "") echo "usage: $0 [SECONDS] [--write]" >&2; exit 2 ;;
    *) secs="$arg" ;;
  esac
done
((secs >= 8)) || { echo "bench-jam.sh: at least 8 s per run" >&2; exit 2; }
wires="${PICAM_JAM_WIRES:-picam rtp web}"
scenarios="${PICAM_JAM_SCENARIOS:-jam step loss clean}"
settle=5

missing=()
[[ $(id -u) -eq 0 ]] || missing+=("root (network namespaces, tc, nftables)")
for tool in ip tc nft python3; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
if [[ " $wires " == *" web "* ]]; then
  for tool in chromium node npm; do
    command -v "$tool" >/dev/null || missing+=("$tool (browser rows; PICAM_JAM_WIRES without web skips them)")
  done
fi
if ((${#missing[@]})); then
  echo "bench-jam.sh: missing: ${missing[*]} (scripts/install-deps.sh --test installs the tools)" >&2
  exit 1
fi
if [[ " $wires " == *" web "* && ! -d scripts/web/node_modules/playwright-core ]]; then
  npm ci --prefix scripts/web --no-audit --no-fund >&2 \
    || { echo "bench-jam.sh: npm ci --prefix scripts/web failed (playwright-core)" >&2; exit 1; }
fi

new="${PICAM_NEW:-}"
if [[ -z "$new" ]]; then
  cargo build --release -q -p bin
  new="${CARGO_TARGET_DIR:-$root/target}/release/picam"
fi
base="${PICAM_BASE:-}"
[[ -x "$new" ]] || { echo "bench-jam.sh: PICAM_NEW=$new is not an executable" >&2; exit 1; }
[[ -z "$base" || -x "$base" ]] || { echo "bench-jam.sh: PICAM_BASE=$base is not an executable" >&2; exit 1; }
which_list="new"
[[ -z "$base" ]] || which_list="base new"
bin_of() { if [[ "$1" == base ]]; then echo "$base"; else echo "$new"; fi; }

source scripts/netns.sh
work=$(mktemp -d)
cleanup() {
  local p
  # Only this shell's own background jobs still running (receivers, senders, browsers).
  for p in $(jobs -p); do kill "$p" 2>/dev/null || true; done
  netns_down
  if [[ -n "${PICAM_JAM_KEEP:-}" ]]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
export PICAM_CONFIG_DIR="$work/config"
"$new" keygen --out "$work/k" 2>/dev/null
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
port=47600
run_no=0

now() { date +%s.%N; }
# Sleeps until wall time $1 (seconds since the epoch); never longer than 120 s.
sleep_until() {
  local d
  d=$(python3 -c "import sys,time; print(max(0.0, min(120.0, float(sys.argv[1]) - time.time())))" "$1")
  sleep "$d"
}
add() { python3 -c "import sys; print(f'{float(sys.argv[1]) + float(sys.argv[2]):.3f}')" "$1" "$2"; }

tc_r() { ip netns exec "$NS_RTR" tc "$@"; }
nft_r() { ip netns exec "$NS_RTR" nft "$@"; }
# Bytes the router's tbf has sent so far (0 without a tbf).
tbf_bytes() { tc_r -s qdisc show dev "$NS_RTR_OUT" | awk '/Sent/ {print $2; exit}' | grep . || echo 0; }
tbf() { # add|change RATE
  tc_r qdisc "$1" dev "$NS_RTR_OUT" root tbf rate "$2" burst 32kbit latency 400ms
}
# The router's forward chain: a counter for the sender's packets (before any drop), then
# RULE dropping (empty: none). Fresh for each run, so the counters start from zero.
set_router() { # RULE
  nft_r flush chain inet jbloss loss
  nft_r add rule inet jbloss loss ip saddr "$NS_SND_IP" counter
  [[ -z "$1" ]] || nft_r add rule inet jbloss loss "$1 counter drop"
}
# "sender_bytes dropped_packets" so far.
nft_counters() {
  nft_r list chain inet jbloss loss | awk '
    /ip saddr/ {for (i = 1; i < NF; i++) if ($i == "bytes") sb = $(i + 1)}
    /drop/ {for (i = 1; i < NF; i++) if ($i == "packets") dp = $(i + 1)}
    END {printf "%d %d\n", sb, dp}'
}

# One scenario's namespaces, router queue and loss rule.
scenario_up() {
  netns_down
  netns_up jb 231
  nft_r add table inet jbloss
  nft_r add chain inet jbloss loss '{ type filter hook forward priority 0 ; }'
  case "$1" in
    jam) tbf add 3mbit ;;
    step) tbf add 8mbit ;;
  esac
}
# Before each run: the queue emptied and its counters reset, the loss rule fresh.
router_reset() {
  case "$1" in
    jam) tc_r qdisc del dev "$NS_RTR_OUT" root; tbf add 3mbit ;;
    step) tc_r qdisc del dev "$NS_RTR_OUT" root; tbf add 8mbit ;;
  esac
  if [[ "$1" == loss ]]; then set_router "numgen random mod 1000 < 20"; else set_router ""; fi
}

# timeline SCENARIO T0 DIR: from wall time T0 (the sender's start, or the browser's
# collection start), samples the tbf's and the sender's byte counters at the settle point
# and at the end ("settle|end WALL TBF_BYTES SENDER_BYTES"), and in the step scenario
# changes the rate at 1/3 and 2/3 of the run ("change WALL MBIT").
timeline() {
  local scen="$1" t0="$2" dir="$3" ev name off arg
  ev="settle $settle"$'\n'"end $(python3 -c "print($secs - 0.3)")"
  if [[ "$scen" == step ]]; then
    ev+=$'\n'"change $(python3 -c "print($secs / 3)") 2mbit"
    ev+=$'\n'"change $(python3 -c "print(2 * $secs / 3)") 8mbit"
  fi
  while read -r name off arg; do
    sleep_until "$(add "$t0" "$off")"
    if [[ "$name" == change ]]; then
      tbf change "$arg"
      echo "change $(now) ${arg%mbit}" >> "$dir/timeline"
    else
      echo "$name $(now) $(tbf_bytes) $(nft_counters | cut -d' ' -f1)" >> "$dir/timeline"
    fi
  done < <(sort -g -k2 <<< "$ev")
}

# meta DIR KEY=VALUE...: the run's description, one JSON object.
meta() {
  local dir="$1"
  shift
  python3 -c 'import json, sys; print(json.dumps(dict(a.split("=", 1) for a in sys.argv[1:])))' \
    "$@" > "$dir/meta.json"
}

# noise_probe DIR: right after a clean run, with nothing of ours running, this machine's
# own tail: scripts/cpu-noise.py for the run's seconds, its work sized to the run's
# settled frames' p50 (as bench-jam-report.py computes it; the seconds' p50 without a
# frame log). Writes its JSON line to DIR/noise.json, or {"skipped": REASON}.
noise_probe() {
  local dir="$1" target reason
  if ! target=$(python3 -B scripts/bench-jam-report.py --noise-target "$dir" "$secs" "$settle"); then
    reason="the run has no settled latency to size the work by"
  elif ! python3 -B scripts/cpu-noise.py "$secs" "$target" > "$dir/noise.json" 2> "$dir/noise.err"; then
    reason="cpu-noise.py failed: $(head -1 "$dir/noise.err")"
  else
    echo "  machine noise: ${target} ms of CPU work at 30 Hz: $(cat "$dir/noise.json")" >&2
    return 0
  fi
  echo "bench-jam.sh: no machine-noise baseline ($reason)" >&2
  python3 -c 'import json, sys; print(json.dumps({"skipped": sys.argv[1]}))' "$reason" > "$dir/noise.json"
}

# native_run SCENARIO picam|rtp base|new
native_run() {
  local scen="$1" wire="$2" which="$3" bin dir flags=() recv t0 tl
  bin=$(bin_of "$which")
  run_no=$((run_no + 1))
  dir="$work/runs/$(printf %03d $run_no)"
  mkdir -p "$dir"
  if [[ "$wire" == rtp ]]; then flags=(--wire rtp); else flags=(--key "$work/k"); fi
  # Each frame's latency, where the binary can log it (older baselines cannot).
  local lat=()
  if "$bin" recv --help 2>/dev/null | grep -q -- --latency-out; then
    lat=(--latency-out "$dir/recv.lat.csv")
  fi
  router_reset "$scen"
  local rstart
  rstart=$(now)
  ip netns exec "$NS_RCV" timeout -k 2 $((secs + 30)) "$bin" recv --headless \
    --bind "$NS_RCV_IP" --port $port --protocol udp --stats json --duration $((secs + 3)) \
    "${flags[@]}" "${lat[@]}" > "$dir/recv.json" 2> "$dir/recv.err" &
  recv=$!
  # The sender starts once the receiver's socket is bound (at most 5 s).
  for _ in $(seq 50); do
    grep -q 'receiving' "$dir/recv.err" 2>/dev/null && break
    kill -0 "$recv" 2>/dev/null || break
    sleep 0.1
  done
  t0=$(now)
  timeline "$scen" "$t0" "$dir" &
  tl=$!
  ip netns exec "$NS_SND" timeout -k 2 $((secs + 30)) "$bin" send --remote "$NS_RCV_IP" \
    --port $port --protocol udp --source test --width 1280 --height 720 --fps 30 \
    --bitrate 8000000 --stats json --duration "$secs" "${flags[@]}" \
    > "$dir/send.json" 2> "$dir/send.err" || echo "bench-jam.sh: sender failed ($scen $wire $which)" >&2
  wait "$tl" || true
  wait "$recv" || echo "bench-jam.sh: receiver failed ($scen $wire $which)" >&2
  meta "$dir" scen="$scen" wire="$wire" which="$which" recv_start="$rstart" t0="$t0" \
    nft="$(nft_counters)"
  if [[ "$scen" == clean && "$wire" == picam ]]; then noise_probe "$dir"; fi
  port=$((port + 4))
}

# web_run SCENARIO base|new: `picam send --web` in the sender's namespace, one headless
# Chromium in the receiver's.
web_run() {
  local scen="$1" which="$2" bin dir url="" sender m t0="" tl
  bin=$(bin_of "$which")
  if ! "$bin" send --help 2>&1 | grep -q -- '--web'; then
    echo "bench-jam.sh: $which picam has no 'send --web': no browser row" >&2
    return 0
  fi
  run_no=$((run_no + 1))
  dir="$work/runs/$(printf %03d $run_no)"
  mkdir -p "$dir"
  router_reset "$scen"
  PICAM_LOG=info ip netns exec "$NS_SND" timeout -k 2 $((secs + 120)) "$bin" send \
    --source test --width 1280 --height 720 --fps 30 --bitrate 8000000 --insecure \
    --web "$NS_SND_IP:$port" --stats json > "$dir/send.json" 2> "$dir/send.err" &
  sender=$!
  for _ in $(seq 300); do
    url=$(grep -o 'watch in a browser: http://[^ ]*' "$dir/send.err" | head -1 | grep -o 'http://.*' || true)
    [[ -n "$url" ]] && break
    kill -0 "$sender" 2>/dev/null || break
    sleep 0.1
  done
  if [[ -z "$url" ]]; then
    echo "bench-jam.sh: the $which web sender printed no viewer URL ($scen)" >&2
    kill "$sender" 2>/dev/null || true
    wait "$sender" 2>/dev/null || true
    return 0
  fi
  timeout -k 5 $((secs + 120)) node scripts/web/measure.mjs --url "$url" --seconds "$secs" \
    --browsers 1 --warmup 2 --netns "$NS_RCV" > "$dir/measure.out" 2> "$dir/measure.err" &
  m=$!
  # The timeline runs from the browser's collection start (at most 60 s to get there).
  for _ in $(seq 600); do
    grep -q 'measure: collecting' "$dir/measure.err" 2>/dev/null && { t0=$(now); break; }
    kill -0 "$m" 2>/dev/null || break
    sleep 0.1
  done
  if [[ -n "$t0" ]]; then
    timeline "$scen" "$t0" "$dir" &
    tl=$!
    wait "$tl" || true
  fi
  wait "$m" || echo "bench-jam.sh: measure.mjs failed ($scen web $which): $(tail -3 "$dir/measure.err")" >&2
  kill -INT "$sender" 2>/dev/null || true
  wait "$sender" 2>/dev/null || true
  meta "$dir" scen="$scen" wire=web which="$which" t0="${t0:-0}" nft="$(nft_counters)"
  port=$((port + 4))
}

for scen in $scenarios; do
  scenario_up "$scen"
  for wire in $wires; do
    for which in $which_list; do
      echo "$scen / $wire / $which (${secs} s)" >&2
      if [[ "$wire" == web ]]; then web_run "$scen" "$which"; else native_run "$scen" "$wire" "$which"; fi
    done
  done
  netns_down
done

load_end=$(cut -d' ' -f1-3 /proc/loadavg)
# The version string alone does not tell two builds apart: the file's hash does.
version() { echo "$("$1" --version 2>/dev/null || echo "?"), sha256 $(sha256sum "$1" | cut -c1-12)"; }
base_version=$([[ -z "$base" ]] || version "$base")
new_version=$(version "$new")
python3 -B scripts/bench-jam-report.py "$work/runs" "$secs" "$settle" "$write" docs/BENCHMARKS.md \
  "${base:-}" "$new" "$base_version" "$new_version" "$load_start" "$load_end" "$(nproc)"
