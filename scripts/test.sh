#!/usr/bin/env bash
# Installs what is missing and runs the whole test suite: formatting, lints, unit,
# simulated-link, malformed-input and end-to-end tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --test
export SDL_VIDEODRIVER="${SDL_VIDEODRIVER:-offscreen}"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -q -- -D warnings
cargo test --workspace --all-targets
