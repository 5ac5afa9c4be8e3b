"""The tables of scripts/bench-jam.sh (issue 22's before/after benchmark), from its run
directories: each holds meta.json (scenario, wire, which binary, wall times), the
receiver's and sender's `--stats json` lines (recv.json, send.json) or the browser
harness's line (measure.out), and the timeline (tbf byte counts, rate changes); the
clean runs of picam's wire also hold noise.json, the machine-noise baseline measured
right after the run (scripts/cpu-noise.py's line, or {"skipped": REASON}).

usage: bench-jam-report.py RUNS SECS SETTLE WRITE DOC BASE NEW BASE_VERSION NEW_VERSION
                           LOAD_START LOAD_END NPROC
       bench-jam-report.py --noise-target RUN_DIR SECS SETTLE
           prints the ms of work the noise probe should do for that run: its settled
           frames' p50 (the clean verdict's p50), or without a frame log the seconds'
           settled p50; prints nothing and exits 1 when the run has neither"""

import datetime
import json
import math
import os
import sys

noise_target_dir = None
if sys.argv[1:2] == ["--noise-target"]:
    if len(sys.argv) != 5:
        sys.exit("usage: bench-jam-report.py --noise-target RUN_DIR SECS SETTLE")
    noise_target_dir, secs, settle = sys.argv[2:5]
    secs, settle = int(secs), float(settle)
else:
    (runs_dir, secs, settle, write, doc, base_bin, new_bin, base_version, new_version,
     load0, load1, nproc) = sys.argv[1:13]
    secs, settle, write = int(secs), float(settle), write == "1"

WIRES = {"picam": "`--wire picam` (UDP)", "rtp": "`--wire rtp` (UDP)", "web": "browser (`send --web`)"}
LINK_MBIT = 3.0


def json_lines(path):
    out = []
    if not os.path.exists(path):
        return out
    for line in open(path):
        line = line.strip()
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


def percentile(values, p):
    """The same rank rule as bin/tests/jam_netns.rs: the ceil(p * n)-th smallest."""
    v = sorted(values)
    if not v:
        return None
    return v[min(len(v), max(1, math.ceil(p * len(v)))) - 1]


def load_run(d):
    meta = json.load(open(os.path.join(d, "meta.json")))
    run = dict(meta)
    run["t0"] = float(meta.get("t0") or 0)
    run["timeline"] = []
    tl = os.path.join(d, "timeline")
    if os.path.exists(tl):
        for line in open(tl):
            parts = line.split()
            if len(parts) >= 3:
                run["timeline"].append(tuple([parts[0]] + [float(x) for x in parts[1:]]))
    sb, dp = (meta.get("nft") or "0 0").split()[:2]
    run["sender_bytes"], run["dropped"] = int(sb), int(dp)
    send = json_lines(os.path.join(d, "send.json"))
    run["send_last"] = ([r for r in send if r.get("last")] or send or [{}])[-1]
    series = []
    if meta["wire"] == "web":
        recs = [r for r in json_lines(os.path.join(d, "measure.out")) if "browser" in r]
        m = recs[0] if recs else {}
        run["browser"] = m
        start = (m.get("start_wall_ms") or 0) / 1000.0
        for k, s in enumerate(m.get("latency_per_second") or []):
            if s:
                series.append(dict(start=start + k, end=start + k + 1, n=s["n"], p50=s["p50"],
                                   p95=s["p95"], max=s["max"]))
        run["shown"], run["sent"] = m.get("presented", 0), 30 * secs
        run["error"] = m.get("error") or (None if recs else "no browser record")
    else:
        recv = json_lines(os.path.join(d, "recv.json"))
        rstart = float(meta["recv_start"])
        prev_t, prev_shown = 0.0, 0
        for r in recv:
            if r.get("last"):
                continue
            t = float(r.get("t", 0))
            shown = r.get("frames_shown", 0)
            lat = r.get("latency_ms")
            if isinstance(lat, dict) and lat.get("p50") is not None:
                series.append(dict(start=rstart + prev_t, end=rstart + t, n=shown - prev_shown,
                                   p50=lat["p50"], p95=lat["p95"], max=lat["max"]))
            prev_t, prev_shown = t, shown
        last = ([r for r in recv if r.get("last")] or recv or [{}])[-1]
        run["shown"], run["sent"] = last.get("frames_shown", 0), run["send_last"].get("frames_sent", 0)
        run["error"] = None if recv else "no receiver record"
        run["frames"] = frame_log(os.path.join(d, "recv.lat.csv"), rstart)
    run["series"] = series
    noise = os.path.join(d, "noise.json")
    run["noise"] = (json_lines(noise) or [{"skipped": "noise.json unreadable"}])[0] \
        if os.path.exists(noise) else None
    return run


