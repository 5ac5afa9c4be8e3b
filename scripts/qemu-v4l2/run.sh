#!/usr/bin/env bash
# The real-kernel V4L2 test: boots Debian's kernel under qemu (TCG, no KVM needed) with a
# busybox initramfs, loads vivid (a virtual camera: /dev/video0), shares this machine's
# root read-only over 9p so the guest runs the host's picam binary with the host's
# libraries, and inside the guest:
#   1. `picam devices` must list vivid as a raw camera;
#   2. asking an impossible size must fail naming the device and what it supports;
#   3. `picam send --source v4l2:/dev/video0` (real capture code, mmap streaming, YUYV
#      -> I420 -> libx264) streams on the guest's loopback into `picam recv`, which must
#      decode at least MIN_FRAMES pictures;
#   4. vivid is "unplugged" mid-stream (its disconnect control, then module reload) and
#      the sender must reopen it and go on (frames after the return are counted);
#   5. before that, picam's memory-to-memory encoder plumbing (capture/examples/
#      m2m_check/: M2mEncoder over V4l2EncoderIo, as for a Pi 4's H.264 encoder)
#      runs against vicodec, the kernel's virtual FWHT encoder (built out of tree by
#      setup.sh), once with the single-planar API (multiplanar=0) and once, after a
#      module reload, with the multi-planar one: M2M_FRAMES frames, each buffer's FWHT
#      header, size, timestamp and sequence checked, drain (STOP -> LAST), restart
#      (STREAMOFF/ON), reopen; 10 frames through vicodec's decoder and back (luma PSNR
#      >= 30 dB, checked by m2m_check); then vivid's capture buffers go into vicodec as DMABUF
#      (no copy) and must code byte-for-byte as the same frames copied.
# Results land in a host directory shared read-write; this script checks them.
#
# Usage: scripts/qemu-v4l2/run.sh            (builds picam in debug unless PICAM is set)
# Env:   PICAM=path  M2M_CHECK=path (the m2m_check example; built unless set)
#        M2M_FRAMES=n (default 120)  TIMEOUT=secs (default 240)  KEEP=1 (keep the work dir)
# Takes about 30 s here (2 cores, TCG; kernel download once, ~70 MB); see docs/CAMERAS.md.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TIMEOUT=${TIMEOUT:-240}
MIN_FRAMES=${MIN_FRAMES:-150}
M2M_FRAMES=${M2M_FRAMES:-120}
DMABUF_FRAMES=${DMABUF_FRAMES:-20}

KDIR=$(bash "$HERE/setup.sh" | tail -n 1)
KV=$(ls "$KDIR/lib/modules")
[ -f "$KDIR/lib/modules/$KV/modules.dep" ] || depmod -b "$KDIR" "$KV"

if [ -z "${PICAM:-}" ]; then
    (cd "$ROOT" && cargo build -q -p bin)
    PICAM=${CARGO_TARGET_DIR:-$ROOT/target}/debug/picam
fi
PICAM=$(readlink -f "$PICAM")
[ -x "$PICAM" ] || { echo "no picam binary at $PICAM" >&2; exit 1; }
if [ -z "${M2M_CHECK:-}" ]; then
    (cd "$ROOT" && cargo build -q -p capture --example m2m_check)
    M2M_CHECK=${CARGO_TARGET_DIR:-$ROOT/target}/debug/examples/m2m_check
fi
M2M_CHECK=$(readlink -f "$M2M_CHECK")
[ -x "$M2M_CHECK" ] || { echo "no m2m_check binary at $M2M_CHECK" >&2; exit 1; }

WORK=$(mktemp -d /tmp/picam-qemu.XXXXXX)
OUT=$WORK/out
mkdir -p "$OUT" "$WORK/initrd"/{bin,dev,proc,sys,host,lib/modules,tmp}
QEMU_PID=
cleanup() {
    [ -n "$QEMU_PID" ] && kill "$QEMU_PID" 2>/dev/null || true
    [ -n "${KEEP:-}" ] && echo "kept $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT

# The initramfs: busybox and the modules, in dependency order.
cp /bin/busybox "$WORK/initrd/bin/"
for a in sh mount mkdir insmod rmmod sleep cat echo ls poweroff ip chroot umount grep; do
    ln -sf busybox "$WORK/initrd/bin/$a"
done
: > "$WORK/initrd/modules.list"
for m in virtio_pci 9pnet_virtio 9p vivid vicodec; do
    modprobe -d "$KDIR" -S "$KV" --show-depends "$m" | awk '{print $2}'
done | awk '!seen[$0]++' | while read -r ko; do
    cp "$ko" "$WORK/initrd/lib/modules/"
    # vicodec is loaded (twice, with each API) by the guest script, from $OUT.
    case "$ko" in */vicodec.ko) continue ;; esac
    echo "/lib/modules/$(basename "$ko")" >> "$WORK/initrd/modules.list"
done

cat > "$WORK/initrd/init" <<'INIT'
#!/bin/sh
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for ko in $(cat /modules.list); do
    case "$ko" in */vivid.ko) insmod "$ko" n_devs=1 node_types=0x1 ;; *) insmod "$ko" ;; esac
