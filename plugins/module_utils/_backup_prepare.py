# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What a live backup does with one domain, and the directory it starts in.

``decide`` is pure: from the domain's facts it says whether the domain is
backed up, recovered first (it runs on overlays of ours) or skipped, and which
disks are left out and why. ``start_directory`` makes
``<dest>/<domain>/<timestamp>.partial`` with the definition and the state files,
after removing what earlier runs left incomplete.

This is a private module_utils: its API may change without notice.
"""

from __future__ import annotations

import os
import shutil
import stat
import time

from ansible_collections.virtops.libvirt.plugins.module_utils._backup_plan import excluded_targets
from ansible_collections.virtops.libvirt.plugins.module_utils._backup_record import size_text
from ansible_collections.virtops.libvirt.plugins.module_utils._backup_store import (
    PARTIAL,
    complete_backups,
    to_prune,
    write_file,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._disk_info import domain_facts
from ansible_collections.virtops.libvirt.plugins.module_utils._libvirt import LibvirtClient
from ansible_collections.virtops.libvirt.plugins.module_utils._lock import holder_state, read_record
from ansible_collections.virtops.libvirt.plugins.module_utils._state_files import save

BACKUP = 'backup'
RECOVER = 'recover'
SKIP = 'skip'
EXCLUDED = 'excluded'


class PrepareError(Exception):
    """The domain cannot be backed up as configured; nothing was touched."""


def decide(domain, disks, exclude, offline):
    """The plan for one domain from ``domain_facts``: a dict with ``action`` and the disks.

    ``exclude`` is the role's list (``vdb`` or ``web01:vdb``); ``offline`` is ``copy`` or
    ``skip``. ``disks`` are the ones to copy from their source (shut-off domain); a running
    domain's disks are chosen by its snapshot, which gets ``exclude``.
    """
    targets = [disk['target'] for disk in disks]
    excluded = [target for target in excluded_targets(exclude, domain['name']) if target in targets]
    skipped = []
    eligible = []
    for disk in disks:
        if disk['target'] in excluded:
            skipped.append(dict(target=disk['target'], reason=EXCLUDED))
        elif disk['skip_reason']:
            skipped.append(dict(target=disk['target'], reason=disk['skip_reason']))
        else:
            eligible.append(disk)
    plan = dict(exclude=excluded, skipped=skipped, overlays=list(domain['backup_overlays']),
                disks=[], consistency=None)
    if plan['overlays']:
        plan['action'] = RECOVER
    elif not domain['running'] and offline == 'skip':
        plan['action'] = SKIP
        plan['summary'] = 'shut off (live_backup_offline is skip)'
    elif not eligible:
        raise PrepareError(
            'no disk of %s can be backed up: %s; nothing was touched' % (
                domain['name'], ', '.join('%s (%s)' % (item['target'], item['reason'])
                                          for item in skipped) or 'it has no disk'))
    else:
        plan['action'] = BACKUP
        if not domain['running']:
            plan['consistency'] = 'offline'
            plan['disks'] = [dict(target=disk['target'], source=disk['source']) for disk in eligible]
    return plan


def stale_partials(domain_dir):
    """Incomplete backups of earlier runs in ``<dest>/<domain>``."""
    try:
        names = sorted(os.listdir(domain_dir))
    except FileNotFoundError:
        return []
    return [os.path.join(domain_dir, name) for name in names
            if name.endswith(PARTIAL) and os.path.isdir(os.path.join(domain_dir, name))
            and not os.path.islink(os.path.join(domain_dir, name))]


def remove_partials(domain_dir, check_mode=False):
    """Delete the incomplete backups of earlier runs (under the lock: none is a live run's)."""
    removed = stale_partials(domain_dir)
    if not check_mode:
        for stale in removed:
            shutil.rmtree(stale)
    return removed


def read_domain(uri, name, qemu, exclude, offline, suffix):
    """``(plan, disks, xml)``: the domain read once and ``decide``'s plan, with its ``domain``."""
    with LibvirtClient(uri) as client:
        domain, disks = domain_facts(client.domain(name), qemu, suffix)
    xml = domain.pop('xml')
    plan = decide(domain, disks, exclude, offline)
    domain.pop('backup_overlays')
    plan['domain'] = domain
    return plan, disks, xml


def start(plan, dest, xml, check_mode=False):
    """Start the backup directory of a plan whose action is ``backup``; the plan, completed."""
    path, started, removed, state_files = start_directory(dest, plan['domain']['name'], xml,
                                                          check_mode)
    return dict(plan, path=path, started=started, removed=removed, state_files=state_files)


def start_directory(dest, name, xml, check_mode=False, now=None):
    """Create ``<dest>/<name>/<UTC timestamp>.partial`` with domain.xml and the state files.

    Returns ``(path, started, removed, state_files)``; ``removed`` are the incomplete backups
    of earlier runs, deleted first (the lock guarantees no live run is building them).
    """
    domain_dir = os.path.join(dest, name)
    when = time.time() if now is None else now
    while os.path.exists(os.path.join(domain_dir, time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(when)))):
        # A backup of this domain completed within this second (runs back to back): its name
        # is taken, the next second's is not.
        if now is None:
            time.sleep(1.0 - when % 1.0)
            when = time.time()
        else:
            when = int(when) + 1
    stamp = time.gmtime(when)
    path = os.path.join(domain_dir, time.strftime('%Y%m%dT%H%M%SZ', stamp) + PARTIAL)
    started = time.strftime('%Y-%m-%dT%H:%M:%SZ', stamp)
    removed = remove_partials(domain_dir, check_mode)
    if check_mode:
        return path, started, removed, []
    os.makedirs(domain_dir, mode=0o700, exist_ok=True)
    os.mkdir(path, 0o700)
    write_file(os.path.join(path, 'domain.xml'), xml.encode('utf-8'))
    return path, started, removed, save(path, xml)


