#!/usr/bin/env bash
# Installs what is missing and runs the whole test suite: formatting, lints, unit,
# simulated-link, malformed-input, end-to-end and router-queue tests, then the camera
# sources end to end on loopback and V4L2 capture on a real kernel under qemu.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --test
export SDL_VIDEODRIVER="${SDL_VIDEODRIVER:-offscreen}"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -q -- -D warnings
cargo build -q -p bin
PICAM="$PWD/target/debug/picam" bash scripts/e2e-sources.sh
PICAM="$PWD/target/debug/picam" bash scripts/qemu-v4l2/run.sh
cargo test --workspace --all-targets --no-fail-fast