done
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose hostroot /host
OUT=$(cat /proc/cmdline | sed 's/.*picam_out=\([^ ]*\).*/\1/')
mount -t proc proc /host/proc; mount -t sysfs sys /host/sys; mount -t devtmpfs dev /host/dev
mount -t tmpfs tmp /host/tmp
mkdir -p "/host$OUT"
mount -t 9p -o trans=virtio,version=9p2000.L out "/host$OUT"
ip link set lo up
echo "guest: booted, $(ls /dev/video* | tr '\n' ' ')" > "/host$OUT/guest.log"
chroot /host /bin/sh "$OUT/guest.sh" >> "/host$OUT/guest.log" 2>&1
echo "guest: done" >> "/host$OUT/guest.log"
sync
poweroff -f
INIT
chmod +x "$WORK/initrd/init"

# The binary travels in the shared output directory: the guest mounts a fresh tmpfs on
# /tmp, which would hide a binary built in a checkout under /tmp (as CI's may be).
cp "$PICAM" "$OUT/picam"
cp "$M2M_CHECK" "$OUT/m2m_check"
cp "$KDIR/lib/modules/$KV/extra/vicodec.ko" "$OUT/vicodec.ko"
# One key for both sides (the default, encrypted path), made here and shared with the
# guest through the same directory (9p passes its mode 0600 through).
"$PICAM" keygen --out "$OUT/k" 2>/dev/null

# What runs inside the guest, in the host's root (chroot).
cat > "$OUT/guest.sh" <<GUEST
#!/bin/sh
OUT=$OUT
PICAM=$OUT/picam
export PICAM_LOG=info HOME=/tmp PICAM_CONFIG_DIR=/tmp/picam PATH=/usr/bin:/bin:/usr/sbin:/sbin
cd /tmp
\$PICAM devices > \$OUT/devices.txt 2>&1; echo "devices exit \$?" >> \$OUT/devices.txt
# The m2m encoder plumbing against vicodec, single-planar then multi-planar.
for mp in 0 1; do
    t0=\$(date +%s)
    insmod \$OUT/vicodec.ko multiplanar=\$mp > \$OUT/m2m-\$mp.txt 2>&1
    \$PICAM devices > \$OUT/m2m-devices-\$mp.txt 2>&1
    v4l2-ctl -d /dev/video1 --all > \$OUT/m2m-ctl-\$mp.txt 2>&1
    \$OUT/m2m_check --frames $M2M_FRAMES --dmabuf-from /dev/video0 --dmabuf-frames $DMABUF_FRAMES >> \$OUT/m2m-\$mp.txt 2>&1; echo "exit \$?" >> \$OUT/m2m-\$mp.txt
    echo "seconds \$(( \$(date +%s) - t0 ))" >> \$OUT/m2m-\$mp.txt
    rmmod vicodec >> \$OUT/m2m-\$mp.txt 2>&1
done
\$PICAM send --key \$OUT/k --source v4l2:/dev/video0 --width 1000 --height 1000 --duration 2 > \$OUT/refuse.txt 2>&1
echo "refuse exit \$?" >> \$OUT/refuse.txt
# Stream for 14 s; unplug at 6 s, plug back at 8 s.
\$PICAM recv --key \$OUT/k --bind 127.0.0.1 --port 5900 --headless --frames-out \$OUT/vivid.y4m --duration 16 > \$OUT/recv.log 2>&1 &
sleep 1
\$PICAM send --key \$OUT/k --remote 127.0.0.1 --port 5900 --source v4l2:/dev/video0 --width 640 --height 360 --fps 30 \
    --encoder x264 --duration 14 > \$OUT/send.log 2>&1 &