# --- the preview (check mode) ----------------------------------------------------------------

def allocated(path):
    """Bytes an image holds: allocated blocks of a file, the size of a block device."""
    try:
        info = os.stat(path)
        if stat.S_ISBLK(info.st_mode):
            with open(path, 'rb') as device:
                return device.seek(0, os.SEEK_END)
        return info.st_blocks * 512
    except OSError:
        return 0


def free_space(path):
    """Bytes available to us where ``path`` is, or would be created."""
    while path and not os.path.isdir(path):
        path = os.path.dirname(path.rstrip('/')) or '/'
    try:
        info = os.statvfs(path or '/')
    except OSError:
        return None
    return info.f_bavail * info.f_frsize


def lock_state(path):
    """``{state, owner, since}`` of a per-domain lock: free, expired, dead or held."""
    record = read_record(path) if path else {}
    return dict(state=holder_state(record), owner=record.get('owner'), since=record.get('since'))


def preview(plan, disks, dest, retention, lock_path, now=None):
    """What a backup run would do with the domain, for check mode: a dict and a summary line."""
    name = plan['domain']['name']
    left_out = [item['target'] for item in plan['skipped']]
    copied = [disk for disk in disks if disk['target'] not in left_out]
    entries = [dict(target=disk['target'], chain=[image['path'] for image in disk['chain']],
                    bytes=sum(allocated(image['path']) for image in disk['chain'] if image['path']))
               for disk in copied]
    total = sum(entry['bytes'] for entry in entries)
    domain_dir = os.path.join(dest, name)
    new = time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(now))
    prune = [os.path.join(domain_dir, backup) for backup in
             to_prune(sorted(complete_backups(domain_dir) + [new]), retention)]
    result = dict(disks=entries, bytes=total, dest_free=free_space(domain_dir),
                  lock=lock_state(lock_path), prune=prune,
                  partials=[os.path.basename(path) for path in stale_partials(domain_dir)])
    parts = []
    if plan['action'] == RECOVER:
        parts.append('runs on overlays of ours (%s): would commit them back first'
                     % ', '.join(plan['overlays']))
    parts.append('would back up %s: about %s into %s (%s free)' % (
        ', '.join('%s (%s)' % (entry['target'], ' <- '.join(entry['chain'])) for entry in entries),
        size_text(total), domain_dir,
        size_text(result['dest_free']) if result['dest_free'] is not None else 'unknown'))
    if plan['skipped']:
        parts.append('skip %s' % ', '.join(
            '%s (%s)' % (item['target'], item['reason']) for item in plan['skipped']))
    lock = result['lock']
    parts.append('lock %s%s' % (lock['state'], ' (%s)' % lock['owner'] if lock['owner'] else ''))
    if result['partials']:
        parts.append('would remove %d incomplete backup(s)' % len(result['partials']))
    parts.append('would prune %s' % (', '.join(os.path.basename(p) for p in prune) or 'nothing'))
    return result, '; '.join(parts)
