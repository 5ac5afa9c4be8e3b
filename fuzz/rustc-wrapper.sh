#!/usr/bin/env bash
# RUSTC_WRAPPER for the fuzz build (scripts/fuzz.sh sets it): cargo runs
# `rustc-wrapper.sh RUSTC ARGS...`. Crates whose insides are not under test get no
# coverage instrumentation: the X25519 / ChaCha20-Poly1305 / BLAKE2 / SHA-2 arithmetic
# of every Noise handshake and SPAKE2 start, and the Reed-Solomon field arithmetic.
# Under trace-compares they were more than half of the receiver's and the secure
# target's time, and their branches only mislead the fuzzer (a new carry pattern in a
# field multiplication counts as new coverage). They stay under AddressSanitizer, and
# every crate that parses what the network sends (transport, media, capture, str0m,
# rtp-types) stays instrumented. The flag is appended last, so it wins over the
# `-sanitizer-coverage-level` cargo-fuzz puts in RUSTFLAGS (a per-package
# `profile.rustflags` cannot: cargo places those before RUSTFLAGS).
set -euo pipefail
rustc="$1"
shift
name=""
prev=""
for arg in "$@"; do
    if [ "$prev" = "--crate-name" ]; then
        name="$arg"
        break
    fi
    prev="$arg"
done
case "$name" in
    curve25519_dalek | x25519_dalek | ed25519_dalek | snow | blake2 | chacha20 | \
        chacha20poly1305 | poly1305 | universal_hash | cipher | aead | sha2 | hkdf | \
        hmac | digest | spake2 | reed_solomon_simd | subtle | zeroize)
        exec "$rustc" "$@" -Cllvm-args=-sanitizer-coverage-level=0
        ;;
esac
exec "$rustc" "$@"