def frame_log(path, rstart):
    """The receiver's `--latency-out` log as [(wall time shown, latency ms)], or None
    where the binary wrote none (a baseline older than the flag)."""
    if not os.path.exists(path):
        return None
    out = []
    for line in open(path):
        parts = line.strip().split(",")
        if len(parts) == 3 and parts[0].isdigit():
            out.append((rstart + float(parts[1]), float(parts[2])))
    return out


def frames_settled(run):
    """Percentiles over the frames shown between the settle point and the end of the
    run (each frame once), from the receiver's per-frame log; None without one."""
    frames = run.get("frames")
    if not frames:
        return None
    a, b = run["t0"] + settle, run["t0"] + secs
    v = [ms for t, ms in frames if a <= t <= b]
    if not v:
        return None
    return dict(n=len(v), p50=percentile(v, 0.5), p95=percentile(v, 0.95), p99=percentile(v, 0.99),
                max=max(v))


def window(run, lo, hi):
    """The per-second records wholly inside [t0 + lo, t0 + hi]."""
    a, b = run["t0"] + lo, run["t0"] + hi
    return [s for s in run["series"] if s["start"] >= a - 0.05 and s["end"] <= b + 0.05]


def settled(run):
    """Like jam_netns.rs's settled(): median of the per-second p50s, 95th percentile of the
    per-second p95s, largest max, after the settle time."""
    w = window(run, settle, secs)
    if not w:
        return None
    return dict(p50=percentile([s["p50"] for s in w], 0.5), p95=percentile([s["p95"] for s in w], 0.95),
                max=max(s["max"] for s in w), w=w)


def p99_estimate(w):
    """p99 over the settled frames from each second's p95 and max: at 20-39 frames a second
    those are that second's two largest, so the estimate is exact unless three of the
    run's top 1% fell in one second (then it is a lower bound)."""
    n = sum(s["n"] for s in w)
    if n <= 0:
        return None
    k = n - math.ceil(0.99 * n) + 1  # the k-th largest frame
    tops = sorted([s["max"] for s in w] + [s["p95"] for s in w], reverse=True)
    return tops[min(k, len(tops)) - 1]


def settled_mbit(run, field):
    """Mbit/s of a byte counter (2: the tbf's, 3: the sender's on the router's forward
    chain) between the settle point and the end of the run."""
    ev = {e[0]: e for e in run["timeline"]}
    if "settle" not in ev or "end" not in ev or len(ev["end"]) <= field:
        return None
    t1, b1 = ev["settle"][1], ev["settle"][field]
    t2, b2 = ev["end"][1], ev["end"][field]
    return (b2 - b1) * 8 / (t2 - t1) / 1e6 if t2 > t1 else None


def tbf_mbit(run):
    return settled_mbit(run, 2)


def step_metrics(run):
    """Per rate change: the settled p95 before it, the transient (largest latency in the
    seconds overlapping the 2 s after the change) and the time to recover (from the change
    to the start of the first whole second after it whose p95 is back under that p95)."""
    changes = [e for e in run["timeline"] if e[0] == "change"]
    out = []
    prev_end = run["t0"] + settle
    for i, (_, at, rate) in enumerate(changes):
        # Short runs (under 15 s) change the rate before the settle time: then the period
        # before is whatever precedes the change after the first second.
        lo = min(prev_end, max(run["t0"] + 1.0, at - 2.0))
        before = [s for s in run["series"] if s["start"] >= lo - 0.05 and s["end"] <= at + 0.05]
        ref = percentile([s["p95"] for s in before], 0.95) if before else None
        after = [s for s in run["series"] if s["end"] > at]
        nxt = changes[i + 1][1] if i + 1 < len(changes) else run["t0"] + secs
        trans = [s["max"] for s in after if s["start"] < at + 2.0]
        rec = None
        if ref is not None:
            for s in after:
                if s["start"] >= nxt:
                    break
                if s["start"] >= at - 0.05 and s["p95"] <= ref:
                    rec = max(0.0, s["start"] - at)
                    break
        out.append(dict(rate=rate, ref=ref, transient=max(trans) if trans else None, recover=rec,
                        limit=nxt - at))
        # The next change's "period before" skips this step's first 3 s.
        prev_end = at + 3.0
    return out


def noise_target(run):
    """The ms of CPU work the machine-noise probe is sized to: the run's settled frames'
    p50 (what the clean verdict divides by), or without a frame log the seconds' settled
    p50; None without either."""
    fs = frames_settled(run)
    if fs:
        return fs["p50"]
    st = settled(run)
    return st and st["p50"]


