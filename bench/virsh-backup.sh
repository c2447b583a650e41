#!/usr/bin/env bash
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# The hand-written peer of the live_backup role that issue 7 compares against (bench only;
# the collection itself never calls virsh).
#
#   virsh-backup.sh backup DEST DOM=IMAGE...   snapshot, cp of the frozen image, active commit +
#                                               pivot, rm of the overlay; one VM after the other;
#                                               one `sync` at the end (BENCH_SYNC=0: none)
#   virsh-backup.sh commit DOM OVERLAY          only the active commit + pivot, then rm OVERLAY
#
# IMAGE is the disk's image (the vda source); the overlay is IMAGE.bk-overlay.qcow2.
set -euo pipefail
URI=${VIRSH_URI:-qemu:///system}

v() { virsh -q -c "$URI" "$@" >/dev/null; }

backup_one() {
    local dest=$1 dom=${2%%=*} image=${2#*=}
    local overlay=$image.bk-overlay.qcow2
    v snapshot-create-as "$dom" bk --disk-only --atomic --no-metadata --diskspec "vda,file=$overlay"
    cp --sparse=always "$image" "$dest/$dom.vda.qcow2"
    v blockcommit "$dom" vda --active --pivot --wait
    rm -f "$overlay"
}

case ${1:-} in
backup)
    dest=$2
    shift 2
    mkdir -p "$dest"
    for pair in "$@"; do
        backup_one "$dest" "$pair"
    done
    if [ "${BENCH_SYNC:-1}" = 1 ]; then sync; fi
    ;;
commit)
    v blockcommit "$2" vda --active --pivot --wait
    rm -f "$3"
    ;;
*)
    echo "usage: $0 backup DEST DOM=IMAGE... | commit DOM OVERLAY" >&2
    exit 2
    ;;
esac
