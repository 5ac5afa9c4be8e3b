#!/usr/bin/env bash
# Checks the Debian packages that scripts/package-deb.sh built (target/debian/):
#
#  1. dpkg-deb --info/--contents of each: the binary, both units, the conffile, sane
#     Depends (FFmpeg 5.1 and SDL2 sonames from dpkg-shlibdeps, adduser);
#  2. lintian: no errors;
#  3. the amd64 package installed on this machine with apt (it resolves its Depends),
#     the `picam` user created, `systemd-analyze verify` of the installed units;
#  4. the arm64 binary from the package under qemu-user, with the arm64 runtime
#     libraries its Depends name installed through multiarch: `picam --version`,
#     `picam devices`, and `picam send` (test pattern, 5 s) into the installed native
#     `picam recv --headless` on loopback: pictures decoded and shown, and the emulated
#     sender's CPU per frame (emulated: a figure for trends, not a Pi);
#  5. remove keeps an edited conffile and the user, purge removes the user and
#     /var/lib/picam, and dpkg takes the conffile.
#
# Changes this machine (installs and purges the amd64 package, installs arm64 runtime
# libraries, qemu-user, lintian): for CI or a throwaway machine. Needs root or sudo.
# The native receiver and the packaged sender must come from the same commit (the wire
# format is versioned): build both packages from one checkout.
#
# Usage: scripts/check-deb.sh            (checks every picam_*.deb in target/debian)
# Env:   PICAM_CHECK_PORT (default 5599), PICAM_CHECK_SIZE (default 640x360).
set -euo pipefail
cd "$(dirname "$0")/.."
target_dir=$(cargo metadata --format-version 1 --no-deps 2>/dev/null \
  | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
target_dir=${target_dir:-$PWD/target}
debs=("$target_dir"/debian/picam_*.deb)
[[ -e "${debs[0]}" ]] || { echo "check-deb: no package in $target_dir/debian: run scripts/package-deb.sh" >&2; exit 1; }

sudo=""
[[ $(id -u) -ne 0 ]] && sudo="sudo"
# shellcheck source=scripts/apt.sh
source scripts/apt.sh
apt_install lintian jq qemu-user
work=$(mktemp -d)
cleanup() { local pids; pids=$(jobs -p); [[ -n "$pids" ]] && kill $pids 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
fail() { echo "check-deb: FAIL: $*" >&2; exit 1; }
ok() { echo "check-deb: ok: $*"; }

newest() { ls -t "$target_dir"/debian/picam_*_"$1".deb 2>/dev/null | head -n1; }
amd64_deb=$(newest amd64)
arm64_deb=$(newest arm64)

# 1 + 2: contents, control fields, lintian.
for deb in "$amd64_deb" "$arm64_deb" $(newest armhf); do
  [[ -n "$deb" ]] || continue
  name=$(basename "$deb")
  echo "== $name ($(du -k "$deb" | cut -f1) KiB)"
  dpkg-deb --info "$deb" > "$work/info"
  dpkg-deb --contents "$deb" > "$work/contents"
  cat "$work/info"
  for f in ./usr/bin/picam ./etc/picam/picam.toml \
           ./usr/lib/systemd/system/picam-send.service \
           ./usr/lib/systemd/system/picam-recv.service \
           ./usr/share/man/man1/picam.1.gz ./usr/share/doc/picam/copyright; do
    grep -q " $f\$" "$work/contents" || fail "$name lacks $f"
  done
  dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles > "$work/conffiles"
  grep -qx /etc/picam/picam.toml "$work/conffiles" || fail "$name: /etc/picam/picam.toml is not a conffile"
  depends=$(dpkg-deb --field "$deb" Depends)
  for d in libavcodec59 libavutil57 libswscale6 libsdl2-2.0-0 libsdl2-ttf-2.0-0 libc6 adduser; do
    grep -qE "(^|, )$d( |,|$)" <<<"$depends" || fail "$name: Depends lacks $d: $depends"
  done
  grep -qiE "(-dev|rust|cargo)( |,|$)" <<<"$depends" && fail "$name: Depends names a build package: $depends"
  ok "$name: binary, units, man page, conffile, Depends: $depends"
  lintian --fail-on error --no-tag-display-limit "$deb" | tee "$work/lintian" || fail "$name: lintian errors"
  ok "$name: lintian: $(grep -c '^E:' "$work/lintian" || true) errors, $(grep -c '^W:' "$work/lintian" || true) warnings"
done

# 3: the amd64 package on this machine.
[[ -n "$amd64_deb" ]] || fail "no amd64 package to install: scripts/package-deb.sh amd64"
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$amd64_deb" >/dev/null
[[ "$(readlink -f "$(command -v picam)")" == /usr/bin/picam ]] || fail "picam is not /usr/bin/picam on PATH"
/usr/bin/picam --version
id picam || fail "no picam user after install"
for g in video render input; do
  id -nG picam | grep -qw "$g" || fail "picam not in $g"
done
[[ -d /var/lib/picam ]] || fail "no /var/lib/picam"
if command -v systemd-analyze >/dev/null; then
  # No systemd running is needed: verify loads the unit files offline.
  systemd-analyze verify /usr/lib/systemd/system/picam-send.service \
    /usr/lib/systemd/system/picam-recv.service 2>&1 | tee "$work/verify"
  grep -v "man picam(1)" "$work/verify" | grep -q . && fail "systemd-analyze verify complained"
  ok "systemd-analyze verify: clean"
  for u in picam-send picam-recv; do
    state=$(systemctl is-enabled "$u.service" 2>/dev/null || true)
    [[ "$state" == enabled ]] && fail "$u enabled by default"
    echo "check-deb: $u.service is-enabled: ${state:-unknown (no systemd)}"
  done
else
  echo "check-deb: systemd-analyze not available: unit files not verified"
fi

# 4: the arm64 binary under qemu-user, sending into the installed native receiver.
if [[ -n "$arm64_deb" ]]; then
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    $sudo dpkg --add-architecture arm64
    $sudo apt-get update -qq
  fi
  # The runtime libraries the package's Depends name, as arm64 (multiarch). adduser and
  # fonts are architecture-independent and already here from the amd64 install.
  libs=()
  for d in $(dpkg-deb --field "$arm64_deb" Depends | tr ',' '\n' | sed 's/(.*//; s/|.*//; s/ //g'); do
    case "$d" in adduser|fonts-*) ;; *) libs+=("$d:arm64") ;; esac
  done
  apt_install "${libs[@]}"
  dpkg-deb -x "$arm64_deb" "$work/arm64"
  pi="$work/arm64/usr/bin/picam"
  file "$pi" | grep -q "ARM aarch64" || fail "not an arm64 binary: $(file "$pi")"
  qemu-aarch64 "$pi" --version
  qemu-aarch64 "$pi" devices || fail "picam devices (arm64) failed"
  ok "arm64 picam --version and devices under qemu-user"

  port=${PICAM_CHECK_PORT:-5599}
  size=${PICAM_CHECK_SIZE:-640x360}
  # Encrypted, as by default: a key made by the installed picam, given to both sides
  # (the emulated arm64 sender seals every packet with its own ChaCha20-Poly1305).
  /usr/bin/picam keygen --out "$work/check.key" >/dev/null
  /usr/bin/picam recv --headless --bind 127.0.0.1 --port "$port" --duration 14 --key "$work/check.key" \
    --stats json > "$work/recv.json" 2> "$work/recv.log" &
  recv_pid=$!
  sleep 1
  qemu-aarch64 "$pi" send --source test --remote 127.0.0.1 --port "$port" --key "$work/check.key" \
    --width "${size%x*}" --height "${size#*x}" --fps 30 --duration 5 \
    --stats json > "$work/send.json" 2> "$work/send.log" || { cat "$work/send.log"; fail "arm64 send failed"; }
  wait "$recv_pid" || { cat "$work/recv.log"; fail "native recv failed"; }
  send_last=$(grep '"last":true' "$work/send.json" | tail -n1)
  recv_last=$(grep '"last":true' "$work/recv.json" | tail -n1)
  [[ -n "$send_last" && -n "$recv_last" ]] || { cat "$work/send.log" "$work/recv.log"; fail "no final stats"; }
  echo "sender (arm64, emulated): $send_last"
  echo "receiver (amd64, installed): $recv_last"
  sent=$(jq .frames_sent <<<"$send_last")
  decoded=$(jq .frames_decoded <<<"$recv_last")
  shown=$(jq .frames_shown <<<"$recv_last")
  cpu=$(jq '.cpu_ms_per_frame // "n/a"' <<<"$send_last")
  ((decoded >= 30 && shown >= 30)) || fail "too few pictures: sent $sent, decoded $decoded, shown $shown"
  ok "arm64 sender under qemu -> installed amd64 receiver: sent $sent, decoded $decoded, shown $shown at $size; emulated sender CPU ${cpu} ms/frame"
fi

# 5: conffile and purge rules, on the amd64 package.
echo "# edited by check-deb" | $sudo tee -a /etc/picam/picam.toml >/dev/null
DEBIAN_FRONTEND=noninteractive $sudo apt-get remove -y -qq picam >/dev/null
grep -q "edited by check-deb" /etc/picam/picam.toml || fail "remove lost the edited conffile"
id picam >/dev/null || fail "remove deleted the user (only purge should)"
ok "remove: edited conffile and user kept"
DEBIAN_FRONTEND=noninteractive $sudo apt-get purge -y -qq picam >/dev/null
id picam >/dev/null 2>&1 && fail "purge kept the picam user"
[[ -e /var/lib/picam ]] && fail "purge kept /var/lib/picam"
[[ -e /etc/picam/picam.toml ]] && fail "purge kept the conffile"
ok "purge: user, /var/lib/picam and (by dpkg) the conffile removed"
echo "check-deb: all checks passed"
