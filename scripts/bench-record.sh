#!/usr/bin/env bash
# What recording costs (issue 21): CPU time per frame of `picam recv` and `picam send`
# without recording and with `--record` into each container, 1280x720, 30 fps,
# 4 Mbit/s, encrypted on loopback, with the release build. The modes alternate within
# each round (off, mkv, ts, mp4, off, mkv, ...) so that a machine's drift (another
# process, thermal state) falls on all of them alike; each figure is the median over
# the rounds of the process's own CPU time (utime + stime, from the stats' summary)
# divided by its frames (decoded at the receiver, captured at the sender). The ratio is
# each mode's median over the median of `off` in the same run.
# Besides, in each recording run both processes' threads are read from
# /proc/PID/task/*/schedstat (time on a CPU, in ns) half a second before the run ends:
# the "record" writer thread's share of the rest of the process is the recording's own
# cost, free of the run-to-run noise of the whole-process figures.
# Prints a Markdown table; with --write it also replaces (or appends) the
# "## Recording" section of docs/BENCHMARKS.md.
# Usage: scripts/bench-record.sh [SECONDS_PER_RUN] [ROUNDS] [--write]  (default 10 3)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=10 rounds=3 write=0 n=0
for arg in "$@"; do
  case "$arg" in
    --write) write=1 ;;
    *[!0-9]* | "") echo "usage: $0 [SECONDS] [ROUNDS] [--write]" >&2; exit 2 ;;
    *) if ((n == 0)); then secs="$arg"; else rounds="$arg"; fi; n=$((n + 1)) ;;
  esac
done
cargo build --release -q -p bin
picam=target/release/picam
port=47300
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export PICAM_CONFIG_DIR="$work/config"
"$picam" keygen --out "$work/k" 2>/dev/null
results="$work/results.tsv"
load0=$(cut -d' ' -f1-3 /proc/loadavg)
for round in $(seq 1 "$rounds"); do
  for mode in off mkv ts mp4; do
    rec_recv=() rec_send=()
    if [[ "$mode" != off ]]; then
      rec_recv=(--record "$work/r$round.$mode")
      rec_send=(--record "$work/s$round.$mode")
    fi
    "$picam" recv --headless --bind 127.0.0.1 --port $port --stats json --key "$work/k" \
      --duration $((secs + 2)) "${rec_recv[@]}" > "$work/recv.json" 2>"$work/recv.err" &
    recv=$!
    sleep 0.5
    "$picam" send --remote 127.0.0.1 --port $port --width 1280 --height 720 --fps 30 \
      --bitrate 4000000 --stats json --duration "$secs" --key "$work/k" "${rec_send[@]}" \
      > "$work/send.json" 2>"$work/send.err" &
    send=$!
    sleep "$((secs - 1)).5"
    shares=$(python3 - "$recv" "$send" <<'PY'
import glob, sys
out = []
for pid in sys.argv[1:]:
    total = rec = 0
    for task in glob.glob(f"/proc/{pid}/task/*"):
        try:
            ns = int(open(f"{task}/schedstat").read().split()[0])
            comm = open(f"{task}/comm").read().strip()
        except OSError:
            continue
        total += ns
        if comm == "record":
            rec += ns
    out.append(f"{rec / max(total - rec, 1):.5f}")
print("\t".join(out))
PY
)
    wait $send
    wait $recv
    python3 - "$mode" "$work/recv.json" "$work/send.json" "$shares" >> "$results" <<'PY'
import json, sys
mode, recv, send = sys.argv[1:4]
r = [json.loads(l) for l in open(recv) if l.startswith("{")][-1]
s = [json.loads(l) for l in open(send) if l.startswith("{")][-1]
rec_r = (r.get("record") or {}).get("frames", 0)
rec_s = (s.get("record") or {}).get("frames", 0)
print(f"{mode}\t{r['cpu_ms_per_frame']}\t{s['cpu_ms_per_frame']}\t{r['frames_decoded']}\t{rec_r}\t{rec_s}\t{sys.argv[4]}")
PY
    echo "bench-record: round $round $mode: $(tail -1 "$results")" >&2
    rm -f "$work"/r"$round".* "$work"/s"$round".*
    port=$((port + 1))
  done
