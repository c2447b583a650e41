# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""An flock held across Ansible tasks by a small detached holder process.

A module process ends with its task, and its flock with it, so the lock is
handed to a detached child that keeps the file descriptor open. The kernel
drops the lock when that child exits: on release, at the end of its lease,
or when it is killed. A crashed run can therefore never leave the lock held
for longer than the lease.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import signal
import time


class LockBusy(Exception):
    def __init__(self, holder):
        super(LockBusy, self).__init__(holder)
        self.holder = holder


def read_holder(path):
    """What the current holder wrote into the lock file, or {}."""
    try:
        with open(path) as handle:
            return json.loads(handle.read() or '{}')
    except (IOError, OSError, ValueError):
        return {}


def is_locked(path):
    """True when some process holds the flock on ``path``."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return False
        raise
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except (IOError, OSError):
        return True
    finally:
        os.close(fd)
    return False


def _try_lock(fd, wait):
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except (IOError, OSError) as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)


def _hold(fd, holder, lease, ready_w):
    """Runs in the detached grandchild: publish the holder, then sleep out the lease."""
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDWR)
    for stream in (0, 1, 2):
        os.dup2(devnull, stream)  # Ansible waits until the module's pipes close
    holder = dict(holder, pid=os.getpid())
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, json.dumps(holder).encode())
    os.fsync(fd)
    os.write(ready_w, b'1')
    os.close(ready_w)
    signal.signal(signal.SIGTERM, lambda signum, frame: os._exit(0))
    deadline = time.monotonic() + lease
    while time.monotonic() < deadline:
        time.sleep(min(60.0, max(0.1, deadline - time.monotonic())))
    os._exit(0)


def acquire(path, owner, lease, wait=0):
    """Take the lock and hand it to a detached holder; return the holder dict.

    Raises LockBusy when another process holds it after ``wait`` seconds.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if not _try_lock(fd, wait):
            raise LockBusy(read_holder(path))
        holder = dict(owner=owner, since=time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()),
                      lease=lease)
        ready_r, ready_w = os.pipe()
        child = os.fork()
        if child == 0:  # pragma: no cover - runs in the forked child
            try:
                os.close(ready_r)
                if os.fork() == 0:
                    _hold(fd, holder, lease, ready_w)
            finally:
                os._exit(0)
        os.close(ready_w)
        os.waitpid(child, 0)
        ready = os.read(ready_r, 1)
        os.close(ready_r)
        if ready != b'1':
            raise OSError('the lock holder process did not start')
        return read_holder(path)
    finally:
        os.close(fd)  # the holder keeps its own copy of the descriptor


def release(path, owner=None, wait=30):
    """Stop the holder of the lock. Returns True when a lock was released.

    With ``owner``, a lock held by another owner is left alone (LockBusy).
    """
    if not is_locked(path):
        return False
    holder = read_holder(path)
    if owner is not None and holder.get('owner') != owner:
        raise LockBusy(holder)
    pid = holder.get('pid')
    if not pid:
        raise OSError('%s is locked but names no holder process' % path)
    try:
        os.kill(int(pid), signal.SIGTERM)
    except OSError as exc:
        if exc.errno != errno.ESRCH:
            raise
    deadline = time.monotonic() + wait
    while is_locked(path):
        if time.monotonic() >= deadline:
            raise OSError('the holder (pid %s) of %s did not exit' % (pid, path))
        time.sleep(0.1)
    return True
