# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The on-disk layout of backups: ``<dest>/<domain>/<UTC timestamp>/``.

A backup is built in ``<timestamp>.partial`` and only renamed once its
manifest, written last, is on disk: nothing incomplete ever looks complete.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time

from ansible_collections.virtops.libvirt.plugins.module_utils import _retention as retention

PARTIAL = '.partial'
MANIFEST = 'manifest.json'
TIMESTAMP = re.compile(r'^\d{8}T\d{6}Z$')


class StoreError(Exception):
    pass


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file(path, data, mode=0o600):
    """Write through ``<path>.partial``, fsync, rename, fsync the directory."""
    tmp = path + PARTIAL
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, mode)
    os.rename(tmp, path)
    fsync_dir(os.path.dirname(path))


def check_manifest(directory, manifest):
    """Every image the manifest names must be in the backup, with the recorded size."""
    for disk in manifest.get('disks') or []:
        name = disk.get('file')
        if not name or os.path.isabs(name) or '..' in name.split('/'):
            raise StoreError('manifest disk %s has no valid relative file name' % disk.get('target'))
        path = os.path.join(directory, name)
        if not os.path.isfile(path):
            raise StoreError('%s is missing: the backup is incomplete' % path)
        recorded = disk.get('size')
        actual = os.stat(path).st_blocks * 512
        if recorded is not None and int(recorded) != actual:
            raise StoreError('%s holds %d bytes, the manifest says %s' % (path, actual, recorded))


def complete_backups(domain_dir):
    """Complete backups (timestamp directories with a manifest), oldest first."""
    try:
        names = os.listdir(domain_dir)
    except OSError:
        return []
    return sorted(name for name in names if TIMESTAMP.match(name)
                  and os.path.isfile(os.path.join(domain_dir, name, MANIFEST)))


def to_prune(backups, keep):
    """The backups a retention removes: ``keep`` is a count of newest backups (0 keeps all)
    or a policy of _retention; the newest is never pruned."""
    return retention.to_prune(backups, keep if isinstance(keep, dict) else retention.policy(last=keep))


def finalize(partial_dir, manifest, keep, check_mode=False):
    """Write the manifest, rename the backup complete, prune; return a result dict."""
    if not partial_dir.endswith(PARTIAL):
        raise StoreError('%s does not end with %s' % (partial_dir, PARTIAL))
    final = partial_dir[:-len(PARTIAL)]
    domain_dir = os.path.dirname(final)
    if not TIMESTAMP.match(os.path.basename(final)):
        raise StoreError('%s is not named by a UTC timestamp (YYYYmmddTHHMMSSZ)' % final)
    changed = False
    if os.path.exists(final) and os.path.isdir(partial_dir):
        raise StoreError('both %s and %s exist: a backup with this timestamp is already '
                         'complete; this one stays partial' % (final, partial_dir))
    if not os.path.isfile(os.path.join(final, MANIFEST)):
        if not os.path.isdir(partial_dir):
            raise StoreError('%s does not exist' % partial_dir)
        check_manifest(partial_dir, manifest)
        changed = True
        if not check_mode:
            manifest = dict(manifest)
            manifest.setdefault('finished', time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()))
            text = json.dumps(manifest, indent=2, sort_keys=True) + '\n'
            write_file(os.path.join(partial_dir, MANIFEST), text.encode('utf-8'))
            os.rename(partial_dir, final)
            fsync_dir(domain_dir)
    backups = complete_backups(domain_dir)
    if check_mode and changed:
        backups = sorted(backups + [os.path.basename(final)])
    pruned = to_prune(backups, keep)
    if not check_mode:
        for name in pruned:
            shutil.rmtree(os.path.join(domain_dir, name))
    return dict(changed=changed or bool(pruned), path=final,
                pruned=[os.path.join(domain_dir, name) for name in pruned],
                kept=[os.path.join(domain_dir, name) for name in backups if name not in pruned])
