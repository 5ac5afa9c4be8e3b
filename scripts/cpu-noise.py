#!/usr/bin/env python3
"""This machine's own latency noise, as a baseline for the pipeline's tail.

The clean scenario of scripts/bench-jam.sh judges the stamp-to-picture latency's
p99 / p50 (issue 22's target: at most 1.5). On a small shared VM the scheduler alone
spreads that ratio: a stage that does exactly the same work every frame still takes
longer some frames than others. This probe measures that spread directly: a fixed
amount of CPU work (one thread, sized to TARGET_MS), started at 30 Hz like the
pipeline's frames, timed each time. Its p99 / p50 is what a perfectly constant pipeline
stage of the same length would read on this machine at this moment.

usage: cpu-noise.py SECONDS TARGET_MS
  SECONDS    how long to run, 1 to 600 (30 * SECONDS timed runs of the work)
  TARGET_MS  how long one run of the work should take, 0.5 to 30 ms (calibrated on
             the median of several tries before the timed runs start)

Prints one JSON line: n (timed runs), target_ms, calib_ms (the calibrated work's median
before the timed runs), iters (loop iterations per run), p50, p95, p99, max (ms), ratio
(p99 / p50). Percentiles use the same rank rule as scripts/bench-jam-report.py: the
ceil(p * n)-th smallest. Python 3 standard library only.
"""

import gc
import json
import math
import sys
import time

FPS = 30
SECONDS_RANGE = (1.0, 600.0)
TARGET_RANGE = (0.5, 30.0)
CALIBRATION_TRIES = 9


def usage_error(msg):
    print(f"cpu-noise.py: {msg}", file=sys.stderr)
    print("usage: cpu-noise.py SECONDS TARGET_MS", file=sys.stderr)
    sys.exit(2)


def number_arg(name, text, lo, hi, unit):
    try:
        v = float(text)
    except ValueError:
        usage_error(f"{name} must be a number, got {text!r}")
    # A NaN fails both comparisons, so it is refused here too.
    if not lo <= v <= hi:
        usage_error(f"{name} must be between {lo:g} and {hi:g} {unit}, got {text!r}")
    return v


def work(n):
    """The constant work: n iterations of integer arithmetic, nothing allocated that
    outlives an iteration."""
    s = 0
    for i in range(n):
        s += i * i & 0xFFFF
    return s


def timed_ms(n):
    t = time.perf_counter()
    work(n)
    return (time.perf_counter() - t) * 1e3


def median_ms(n):
    tries = sorted(timed_ms(n) for _ in range(CALIBRATION_TRIES))
    return tries[len(tries) // 2]


def calibrate(target_ms):
    """Iterations that take target_ms: sized from a first guess, then refined once. Each
    step uses the median of several tries (the first run is cold and slower, and any one
    try can be hit by the noise this probe measures)."""
    n = 20000
    timed_ms(n)  # warm up
    for _ in range(2):
        n = max(1, round(n * target_ms / max(median_ms(n), 1e-6)))
    return n, median_ms(n)


def percentile(sorted_values, p):
    k = len(sorted_values)
    return sorted_values[min(k, max(1, math.ceil(p * k))) - 1]


def main():
    if len(sys.argv) != 3:
        usage_error(f"expected 2 arguments, got {len(sys.argv) - 1}")
    secs = number_arg("SECONDS", sys.argv[1], *SECONDS_RANGE, "s")
    target_ms = number_arg("TARGET_MS", sys.argv[2], *TARGET_RANGE, "ms")

    n, calib_ms = calibrate(target_ms)
    runs = max(1, int(secs * FPS))
    times = []
    # The interpreter's own collector would add pauses that are not the machine's.
    gc.disable()
    period = 1.0 / FPS
    due = time.monotonic()
    for _ in range(runs):
        due += period
        late = time.monotonic() - due
        if late > period:
            # Fell a whole period behind (a stall longer than a frame): start from now,
            # as a frame clock would, instead of a burst of back-to-back runs.
            due = time.monotonic()
        elif late < 0:
            time.sleep(-late)
        times.append(timed_ms(n))
    gc.enable()

    times.sort()
    p50, p99 = percentile(times, 0.5), percentile(times, 0.99)
    print(json.dumps({
        "n": len(times), "target_ms": target_ms, "calib_ms": round(calib_ms, 3), "iters": n,
        "p50": round(p50, 3), "p95": round(percentile(times, 0.95), 3), "p99": round(p99, 3),
        "max": round(times[-1], 3), "ratio": round(p99 / p50, 3),
    }))


if __name__ == "__main__":
    main()
