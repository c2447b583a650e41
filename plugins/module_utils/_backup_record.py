# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A backup's manifest and its per-domain result record, from what the steps returned.

The steps are the results of ``backup_prepare``, ``disk_snapshot`` (running domain) and one
``image_copy`` per disk. Both records are defined here only: the role passes the results on.

This is a private module_utils: its API may change without notice.
"""

from __future__ import annotations

import calendar
import os
import time


class RecordError(Exception):
    """The step results do not describe one complete backup."""


def _copied_disks(prepared, snapshot):
    """``[(target, source)]`` the backup should hold: snapshotted, or the shut-off sources."""
    if snapshot:
        return [(disk['target'], disk['frozen']) for disk in snapshot.get('disks') or []
                if disk.get('status') == 'snapshotted']
    return [(disk['target'], disk['source']) for disk in prepared.get('disks') or []]


def manifest(prepared, snapshot, copies):
    """The manifest of the backup in ``prepared['path']``; every disk must have its copy."""
    try:
        return _manifest(prepared, snapshot, copies)
    except (KeyError, TypeError, AttributeError) as exc:
        raise RecordError('the results of the backup steps are incomplete (%s: %s)' % (
            type(exc).__name__, exc))


def _manifest(prepared, snapshot, copies):
    by_source = dict((copy.get('src'), copy) for copy in copies)
    disks = []
    for target, source in _copied_disks(prepared, snapshot):
        copy = by_source.get(source)
        if copy is None:
            raise RecordError('no copy of %s (%s) was made' % (target, source))
        if os.path.dirname(copy['dest'].rstrip('/')) != prepared['path'].rstrip('/'):
            raise RecordError('the copy of %s went to %s, not into %s' % (
                target, copy['dest'], prepared['path']))
        disks.append(dict(target=target, source=source, source_format=copy['src_format'],
                          format=copy['format'], file=os.path.basename(copy['dest']),
                          virtual_size=copy['virtual_size'], size=copy['size'],
                          sha256=copy.get('sha256'), verified=bool(copy.get('verified')),
                          seconds=copy.get('duration')))
    if not disks:
        raise RecordError('no disk of %s could be backed up' % prepared['domain']['name'])
    skipped = (snapshot['disks'] if snapshot else prepared['skipped'])
    return dict(
        domain=prepared['domain']['name'],
        uuid=prepared['domain']['uuid'],
        started=prepared['started'],
        consistency=snapshot['consistency'] if snapshot else prepared['consistency'],
        disks=disks,
        state_files=prepared.get('state_files') or [],
        skipped=[dict(target=disk['target'], reason=disk['reason']) for disk in skipped
                 if disk.get('status', 'skipped') == 'skipped'],
    )


def size_text(num):
    """1610612736 -> '1.5 GiB' (the binary units of Jinja's filesizeformat)."""
    if num < 1024:
        return '%d Bytes' % num if num != 1 else '1 Byte'
    for unit in ('KiB', 'MiB', 'GiB', 'TiB'):
        num /= 1024.0
        if num < 1024 or unit == 'TiB':
            return '%.1f %s' % (num, unit)
    return ''  # not reached


def ok_record(the_manifest, final, notes, now=None):
    """The role's result for a completed backup (``final`` is the backup_finalize result)."""
    disks = the_manifest['disks']
    total = sum(int(disk['size'] or 0) for disk in disks)
    started = calendar.timegm(time.strptime(the_manifest['started'], '%Y-%m-%dT%H:%M:%SZ'))
    summary = '%d disk(s), %s, %s, %s' % (len(disks), size_text(total),
                                          the_manifest['consistency'], final['path'])
    if notes:
        summary += ', ' + '; '.join(notes)
    return dict(domain=the_manifest['domain'], status='ok', summary=summary, bytes=total,
                seconds=int((time.time() if now is None else now) - started),
                consistency=the_manifest['consistency'], path=final['path'],
                pruned=final['pruned'], notes=list(notes))
