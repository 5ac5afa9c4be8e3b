#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a while and reports how many inputs each
# executed. Exits non-zero if any target crashes (the input is left under
# fuzz/artifacts/<target>/) or fails to build.
#
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET]   (default 20)
#
# Needs a nightly toolchain (cargo-fuzz builds with sanitizers); without one it prints
# a loud notice and exits 0, since CI machines may lack one. cargo-fuzz is installed
# if missing. Each run is bounded by `timeout`, so the script always ends.
set -euo pipefail

secs="${1:-20}"
if ! [[ "$secs" =~ ^[0-9]+$ ]] || [ "$secs" -lt 1 ]; then
    echo "usage: $0 [SECONDS_PER_TARGET]  (a positive integer, default 20)" >&2
    exit 2
fi

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root/fuzz"

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "################################################################" >&2
    echo "### fuzzing skipped: no nightly toolchain                     ###" >&2
    echo "### (install one with: rustup toolchain install nightly)      ###" >&2
    echo "################################################################" >&2
    exit 0
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz not found; installing it" >&2
    cargo install cargo-fuzz --locked || cargo install cargo-fuzz
fi

targets="$(cargo +nightly fuzz list)"
if [ -z "$targets" ]; then
    echo "no fuzz targets found in $root/fuzz" >&2
    exit 1
fi

echo "building fuzz targets: $(echo "$targets" | tr '\n' ' ')"
timeout 1800 cargo +nightly fuzz build -O

logdir="$(mktemp -d "${TMPDIR:-/tmp}/picam-fuzz.XXXXXX")"
failed=()
summary=()
for target in $targets; do
    log="$logdir/$target.log"
    echo "fuzzing $target for ${secs}s (log: $log)"
    status=0
    # Single process, single job. The outer timeout is a backstop: libFuzzer stops by
    # itself after -max_total_time, and a hung input is cut by -timeout.
    timeout --kill-after=30 $((secs + 300)) \
        cargo +nightly fuzz run -O "$target" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$log" 2>&1 || status=$?
    runs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -n 1 || true)"
    rate="$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -n 1 || true)"
    if [ "$status" -ne 0 ]; then
        failed+=("$target")
        summary+=("$target: FAILED (exit $status) after ${runs:-?} executions")
        echo "---- $target failed; end of its log:" >&2
        grep -v '^ *at \|^ *[0-9]*: ' "$log" | tail -n 40 >&2 || true
    else
        summary+=("$target: ${runs:-?} executions, ${rate:-?} exec/s")
    fi
done

echo
echo "fuzz summary (${secs}s per target):"
printf '  %s\n' "${summary[@]}"
if [ "${#failed[@]}" -ne 0 ]; then
    echo "CRASHED: ${failed[*]} (inputs under $root/fuzz/artifacts/)" >&2
    exit 1
fi
echo "logs: $logdir"