def noise_ratio(run):
    """The baseline's p99 / p50, None where it was not measured (or skipped)."""
    nz = run.get("noise")
    return nz.get("ratio") if nz and "skipped" not in nz else None


def noise_note(run):
    """The clause beside the clean verdict saying what this machine alone read."""
    nz = run.get("noise")
    if nz is None:
        return ""
    if "skipped" in nz or nz.get("ratio") is None:
        return f"; no machine-noise baseline ({nz.get('skipped', 'no ratio in noise.json')})"
    return (f"; this machine's own noise in the same run: a constant {nz['target_ms']:.1f} ms of CPU "
            f"work at 30 Hz read p99 = {nz['ratio']:.2f} x p50")


if noise_target_dir is not None:
    t = noise_target(load_run(noise_target_dir))
    if t is None:
        sys.exit(1)
    print(f"{t:.3f}")
    sys.exit(0)

runs = [load_run(os.path.join(runs_dir, d)) for d in sorted(os.listdir(runs_dir))
        if os.path.exists(os.path.join(runs_dir, d, "meta.json"))]
by = {(r["scen"], r["wire"], r["which"]): r for r in runs}
have_base = bool(base_bin)


def fmt(v, digits=0):
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    return f"{v:.{digits}f}"


def metrics(scen, run):
    """[(measure, value, digits)] of one run; value None when not measured."""
    if run is None:
        return None
    if run.get("error") and not run["series"]:
        return [("error", run["error"], 0)]
    st = settled(run)
    fs = frames_settled(run)
    shown = f"{run['shown']} / {run['sent']}"
    shown_pct = 100.0 * run["shown"] / run["sent"] if run["sent"] else None
    m = []
    if scen == "jam":
        mb = tbf_mbit(run)
        m += [("settled p50 ms", st and st["p50"], 0), ("settled p95 ms", st and st["p95"], 0),
              ("settled max ms", st and st["max"], 0),
              ("settled frames' p50 ms", fs and fs["p50"], 0), ("settled frames' p95 ms", fs and fs["p95"], 0),
              ("frames shown / sent", shown, 0),
              ("shown %", shown_pct, 1), ("through the tbf, Mbit/s", mb, 2),
              ("link used %", mb and 100.0 * mb / LINK_MBIT, 0)]
    elif scen == "step":
        for s in step_metrics(run):
            name = f"{'8 → 2' if s['rate'] == 2 else '2 → 8'}"
            m += [(f"{name}: p95 before, ms", s["ref"], 0), (f"{name}: transient max ms", s["transient"], 0),
                  (f"{name}: recovered after, s",
                   s["recover"] if s["recover"] is not None else f"not within {s['limit']:.0f}", 1)]
        m += [("frames shown / sent", shown, 0)]
    elif scen == "loss":
        over = (run["send_last"].get("repair") or {}).get("overhead_percent")
        clean = by.get(("clean", run["wire"], run["which"]))
        m += [("frames shown / sent", shown, 0), ("shown %", shown_pct, 1),
              ("sender's repair overhead %", over, 1),
              ("sender → router Mbit/s, settled (loss)", settled_mbit(run, 3), 2),
              ("sender → router Mbit/s, settled (clean run)", clean and settled_mbit(clean, 3), 2),
              ("router dropped (packets, both ways)", run["dropped"], 0),
              ("settled p95 ms", st and st["p95"], 0), ("settled frames' p95 ms", fs and fs["p95"], 0)]
    elif scen == "clean":
        p99 = st and p99_estimate(st["w"])
        m += [("settled p50 ms", st and st["p50"], 1), ("settled p95 ms (of the seconds' p95s)", st and st["p95"], 1),
              ("frame p99 ms (≈, from each second's two largest)", p99, 1),
              ("frame p99 / p50", p99 and st["p50"] and p99 / st["p50"], 2),
              ("settled frames' p50 ms", fs and fs["p50"], 1), ("settled frames' p99 ms", fs and fs["p99"], 1),
              ("settled frames' p99 / p50", fs and fs["p99"] / fs["p50"], 2),
              ("frames shown / sent", shown, 0)]
        if run.get("noise") is not None:
            nz = run["noise"]
            m += [("machine noise: constant CPU work ms (at 30 Hz, right after the run)",
                   nz.get("target_ms") if noise_ratio(run) is not None else None, 1),
                  ("machine noise: that work's p99 / p50", noise_ratio(run), 2)]
    return m