SEND=\$!
sleep 6
v4l2-ctl -d /dev/video0 --list-ctrls > \$OUT/ctrls.txt 2>&1
v4l2-ctl -d /dev/video0 -c disconnect=1 >> \$OUT/ctrls.txt 2>&1 && echo "unplugged at \$(date +%s)" > \$OUT/unplug.txt
sleep 2
i=0; while ! rmmod vivid 2>/dev/null && [ \$i -lt 20 ]; do sleep 0.5; i=\$((i+1)); done
insmod /lib/modules/*/kernel/drivers/media/test-drivers/vivid/vivid.ko n_devs=1 node_types=0x1 2>>\$OUT/unplug.txt \
    && echo "plugged back at \$(date +%s)" >> \$OUT/unplug.txt
wait \$SEND; echo "send exit \$?" >> \$OUT/send.log
wait
GUEST

(cd "$WORK/initrd" && find . | cpio -o -H newc --quiet) > "$WORK/initrd.cpio"

echo "booting $KV under qemu (TCG) ..."
start=$(date +%s)
timeout -k 5 "$TIMEOUT" qemu-system-x86_64 -accel tcg -cpu max -m 1024 -smp 2 -nographic -no-reboot \
    -kernel "$KDIR/boot/vmlinuz-$KV" -initrd "$WORK/initrd.cpio" \
    -append "console=ttyS0 quiet panic=-1 picam_out=$OUT" \
    -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
    -virtfs local,path="$OUT",mount_tag=out,security_model=none \
    > "$WORK/console.log" 2>&1 &
QEMU_PID=$!
wait "$QEMU_PID" || { echo "qemu failed or timed out after $TIMEOUT s"; tail -n 30 "$WORK/console.log"; }
QEMU_PID=
echo "guest ran $(( $(date +%s) - start )) s"

# Checks.
pass=0 fail=0
check() { if eval "$2"; then echo "ok   $1"; pass=$((pass+1)); else echo "FAIL $1"; fail=$((fail+1)); fi; }
show() { [ -f "$1" ] && sed 's/\x1b\[[0-9;]*m//g' "$1" | tail -n "${2:-15}" | sed 's/^/    /'; }
echo "--- guest.log"; show "$OUT/guest.log"
echo "--- devices.txt"; show "$OUT/devices.txt" 40
check "picam devices lists vivid as a raw camera" "grep -q '/dev/video0: .*vivid.*camera, raw' '$OUT/devices.txt'"
check "picam devices gives the --source for it" "grep -q 'use: --source v4l2:/dev/video0' '$OUT/devices.txt'"
for mp in 0 1; do
    f="$OUT/m2m-$mp.txt"; api=$([ $mp = 1 ] && echo mplane || echo single)
    echo "--- m2m-$mp.txt (vicodec multiplanar=$mp)"; show "$f" 20
    check "vicodec ($api): m2m_check passed" "grep -q '^result=pass' '$f' && grep -q '^exit 0' '$f'"
    check "vicodec ($api): the encoder uses the $api API" "grep -q '^device .*driver=vicodec api=$api ' '$f'"
    check "vicodec ($api): $M2M_FRAMES frames, then $((M2M_FRAMES / 2)) after restart and after reopen" \
        "grep -q '^run1 frames=$M2M_FRAMES ' '$f' && grep -q '^run2_after_restart frames=$((M2M_FRAMES / 2)) ' '$f' \
         && grep -q '^run3_after_reopen frames=$((M2M_FRAMES / 2)) ' '$f'"
    check "vicodec ($api): intra frames exactly where the device's GOP puts them (checked per run)" \
        "grep -q '^gop size=[0-9]' '$f' && grep -q '^result=pass' '$f'"
    check "vicodec ($api): every drain ended on a LAST buffer with the EOS event" \
        "[ \$(grep -c '^drain[123] .*last_flag=1 eos_event=1' '$f') -eq 3 ]"
    check "vicodec ($api): frames decoded back by vicodec's decoder (after SOURCE_CHANGE) at >= 30 dB" \
        "grep -q '^roundtrip decoder=/dev/video[0-9]* frames=10 source_change=1 psnr_min=' '$f'"
    check "vicodec ($api): $DMABUF_FRAMES vivid buffers encoded from DMABUF, identical to copies" \
        "grep -q '^dmabuf camera=/dev/video0 driver=vivid frames=$DMABUF_FRAMES identical_to_copy=$DMABUF_FRAMES ' '$f'"
    check "vicodec ($api): GOP size and FWHT QPs set, H.264 controls named absent" \
        "grep -q '^controls set=.*video_gop_size.*fwht_i_frame_qp' '$f' && grep -q '^controls .*missing=.*h264_profile' '$f'"
done
check "picam devices lists vicodec's nodes as not for picam (FWHT is not H.264)" \
    "grep -q '^/dev/video1: vicodec .* - not a camera picam uses' '$OUT/m2m-devices-0.txt'"
echo "--- refuse.txt"; show "$OUT/refuse.txt" 3
check "an impossible size is refused naming the device and its sizes" \
    "grep -q '/dev/video0 cannot capture 1000x1000 at 30 fps; it supports: .*YUYV: .*640x480' '$OUT/refuse.txt'"
echo "--- send.log"; show "$OUT/send.log" 25
echo "--- recv.log"; show "$OUT/recv.log" 6
frames=$(grep -a -o FRAME "$OUT/vivid.y4m" 2>/dev/null | wc -l || true)
check "recv decoded >= $MIN_FRAMES pictures from vivid (got ${frames:-0})" "[ '${frames:-0}' -ge $MIN_FRAMES ]"
check "the decoded pictures are 640x360" "head -c 64 '$OUT/vivid.y4m' | grep -aq 'W640 H360'"
check "the sender reported the unplug and reopened the camera" \
    "grep -q 'waiting for it to come back' '$OUT/send.log' && grep -q 'back (reopen 1)' '$OUT/send.log'"
fps=$(sed 's/\x1b\[[0-9;]*m//g' "$OUT/send.log" | awk '/^send .*fps/ && $2+0 >= 2 && $2+0 <= 5 {print $4}' | head -n 3 | tr '\n' ' ')
echo "capture fps under qemu (seconds 2-5): ${fps:-n/a}"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
