#!/usr/bin/env bash
# End to end on loopback: each H.264 source (file:, stdin, rpicam with the fake
# rpicam-vid that crashes and is restarted) and rpicam's raw path (the Rust fake,
# target/debug/fake-rpicam-vid, 650 pixels wide: padded rows) streams into `picam recv`, which must
# decode a minimum number of pictures (a 60-frame file: at least 55, since the sender
# may stop before its last frame or two are through). Needs a built picam (PICAM=path, default
# target/debug/picam). About 20 s.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PICAM=${PICAM:-$ROOT/target/debug/picam}
FIXTURE=$ROOT/capture/fixtures/testsrc-320x240-60f.h264
FAKE=$ROOT/capture/tests/fake-rpicam-vid
FAKE_RAW=${FAKE_RAW:-$(dirname "$PICAM")/fake-rpicam-vid}
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
PORT=${PORT:-5731}
pass=0 fail=0
# Encrypted, as by default: one key for both sides; paired keys (none) stay out of $HOME.
export PICAM_CONFIG_DIR=$WORK/config
KEY=$WORK/k
"$PICAM" keygen --out "$KEY" 2>/dev/null

# run NAME MIN_FRAMES RECV_SECS SEND_ARGS... : recv on loopback, send, count pictures.
run() {
    local name=$1 min=$2 secs=$3; shift 3
    local out=$WORK/$name.y4m
    timeout -k 2 $((secs + 10)) "$PICAM" recv --bind 127.0.0.1 --port $PORT --headless --key "$KEY" \
        --frames-out "$out" --duration "$secs" >"$WORK/$name.recv.log" 2>&1 &
    local recv=$!
    # Start sending only once the receiver listens (a lost first keyframe would cost
    # the test a whole keyframe period).
    for _ in $(seq 50); do
        ss -Hlun "sport = :$PORT" | grep -q . && break
        sleep 0.1
    done
    timeout -k 2 $((secs + 5)) "$PICAM" send --key "$KEY" --remote 127.0.0.1 --port $PORT --duration $((secs - 1)) "$@" \
        >"$WORK/$name.send.log" 2>&1 || true
    wait $recv || true
    local got
    got=$(grep -a -o 'FRAME' "$out" 2>/dev/null | wc -l || true)
    if [ "${got:-0}" -ge "$min" ]; then
        echo "ok   $name: $got pictures decoded (at least $min)"; pass=$((pass + 1))
    else
        echo "FAIL $name: ${got:-0} pictures decoded, wanted at least $min"; fail=$((fail + 1))
        tail -n 5 "$WORK/$name.send.log" "$WORK/$name.recv.log"
    fi
    PORT=$((PORT + 1))
}

run file 55 4 --source "file:$FIXTURE" --fps 30
run file-loop 120 6 --source "file:$FIXTURE" --fps 60 --loop
run stdin 55 4 --source - --fps 30 < "$FIXTURE"
run rpicam-crash 60 7 --source "rpicam:$FAKE --fake-fixture $FIXTURE --fake-mode live-crash" --encoder rpicam --width 320 --height 240 --intra 30
if grep -q "restarting" "$WORK/rpicam-crash.send.log"; then
    echo "ok   rpicam-crash: restarts reported"; pass=$((pass + 1))
else
    echo "FAIL rpicam-crash: no restart reported"; fail=$((fail + 1))
fi
run rpicam-raw 90 5 --source "rpicam:$FAKE_RAW" --width 650 --height 480 --intra 300
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
