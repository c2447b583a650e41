# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Does a copy that starts later after ``drop_caches`` take longer on this machine? (issue 7)

Run it with the dev venv's Python, as root, after ``make collection``:
``.venv/bin/python bench/start_delay.py``. Not part of ``make bench``: it explains one of its
numbers. In the bench every contender starts right after ``drop_caches``, but the role's copy
begins only after Ansible's start-up (1-2 s); on a machine that is itself a VM and hands free
memory back to its host, page cache written later may cost more. Here the same 2 GiB image
(the bench's single VM: 2 GiB of its data, half random, half text, in an 8G qcow2) is copied, cold, by

- ``limit``: ``qemu-img convert -U -f qcow2 -O qcow2`` and ``sync``, as the bench's limit;
- ``role``: the collection's own copy code (``_image_copy``: its ``convert_argv``, the partial
  file from ``open_partial``, ``run_convert`` reading the progress, ``fsync``), as in a backup;

each started 0, 0.8 and 1.7 s after ``drop_caches``, in an order rotated by repetition, with
free page reporting held back as ``make bench`` does (``BENCH_PAGE_REPORTING`` as there).
Prints the medians; writes ``start-delay.json`` to BENCH_OUTPUT (bench/output).

Environment: DELAY_REPS (6), DELAYS (``0,0.8,1.7``), BENCH_COLLECTIONS, BENCH_WORKDIR,
BENCH_OUTPUT. Asserts nothing about timings; exits non-zero only when a copy fails.
"""

from __future__ import annotations

import importlib
import json
import os
import statistics
import subprocess
import sys
import time

import bench as B

REPS = int(os.environ.get('DELAY_REPS', '6'))
DELAYS = [float(d) for d in os.environ.get('DELAYS', '0,0.8,1.7').split(',')]
WORK = B.WORK / 'start-delay'
DATA_MIB = B.SINGLE['data_mib']  # 2048 (full mode)


def limit(src, dest):
    """The bench's own limit contender, on one image."""
    B.c_limit([B.VM(dest.stem, src)], dest.parent, None)


def copy_code():
    """The collection's ``_image_copy`` from the collection that ``make collection`` built."""
    if str(B.SOURCE_COLLECTIONS) not in sys.path:
        sys.path.insert(0, str(B.SOURCE_COLLECTIONS))
    return importlib.import_module('ansible_collections.virtops.libvirt.plugins.module_utils._image_copy')


def role(src, dest):
    code = copy_code()
    fd = code.open_partial(str(dest))
    try:
        rc, err = code.run_convert(code.convert_argv('qemu-img', str(src), 'qcow2', str(dest), 'qcow2',
                                                     force_share=False), pass_fds=(fd,))
        if rc != 0:
            raise SystemExit('qemu-img convert failed: %s' % err)
        os.fsync(fd)
    finally:
        os.close(fd)


def image():
    """The bench's single VM's disk: its data in an 8G qcow2, written as ``make bench`` does."""
    src = WORK / 'src.qcow2'
    if not src.exists():
        partial = WORK / 'src.qcow2.partial'
        subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', str(partial), B.SINGLE['disk']],
                       check=True, capture_output=True)
        B.write_data(partial, DATA_MIB)
        partial.rename(src)
    return src


def main():
    if os.geteuid() != 0:
        raise SystemExit('start_delay.py runs as root (drop_caches)')
    WORK.mkdir(parents=True, exist_ok=True)
    src = image()
    dest = WORK / 'copy.qcow2'
    variants = [(name, func, delay) for delay in DELAYS for name, func in (('limit', limit), ('role', role))]
    times = {}
    held = B.hold_free_memory()
    try:
        for rep in range(REPS):
            for name, func, delay in B.rotate(variants, rep):
                dest.unlink(missing_ok=True)
                B.drop_caches()
                time.sleep(delay)
                started = time.monotonic()
                func(src, dest)
                seconds = time.monotonic() - started
                times.setdefault('%s +%.1fs' % (name, delay), []).append(round(seconds, 2))
                B.log('%-6s started %.1fs after drop_caches: %.2fs' % (name, delay, seconds))
    finally:
        B.release_free_memory(held)
        dest.unlink(missing_ok=True)
    print('\n%-14s %8s  %s' % ('copy', 'median', 'all (s)'))
    for key, values in times.items():
        print('%-14s %8.2f  %s' % (key, statistics.median(values), ' '.join('%.2f' % v for v in values)))
    B.OUT.mkdir(parents=True, exist_ok=True)
    (B.OUT / 'start-delay.json').write_text(json.dumps(dict(
        reps=REPS, delays=DELAYS, data_mib=DATA_MIB, page_reporting_held=held and B.HOLD_FREE_MEMORY,
        git=B.git_state(), finished=time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()),
        times=times, medians={k: statistics.median(v) for k, v in times.items()}), indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
