#!/usr/bin/env bash
# Time to first picture through a router that drops the first K packets it forwards
# (both directions: the handshake's HELLOs, WELCOMEs and, over TCP, the SYNs).
#
# Three network namespaces (sender, router, receiver) joined by veth pairs, as in
# bin/tests/loss_netns.rs; the router's forward chain has
#   numgen inc mod 1000000 < K counter drop
# so exactly the first K packets through it are lost. For each binary, protocol and K,
# RUNS runs: `picam recv` starts in the receiver namespace, then `picam send` (640x480
# test pattern, 30 fps, encrypted with one key); the time is from just before the
# sender starts to the receiver's "first picture shown" log line (the same host clock).
#
# Usage: sudo scripts/bench-first-picture.sh [--runs N] [LABEL=BINARY ...]
#   default: after=target/release/picam
#   e.g.     before=/tmp/picam-old after=target/release/picam
# Prints a Markdown table (median and every run, ms) on stdout; progress on stderr.
# Needs root, iproute2 and nftables.
set -euo pipefail

RUNS=3
BINARIES=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --runs) RUNS="$2"; shift 2 ;;
        *=*) BINARIES+=("$1"); shift ;;
        *) echo "usage: $0 [--runs N] [LABEL=BINARY ...]" >&2; exit 2 ;;
    esac
