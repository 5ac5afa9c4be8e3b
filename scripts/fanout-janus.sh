#!/usr/bin/env bash
# One picam, any number of browsers: Debian's Janus Gateway in between (issue 20).
#
#   scripts/fanout-janus.sh [--source SPEC] [--seconds N] [--host ADDR] [--picam PATH]
#                           [--api-port P] [--page-port P] [--rtp-port P]
#                           [--janus-log FILE] [--picam-log FILE] [--keep-congestion-control]
#                           [--no-picam] [other picam send flags]
#
# Generates Janus's configuration from the templates in packaging/janus/ into a
# temporary directory (only the streaming plugin and the HTTP transport load; /etc/janus
# is never used), starts Janus on it, starts `picam send --wire rtp` into the
# mountpoint (RTP to --rtp-port, RTCP from picam's own socket to --rtp-port + 1, where
# Janus latches it and sends the viewers' keyframe requests back), serves the viewer
# page scripts/web/janus-viewer.html, and prints
#   viewer: http://HOST:PAGE-PORT/janus-viewer.html?api=API-PORT&mp=1
# Then it waits: SIGINT/SIGTERM, the end of --seconds, or any of its processes exiting
# stops everything it started.
#
# --host: the address the API, the page and WebRTC media listen on (default 127.0.0.1;
# give the machine's LAN address to serve other machines). picam sends RTP to Janus
# on loopback. --no-picam: the camera is another machine (a Pi): no picam is started,
# the mountpoint listens on --host, and the command to run on the Pi is printed
# (docs/FANOUT.md). Any other flag goes to `picam send` (e.g. --width 1280
# --height 720 --fps 30 --bitrate 4000000 --intra 300 --stats json).
# PICAM (or --picam) names the picam binary (default: picam on PATH, else
# target/release/picam, else target/debug/picam). Janus is installed with apt if
# missing (root).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

usage() {
  sed -n '3,8p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

source_spec=test secs=0 host=127.0.0.1 picam="${PICAM:-}"
api_port=8088 page_port=8089 rtp_port=5004
janus_log="" picam_log="" keep_guard=0 no_picam=0
extra=()
while (($#)); do
  case "$1" in
    --source) source_spec="${2:?--source needs a value}"; shift 2 ;;
    --seconds) secs="${2:?--seconds needs a value}"; shift 2 ;;
    --host) host="${2:?--host needs a value}"; shift 2 ;;
    --picam) picam="${2:?--picam needs a value}"; shift 2 ;;
    --api-port) api_port="${2:?}"; shift 2 ;;
    --page-port) page_port="${2:?}"; shift 2 ;;
    --rtp-port) rtp_port="${2:?}"; shift 2 ;;
    --janus-log) janus_log="${2:?}"; shift 2 ;;
    --picam-log) picam_log="${2:?}"; shift 2 ;;
    --keep-congestion-control) keep_guard=1; shift ;;
    --no-picam) no_picam=1; shift ;;
    -h | --help) usage ;;
    *) extra+=("$1"); shift ;;
  esac
done
for n in "$secs" "$api_port" "$page_port" "$rtp_port"; do
  [[ "$n" =~ ^[0-9]+$ ]] || { echo "fanout-janus.sh: not a number: $n" >&2; usage; }
done

if [[ -z "$picam" ]]; then
  for p in "$(command -v picam || true)" "$root/target/release/picam" "$root/target/debug/picam"; do
    [[ -n "$p" && -x "$p" ]] && { picam="$p"; break; }
  done
fi
((no_picam)) || [[ -n "$picam" && -x "$picam" ]] \
  || { echo "fanout-janus.sh: no picam binary (build it, or give --picam PATH / PICAM)" >&2; exit 1; }

