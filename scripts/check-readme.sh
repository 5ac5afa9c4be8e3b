#!/usr/bin/env bash
# Runs the README's commands as a new user would, in a fresh clone of this checkout's
# HEAD, so a README that drifts from the code fails CI:
#   1. the first code block (install, then `picam demo`), with `--duration` appended;
#   2. the Use section's code blocks: `recv` (which prints a pairing code the first
#      time) and `send --pair CODE --remote ADDR`, with the code the receiver printed
#      and 127.0.0.1 in place of the README's example code and address;
#   3. the prose that follows them: from then on `send --remote ADDR` alone streams
#      with the paired key;
#   4. the documented error for a bad value (`picam send --port 70000`), word for word;
#   5. the browser section's `send --web PORT`: it prints the page's address with a
#      token, serves the page there, and refuses a WHEP offer without the token (401).
#      The port is replaced by a free one; the browser itself is tested by
#      bin/tests/web_browser.rs.
#   6. the Record section's `recv --record FILE` and `send --remote ADDR --record
#      DIR/FILE` (ADDR made 127.0.0.1, DIR a scratch directory): both files hold H.264
#      that ffprobe reads.
#   7. the Janus section's `scripts/fanout-janus.sh --host ADDR ...` with ADDR made
#      127.0.0.1 and `--seconds 15`: it prints the viewer's address on that host, serves
#      the page there, Janus's API answers, and nothing is left running after it.
# Every command is taken from README.md itself; only `--duration N` is appended and the
# example code/address substituted. `scripts/test.sh` in the first block is the command
# running this check and is not run again.
#
# Usage: scripts/check-readme.sh   (about 3 min with warm dependencies: a release build)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/picam-readme.XXXXXX")"
cleanup() {
    kill $(jobs -p) 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

fail() {
    echo "check-readme: FAIL: $*" >&2
    exit 1
}

# The committed state only: a file present in the working tree but never committed
# would make a check of the checkout itself pass where a user's clone fails.
git clone -q "$root" "$work/picam"
cd "$work/picam"
readme=README.md
# Dependencies are shared with the checkout's target directory (built once); the clone's
# own crates are compiled from the clone's sources (cargo keys them by path).
export CARGO_TARGET_DIR="${PICAM_README_TARGET_DIR:-$root/target}"
# Paired keys go to scratch directories, never the real home: one for the viewer (PC),
# one for the camera (Pi), as on two machines.
pc="$work/pc-config" pi="$work/pi-config"
mkdir -p "$pc" "$pi"

# code_blocks FROM_HEADING: the ```sh blocks' lines (comments and blank lines dropped)
# of the section that starts at the heading FROM_HEADING, or of the part before the
# first heading when FROM_HEADING is empty.
code_blocks() {
    awk -v want="$1" '
        /^## / { section = substr($0, 4); next }
        /^```sh$/ { inside = 1; next }
        /^```/ { inside = 0; next }
        inside && ((want == "" && section == "") || section == want) {
            sub(/[ \t]+#.*$/, "")
            if ($0 != "") print
        }' "$readme"
}

# ---- 1. the first code block
mapfile -t first < <(code_blocks "")
[ "${#first[@]}" -ge 1 ] || fail "no first code block in README.md"
ran_demo=0
for cmd in "${first[@]}"; do
    if [[ "$cmd" == *scripts/test.sh* ]]; then
        echo "check-readme: '$cmd' is the command running this check: not run again"
        continue
    fi
    echo "check-readme: running: $cmd --duration 4"
    log="$work/first.log"
    if ! timeout -k 5 1500 bash -c "$cmd --duration 4" >"$log" 2>&1; then
        tail -n 30 "$log" >&2
        fail "the README's first command failed: $cmd"
    fi
    if [[ "$cmd" == *" demo"* ]]; then
        # The demo prints its stats once a second; a run that showed pictures says so.
        grep -Eq 'out +[1-9][0-9.]* fps' "$log" || {
            tail -n 30 "$log" >&2
            fail "'$cmd' ran but printed no line with pictures shown"
        }
        ran_demo=1
    fi
done
[ "$ran_demo" = 1 ] || fail "the first code block no longer runs the demo"

# ---- 2. the Use section: pair, then stream
mapfile -t use < <(code_blocks "Use")
recv_cmd="" pair_cmd=""
for cmd in "${use[@]}"; do
    case "$cmd" in
    *" recv"*) recv_cmd="$cmd" ;;
    *" send --pair "*) pair_cmd="$cmd" ;;
    *) fail "a command in the Use section this check does not know how to run: $cmd" ;;
    esac
