#!/usr/bin/env bash
# Installs what the qemu + vivid V4L2 test needs, idempotently:
#  - qemu-system-x86 from bookworm, with qemu-utils from the same suite (the image's
#    preinstalled backported qemu-utils conflicts with bookworm's qemu-system-common;
#    taking both from one suite avoids apt removing it),
#  - busybox-static for the guest's initramfs, v4l-utils (v4l2-ctl) for diagnostics,
#  - Debian's kernel package, downloaded and unpacked into a cache directory, not
#    installed on the host (its vivid.ko is the virtual camera).
# Prints the unpacked kernel directory on the last line of stdout.
set -euo pipefail

CACHE=${PICAM_QEMU_CACHE:-/var/cache/picam-qemu}
export DEBIAN_FRONTEND=noninteractive

need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86 qemu-utils/bookworm)
[ -x /bin/busybox ] || need+=(busybox-static)
command -v v4l2-ctl >/dev/null || need+=(v4l-utils)
command -v cpio >/dev/null || need+=(cpio)
command -v xz >/dev/null || need+=(xz-utils)
command -v zstd >/dev/null || need+=(zstd)
command -v modprobe >/dev/null || need+=(kmod)
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -q >&2
    apt-get install -y -q --no-install-recommends --allow-downgrades "${need[@]}" >&2
fi

mkdir -p "$CACHE"
if ! ls "$CACHE"/kernel/boot/vmlinuz-* >/dev/null 2>&1; then
    [ -n "$(ls /var/lib/apt/lists/*Packages* 2>/dev/null)" ] || apt-get update -q >&2
    pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
    [ -n "$pkg" ] || { echo "setup: cannot find the kernel package behind linux-image-amd64" >&2; exit 1; }
    (cd "$CACHE" && rm -f linux-image-*.deb && apt-get download "$pkg" >&2)
    rm -rf "$CACHE/kernel.tmp"
    dpkg-deb -x "$CACHE"/linux-image-*.deb "$CACHE/kernel.tmp"
    rm -rf "$CACHE/kernel" && mv "$CACHE/kernel.tmp" "$CACHE/kernel"
    rm -f "$CACHE"/linux-image-*.deb
fi
echo "$CACHE/kernel"
