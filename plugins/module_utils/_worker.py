# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A module that works for a locked run: proves the run still owns the lock, and is recorded.

With the ``lock`` and ``lock_owner`` options, a module first checks that the
run still holds the domain's lock and records its own process in it (one
atomic step), so a run that takes the lock over from a dead one can stop it.
A module whose run lost the lock fails before it changes anything.
"""

from __future__ import annotations

import contextlib
import os
import threading

from ansible_collections.virtops.libvirt.plugins.module_utils._libvirt import LibvirtFailure
from ansible_collections.virtops.libvirt.plugins.module_utils._lock import (
    LockLost,
    register,
    renew,
    unregister,
)

LOCK_ARGUMENT_SPEC = dict(
    lock=dict(type='path'),
    lock_owner=dict(type='str'),
)
LOCK_REQUIRED_TOGETHER = [('lock', 'lock_owner')]


class LostLock(LibvirtFailure):
    """The run no longer holds the domain's lock: it was presumed dead and must stop."""


def lost_message(path, holder):
    return ('the lock %s is not held by this run any more (%s): this run was presumed dead '
            'and stops here, changing nothing' % (
                path, 'now held by %s' % holder['owner'] if holder.get('owner') else 'free'))


class Worker(object):
    """Context manager; ``renew`` keeps the lease alive while the module's parent lives.

    Only modules that run synchronously renew: an async module's parent is
    Ansible's async wrapper, which outlives a dead controller, and a dead run
    must lose its lock.
    """

    def __init__(self, params, what, renew_lease=False, check_mode=False, stay=False):
        # Check mode changes nothing, and a check run holds no lock (backup_lock takes none).
        self.path = None if check_mode else params.get('lock')
        self.owner = params.get('lock_owner')
        self.what = what
        self.renew_lease = renew_lease
        # A process that works on the domain between its steps too (a domain's process of
        # backup_domains) stays recorded, so that a taker stops it wherever it is.
        self.stay = stay
        self._stop = threading.Event()
        self._thread = None

    def __enter__(self):
        if not self.path:
            return self
        try:
            record = register(self.path, self.owner, os.getpid(), self.what)
        except LockLost as exc:
            raise LostLock(lost_message(self.path, exc.holder))
        except OSError as exc:
            raise LibvirtFailure('cannot read the lock %s: %s' % (self.path, exc))
        if self.renew_lease:
            lease = float(record.get('lease') or 120)
            self._thread = threading.Thread(target=self._keep, args=(lease, os.getppid()))
            self._thread.daemon = True
            self._thread.start()
        return self

    def _keep(self, lease, parent):
        while not self._stop.wait(lease / 4.0):
            if os.getppid() != parent:
                return  # our task's connection is gone: the run is dead
            try:
                renew(self.path, self.owner)
            except (LockLost, OSError):
                return

    def add(self, pid, what):
        """Record a child process (qemu-img) so that a taker stops it too."""
        if self.path:
            try:
                register(self.path, self.owner, pid, what)
            except (LockLost, OSError):
                pass

    def __exit__(self, *exc_info):
        self._stop.set()
        if self.path and not self.stay:
            with contextlib.suppress(OSError):
                unregister(self.path, self.owner, os.getpid())