scen_titles = {
    "jam": "Jam: 3 Mbit/s tbf router queue (400 ms), 8 Mbit/s asked",
    "step": "Step: tbf 8 → 2 → 8 Mbit/s",
    "loss": "2% random loss on the router, no rate limit",
    "clean": "Clean: no limit, no loss",
}
out = []
targets = []
for scen in ["jam", "step", "loss", "clean"]:
    rows = []
    for wire in ["picam", "rtp", "web"]:
        mb = metrics(scen, by.get((scen, wire, "base")))
        mn = metrics(scen, by.get((scen, wire, "new")))
        if mb is None and mn is None:
            continue
        names = [x[0] for x in (mn or mb)]
        vb = {x[0]: x for x in mb or []}
        vn = {x[0]: x for x in mn or []}
        for name in names + [x for x in vb if x not in names]:
            b, n = vb.get(name), vn.get(name)
            digits = (n or b)[2]
            bv, nv = b and b[1], n and n[1]
            ratio = "-"
            if isinstance(bv, (int, float)) and isinstance(nv, (int, float)) and bv:
                ratio = f"{nv / bv:.2f}"
            if have_base:
                rows.append(f"| {WIRES[wire]} | {name} | {fmt(bv, digits)} | {fmt(nv, digits)} | {ratio} |")
            else:
                rows.append(f"| {WIRES[wire]} | {name} | {fmt(nv, digits)} |")
    if not rows:
        continue
    out.append(f"### {scen_titles[scen]}\n")
    if have_base:
        out.append("| viewer | measure | before | after | after / before |\n|---|---|---|---|---|")
    else:
        out.append("| viewer | measure | value |\n|---|---|---|")
    out += rows
    out.append("")


# Issue 22's "done when", for the new binary on picam's own wire (UDP).
def verdict(ok):
    return "**met**" if ok else "**NOT met**"


def target_lines(which):
    lines = []
    r = by.get(("jam", "picam", which))
    if r and settled(r):
        st, mb, fs = settled(r), tbf_mbit(r), frames_settled(r)
        used = 100.0 * mb / LINK_MBIT if mb else 0.0
        shown_ok = r["sent"] and r["shown"] >= 780 * r["sent"] / 900
        # The target is a p95 of frames (as the sims assert it); the p95 of the seconds'
        # p95s is shown beside it, and decides where no frame log exists.
        p95 = fs["p95"] if fs else st["p95"]
        what = (f"frames' p95 {p95:.0f} ms (≤ 50; p95 of the seconds' p95s {st['p95']:.0f})" if fs
                else f"p95 of the seconds' p95s {p95:.0f} ms (≤ 50; no frame log)")
        lines.append(f"- jam: settled {what}, link used {used:.0f}% (≥ 85), "
                     f"{r['shown']} / {r['sent']} shown (≥ 780 of 900): "
                     f"{verdict(p95 <= 50 and used >= 85 and bool(shown_ok))}")
    r = by.get(("step", "picam", which))
    if r:
        for s in step_metrics(r):
            if s["transient"] is None:
                continue
            ok = s["transient"] <= 200 and s["recover"] is not None and s["recover"] <= 1.0
            rec = f"{s['recover']:.1f} s" if s["recover"] is not None else "not recovered"
            lines.append(f"- step to {s['rate']:.0f} Mbit/s: transient {s['transient']:.0f} ms (≤ 200), "
                         f"recovered after {rec} (≤ 1 s): {verdict(ok)}")
    r = by.get(("clean", "picam", which))
    fs = r and frames_settled(r)
    if fs:
        lines.append(f"- clean: frames' p99 {fs['p99']:.1f} ms = {fs['p99'] / fs['p50']:.2f} x p50 "
                     f"({fs['p50']:.1f} ms, {fs['n']} frames) (≤ 1.5): {verdict(fs['p99'] <= 1.5 * fs['p50'])}"
                     f"{noise_note(r)}")
    elif r and settled(r):
        st = settled(r)
        p99 = p99_estimate(st["w"])
        if p99 is not None:
            lines.append(f"- clean: p99 {p99:.1f} ms ≈ {p99 / st['p50']:.2f} x p50 (≤ 1.5): "
                         f"{verdict(p99 <= 1.5 * st['p50'])}{noise_note(r)}")
    r = by.get(("loss", "picam", which))
    if r:
        over = (r["send_last"].get("repair") or {}).get("overhead_percent")
        pct = 100.0 * r["shown"] / r["sent"] if r["sent"] else 0.0
        lines.append(f"- 2% loss: repair overhead {fmt(over, 1)}% (≤ 4), {pct:.1f}% shown (≥ 98): "
                     f"{verdict(over is not None and over <= 4 and pct >= 98)}")
    return lines


