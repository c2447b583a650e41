#!/usr/bin/env bash
# Prepare a Debian 12 host (as root, no systemd) to build and test virtops.libvirt
# against a real local libvirtd/QEMU. Idempotent and quick when everything is in place:
# installs missing Debian packages, creates the kvm / libvirt-qemu accounts, starts
# virtlogd and libvirtd by hand and waits until qemu:///system answers.
set -euo pipefail

PACKAGES=(
  libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients
  qemu-system-x86 qemu-utils
  libvirt-dev pkg-config gcc python3-venv python3-dev
  rsync zstd git make
  shellcheck   # without it ansible-test silently skips its shellcheck sanity test
  # restore tests: UEFI firmware (NVRAM) and swtpm (vTPM) state in backups, and the real
  # Linux guest (tests/integration/targets/setup_linux_guest/files/build-guest.sh)
  ovmf swtpm swtpm-tools mmdebstrap linux-image-amd64 initramfs-tools e2fsprogs
)
URI=qemu:///system
WAIT_SECONDS=${SETUP_HOST_WAIT:-30}

log() { printf 'setup-host: %s\n' "$*"; }
die() { printf 'setup-host: ERROR: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root"

# --- Debian packages ---------------------------------------------------------
missing=()
for p in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
  [ "${status:0:2}" = "ii" ] || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  log "packages: all present"
fi

# --- accounts ------------------------------------------------------------------
if ! getent group kvm >/dev/null; then
  log "creating group kvm"
  groupadd --system kvm
fi
if ! getent group libvirt-qemu >/dev/null; then
  log "creating group libvirt-qemu"
  groupadd --system libvirt-qemu
fi
if ! id libvirt-qemu >/dev/null 2>&1; then
  log "creating user libvirt-qemu"
  useradd --system --gid libvirt-qemu --groups kvm --no-create-home \
    --home-dir /var/lib/libvirt --shell /usr/sbin/nologin libvirt-qemu
elif ! id -nG libvirt-qemu | tr ' ' '\n' | grep -qx kvm; then
  log "adding libvirt-qemu to group kvm"
  usermod -a -G kvm libvirt-qemu
fi

# --- /dev/kvm --------------------------------------------------------------------
if [ -e /dev/kvm ]; then
  if [ "$(stat -c '%G %a' /dev/kvm)" != "kvm 660" ]; then
    log "fixing /dev/kvm ownership (root:kvm 0660)"
    chgrp kvm /dev/kvm || log "warning: chgrp /dev/kvm failed"
    chmod 660 /dev/kvm || log "warning: chmod /dev/kvm failed"
  fi
else
  log "no /dev/kvm: test domains must use type='qemu' (TCG)"
fi

mkdir -p /var/log/libvirt /var/run/libvirt

# swtpm's local CA: libvirt runs swtpm_setup as `tss` once that user exists when libvirtd starts,
# and as root before. Files a root run created (its lock file, serial, keys) then make every
# vTPM start fail with "Need read/write rights on .../.lock.swtpm-localca for user tss".
if getent passwd tss >/dev/null && [ -d /var/lib/swtpm-localca ]; then
  if find /var/lib/swtpm-localca -mindepth 1 ! -user tss | grep -q .; then
    log "giving the swtpm local CA back to tss"
    chown -R tss /var/lib/swtpm-localca
  fi
fi

# --- daemons ---------------------------------------------------------------------
# running NAME: true when the pid file names a live process of that name, or pgrep finds one.
running() {
  local name=$1 pidfile=/run/$1.pid pid
  if [ -r "$pidfile" ]; then
    pid=$(cat "$pidfile" 2>/dev/null || true)
    if [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm")" = "$name" ]; then
      return 0
    fi
  fi
  pgrep -x "$name" >/dev/null 2>&1
}

for d in virtlogd libvirtd; do
  if running "$d"; then
    log "$d: already running"
  else
    log "starting $d"
    "$d" -d
  fi
done

# --- wait for the daemon -----------------------------------------------------------
deadline=$((SECONDS + WAIT_SECONDS))
until virsh -c "$URI" version >/dev/null 2>&1; do
  if [ "$SECONDS" -ge "$deadline" ]; then
    virsh -c "$URI" version || true
    die "libvirtd did not answer on $URI within ${WAIT_SECONDS}s"
  fi
  sleep 0.5
done
log "libvirt ready: $(virsh -c "$URI" version 2>/dev/null | grep -m1 'Running hypervisor' | sed 's/^ *//')"
