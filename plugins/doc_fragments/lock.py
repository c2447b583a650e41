# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment(object):

    DOCUMENTATION = r'''
options:
  lock:
    description:
      - A lock file taken by M(virtops.libvirt.backup_lock) for the run this task belongs to.
      - The module first checks that O(lock_owner) still holds the lock and records its own
        process in it, in one step. When the lock was taken over (the run was presumed dead),
        the module fails before it changes anything. A run that takes over a dead run's lock
        stops the processes recorded in it, so two runs never drive the same disk.
      - Ignored in check mode, where nothing changes and M(virtops.libvirt.backup_lock) takes no lock.
    type: path
  lock_owner:
    description: The owner that took O(lock); required with it.
    type: str
'''
