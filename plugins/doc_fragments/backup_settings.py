# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment(object):

    # The settings of a live backup run, checked by backup_plan and backup_domains
    # (_backup_plan.SETTINGS_ARGUMENT_SPEC); the role's variables are live_backup_<name>
    # (live_backup_lock_lease for lease).
    DOCUMENTATION = r'''
options:
  domains:
    description: Names, UUIDs or glob patterns (V(web*)) of domains, or V(all).
    type: raw
    default: all
  exclude_domains:
    description: Names, UUIDs or glob patterns of domains never backed up.
    type: list
    elements: str
    default: []
  tag:
    description:
      - Only the domains carrying this backup tag (see the description); empty for no tag rule.
    type: str
    default: ''
  dest:
    description: The backup destination.
    type: str
    required: true
  exclude_disks:
    description: Disk targets to leave out, V(vdb) (any domain) or V(web01:vdb).
    type: list
    elements: str
    default: []
  bandwidth:
    description: MiB/s of the active commit; 0 or more.
    type: int
    default: 0
  copy_bandwidth:
    description: MiB/s of the copy; 0 or more.
    type: int
    default: 0
  timeout:
    description: Seconds an active commit may take to reach READY; 0 or more.
    type: int
    default: 3600
  copy_timeout:
    description: Longest copy in seconds; 1 or more.
    type: int
    default: 86400
  keep:
    description: Backups kept per domain; 0 or more.
    type: int
    default: 7
  keep_daily:
    description: Days whose newest backup is kept; 0 or more.
    type: int
    default: 0
  keep_weekly:
    description: ISO weeks whose newest backup is kept; 0 or more.
    type: int
    default: 0
  keep_monthly:
    description: Months whose newest backup is kept; 0 or more.
    type: int
    default: 0
  lease:
    description: Lock lease in seconds; 10 or more, and at least twice O(progress_interval).
    type: int
    default: 120
  progress_interval:
    description:
      - Seconds between progress lines (the C(interval) of M(virtops.libvirt.async_progress));
        1 or more.
    type: int
    default: 10
  parallel:
    description: Domains backed up at the same time; 1 or more.
    type: int
    default: 2
  lock_dir:
    description: Directory of the per-domain locks; absolute.
    type: str
    default: /run/lock/virtops-libvirt
  block_overlay_dir:
    description: Directory of block-device overlays; absolute.
    type: str
    default: /var/lib/libvirt/images
'''
