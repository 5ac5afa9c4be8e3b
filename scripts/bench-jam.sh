#!/usr/bin/env bash
# The router "traffic jam" benchmark: picam at 8 Mbit/s through a 3 Mbit/s tbf router
# queue (400 ms) in network namespaces, with and without the jam guard, over UDP and
# TCP, and `--source rpicam` on the raw path (fake rpicam-vid) and `--wire rtp` beside
# it. Needs root. Prints the table (Markdown) and writes it to target/jam.md (the rpicam
# and RTP lines to target/jam.md.rpicam and target/jam.md.rtp).
# Usage: scripts/bench-jam.sh [SECONDS_PER_RUN]   (default 30)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --test
out="$PWD/target/jam.md"
mkdir -p target
PICAM_JAM_SECONDS="${1:-30}" PICAM_JAM_REPORT="$out" \
  cargo test --release -q -p bin --test jam_netns -- --nocapture
cat "$out"
if [ -f "$out.rpicam" ]; then cat "$out.rpicam"; fi
if [ -f "$out.rtp" ]; then cat "$out.rtp"; fi
