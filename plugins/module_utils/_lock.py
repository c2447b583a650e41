# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A per-domain run lock: a short lease that the live run renews, and a dead run loses.

The lock file holds a JSON record: the owner (one run), when the lease
expires, the controller that runs the play (host boot id, pid and start time
of ``ansible-playbook``) and the worker processes the run started on this
host (async module processes, ``qemu-img``). ``flock`` only guards the
read-modify-write of the record, for milliseconds: no process has to live
on to keep the lock, so nothing outlives a dead run.

A lock is free when the file is empty, its lease expired, or its controller
ran on this machine and is gone. A taker stops the dead run's workers before
it acts, and every guarded module checks ownership and registers itself in
one step, so a run that was presumed dead and wakes up again finds the lock
lost and stops instead of racing the new owner.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import signal
import time

RECORD_LOCK_TIMEOUT = 10
STOP_TIMEOUT = 30


class LockBusy(Exception):
    def __init__(self, holder, why='its lease runs'):
        super(LockBusy, self).__init__(holder)
        self.holder = holder
        self.why = why


class LockLost(Exception):
    """The lock is not (or no longer) held by this owner."""

    def __init__(self, holder):
        super(LockLost, self).__init__(holder)
        self.holder = holder


def boot_id():
    """This kernel's boot and pid namespace: pids compare only within the same one.

    A controller in a container on the hypervisor shares the boot id but not
    the pid numbers, so both are part of the identity.
    """
    try:
        with open('/proc/sys/kernel/random/boot_id') as handle:
            boot = handle.read().strip()
        return '%s/%s' % (boot, os.readlink('/proc/self/ns/pid'))
    except (IOError, OSError):
        return None


def process_start(pid):
    """Start time (clock ticks since boot) of a live process, or None; tells reused pids apart."""
    try:
        with open('/proc/%d/stat' % int(pid)) as handle:
            stat = handle.read()
    except (IOError, OSError, ValueError, TypeError):
        return None
    fields = stat[stat.rfind(')') + 2:].split()
    if len(fields) < 20 or fields[0] == 'Z':
        return None  # a zombie has finished its work
    return int(fields[19])


def alive(proc):
    """Whether ``{'pid': n, 'start': ticks}`` still names the same live process."""
    start = process_start(proc.get('pid'))
    return start is not None and start == proc.get('start')


def identity(pid):
    return dict(pid=pid, start=process_start(pid))


def _children():
    """Parent pid -> child pids, from /proc."""
    tree = {}
    for name in os.listdir('/proc'):
        if not name.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % name) as handle:
                stat = handle.read()
        except (IOError, OSError):
            continue
        ppid = int(stat[stat.rfind(')') + 2:].split()[1])
        tree.setdefault(ppid, []).append(int(name))
    return tree


def descendants(pid):
    tree = _children()
    found, todo = [], [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            if child not in found:
                found.append(child)
                todo.append(child)
    return found


def _kill(pid, sig):
    try:
        os.kill(pid, sig)
    except OSError as exc:
        if exc.errno != errno.ESRCH:
            raise


def stop_workers(workers, timeout=STOP_TIMEOUT):
    """SIGTERM the live workers and their children, SIGKILL what is left after ``timeout``.

    Returns the workers that were alive. Raises OSError when one survives SIGKILL.
    """
    live = [w for w in workers if alive(w)]
    procs = []
    for worker in live:
        procs.append(worker)
        procs.extend(identity(pid) for pid in descendants(worker['pid']))
    for proc in procs:
        _kill(proc['pid'], signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(alive(p) for p in procs) and time.monotonic() < deadline:
        time.sleep(0.1)
    for proc in procs:
        if alive(proc):
            _kill(proc['pid'], signal.SIGKILL)
    deadline = time.monotonic() + 5
    while any(alive(p) for p in procs):
        if time.monotonic() >= deadline:
            raise OSError('processes %s of the dead run did not stop' % ', '.join(
                str(p['pid']) for p in procs if alive(p)))
        time.sleep(0.05)
    return live


def controller_gone(controller):
    """True only when the controller ran on this machine and its process is gone."""
    if not controller or not controller.get('boot_id') or controller.get('boot_id') != boot_id():
        return False
    return not alive(controller)


def holder_state(record, now=None):
    """``free``, ``expired``, ``dead`` (controller provably gone) or ``held``."""
    if not record.get('owner'):
        return 'free'
    if (now or time.time()) >= float(record.get('expires') or 0):
        return 'expired'
    if controller_gone(record.get('controller')):
        return 'dead'
    return 'held'


def read_record(path):
    try:
        with open(path) as handle:
            data = handle.read()
    except (IOError, OSError):
        return {}
    return parse_record(data)


def parse_record(data):
    """The record at the start of the lock file's text; ``{}`` when there is none.

    The record is rewritten in place (the lock is a flock of this inode, so the file is never
    replaced): the new text first, then the file is cut to its length. A run killed between
    the two leaves the new record followed by the tail of the old one, which is ignored.
    """
    try:
        record = json.JSONDecoder().raw_decode(data.lstrip())[0] if data.strip() else {}
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}


@contextlib.contextmanager
def _record(path, create=True):
    """Yield ``(record, save)`` under a short exclusive flock of the lock file."""
    flags = os.O_RDWR | os.O_CLOEXEC | (os.O_CREAT if create else 0)
    fd = os.open(path, flags, 0o600)
    try:
        deadline = time.monotonic() + RECORD_LOCK_TIMEOUT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except (IOError, OSError) as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        record = parse_record(os.pread(fd, 1 << 20, 0).decode('utf-8', 'replace'))

        def save(new):
            # Never an empty file on the way: a run killed here leaves the old record or the new.
            raw = json.dumps(new, sort_keys=True).encode('utf-8') if new else b''
            os.pwrite(fd, raw, 0)
            os.ftruncate(fd, len(raw))
            os.fsync(fd)

        yield record, save
    finally:
        os.close(fd)  # drops the flock


def _stamp(now):
    return time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(now))


