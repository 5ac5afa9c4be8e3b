#!/usr/bin/env bash
# Installs what the qemu + vivid V4L2 test needs, idempotently:
#  - qemu-system-x86 from bookworm, with qemu-utils from the same suite (the image's
#    preinstalled backported qemu-utils conflicts with bookworm's qemu-system-common;
#    taking both from one suite avoids apt removing it),
#  - busybox-static for the guest's initramfs, v4l-utils (v4l2-ctl) for diagnostics,
#  - Debian's kernel package, downloaded and unpacked into a cache directory, not
#    installed on the host (its vivid.ko is the virtual camera);
#  - the memory-to-memory modules Debian's kernel does not build: v4l2-mem2mem and
#    vicodec (a virtual stateful FWHT encoder/decoder), compiled out of tree from
#    linux-source-6.1 (only their five source files are extracted) against the headers
#    of exactly the cached kernel, into the kernel's lib/modules/<version>/extra.
#    Compiling takes seconds; the downloads (headers ~10 MB installed, source ~140 MB,
#    deleted after extraction) happen once per machine.
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

KV=$(ls "$CACHE/kernel/lib/modules")
EXTRA="$CACHE/kernel/lib/modules/$KV/extra"
if [ ! -f "$EXTRA/vicodec.ko" ] || [ ! -f "$EXTRA/v4l2-mem2mem.ko" ]; then
    t0=$(date +%s)
    HDR=/usr/src/linux-headers-$KV
    kneed=()
    [ -d "$HDR" ] || kneed+=("linux-headers-$KV")
    command -v make >/dev/null || kneed+=(make)
    command -v gcc >/dev/null || kneed+=(gcc)
    if [ ${#kneed[@]} -gt 0 ]; then
        [ -n "$(ls /var/lib/apt/lists/*Packages* 2>/dev/null)" ] || apt-get update -q >&2
        apt-get install -y -q --no-install-recommends "${kneed[@]}" >&2
    fi
    # The source of the same upload as the headers (and so as the kernel image).
    ver=$(dpkg-query -W -f '${Version}' "linux-headers-$KV")
    series=${KV%%.0-*}   # 6.1.0-57-amd64 -> 6.1
    BUILD="$CACHE/m2m-build"
    rm -rf "$BUILD" && mkdir -p "$BUILD/src"
    (cd "$BUILD" && apt-get download "linux-source-$series=$ver" >&2)
    # Only the needed files: the tarball streams through xz once (~15 s).
    top=linux-source-$series
    dpkg-deb --fsys-tarfile "$BUILD"/linux-source-*.deb \
        | tar -xO "./usr/src/linux-source-$series.tar.xz" \
        | tar -xJ -C "$BUILD" "$top/drivers/media/v4l2-core/v4l2-mem2mem.c" \
            "$top/drivers/media/test-drivers/vicodec"
    rm -f "$BUILD"/linux-source-*.deb
    cp "$BUILD/$top/drivers/media/v4l2-core/v4l2-mem2mem.c" \
        "$BUILD/$top"/drivers/media/test-drivers/vicodec/*.[ch] "$BUILD/src/"
    cat > "$BUILD/src/Kbuild" <<'KBUILD'
obj-m := v4l2-mem2mem.o vicodec.o
vicodec-objs := codec-fwht.o codec-v4l2-fwht.o vicodec-core.o
KBUILD
    make -s -C "$HDR" M="$BUILD/src" -j"$(nproc)" modules >&2
    mkdir -p "$EXTRA"
    cp "$BUILD/src/v4l2-mem2mem.ko" "$BUILD/src/vicodec.ko" "$EXTRA/"
    rm -rf "$BUILD"
    depmod -b "$CACHE/kernel" "$KV"
    echo "setup: built v4l2-mem2mem.ko and vicodec.ko for $KV from linux-source $ver in $(( $(date +%s) - t0 )) s" >&2
fi
echo "$CACHE/kernel"
