# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Which complete backups a retention policy keeps, as Proxmox's prune-backups does.

A policy keeps the ``last`` newest backups, then the newest backup of each of the ``daily``
newest days, ``weekly`` ISO weeks and ``monthly`` months that have one and are not already
covered; a period whose newest backup is already kept counts as covered, and the older
backups of a covered period are not used for a later, longer period. Periods are in UTC (the
backups are named by their UTC start). The newest backup is never pruned; a policy that keeps
nothing explicitly (all zero) keeps everything.

This is a private module_utils: its API may change without notice.
"""

from __future__ import annotations

import time

PERIODS = (('daily', '%Y-%m-%d'), ('weekly', '%G-W%V'), ('monthly', '%Y-%m'))
NAME_FORMAT = '%Y%m%dT%H%M%SZ'


def policy(last=0, daily=0, weekly=0, monthly=0):
    return dict(last=last, daily=daily, weekly=weekly, monthly=monthly)


def keeps_everything(the_policy):
    return not any(the_policy.values())


def _period(name, fmt):
    return time.strftime(fmt, time.strptime(name, NAME_FORMAT))


def to_prune(names, the_policy):
    """The backup names (``YYYYmmddTHHMMSSZ``) the policy removes, oldest first."""
    if keeps_everything(the_policy) or not names:
        return []
    newest_first = sorted(names, reverse=True)
    keep = {}  # name -> True (kept) / False (removed by a period rule)
    for name in newest_first[:the_policy['last']]:
        keep[name] = True
    for period, fmt in PERIODS:
        wanted = the_policy[period]
        if not wanted:
            continue
        covered = set(_period(name, fmt) for name in newest_first if keep.get(name))
        chosen = set()
        for name in newest_first:
            if name in keep:
                continue
            key = _period(name, fmt)
            if key in covered:
                continue
            if key in chosen:
                keep[name] = False
                continue
            if len(chosen) >= wanted:
                break
            chosen.add(key)
            keep[name] = True
    keep[newest_first[0]] = True
    return sorted(name for name in names if not keep.get(name))