def acquire(path, owner, lease, controller=None, wait=0, stop_timeout=STOP_TIMEOUT):
    """Take the lock for ``owner``; return ``(record, previous)``.

    ``previous`` is the record of a dead or expired run that was taken over
    (with ``stopped``: its workers that were still running), or None. A lock
    held by a run whose controller is on this machine and alive is busy at
    once; one held from another machine is waited for up to ``wait`` seconds:
    a renewal seen while waiting proves its holder alive (busy), an expiry
    frees it.
    """
    deadline = time.monotonic() + wait
    first_seen = None
    while True:
        now = time.time()
        with _record(path) as (record, save):
            state = holder_state(record, now)
            if state == 'held' and record.get('owner') == owner:
                record.update(renewed=now, expires=now + lease, lease=lease)
                save(record)
                return record, None
            if state == 'held':
                renewed = record.get('renewed')
                local = bool(record.get('controller', {}).get('boot_id')) and \
                    record['controller'].get('boot_id') == boot_id()
                if local or time.monotonic() >= deadline:
                    raise LockBusy(record, 'its controller runs on this machine and is alive'
                                   if local else 'its lease runs')
                if first_seen is None:
                    first_seen = (record.get('owner'), renewed)
                elif first_seen != (record.get('owner'), renewed):
                    raise LockBusy(record, 'renewed while we waited: its run is alive')
            else:
                previous = dict(record, state=state) if state != 'free' else None
                new = dict(owner=owner, since=_stamp(now), renewed=now, expires=now + lease,
                           lease=lease, controller=controller or {}, workers=[])
                save(new)
                break
        # A lease that runs out is noticed within 0.5 s.
        time.sleep(min(0.5, max(0.05, deadline - time.monotonic())))
    if previous is not None:
        # Outside the flock: the dead run's workers may want it to unregister as they exit.
        previous['stopped'] = stop_workers(previous.get('workers') or [], stop_timeout)
    return new, previous


def renew(path, owner, lease=None):
    """Extend the lease; LockLost when another run took the lock over."""
    now = time.time()
    with _record(path, create=False) as (record, save):
        if record.get('owner') != owner:
            raise LockLost(record)
        lease = lease or record.get('lease') or 120
        record.update(renewed=now, expires=now + lease)
        save(record)
        return record


def register(path, owner, pid, what):
    """Check that ``owner`` holds the lock and record ``pid`` as one of its workers, atomically.

    A lease that ran out, or a controller that is gone, does not stop the owner's workers while
    no other run has taken the lock: the domain's process of a cancelled run still brings its VM
    back onto its own images. A taker records itself first and then stops the workers recorded
    here, so the two never drive the same disk.
    """
    with _record(path, create=False) as (record, save):
        if record.get('owner') != owner:
            raise LockLost(record)
        workers = [w for w in record.get('workers') or [] if alive(w) and w.get('pid') != pid]
        workers.append(dict(identity(pid), what=what))
        record['workers'] = workers
        save(record)
        return record


def unregister(path, owner, pid):
    with _record(path, create=False) as (record, save):
        if record.get('owner') != owner:
            return
        record['workers'] = [w for w in record.get('workers') or []
                             if w.get('pid') != pid and alive(w)]
        save(record)


def release(path, owner):
    """Free the lock held by ``owner``. False when it was not held; LockBusy when another holds it."""
    if not os.path.exists(path):
        return False
    with _record(path) as (record, save):
        if not record.get('owner'):
            return False
        if record.get('owner') != owner:
            raise LockBusy(record)
        save({})
        return True


def busy_message(path, holder, why='its lease runs'):
    renewed = holder.get('renewed')
    return 'lock %s is held by %s (%s; since %s, renewed %s, controller %s pid %s)' % (
        path, holder.get('owner', 'an unknown owner'), why, holder.get('since', '?'),
        '%ds ago' % (time.time() - renewed) if renewed else 'never',
        (holder.get('controller') or {}).get('host', '?'),
        (holder.get('controller') or {}).get('pid', '?'))
