#!/usr/bin/env bash
# Builds the Debian package target/debian/picam_<version>_<arch>.deb on a Debian 12 PC,
# installing what is missing (apt, as root or with sudo; cargo-deb with cargo).
#
# Usage: scripts/package-deb.sh [amd64|arm64|armhf]      (default: amd64)
#
#   amd64  native build with the cargo on PATH (rustup's, or Debian's rustc-web/cargo-web
#          when there is none).
#   arm64  cross-build for 64-bit Raspberry Pi OS / Debian arm64 (Pi 3, 4, 5, Zero 2)
#          with Debian's own toolchain: rustc-web (rustc 1.96 at /usr/bin/rustc, which has
#          the aarch64 std from libstd-rust-web-dev:arm64; rustup cannot add targets
#          offline), gcc-aarch64-linux-gnu, and the arm64 FFmpeg/SDL2 -dev packages
#          installed through multiarch beside the amd64 ones. The pkg-config/bindgen/linker
#          settings for the target are in .cargo/config.toml, keyed to the target.
#   armhf  the same for 32-bit Pi OS (experimental, see README).
#
# Depends are computed from the binary by dpkg-shlibdeps (cargo-deb's `$auto`), against
# the arm64 libraries' shlibs for arm64, so the FFmpeg 5.1 / SDL2 sonames are those of
# Debian 12 and Raspberry Pi OS bookworm. The man page is generated from `--help` with
# help2man (the arm64 binary runs under qemu-user for it).
#
# Environment: CARGO_TARGET_DIR is honoured; PICAM_SKIP_APT=1 skips the apt step.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
arch=${1:-amd64}

case "$arch" in
  amd64) triple=x86_64-unknown-linux-gnu; gnu=x86_64-linux-gnu; cross=0 ;;
  arm64) triple=aarch64-unknown-linux-gnu; gnu=aarch64-linux-gnu; cross=1; qemu=qemu-aarch64 ;;
  armhf) triple=armv7-unknown-linux-gnueabihf; gnu=arm-linux-gnueabihf; cross=1; qemu=qemu-arm ;;
  *) echo "usage: $0 [amd64|arm64|armhf]" >&2; exit 2 ;;
esac
host_arch=$(dpkg --print-architecture)
if [[ "$arch" == "$host_arch" ]]; then cross=0; fi

sudo=""
[[ $(id -u) -ne 0 ]] && sudo="sudo"
# shellcheck source=scripts/apt.sh
source scripts/apt.sh

# The -dev packages the workspace links (the same list as scripts/install-deps.sh).
dev_pkgs=(libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libavdevice-dev
          libavfilter-dev libswresample-dev libsdl2-dev libsdl2-ttf-dev)

if [[ "${PICAM_SKIP_APT:-0}" != 1 ]]; then
  # Native build tools and libraries (also bindgen's libclang, which runs on the host).
  scripts/install-deps.sh
  apt_install dpkg-dev help2man
  if ! command -v cargo >/dev/null; then
    # No rustup: Debian's own Rust 1.96 (the workspace needs >= its rust-version).
    apt_install rustc-web cargo-web
  fi
  if ((cross)); then
    if ! dpkg --print-foreign-architectures | grep -qx "$arch"; then
      echo "package-deb: dpkg --add-architecture $arch"
      $sudo dpkg --add-architecture "$arch"
      $sudo apt-get update -qq
    fi
    # The arm64 -dev packages co-install with the amd64 ones (Multi-Arch: same); they
    # pull pkgconf:$arch, which adds only the $gnu-pkg-config wrapper and leaves the
    # host's pkg-config alone.
    cross_pkgs=(rustc-web "libstd-rust-web-dev:$arch" "gcc-$gnu" "libc6-dev-$arch-cross" qemu-user)
    for p in "${dev_pkgs[@]}"; do cross_pkgs+=("$p:$arch"); done
    apt_install "${cross_pkgs[@]}"
  fi
fi

if ! command -v cargo-deb >/dev/null; then
  echo "package-deb: cargo install cargo-deb --locked"
  cargo install cargo-deb --locked
fi

target_dir=$(cargo metadata --format-version 1 --no-deps \
  | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
started=$(date +%s)
if ((cross)); then
  # Debian's rustc has the target's std; rustup's (first on PATH) does not.
  export RUSTC=/usr/bin/rustc
  cargo build --release --locked -p bin --target "$triple"
  bin="$target_dir/$triple/release/picam"
  target_args=(--target "$triple")
else
  cargo build --release --locked -p bin
  bin="$target_dir/release/picam"
  target_args=()
fi
echo "package-deb: cargo build took $(( $(date +%s) - started )) s"

# Man page from --help (the subcommands' help as sections). A wrapper runs a foreign
# binary under qemu-user with the multiarch runtime libraries.
man_dir="$root/packaging/man"   # generated, git-ignored
mkdir -p "$man_dir"
runner="$man_dir/picam"
if ((cross)); then
  printf '#!/bin/sh\nexec %s %q "$@"\n' "$qemu" "$bin" > "$runner"
else
  printf '#!/bin/sh\nexec %q "$@"\n' "$bin" > "$runner"
fi
chmod +x "$runner"
{
  for sub in send recv devices demo; do
    echo "[${sub^^}]"
    echo ".nf"
    "$runner" "$sub" --help | sed -e 's/\\/\\e/g' -e "s/^\([.']\)/\\\\\&\1/"
    echo ".fi"
  done
  cat <<'EOF'
[FILES]
.TP
.I /etc/picam/picam.toml
Configuration (a conffile); every key is also a flag.
.TP
.I /usr/lib/systemd/system/picam-send.service, picam-recv.service
The sender at boot and a kiosk viewer; not enabled by default:
.B systemctl enable --now picam-send.service
[SEE ALSO]
.I /usr/share/doc/picam/README.md
EOF
} > "$man_dir/include.h2m"
help2man --no-info --section 1 --source "picam" \
  --name "ultra-low-latency camera streaming: send, recv" \
  --include "$man_dir/include.h2m" "$runner" > "$man_dir/picam.1"
gzip -9n -f "$man_dir/picam.1"

# --no-build: the binary above was built with the cross environment; cargo-deb strips it
# (with $gnu-strip/objcopy) and runs dpkg-shlibdeps on it for the Depends.
deb=$(cargo deb -p bin --no-build --strip "${target_args[@]}" --output "$target_dir/debian/" | tail -n1)
[[ -f "$deb" ]] || { echo "package-deb: cargo deb made no package" >&2; exit 1; }
echo "package-deb: $deb ($(du -k "$deb" | cut -f1) KiB) in $(( $(date +%s) - started )) s"