done
[ -n "$recv_cmd" ] || fail "no recv command in the README's Use section"
[ -n "$pair_cmd" ] || fail "no 'send --pair' command in the README's Use section"
example_code="$(grep -Eo '[0-9]{4}-[0-9]{4}' <<<"$pair_cmd" | head -n 1)"
example_addr="$(grep -Eo '([0-9]{1,3}\.){3}[0-9]{1,3}' <<<"$pair_cmd" | head -n 1)"
[ -n "$example_code" ] && [ -n "$example_addr" ] ||
    fail "the pairing command names no example code and address: $pair_cmd"

# run_recv LOG SECS: the README's recv command, in the viewer's configuration, in the
# background; its pid in $recv_pid.
run_recv() {
    echo "check-readme: running (viewer): $recv_cmd --duration $2"
    PICAM_CONFIG_DIR="$pc" timeout -k 5 $(($2 + 60)) bash -c "$recv_cmd --duration $2" >"$1" 2>&1 &
    recv_pid=$!
}

# wait_for LOG PATTERN SECS: until LOG matches PATTERN.
wait_for() {
    for _ in $(seq $(($3 * 10))); do
        grep -Eq "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

recv_log="$work/recv-pair.log"
run_recv "$recv_log" 30
wait_for "$recv_log" 'pairing code: +[0-9]{4}-[0-9]{4}' 300 || {
    tail -n 30 "$recv_log" >&2
    fail "'$recv_cmd' printed no pairing code"
}
code="$(grep -Eo 'pairing code: +[0-9]{4}-[0-9]{4}' "$recv_log" | grep -Eo '[0-9]{4}-[0-9]{4}' | head -n 1)"
send_cmd="${pair_cmd//$example_code/$code}"
send_cmd="${send_cmd//$example_addr/127.0.0.1}"
echo "check-readme: running (camera): $send_cmd --duration 5"
PICAM_CONFIG_DIR="$pi" timeout -k 5 300 bash -c "$send_cmd --duration 5" >"$work/send-pair.log" 2>&1 || {
    tail -n 30 "$work/send-pair.log" >&2
    fail "'$pair_cmd' (code $code, address 127.0.0.1) failed"
}
kill -TERM "$recv_pid" 2>/dev/null || true
wait "$recv_pid" || true
grep -Eq 'out +[1-9][0-9.]* fps' "$recv_log" || {
    tail -n 30 "$recv_log" >&2
    fail "after pairing, the viewer showed no pictures"
}

# ---- 3. "From then on both sides use the paired key by themselves (`send --remote ADDR`)"
later="$(grep -Eo 'From then on[^`]*`send --remote [^`]*`' "$readme" | grep -Eo 'send --remote [^`]*' || true)"
[ -n "$later" ] || fail "the README no longer says how to stream once paired ('send --remote ADDR')"
later_cmd="${pair_cmd%% send *} ${later//$example_addr/127.0.0.1}"
recv_log="$work/recv-paired.log"
run_recv "$recv_log" 30
wait_for "$recv_log" 'receiving|waiting|listening' 300 || true
echo "check-readme: running (camera): $later_cmd --duration 5"
PICAM_CONFIG_DIR="$pi" timeout -k 5 300 bash -c "$later_cmd --duration 5" >"$work/send-paired.log" 2>&1 || {
    tail -n 30 "$work/send-paired.log" >&2
    fail "'$later_cmd' failed once paired"
}
kill -TERM "$recv_pid" 2>/dev/null || true
wait "$recv_pid" || true
grep -q 'pairing code' "$recv_log" && fail "the paired viewer asked to pair again"
grep -Eq 'out +[1-9][0-9.]* fps' "$recv_log" || {
    tail -n 30 "$recv_log" >&2
    fail "once paired, '$recv_cmd' and '$later_cmd' showed no pictures"
}

# ---- 4. the documented error for a bad value, word for word
documented="$(awk '/^\$ picam send --port 70000$/ { getline; print; exit }' "$readme")"
[ -n "$documented" ] || fail "the README's bad-value example ('\$ picam send --port 70000') is gone"
actual="$("$CARGO_TARGET_DIR/release/picam" send --port 70000 2>&1 >/dev/null || true)"
[ "$actual" = "$documented" ] ||
    fail "picam send --port 70000 says '$actual', the README says '$documented'"

# ---- 5. the browser viewer
mapfile -t web < <(code_blocks "Watch in a browser")
[ "${#web[@]}" -eq 1 ] || fail "the browser section should have one command, has ${#web[@]}"
web_cmd="${web[0]}"
example_port="$(grep -Eo -- '--web [0-9]+' <<<"$web_cmd" | grep -Eo '[0-9]+')"
[ -n "$example_port" ] || fail "the browser command names no --web PORT: $web_cmd"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
web_cmd="${web_cmd//--web $example_port/--web $port}"
web_log="$work/send-web.log"
echo "check-readme: running: $web_cmd --duration 20"
PICAM_CONFIG_DIR="$pi" timeout -k 5 300 bash -c "$web_cmd --duration 20" >"$web_log" 2>&1 &
web_pid=$!
wait_for "$web_log" 'watch in a browser: http://' 300 || {
    tail -n 30 "$web_log" >&2
    fail "'$web_cmd' printed no 'watch in a browser: http://...' line"
}
url="$(grep -Eo 'http://[^ ]+' "$web_log" | head -n 1)"
[[ "$url" =~ ^http://[^/]+:$port/\#t=[0-9a-f]{32}$ ]] || fail "the printed address is not http://HOST:$port/#t=TOKEN: $url"
base="${url%%#*}"
wait_for "$web_log" 'starting sender' 60 || true
page="$(curl -s --max-time 10 "$base")" || fail "GET $base failed"
grep -q '<video' <<<"$page" || fail "GET $base did not serve the viewer page"
status="$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -X POST \
    -H 'Content-Type: application/sdp' --data-binary $'v=0\r\n' "${base}whep")"
[ "$status" = 401 ] || fail "a WHEP offer without the token got HTTP $status, not 401"
kill -TERM "$web_pid" 2>/dev/null || true
wait "$web_pid" || true

# ---- 6. the Record section: the viewer records, the camera records to "its own storage"
mapfile -t rec < <(code_blocks "Record")
[ "${#rec[@]}" -eq 2 ] || fail "the Record section should have two commands (recv, send), has ${#rec[@]}"
rec_recv="" rec_send=""
for cmd in "${rec[@]}"; do
    case "$cmd" in
    *" recv "*) rec_recv="$cmd" ;;
    *" send "*) rec_send="$cmd" ;;
    *) fail "a command in the Record section this check does not know how to run: $cmd" ;;
    esac
