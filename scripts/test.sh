#!/usr/bin/env bash
# Installs what is missing and runs the whole test suite: formatting, lints, docs, unit,
# simulated-link, malformed-input, end-to-end and router-queue tests, then the camera
# sources end to end on loopback and V4L2 capture on a real kernel under qemu, and a
# short run of every fuzz target. The README's own commands run first, as written.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --test
# A fresh clone's whole run (debug and release builds, test binaries, fuzz targets)
# writes 2.7 GB under target/ and 1.7 GB under fuzz/target/ (measured; under CI=true
# the debug build is removed before fuzzing, so the peak is about 3 GB; a developer's
# checkout keeps both and its incremental caches, hence the 6 GiB asked). Say so up
# front: a full disk otherwise shows up as a linker error deep in the run.
need_kib=$((6 * 1024 * 1024))
free_kib="$(df -Pk . | awk 'NR == 2 { print $4 }')"
echo "test.sh: $((free_kib / 1024)) MiB free on $(df -P . | awk 'NR == 2 { print $6 }')"
if ((free_kib < need_kib)); then
    echo "test.sh: WARNING: under $((need_kib / 1024 / 1024)) GiB free; the builds may run out of disk" >&2
fi
# Incremental compilation caches help only a rebuild; on CI's fresh clone they are
# gigabytes written once and never read.
if [[ "${CI:-}" == "true" ]]; then
    export CARGO_INCREMENTAL=0
fi
# The browser tests' node dependencies, exactly as locked (playwright-core; it uses the
# system Chromium and downloads no browser).
if [[ ! -d scripts/web/node_modules ]]; then
  npm ci --prefix scripts/web --prefer-offline --no-audit --no-fund
fi
node --test scripts/web/stamp.test.mjs
export SDL_VIDEODRIVER="${SDL_VIDEODRIVER:-offscreen}"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -q -- -D warnings
RUSTDOCFLAGS="-D rustdoc::broken_intra_doc_links -D rustdoc::private_intra_doc_links" \
    cargo doc --workspace --no-deps -q
cargo build -q -p bin
# The README's commands as written, in a fresh clone (a README that drifts fails here).
bash scripts/check-readme.sh
PICAM="$PWD/target/debug/picam" bash scripts/e2e-sources.sh
PICAM="$PWD/target/debug/picam" bash scripts/qemu-v4l2/run.sh
cargo test --workspace --all-targets --no-fail-fast
# On CI's throwaway clone nothing after this reads the debug build: free its ~1.6 GB
# before the fuzz targets write theirs, so the peak is one of them, not both.
if [[ "${CI:-}" == "true" ]]; then
    rm -rf target/debug
fi
# Every fuzz target briefly (needs nightly: under CI=true it fails without one, elsewhere
# it says so loudly and skips).
bash scripts/fuzz.sh "${PICAM_FUZZ_SECONDS:-10}"