if ! command -v janus >/dev/null; then
  echo "fanout-janus.sh: installing Janus (apt-get install janus)" >&2
  [[ $(id -u) -eq 0 ]] || { echo "fanout-janus.sh: janus is missing and we are not root" >&2; exit 1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q janus >&2 \
    || { echo "fanout-janus.sh: apt-get install janus failed" >&2; exit 1; }
fi
command -v python3 >/dev/null || { echo "fanout-janus.sh: python3 is needed to serve the page" >&2; exit 1; }

# Janus's plugin and transport libraries (Debian puts them under the multiarch dir).
janus_lib=$(dirname "$(dirname "$(find /usr/lib /usr/local/lib -path '*janus/plugins/libjanus_streaming.so' 2>/dev/null | head -1)")")
[[ -f "$janus_lib/plugins/libjanus_streaming.so" && -f "$janus_lib/transports/libjanus_http.so" ]] \
  || { echo "fanout-janus.sh: Janus's streaming plugin or HTTP transport not found" >&2; exit 1; }

work=$(mktemp -d -t picam-janus.XXXXXX)
janus_pid="" picam_pid="" page_pid=""
stop_all() {
  trap - INT TERM EXIT
  for p in "$page_pid" "$picam_pid" "$janus_pid"; do
    [[ -n "$p" ]] && kill -TERM "$p" 2>/dev/null || true
  done
  # Janus takes a moment to close its sessions; bound the wait, then insist.
  for _ in $(seq 50); do
    alive=0
    for p in "$page_pid" "$picam_pid" "$janus_pid"; do
      [[ -n "$p" ]] && kill -0 "$p" 2>/dev/null && alive=1
    done
    ((alive)) || break
    sleep 0.1
  done
  for p in "$page_pid" "$picam_pid" "$janus_pid"; do
    [[ -n "$p" ]] && kill -KILL "$p" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap 'stop_all; exit 130' INT
trap 'stop_all; exit 143' TERM
trap stop_all EXIT

# The configuration: templates filled in, only the two modules Janus needs linked in.
mkdir -p "$work/conf/plugins" "$work/conf/transports" "$work/conf/none" "$work/www"
ln -s "$janus_lib/plugins/libjanus_streaming.so" "$work/conf/plugins/"
ln -s "$janus_lib/transports/libjanus_http.so" "$work/conf/transports/"
admin_key=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
# Each viewer's PeerConnection takes a port from this range (well away from the others).
rtp_range="$((rtp_port + 10))-$((rtp_port + 200))"
# RTP from a picam on this machine comes over loopback; from a Pi, to the LAN address.
rtp_ip=127.0.0.1
((no_picam)) && rtp_ip="$host"
fill() {
  sed -e "s|@DIR@|$work/conf|g" -e "s|@DEBUG_LEVEL@|${PICAM_JANUS_DEBUG:-3}|g" \
    -e "s|@RTP_RANGE@|$rtp_range|g" -e "s|@ICE_IP@|$host|g" \
    -e "s|@API_PORT@|$api_port|g" -e "s|@API_IP@|$host|g" \
    -e "s|@ADMIN_KEY@|$admin_key|g" -e "s|@MOUNTPOINT_ID@|1|g" \
    -e "s|@RTP_PORT@|$rtp_port|g" -e "s|@RTCP_PORT@|$((rtp_port + 1))|g" \
    -e "s|@RTP_IP@|$rtp_ip|g" -e "s|@PT@|96|g" "$1"
}
for t in janus.jcfg janus.transport.http.jcfg janus.plugin.streaming.jcfg; do
  fill "$root/packaging/janus/$t.in" > "$work/conf/$t"
done
cp "$root/scripts/web/janus-viewer.html" "$work/www/"

: "${janus_log:=$work/janus.log}"
: "${picam_log:=$work/picam.log}"
# Someone else's server on our ports would answer in Janus's place: refuse to start.
for p in "$api_port" "$page_port"; do
  if python3 -c "import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 0.5)" \
    "$host" "$p" 2>/dev/null; then
    echo "fanout-janus.sh: $host:$p is already in use (--api-port / --page-port)" >&2
    exit 1
  fi
done
# Janus 1.1.2 may crash on its way out of a failed start (a port in use): no core file
# in the caller's directory for that.
ulimit -c 0
janus -C "$work/conf/janus.jcfg" -F "$work/conf" -o > "$janus_log" 2>&1 &
janus_pid=$!
# Janus is up when its API answers `info`.
up=0
for _ in $(seq 100); do
  if python3 - "$host" "$api_port" <<'PY' 2>/dev/null; then up=1; break; fi
import json, sys, urllib.request
with urllib.request.urlopen(f"http://{sys.argv[1]}:{sys.argv[2]}/janus/info", timeout=1) as r:
    sys.exit(0 if json.load(r).get("janus") == "server_info" else 1)
PY
  kill -0 "$janus_pid" 2>/dev/null || break
  sleep 0.1
done
if ((!up)); then
  echo "fanout-janus.sh: Janus did not come up; its log:" >&2
  tail -30 "$janus_log" >&2
  exit 1
fi

# Janus sends its source no receiver reports (only the viewers' PLI/FIR, and REMB), so
# picam's jam guard would have no feedback and hold its 1.5 Mbit/s start bitrate: it is
# off unless --keep-congestion-control. The hop to Janus is meant to be a good link;
# each viewer's own link is Janus's to repair (NACK from its buffer).
guard=(--no-congestion-control)
((keep_guard)) && guard=()
if ((no_picam)); then
  echo "fanout-janus.sh: on the camera, run: picam send --wire rtp --remote $host --port $rtp_port ${guard[*]} ${extra[*]}" >&2
else
  "$picam" send --source "$source_spec" --wire rtp --remote 127.0.0.1 --port "$rtp_port" \
    "${guard[@]}" "${extra[@]}" > "$picam_log" 2>&1 &
  picam_pid=$!
fi

python3 -m http.server --bind "$host" --directory "$work/www" "$page_port" \
  > "$work/page.log" 2>&1 &
page_pid=$!
for _ in $(seq 50); do
  python3 -c "import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 1)" \
    "$host" "$page_port" 2>/dev/null && break
  sleep 0.1
done

echo "fanout-janus.sh: janus pid $janus_pid, picam pid $picam_pid, page pid $page_pid" >&2
echo "viewer: http://$host:$page_port/janus-viewer.html?api=$api_port&mp=1"

# Wait for the end: the time given, a signal (the traps), or a process dying.
started=$SECONDS
while :; do
  for p in "$janus_pid" "$picam_pid" "$page_pid"; do
    [[ -n "$p" ]] || continue
    if ! kill -0 "$p" 2>/dev/null; then
      name=janus
      [[ "$p" == "$picam_pid" ]] && name=picam
      [[ "$p" == "$page_pid" ]] && name="the page server"
      echo "fanout-janus.sh: $name exited; stopping" >&2
      [[ "$name" == picam ]] && tail -5 "$picam_log" >&2
      [[ "$name" == janus ]] && tail -10 "$janus_log" >&2
      exit 1
    fi
  done
  ((secs == 0 || SECONDS - started < secs)) || break
  sleep 0.5
done
exit 0
