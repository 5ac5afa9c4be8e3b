#!/usr/bin/env bash
# The fan-out benchmark (issue 20): one picam, browsers through Janus Gateway
# (scripts/fanout-janus.sh), all in one run on this machine. 1280x720, 30 fps, 4 Mbit/s,
# the test pattern with its latency stamp; each row SECONDS of measurement.
#   1. side by side: ONE picam sending both `--web` (direct WebRTC) and `--wire rtp` into
#      Janus, one Chromium on each at the same time: p50/p95 of each and what Janus adds;
#   2. Janus with no viewer (its CPU baseline), then 1, 3 and 6 Chromiums through Janus:
#      fps and first picture of each, Janus's CPU per viewer, the machine's CPU;
#   3. a viewer joining mid-stream, three times: its first picture (the keyframe interval
#      is 10 s, so a fast first picture is the viewer's PLI reaching picam via Janus);
#   4. network namespaces (picam + Janus -> router -> viewer): one Chromium on 2% random
#      loss (nftables on the router, both directions), picam's default keyframe interval.
# Browsers are real Chromium processes driven by scripts/web/measure.mjs.
# Needs root (namespaces), iproute2, nftables, chromium, node + npm, python3, janus.
# Prints a Markdown table; with --write it also replaces (or appends) the
# "## Fan-out through Janus" section of docs/BENCHMARKS.md.
# Usage: scripts/bench-fanout.sh [SECONDS_PER_RUN] [--write]   (default 15)
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
secs=15 write=0
for arg in "$@"; do
  case "$arg" in
    --write) write=1 ;;
    *[!0-9]* | "") echo "usage: $0 [SECONDS] [--write]" >&2; exit 2 ;;
    *) secs="$arg" ;;
  esac
done
((secs >= 8)) || { echo "bench-fanout.sh: at least 8 s per run" >&2; exit 2; }