for which, label in [("base", "before"), ("new", "after")]:
    if which == "base" and not have_base:
        continue
    lines = target_lines(which)
    if lines:
        out.append(f"Issue 22's targets, `--wire picam`, {label}:\n")
        out += lines
        out.append("")

if have_base and base_version == new_version:
    out.append("Both columns ran the same binary: their ratios are this machine's run-to-run "
               "noise, not a change.\n")
text = "\n".join(out)
print(text)

if write:
    base_desc = f"before: `{base_version}` ({base_bin})" if have_base else "no baseline (PICAM_BASE unset)"
    cmd = f"PICAM_BASE=… PICAM_NEW=… scripts/bench-jam.sh {secs} --write" if have_base \
        else f"scripts/bench-jam.sh {secs} --write"
    section = f"""## One transport edge and one controller (issue 22)

`{cmd}` (root), {datetime.date.today().isoformat()}, {nproc} cores, load average
(1/5/15 min) {load0} at the start and {load1} at the end; {base_desc}; after:
`{new_version}` ({new_bin}). Every scenario runs the two binaries alternately through the
same router, in its own network namespaces (sender -> router -> receiver over veth pairs,
`scripts/netns.sh`): picam's own wire (UDP, encrypted), `--wire rtp` (UDP, in the clear)
and a browser (`picam send --web`, headless Chromium in the receiver's namespace,
`scripts/web/measure.mjs`). All: test pattern 1280x720, 30 fps, `--bitrate 8000000`,
{secs} s per run.

Latency is stamp to picture, from the receiver's once-a-second records (the browser's are
the harness's per-second figures): "settled" skips the first {settle:.0f} s of the run
(for the browser, of its collection, which starts 2 s after the page loads), then takes the
median of the per-second p50s, the 95th percentile of the per-second p95s and the largest
max, as `bin/tests/jam_netns.rs` does. That p95 is the 95th percentile over seconds,
not over frames: one bad second moves it, and it can exceed the frames' p99. Where the
binary can log each frame (`picam recv --latency-out`, which the baseline predates), the
"settled frames'" rows are percentiles over the frames shown after the settle point, and
the targets below are judged on them (a p95 of frames, as the seeded sims assert it);
the seconds' figures stay beside them. Without a frame log the clean run's frame p99 is
estimated from each second's p95 and max (at 30 fps its two largest frames): a lower
bound when several of the run's largest 1% fall in one second (this machine's
scheduling hiccups do: 1.56 estimated against 1.77 exact in one run). Right after each
clean run of picam's wire, with nothing of the bench running, `scripts/cpu-noise.py` times
a constant amount of CPU work (one thread, as long as that run's settled frames' p50, or
the seconds' p50 without a frame log) started at 30 Hz for as many seconds as the run: the
"machine noise" rows and the clause beside the clean verdict. A perfectly constant stage of
the same length would read that p99 / p50 on this machine at that moment; the target is
still judged as written (≤ 1.5), the baseline only says how much of the tail the machine
alone makes. "Through the tbf" is the router qdisc's byte counter (`tc -s
qdisc show`) between the settle point and the end of the run. The step changes the tbf's
rate with `tc qdisc change` at 1/3 and 2/3 of the run; its figures have one-second
resolution: the transient is the largest latency in the seconds overlapping the 2 s after
the change, and "recovered after" is the time from the change to the start of the first
whole second whose p95 is back under the settled p95 of the period before (for 2 → 8,
that period skips the 2 Mbit/s step's first 3 s). Loss: the repair overhead is the
sender's own figure where it reports one (`repair.overhead_percent` in its stats: parity
and retransmitted bytes over its bytes); "sender → router" counts the sender's bytes on
the router's nftables forward chain before the drop rule, over the settled part of the
run, beside the same binary's clean run (the encoder's rate may differ between the two). The browser's frames "sent" are 30
per second of its collection. A stale band at stream start is not measured here: the
receiver's stats expose no per-frame picture check. The veth ends of the sender and
receiver carry single packets (`gso_max_segs 1`, as a real NIC puts them on the wire):
forwarded as whole GSO batches, the router's random loss dropped a frame's worth at once.

{text}
`bin/tests/jam_netns.rs` runs the jam in CI with generous bounds.
"""
    sys.path.insert(0, "scripts")
    from benchmarks_section import replace_section
    replace_section(doc, "One transport edge and one controller (issue 22)", section)
    print(f"wrote the issue 22 section of {doc}", file=sys.stderr)
