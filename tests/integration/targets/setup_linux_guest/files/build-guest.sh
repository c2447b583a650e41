#!/usr/bin/env bash
# Test-only: build (once) a small real Linux guest and print the directory holding it.
#
#   build-guest.sh [CACHE_DIR]     default /var/cache/virtops-test
#
# The guest is a minimal Debian bookworm (systemd, udev, dbus, qemu-guest-agent) on an ext4
# image made with `mkfs.ext4 -d` (nothing is mounted), booted directly with the host's kernel
# and a small initrd. The result is cached in CACHE_DIR/linux-guest-<hash of this script>/
# (rootfs.qcow2, vmlinuz, initrd.img), so only the first run pays for mmdebstrap (about 50 s);
# editing this script builds a new one. Needs root, mmdebstrap, e2fsprogs, qemu-utils,
# linux-image-amd64 and initramfs-tools (scripts/setup-host.sh installs them).
set -euo pipefail

CACHE_DIR=${1:-/var/cache/virtops-test}
PACKAGES=systemd-sysv,udev,dbus,qemu-guest-agent,e2fsprogs,util-linux,kmod
# virtio_console: without it the agent channel never appears; button: ACPI shutdown.
INITRD_MODULES=(virtio_pci virtio_blk ext4 virtio_console button evdev)
ROOTFS_SIZE=2G

log() { printf 'build-guest: %s\n' "$*" >&2; }

key=$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-12)
out=$CACHE_DIR/linux-guest-$key
if [ -f "$out/ready" ]; then
  echo "$out"
  exit 0
fi
mkdir -p "$CACHE_DIR"
chmod 0755 "$CACHE_DIR"
# One build at a time; a second caller waits and then finds the cache.
exec 9>"$CACHE_DIR/.build.lock"
flock 9
if [ -f "$out/ready" ]; then
  echo "$out"
  exit 0
fi

kernel=$(find /boot -maxdepth 1 -name 'vmlinuz-*-amd64' | sort -V | tail -n 1)
[ -n "$kernel" ] || { log "no /boot/vmlinuz-*-amd64: install linux-image-amd64"; exit 1; }
kver=${kernel#/boot/vmlinuz-}
# The mirror apt already uses on this host (deb822 or one-line sources).
mirror=$(sed -n 's/^URIs: *\([^ ]*debian\)$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n 1)
if [ -z "$mirror" ]; then
  mirror=$(awk '$1 == "deb" && $2 ~ /debian\/?$/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
fi
mirror=${mirror:-http://deb.debian.org/debian}

work=$(mktemp -d "$CACHE_DIR/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root

log "mmdebstrap bookworm from $mirror"
mmdebstrap --quiet --variant=minbase --include="$PACKAGES" bookworm "$root" "$mirror"

echo vt-guest > "$root/etc/hostname"
printf '/dev/vda / ext4 defaults 0 1\n' > "$root/etc/fstab"
# Empty root password and autologin on the serial console, for a human debugging a test.
sed -i 's/^root:[^:]*:/root::/' "$root/etc/shadow"
mkdir -p "$root/etc/systemd/system/serial-getty@ttyS0.service.d"
cat > "$root/etc/systemd/system/serial-getty@ttyS0.service.d/autologin.conf" <<'UNIT'
[Service]
ExecStart=
ExecStart=-/sbin/agetty --autologin root --keep-baud 115200,57600,38400,9600 %I $TERM
UNIT
# Each copy of the never-booted image makes its own machine-id at first boot.
: > "$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"
rm -rf "$root/var/cache/apt/archives/"*.deb "$root/var/lib/apt/lists/"*

log "ext4 image (mkfs.ext4 -d, nothing mounted)"
truncate -s "$ROOTFS_SIZE" "$work/rootfs.raw"
mkfs.ext4 -q -F -L vt-root -d "$root" "$work/rootfs.raw"
qemu-img convert -O qcow2 "$work/rootfs.raw" "$work/rootfs.qcow2"
rm -f "$work/rootfs.raw"

log "initrd for $kver with ${INITRD_MODULES[*]}"
conf=$work/initramfs
mkdir -p "$conf/conf.d" "$conf/scripts" "$conf/hooks"
cat > "$conf/initramfs.conf" <<CONF
MODULES=list
BUSYBOX=auto
COMPRESS=gzip
CONF
printf '%s\n' "${INITRD_MODULES[@]}" > "$conf/modules"
mkinitramfs -d "$conf" -o "$work/initrd.img" "$kver"

install -m 0644 "$kernel" "$work/vmlinuz"
chmod 0644 "$work/initrd.img" "$work/rootfs.qcow2"
mkdir -p "$out.tmp"
mv "$work/vmlinuz" "$work/initrd.img" "$work/rootfs.qcow2" "$out.tmp/"
chmod 0755 "$out.tmp"
touch "$out.tmp/ready"
rm -rf "$out"
mv "$out.tmp" "$out"
log "built $out"
echo "$out"