done
recv_file="$(grep -Eo -- '--record [^ ]+' <<<"$rec_recv" | cut -d' ' -f2)"
send_file="$(grep -Eo -- '--record [^ ]+' <<<"$rec_send" | cut -d' ' -f2)"
[ -n "$recv_file" ] && [ -n "$send_file" ] || fail "the Record section's commands name no --record FILE"
rec_addr="$(grep -Eo '([0-9]{1,3}\.){3}[0-9]{1,3}' <<<"$rec_send" | head -n 1)"
# The Pi's storage is a directory of this check's.
storage="$(dirname "$send_file")"
mkdir -p "$work/storage"
rec_send="${rec_send//$storage/$work/storage}"
rec_send="${rec_send//$rec_addr/127.0.0.1}"
send_file="$work/storage/$(basename "$send_file")"
recv_cmd="$rec_recv"
recv_log="$work/recv-record.log"
run_recv "$recv_log" 30
wait_for "$recv_log" 'receiving over' 300 || true
echo "check-readme: running (camera): $rec_send --duration 5"
PICAM_CONFIG_DIR="$pi" timeout -k 5 300 bash -c "$rec_send --duration 5" >"$work/send-record.log" 2>&1 || {
    tail -n 30 "$work/send-record.log" >&2
    fail "'$rec_send' failed"
}
kill -TERM "$recv_pid" 2>/dev/null || true
wait "$recv_pid" || true
for f in "$recv_file" "$send_file"; do
    [ -s "$f" ] || fail "the Record section's commands left no $f"
    # (MPEG-TS lists the stream under its program too: the first line is the stream.)
    codec="$(ffprobe -v error -select_streams v:0 -show_entries stream=codec_name -of csv=p=0 "$f" | head -n 1)"
    [ "$codec" = h264 ] || fail "$f holds '$codec', not h264"
    frames="$(ffprobe -v error -count_frames -select_streams v:0 -show_entries stream=nb_read_frames -of csv=p=0 "$f" | head -n 1)"
    [ "${frames:-0}" -ge 60 ] || fail "$f holds only ${frames:-0} frames of a 5 s stream"
    echo "check-readme: $f: h264, $frames frames"