missing=()
[[ $(id -u) -eq 0 ]] || missing+=("root (network namespaces, nftables)")
for tool in ip nft chromium node npm python3 janus; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
if ((${#missing[@]})); then
  echo "bench-fanout.sh: missing: ${missing[*]}" >&2
  echo "  (scripts/install-deps.sh --test installs the tools)" >&2
  exit 1
fi
if [[ ! -d scripts/web/node_modules/playwright-core ]]; then
  npm ci --prefix scripts/web --no-audit --no-fund >&2 \
    || { echo "bench-fanout.sh: npm ci --prefix scripts/web failed (playwright-core)" >&2; exit 1; }
fi
picam="${CARGO_TARGET_DIR:-$root/target}/release/picam"
cargo build --release -q -p bin

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
work=$(mktemp -d)
id=$$
snd="picam-fsnd-b$id" rtr="picam-frtr-b$id" rcv="picam-frcv-b$id"
fanout_pid=""
cleanup() {
  stop_fanout
  for n in "$snd" "$rtr" "$rcv"; do ip netns delete "$n" 2>/dev/null || true; done
  if [[ -n "${PICAM_FANOUT_BENCH_KEEP:-}" ]]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
export PICAM_CONFIG_DIR="$work/config"
results="$work/results.jsonl"
: > "$results"
hz=$(getconf CLK_TCK)

ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
# The whole machine's busy and total jiffies so far (all cores).
machine() { awk '/^cpu /{print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8}' /proc/stat; }

# start_fanout TAG NETNS(or -) HOST BASEPORT [picam send flags...]: runs
# scripts/fanout-janus.sh; sets $url, $janus_pid, $picam_log.
start_fanout() {
  local tag="$1" ns="$2" host="$3" base="$4" pre=()
  shift 4
  [[ "$ns" == - ]] || pre=(ip netns exec "$ns")
  picam_log="$work/$tag.picam.log"
  "${pre[@]}" "$root/scripts/fanout-janus.sh" --picam "$picam" --host "$host" \
    --api-port "$base" --page-port $((base + 1)) --rtp-port $((base + 2)) \
    --picam-log "$picam_log" --janus-log "$work/$tag.janus.log" \
    --width 1280 --height 720 --fps 30 --bitrate 4000000 --stats json "$@" \
    > "$work/$tag.out" 2> "$work/$tag.err" &
  fanout_pid=$!
  url=""
  for _ in $(seq 300); do
    url=$(grep -o 'viewer: http://[^ ]*' "$work/$tag.out" | head -1 | cut -d' ' -f2 || true)
    [[ -n "$url" ]] && break
    kill -0 "$fanout_pid" 2>/dev/null || break
    sleep 0.1
  done
  if [[ -z "$url" ]]; then
    echo "bench-fanout.sh: fanout-janus.sh printed no viewer URL:" >&2
    cat "$work/$tag.err" "$work/$tag.janus.log" >&2
    exit 1
  fi
  janus_pid=$(grep -o 'janus pid [0-9]*' "$work/$tag.err" | grep -o '[0-9]*$')
}

stop_fanout() {
  [[ -n "$fanout_pid" ]] || return 0
  kill -TERM "$fanout_pid" 2>/dev/null || true
  wait "$fanout_pid" 2>/dev/null || true
  fanout_pid=""
}

# measure_into OUT URL BROWSERS WARMUP [NETNS]: runs the harness in the background.
measure_into() {
  local out="$1" u="$2" n="$3" warm="$4" ns="${5:-}" args=()
  [[ -z "$ns" ]] || args=(--netns "$ns")
  timeout -k 5 $((secs + warm + 60 + 30 * n)) node scripts/web/measure.mjs --url "$u" \
    --seconds "$secs" --browsers "$n" --warmup "$warm" "${args[@]}" \
    > "$out" 2> "$out.err" &
}

# record CASE PATH N OUT [c0 c1 t0 t1 m0busy m0total m1busy m1total]: one JSON line.
record() {
  python3 - "$@" >> "$results" <<'PY'
import json, sys
case, path, n, out = sys.argv[1:5]
rest = [float(x) for x in sys.argv[5:]]
recs = []
for line in open(out):
    try:
        r = json.loads(line)
    except ValueError:
        continue
    if isinstance(r, dict) and "browser" in r:
        recs.append(r)
row = {"case": case, "path": path, "browsers": int(n), "records": recs}
if len(rest) == 9:
    c0, c1, t0, t1, b0, a0, b1, a1, hz = rest
    row["janus_cpu"] = 100.0 * (c1 - c0) / hz / (t1 - t0)
    row["machine_busy"] = 100.0 * (b1 - b0) / max(1.0, a1 - a0)
print(json.dumps(row))
PY
}

# janus_window N WARMUP: measures N browsers through Janus while sampling Janus's CPU and
# the machine's over the middle of the window.
janus_window() {
  local case="$1" n="$2" warm="$3" out="$work/janus-$1-$2.json" m c0 c1 t0 t1 m0 m1
  measure_into "$out" "$url" "$n" "$warm"
  m=$!
  # The browsers take a few seconds each to start: sample from 2 s into the counting
  # window (measure.mjs says "collecting") to 2 s before its end.
  for _ in $(seq 600); do
    grep -q 'measure: collecting' "$out.err" 2>/dev/null && break
    kill -0 "$m" 2>/dev/null || break
    sleep 0.1
  done
  sleep 2
  c0=$(ticks "$janus_pid") t0=$(date +%s.%N) m0=$(machine)
  sleep $((secs - 4))
  c1=$(ticks "$janus_pid") t1=$(date +%s.%N) m1=$(machine)
  wait "$m" || { echo "bench-fanout.sh: measure.mjs failed ($case, $n browsers):" >&2; cat "$out.err" >&2; }
  record "$case" janus "$n" "$out" "$c0" "$c1" "$t0" "$t1" $m0 $m1 "$hz"
}

echo "1/4 side by side: one picam, --web direct and --wire rtp through Janus (loopback)" >&2
web_port=47480
start_fanout loop - 127.0.0.1 47400 --intra 300 --web "127.0.0.1:$web_port" --insecure
direct=""
for _ in $(seq 100); do
  direct=$(grep -o 'watch in a browser: http://[^ ]*' "$picam_log" | head -1 | grep -o 'http://.*' || true)
  [[ -n "$direct" ]] && break
  sleep 0.1
done
[[ -n "$direct" ]] || { echo "bench-fanout.sh: picam printed no --web URL" >&2; cat "$picam_log" >&2; exit 1; }
measure_into "$work/side-direct.json" "$direct" 1 3
md=$!
measure_into "$work/side-janus.json" "$url" 1 3
mj=$!
wait "$md" || echo "bench-fanout.sh: measure.mjs (direct) failed" >&2
wait "$mj" || echo "bench-fanout.sh: measure.mjs (Janus) failed" >&2
record "side by side" "picam --web (direct)" 1 "$work/side-direct.json"
record "side by side" "through Janus" 1 "$work/side-janus.json"

echo "2/4 Janus with no viewer, then 1, 3 and 6 Chromiums through it" >&2
sleep 2
c0=$(ticks "$janus_pid") t0=$(date +%s.%N) m0=$(machine)
sleep $((secs - 3))
c1=$(ticks "$janus_pid") t1=$(date +%s.%N) m1=$(machine)
: > "$work/idle.json"
record idle janus 0 "$work/idle.json" "$c0" "$c1" "$t0" "$t1" $m0 $m1 "$hz"
for n in 1 3 6; do
  janus_window loopback "$n" 2
done

echo "3/4 a viewer joining mid-stream (keyframe interval 10 s), three times" >&2
forced0=$(grep -o '"keyframes_forced":[0-9]*' "$picam_log" | tail -1 | cut -d: -f2)
for i in 1 2 3; do
  timeout -k 5 90 node scripts/web/measure.mjs --url "$url" --seconds 2 --browsers 1 --warmup 1 \
    > "$work/join-$i.json" 2> "$work/join-$i.err" || echo "bench-fanout.sh: join $i failed" >&2
  record "joining mid-stream" janus 1 "$work/join-$i.json"
  sleep 1
done
forced1=$(grep -o '"keyframes_forced":[0-9]*' "$picam_log" | tail -1 | cut -d: -f2)
stop_fanout

echo "4/4 network namespaces: one viewer on 2% random loss" >&2
for n in "$snd" "$rtr" "$rcv"; do ip netns add "$n"; ip -n "$n" link set lo up; done
# gso_max_segs 1: the links carry single packets, as a real one does (a GSO batch
# forwarded whole would make random loss drop a whole batch at once).
ip link add fbs0 netns "$snd" gso_max_segs 1 type veth peer name fbr0 netns "$rtr" gso_max_segs 1
ip link add fbr1 netns "$rtr" gso_max_segs 1 type veth peer name fbv0 netns "$rcv" gso_max_segs 1
ip -n "$snd" addr add 10.217.1.1/24 dev fbs0
ip -n "$rtr" addr add 10.217.1.2/24 dev fbr0
ip -n "$rtr" addr add 10.217.2.1/24 dev fbr1
ip -n "$rcv" addr add 10.217.2.2/24 dev fbv0
for nd in "$snd fbs0" "$rtr fbr0" "$rtr fbr1" "$rcv fbv0"; do ip -n ${nd% *} link set ${nd#* } up; done
ip netns exec "$rtr" sysctl -qw net.ipv4.ip_forward=1
ip -n "$snd" route add 10.217.2.0/24 via 10.217.1.2
ip -n "$rcv" route add 10.217.1.0/24 via 10.217.2.1
ip netns exec "$rtr" nft add table inet picamloss
ip netns exec "$rtr" nft add chain inet picamloss loss '{ type filter hook forward priority 0 ; }'
ip netns exec "$rtr" nft add rule inet picamloss loss counter
ip netns exec "$rtr" nft add rule inet picamloss loss numgen random mod 1000 '<' 20 counter drop
start_fanout loss "$snd" 10.217.1.1 47500
measure_into "$work/loss.json" "$url" 1 2 "$rcv"
wait $! || { echo "bench-fanout.sh: measure.mjs failed (loss)" >&2; cat "$work/loss.json.err" >&2; }
counters=$(ip netns exec "$rtr" nft list chain inet picamloss loss | grep -o 'packets [0-9]*' | awk '{printf "%s ", $2}')
record "2% loss (viewer's link)" janus 1 "$work/loss.json"
stop_fanout

janus_version=$(dpkg-query -W -f='${Version}' janus 2>/dev/null || echo "?")
chromium_version=$(chromium --version 2>/dev/null | head -1)
cpu_model=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
load_end=$(cut -d' ' -f1-3 /proc/loadavg)
python3 - "$results" "$secs" "$write" docs/BENCHMARKS.md "$(nproc)" "$cpu_model" \
  "$chromium_version" "$janus_version" "$("$picam" --version 2>/dev/null)" \
  "$load_start" "$load_end" "${forced0:-0}" "${forced1:-0}" "$counters" <<'PY'
import datetime, json, re, statistics, sys
(results, secs, write, doc, nproc, cpu_model, chromium, janus, picam, load0, load1,
 forced0, forced1, counters) = sys.argv[1:15]
secs, write = int(secs), write == "1"
rows = [json.loads(l) for l in open(results)]
counters = [int(x) for x in counters.split()] + [0, 0]
forwarded, dropped = counters[0], counters[1]

def f(v, digits=1):
    return "-" if v is None or v != v else f"{v:.{digits}f}"

def agg(recs):
    p50s = [x["p50_ms"] for x in recs if x.get("p50_ms") is not None]
    p95s = [x["p95_ms"] for x in recs if x.get("p95_ms") is not None]
    maxs = [x["max_ms"] for x in recs if x.get("max_ms") is not None]
    return (statistics.median(p50s) if p50s else None, max(p95s) if p95s else None,
            max(maxs) if maxs else None)

table = ["| case | path | browsers | p50 ms | p95 ms | max ms | fps (each) | first picture ms (each) "
         "| out of order | NACKs/lost (each) | Janus CPU % of a core | machine CPU busy % |",
         "|---|---|---|---|---|---|---|---|---|---|---|---|"]
idle = next((r for r in rows if r["case"] == "idle"), None)
s = {}
for r in rows:
    if r["case"] == "idle":
        table.append(f"| no viewer | Janus | 0 | | | | | | | | {f(r.get('janus_cpu'))} | {f(r.get('machine_busy'))} |")
        continue
    recs = r["records"]
    if not recs:
        table.append(f"| {r['case']} | {r['path']} | {r['browsers']} | no record: the harness failed | | | | | | | | |")
        continue
    p50, p95, mx = agg(recs)
    fps = " / ".join(f(x.get("fps")) for x in recs)
    first = " / ".join(str(x.get("first_frame_ms", "-")) for x in recs)
    back = sum(x.get("backwards", 0) for x in recs)
    st = [x.get("stats") or {} for x in recs]
    nl = ", ".join(f"{q.get('nackCount', '-')}/{q.get('packetsLost', '-')}" for q in st)
    table.append(f"| {r['case']} | {r['path']} | {r['browsers']} | {f(p50)} | {f(p95)} | {f(mx)} | {fps} "
                 f"| {first} | {back} | {nl} | {f(r.get('janus_cpu'))} | {f(r.get('machine_busy'))} |")
    key = (r["case"], r["path"], r["browsers"])
    firsts = [x.get("first_frame_ms") for x in recs if x.get("first_frame_ms") is not None]
    s.setdefault(key, []).append(dict(p50=p50, p95=p95, fps=min(x.get("fps") or 0 for x in recs),
        presented=min(x.get("presented", 0) for x in recs) / (30.0 * secs),
        first=max(firsts) if firsts else None, cpu=r.get("janus_cpu"), busy=r.get("machine_busy")))

notes = []
d = (s.get(("side by side", "picam --web (direct)", 1)) or [None])[0]
j = (s.get(("side by side", "through Janus", 1)) or [None])[0]
if d and j and d["p50"] is not None and j["p50"] is not None:
    notes.append(f"- Side by side, the same frames: direct p50/p95 {d['p50']:.1f}/{d['p95']:.1f} ms, "
                 f"through Janus {j['p50']:.1f}/{j['p95']:.1f} ms: Janus adds {j['p50'] - d['p50']:+.1f} ms "
                 f"at p50 and {j['p95'] - d['p95']:+.1f} ms at p95.")
if idle:
    for n in (1, 3, 6):
        x = (s.get(("loopback", "janus", n)) or [None])[0]
        if x and x["cpu"] is not None:
            per = (x["cpu"] - idle["janus_cpu"]) / n
            notes.append(f"- {n} browser(s) through Janus: slowest {x['fps']:.1f} fps, p95 {f(x['p95'])} ms, "
                         f"last first picture {f(x['first'], 0)} ms; Janus {x['cpu']:.1f}% of a core "
                         f"({per:.2f}% per viewer over its {idle['janus_cpu']:.1f}% idle), machine {x['busy']:.0f}% busy"
                         + (": the browsers have the machine." if x["busy"] >= 85 or x["fps"] < 28 else "."))
three = (s.get(("loopback", "janus", 3)) or [None])[0]
if three:
    ok = three["fps"] >= 24 and three["p95"] is not None and three["p95"] <= 80 and \
        three["first"] is not None and three["first"] <= 2000
    notes.append(f"- Goal (3 browsers at once: >= 24 fps each, p95 <= 80 ms, first picture <= 2 s): "
                 f"{'**met**' if ok else '**NOT met**'}.")
joins = [x["first"] for x in s.get(("joining mid-stream", "janus", 1), []) if x["first"] is not None]
if joins:
    notes.append(f"- Joining mid-stream (keyframe interval 10 s): first picture "
                 f"{' / '.join(f'{v:.0f}' for v in joins)} ms after opening the page; picam forced "
                 f"{int(forced1) - int(forced0)} keyframes on the joiners' PLI, relayed by Janus.")
loss = (s.get(("2% loss (viewer's link)", "janus", 1)) or [None])[0]
if loss:
    notes.append(f"- 2% random loss on the viewer's link (router dropped {dropped} of {forwarded}): "
                 f"{100 * loss['presented']:.1f}% of 30 fps presented, p95 {f(loss['p95'])} ms.")

out = "\n".join(table) + "\n\n" + "\n".join(notes) + "\n"
print(out)
if write:
    section = f"""## Fan-out through Janus

`scripts/bench-fanout.sh {secs} --write` (root), {datetime.date.today().isoformat()}, on this
machine: {nproc} cores, {cpu_model}; Janus {janus} (Debian); {chromium}; {picam}.
Load average (1/5/15 min) {load0} at the start and {load1} at the end of the run.
`scripts/fanout-janus.sh` runs Janus on the configuration from `packaging/janus/` (streaming
plugin, one RTP mountpoint, HTTP API, ICE Lite), `picam send --wire rtp` into it (test
pattern 1280x720, 30 fps, 4 Mbit/s, stamped, no jam guard: Janus sends its source no
receiver reports) and serves `scripts/web/janus-viewer.html`, which asks every browser for
a playout delay of 0. Browsers are headless Chromium processes driven by
`scripts/web/measure.mjs` (stamp to presentation, as in the browser viewer's section), each
row {secs} s after a warm-up (3 s side by side, 2 s otherwise). "Side by side" is ONE picam
sending the same frames both ways at once (`--web` and `--wire rtp`), one browser on each.
The loopback runs use `--intra 300` (a keyframe every 10 s), so every first picture within
a second is a viewer's PLI relayed by Janus to picam's RTCP socket. The loss run puts picam
and Janus in one namespace and the browser behind a router namespace dropping 2% at random
both ways (`numgen random mod 1000 < 20`), with picam's default keyframe interval.
Janus CPU is utime+stime of its process over the middle of the window (% of one core);
"machine CPU busy" is all cores together from `/proc/stat` (100% = both cores), which
shows where the browsers themselves (a software H.264 decoder and a compositor each) take
the machine.

{out}
Janus sends its source at most one keyframe request a second per mountpoint and holds
the ones in between until that second is over: browsers that open the page together
share the first keyframe if their connections are up in time, and the others wait up to a
second for the next (the 1.2-1.5 s first pictures with 3 and 6 browsers; 6 browsers also
start on a saturated machine). A lone joiner waits for one round trip and one encoded
frame. On the lossy link the first picture also waits for the page's signalling over TCP
(a lost SYN or segment costs a 1 s retransmission timeout) and for a damaged first
keyframe to be repaired (NACK from Janus's queue) or replaced (PLI, within the limit
above). Janus relays each viewer's NACKs from its own per-viewer queue (500 ms).
`bin/tests/fanout_janus.rs` runs the 3-browser case and a late joiner in CI (about 20 s).
"""
    sys.path.insert(0, "scripts")
    from benchmarks_section import replace_section
    replace_section(doc, 'Fan-out through Janus', section)
    print(f"wrote the Fan-out through Janus section of {doc}", file=sys.stderr)
PY
