#!/usr/bin/env bash
# The main job on one machine: a sender with the test pattern and a receiver on
# loopback, printing the receiver's stats line once a second. Ctrl-C ends both.
# Usage: scripts/loopback.sh [SECONDS]    (default: run until Ctrl-C)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p bin
picam=target/release/picam
# Encrypted, as by default: a fresh key for both sides (removed at the end).
key=$(mktemp -d)/k
"$picam" keygen --out "$key" 2>/dev/null
duration=()
[[ -n "${1:-}" ]] && duration=(--duration "$1")
"$picam" recv --headless --key "$key" --bind 127.0.0.1 "${duration[@]}" &
recv=$!
trap 'kill $recv 2>/dev/null || true; rm -rf "$(dirname "$key")"' EXIT
sleep 0.3
"$picam" send --key "$key" --remote 127.0.0.1 "${duration[@]}" > /dev/null
wait $recv
