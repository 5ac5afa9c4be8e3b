#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a while and reports how many inputs each
# executed. Exits non-zero if any target crashes (the input is left under
# fuzz/artifacts/<target>/) or fails to build.
#
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET]   (default 20)
#
# Needs a toolchain that takes cargo-fuzz's sanitizer flags: nightly, else stable with
# RUSTC_BOOTSTRAP=1. Without either it fails under CI=true (exit 1, naming what is
# missing) and elsewhere prints a loud notice and exits 0. cargo-fuzz is installed
# (from crates.io) if missing. Each run is bounded by `timeout`, so the script always ends.
set -euo pipefail

secs="${1:-20}"
if ! [[ "$secs" =~ ^[0-9]+$ ]] || [ "$secs" -lt 1 ]; then
    echo "usage: $0 [SECONDS_PER_TARGET]  (a positive integer, default 20)" >&2
    exit 2
fi

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root/fuzz"

# Under CI (CI=true, as testkit reads it) a missing toolchain is a failure: a green CI
# run must mean the targets were fuzzed. Elsewhere the skip is loud.
in_ci() { case "${CI:-}" in [Tt][Rr][Uu][Ee] | 1) return 0 ;; *) return 1 ;; esac; }

# cargo-fuzz passes unstable flags (-Zsanitizer=address, sancov passes) to rustc. A
# nightly toolchain takes them; without one, the stable toolchain does too once
# RUSTC_BOOTSTRAP=1 lets it (as OSS-Fuzz builds Rust), and stable ships the sanitizer
# runtimes. rustup cannot download a nightly on machines without network for
# toolchains, so the stable fallback is what keeps fuzzing running there.
sanitizer_probe() {
    local dir status=0
    dir="$(mktemp -d)"
    echo 'pub fn f() {}' | "$@" --crate-type lib --crate-name probe -Zsanitizer=address \
        -Cpasses=sancov-module -o "$dir/probe.rlib" - >/dev/null 2>&1 || status=1
    rm -rf "$dir"
    return "$status"
}
if cargo +nightly --version >/dev/null 2>&1 && sanitizer_probe rustc +nightly; then
    toolchain=(+nightly)
    echo "fuzzing with the nightly toolchain: $(rustc +nightly --version)"
elif RUSTC_BOOTSTRAP=1 sanitizer_probe rustc; then
    export RUSTC_BOOTSTRAP=1
    toolchain=()
    echo "no nightly toolchain: fuzzing with $(rustc --version) and RUSTC_BOOTSTRAP=1"
else
    if in_ci; then
        echo "fuzz.sh: FAILED under CI=true: no toolchain takes cargo-fuzz's sanitizer" >&2
        echo "flags (no nightly, and stable with RUSTC_BOOTSTRAP=1 refused them)" >&2
        echo "(install one with: rustup toolchain install nightly)" >&2
        exit 1
    fi
    echo "################################################################" >&2
    echo "### fuzzing skipped: no nightly toolchain, and stable with     ###" >&2
    echo "### RUSTC_BOOTSTRAP=1 refused the sanitizer flags              ###" >&2
    echo "### (install one with: rustup toolchain install nightly)      ###" >&2
    echo "### under CI=true this is a failure                           ###" >&2
    echo "################################################################" >&2
    exit 0
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz not found; installing it" >&2
    cargo install cargo-fuzz --locked || cargo install cargo-fuzz
fi

# Crypto and Reed-Solomon crates built without coverage instrumentation (see the
# wrapper for why); it replaces any RUSTC_WRAPPER of the caller's (sccache) here.
export RUSTC_WRAPPER="$root/fuzz/rustc-wrapper.sh"

targets="$(cargo "${toolchain[@]}" fuzz list)"
if [ -z "$targets" ]; then
    echo "no fuzz targets found in $root/fuzz" >&2
    exit 1
fi

echo "building fuzz targets: $(echo "$targets" | tr '\n' ' ')"
timeout 1800 cargo "${toolchain[@]}" fuzz build -O

# Longest input per target. An execution of the event-sequence targets costs in
# proportion to its length, and their deep states (reordering, repair, session and
# key changes) are reached within a few hundred records, which 1-2 KiB hold, so the
# rest of libFuzzer's default 4 KiB bought length, not coverage. The parsers keep it.
max_len() {
    case "$1" in
        sender) echo 1024 ;;
        receiver | secure | rtp_depacketizer) echo 2048 ;;
        *) echo 4096 ;;
    esac
}

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
        cargo "${toolchain[@]}" fuzz run -O "$target" -- \
        -max_total_time="$secs" -max_len="$(max_len "$target")" -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 \
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
