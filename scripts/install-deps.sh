#!/usr/bin/env bash
# Installs the system packages picam needs to build, test and run, skipping those
# already present. Works on Debian 12, Ubuntu 22.04+ and Raspberry Pi OS (bookworm).
# Usage: scripts/install-deps.sh [--test]   (--test adds what only the test suite uses)
set -euo pipefail

# clang/libclang: bindgen, for ffmpeg-sys-next and for v4l2r (which also reads
# <linux/videodev2.h> from linux-libc-dev: Debian 12's 6.1 headers suit v4l2r 0.0.6).
packages=(
  pkg-config clang libclang-dev linux-libc-dev
  libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libavdevice-dev
  libavfilter-dev libswresample-dev
  libsdl2-dev libsdl2-ttf-dev fonts-dejavu-core
)
if [[ "${1:-}" == "--test" ]]; then
  # Peers and tools the tests use: the ffmpeg CLI, a virtual X server for the window
  # test, and iproute2 for the network-namespace tests.
  packages+=(ffmpeg xvfb x11-apps imagemagick iproute2 nftables curl)
  # GStreamer peers for the RTP/raw interop tests (bin/tests/interop.rs): x264enc (ugly),
  # rtph264pay/rtpstreampay (good), rawvideoparse (bad), avdec_h264 (libav).
  packages+=(gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
    gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav)
  # The browser viewer's tests (bin/tests/web_browser.rs): Chromium driven by
  # playwright-core from node (scripts/web, `npm ci` in scripts/test.sh).
  packages+=(chromium chromium-driver)
  # The fan-out test (bin/tests/fanout_janus.rs): Debian's Janus Gateway, run by
  # scripts/fanout-janus.sh on a generated configuration.
  packages+=(janus)
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    packages+=(nodejs npm)
  fi
fi

# shellcheck source=scripts/apt.sh
source "$(dirname "$0")/apt.sh"
apt_install "${packages[@]}"

if ! command -v cargo >/dev/null; then
  echo "cargo not found: install Rust from https://rustup.rs first" >&2
  exit 1
fi