done
load1=$(cut -d' ' -f1-3 /proc/loadavg)
cpu_model=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
python3 - "$results" "$secs" "$rounds" "$write" docs/BENCHMARKS.md "$(nproc)" "$cpu_model" \
  "$load0" "$load1" <<'PY'
import datetime, re, statistics, sys
results, secs, rounds, write, doc, nproc, cpu_model, load0, load1 = sys.argv[1:10]
rows = [l.rstrip("\n").split("\t") for l in open(results) if l.strip()]
by = {}
for mode, rc, sc, dec, fr, fs, share_r, share_s in rows:
    by.setdefault(mode, []).append((float(rc), float(sc), int(dec), int(fr), int(fs),
                                    float(share_r), float(share_s)))
med = lambda xs: statistics.median(xs)
base_r = med([x[0] for x in by["off"]])
base_s = med([x[1] for x in by["off"]])
table = ["| recording | receiver CPU ms/frame | vs off | writer thread / rest of receiver | sender CPU ms/frame | vs off | writer thread / rest of sender | frames recorded (recv / send, median) |",
         "|---|---|---|---|---|---|---|---|"]
for mode in ["off", "mkv", "ts", "mp4"]:
    xs = by[mode]
    r, s = med([x[0] for x in xs]), med([x[1] for x in xs])
    rec = "-" if mode == "off" else f"{med([x[3] for x in xs]):.0f} / {med([x[4] for x in xs]):.0f}"
    name = "off" if mode == "off" else f"`--record x.{mode}`"
    share_r = "-" if mode == "off" else f"{100 * med([x[5] for x in xs]):.2f}%"
    share_s = "-" if mode == "off" else f"{100 * med([x[6] for x in xs]):.2f}%"
    table.append(f"| {name} | {r:.3f} | {r / base_r:.3f} | {share_r} | {s:.3f} | {s / base_s:.3f} | {share_s} | {rec} |")
offs_r = [x[0] for x in by["off"]]
offs_s = [x[1] for x in by["off"]]
spread = (f"Without recording, the same command's runs spread over {min(offs_r):.3f}-{max(offs_r):.3f} "
          f"ms/frame at the receiver ({100 * (max(offs_r) / min(offs_r) - 1):.0f}%) and "
          f"{min(offs_s):.3f}-{max(offs_s):.3f} at the sender ({100 * (max(offs_s) / min(offs_s) - 1):.0f}%) "
          f"in this run: the whole-process ratios sit inside that noise.")
out = "\n".join(table) + "\n\n" + spread + "\n"
print(out)
if write == "1":
    section = f"""## Recording

`scripts/bench-record.sh {secs} {rounds} --write`, {datetime.date.today().isoformat()}, on this machine:
{nproc} cores, {cpu_model}; load average (1/5/15 min) {load0} at the start and {load1} at the
end. Release build, test pattern 1280x720, 30 fps, 4 Mbit/s, encrypted, on loopback; each
run {secs} s; {rounds} rounds, the modes alternating within each round. CPU is each process's
own utime+stime over its frames (decoded at the receiver, captured at the sender), the
median over the rounds; "vs off" divides by the median without recording in the same run.
With recording, both sides record at once (`recv --record` and `send --record`, same
container). The receiver's time is mostly the H.264 decoder, the sender's the test pattern
and libx264: the muxer (no decoding or encoding, a copy of each frame into libavformat's
packet and a write per frame) adds what the ratio shows. The whole-process ratios move by
several percent from run to run on this machine (a virtual machine whose CPU time is
shared: the "off" runs alone do, see below); the writer thread's share is the direct
measure, and the one the issue's bound (< 5% more CPU per frame) is checked against: the "record" thread's time on a CPU
(`/proc/PID/task/TID/schedstat`, ns) over the rest of the same process's, read half a
second before each recording run ends. The producer's part (`RecordTap::offer`: a
reference-counted clone of the frame and a `try_send`) runs on the transport or capture
thread and is inside the whole-process figures only.

{out}"""
    sys.path.insert(0, "scripts")
    from benchmarks_section import replace_section
    replace_section(doc, 'Recording', section)
    print(f"wrote the Recording section of {doc}", file=sys.stderr)
PY