done

# ---- 7. Many viewers through Janus: the script as written, on loopback, for a few seconds
mapfile -t fan < <(code_blocks "Many viewers through Janus")
[ "${#fan[@]}" -eq 1 ] || fail "the Janus section should have one command, has ${#fan[@]}"
fan_cmd="${fan[0]}"
fan_addr="$(grep -Eo -- '--host [^ ]+' <<<"$fan_cmd" | cut -d' ' -f2)"
[ -n "$fan_addr" ] || fail "the Janus command names no --host: $fan_cmd"
fan_cmd="${fan_cmd//--host $fan_addr/--host 127.0.0.1}"
fan_log="$work/fanout.log"
echo "check-readme: running: $fan_cmd --seconds 15"
PICAM="$CARGO_TARGET_DIR/release/picam" timeout -k 5 300 bash -c "$fan_cmd --seconds 15" >"$fan_log" 2>&1 &
fan_pid=$!
wait_for "$fan_log" 'viewer: http://' 240 || {
    tail -n 30 "$fan_log" >&2
    fail "'$fan_cmd' printed no 'viewer: http://...' line"
}
viewer="$(grep -Eo 'viewer: http://[^ ]+' "$fan_log" | head -n 1 | cut -d' ' -f2)"
[[ "$viewer" == http://127.0.0.1:* ]] || fail "the viewer address is not on --host: $viewer"
curl -s --max-time 10 "$viewer" | grep -q '<video' || fail "GET $viewer did not serve the viewer page"
api="$(grep -Eo 'api=[0-9]+' <<<"$viewer" | cut -d= -f2)"
curl -s --max-time 10 "http://127.0.0.1:$api/janus/info" | grep -q '"server_info"' ||
    fail "Janus's API on port $api does not answer"
wait "$fan_pid" || { tail -n 30 "$fan_log" >&2; fail "'$fan_cmd' failed"; }
if pgrep -x janus >/dev/null; then fail "Janus still runs after the script ended"; fi

echo "check-readme: ok: the first code block, pairing and streaming as the Use section says, the bad-value example, the browser viewer's address, page and token, Janus's viewer page and API, and recording on both sides"