done
[[ ${#BINARIES[@]} -gt 0 ]] || BINARIES=("after=target/release/picam")
LOSSES=(0 1 3 5)
PROTOCOLS=(udp tcp)
RCV_ADDR=10.216.2.2
PORT=5000
# A run that shows nothing within this long counts as this (and is marked ">").
LIMIT_S=10

for tool in ip nft; do
    command -v "$tool" >/dev/null || { echo "needs $tool (iproute2, nftables)" >&2; exit 1; }
done
[[ $(id -u) == 0 ]] || { echo "needs root (network namespaces, nftables)" >&2; exit 1; }
for b in "${BINARIES[@]}"; do
    [[ -x "${b#*=}" ]] || { echo "not an executable: ${b#*=}" >&2; exit 1; }
done

ID=$$
SND=picam-fpsnd-$ID
RTR=picam-fprtr-$ID
RCV=picam-fprcv-$ID
WORK=$(mktemp -d)
cleanup() {
    for ns in "$SND" "$RTR" "$RCV"; do ip netns delete "$ns" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

# Private test subnets that exist only inside these namespaces; no default route.
for ns in "$SND" "$RTR" "$RCV"; do
    ip netns add "$ns"
    ip -n "$ns" link set lo up
done
# gso_max_segs 1: the links carry single packets, as a real one does (a GSO batch
# forwarded whole would make random loss drop a whole batch at once).
ip link add fps0 netns "$SND" gso_max_segs 1 type veth peer name fpr0 netns "$RTR" gso_max_segs 1
ip link add fpr1 netns "$RTR" gso_max_segs 1 type veth peer name fpv0 netns "$RCV" gso_max_segs 1
ip -n "$SND" addr add 10.216.1.1/24 dev fps0
ip -n "$RTR" addr add 10.216.1.2/24 dev fpr0
ip -n "$RTR" addr add 10.216.2.1/24 dev fpr1
ip -n "$RCV" addr add "$RCV_ADDR/24" dev fpv0
for pair in "$SND fps0" "$RTR fpr0" "$RTR fpr1" "$RCV fpv0"; do
    set -- $pair
    ip -n "$1" link set "$2" up
done
ip netns exec "$RTR" sysctl -qw net.ipv4.ip_forward=1
ip -n "$SND" route add 10.216.2.0/24 via 10.216.1.2
ip -n "$RCV" route add 10.216.1.0/24 via 10.216.2.1

KEY="$WORK/key"
"${BINARIES[0]#*=}" keygen --out "$KEY" >/dev/null 2>&1

# A fresh drop rule (numgen's counter starts again at 0) dropping the first $1 packets.
lose_first() {
    ip netns exec "$RTR" nft delete table inet picamfp 2>/dev/null || true
    ip netns exec "$RTR" nft add table inet picamfp
    ip netns exec "$RTR" nft add chain inet picamfp loss '{ type filter hook forward priority 0 ; }'
    ip netns exec "$RTR" nft add rule inet picamfp loss numgen inc mod 1000000 '<' "$1" counter drop
}

# Seconds since the epoch of a log line's leading RFC 3339 timestamp.
stamp_of() {
    date -d "$(awk '{print $1}' <<<"$1")" +%s.%N
}

# Waits until file $1 contains $2, up to $3 seconds; prints the line.
wait_line() {
    local deadline=$((SECONDS + $3))
    while ((SECONDS <= deadline)); do
        if grep -m1 -F "$2" "$1" 2>/dev/null; then return 0; fi
        sleep 0.01
    done
    return 1
}

# One run: prints the time to first picture in ms (or ">LIMIT").
one_run() {
    local bin=$1 proto=$2 lost=$3 tag=$4
    local rlog="$WORK/$tag.recv.err" slog="$WORK/$tag.send.err"
    lose_first "$lost"
    NO_COLOR=1 PICAM_LOG=info PICAM_CONFIG_DIR="$WORK/config" \
        ip netns exec "$RCV" "$bin" recv --headless --bind "$RCV_ADDR" --port "$PORT" \
        --protocol "$proto" --key "$KEY" --duration $((LIMIT_S + 3)) \
        >/dev/null 2>"$rlog" </dev/null &
    local rpid=$!
    if ! wait_line "$rlog" "receiving over" 10 >/dev/null; then
        echo "receiver did not start: $(cat "$rlog")" >&2
        kill "$rpid" 2>/dev/null || true
        wait "$rpid" 2>/dev/null || true
        return 1
    fi
    local t0
    t0=$(date +%s.%N)
    NO_COLOR=1 PICAM_LOG=info PICAM_CONFIG_DIR="$WORK/config" \
        ip netns exec "$SND" "$bin" send --remote "$RCV_ADDR" --port "$PORT" \
        --protocol "$proto" --key "$KEY" --source test --width 640 --height 480 \
        --fps 30 --duration $((LIMIT_S + 1)) >/dev/null 2>"$slog" </dev/null &
    local spid=$!
    local line result
    if line=$(wait_line "$rlog" "first picture shown" "$LIMIT_S"); then
        result=$(echo "($(stamp_of "$line") - $t0) * 1000" | bc -l)
        result=$(printf '%.0f' "$result")
    else
        result=">$((LIMIT_S * 1000))"
    fi
    kill "$spid" "$rpid" 2>/dev/null || true
    wait "$spid" "$rpid" 2>/dev/null || true
    local dropped
    dropped=$(ip netns exec "$RTR" nft list chain inet picamfp loss | grep -o 'packets [0-9]*' | awk '{print $2}')
    echo "$tag: ${result} ms (router dropped ${dropped:-?})" >&2
    echo "$result"
}

median() {
    # Runs that showed nothing sort last.
    tr ' ' '\n' <<<"$*" | sed 's/^>/999999/' | sort -n | awk '{a[NR]=$1} END {m=a[int((NR+1)/2)]; if (m>=999999) print ">'"$((LIMIT_S * 1000))"'"; else print m}'
}

echo "| binary | protocol | first packets lost | median ms | runs ms |"
echo "|---|---|---|---|---|"
for entry in "${BINARIES[@]}"; do
    label=${entry%%=*}
    bin=${entry#*=}
    for proto in "${PROTOCOLS[@]}"; do
        for lost in "${LOSSES[@]}"; do
            runs=()
            for ((i = 1; i <= RUNS; i++)); do
                runs+=("$(one_run "$bin" "$proto" "$lost" "$label-$proto-$lost-$i")")
            done
            echo "| $label | $proto | $lost | $(median "${runs[@]}") | ${runs[*]} |"
        done
    done
done
