# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The run lock is real here: real files, flock, and real processes for controllers and workers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest

from ansible_collections.virtops.libvirt.plugins.module_utils import _lock
from ansible_collections.virtops.libvirt.plugins.module_utils._lock import (
    LockBusy,
    LockLost,
    acquire,
    alive,
    boot_id,
    identity,
    read_record,
    register,
    release,
    renew,
)


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / 'dom.lock')


def local_controller(pid):
    return dict(identity(pid), host='here', boot_id=boot_id())


@pytest.fixture
def dead_pid():
    proc = subprocess.Popen([sys.executable, '-c', 'pass'])
    proc.wait()
    return proc.pid


def sleeper(*extra):
    """A process that stands for a worker (with ``extra`` argv, one that has a child)."""
    return subprocess.Popen(list(extra) or ['sleep', '60'])


def test_take_renew_release(path):
    record, previous = acquire(path, 'run-1', 60, local_controller(os.getpid()))
    assert previous is None and record['owner'] == 'run-1' and record['workers'] == []
    assert read_record(path)['owner'] == 'run-1'
    again, previous = acquire(path, 'run-1', 60)
    assert previous is None and again['renewed'] >= record['renewed']
    assert renew(path, 'run-1')['expires'] > time.time() + 50
    assert release(path, 'run-1') is True
    assert read_record(path) == {} and release(path, 'run-1') is False


def test_a_run_killed_while_it_rewrites_the_record_leaves_a_whole_one(path, monkeypatch):
    """The record is rewritten in place by two calls (write, cut); a run killed between them
    must leave the old record or the new one, never an empty file (a free lock)."""
    old = dict(owner='run-1', expires=time.time() + 60, workers=[dict(pid=1, what='x' * 300)])
    with open(path, 'w') as handle:
        json.dump(old, handle)
    calls = []

    def dies_at_the_second_call(real):
        def call(*args):
            calls.append(real.__name__)
            if len(calls) == 2:
                raise SystemExit('killed')
            return real(*args)
        return call

    monkeypatch.setattr(_lock.os, 'pwrite', dies_at_the_second_call(os.pwrite))
    monkeypatch.setattr(_lock.os, 'ftruncate', dies_at_the_second_call(os.ftruncate))
    new = dict(owner='run-2', expires=time.time() + 60, workers=[])
    with pytest.raises(SystemExit):
        with _lock._record(path) as (dummy, save):
            save(new)
    monkeypatch.undo()
    assert len(calls) == 2
    assert read_record(path) in (old, new)
    with _lock._record(path) as (record, dummy):
        assert record in (old, new)


def test_a_live_local_run_fails_the_next_at_once(path):
    acquire(path, 'run-1', 60, local_controller(os.getpid()))
    started = time.monotonic()
    with pytest.raises(LockBusy) as busy:
        acquire(path, 'run-2', 60, local_controller(os.getpid()), wait=30)
    assert time.monotonic() - started < 2
    assert busy.value.holder['owner'] == 'run-1' and 'alive' in busy.value.why
    with pytest.raises(LockBusy):
        release(path, 'run-2')


def test_a_dead_local_controller_frees_the_lock_at_once(path, dead_pid):
    acquire(path, 'run-1', 3600, local_controller(dead_pid))
    record, previous = acquire(path, 'run-2', 60, local_controller(os.getpid()))
    assert record['owner'] == 'run-2'
    assert previous['owner'] == 'run-1' and previous['state'] == 'dead'


def test_a_controller_in_another_pid_namespace_is_never_judged_by_pid(path, dead_pid):
    controller = dict(identity(dead_pid), host='ee', boot_id=boot_id().split('/')[0] + '/pid:[1]')
    acquire(path, 'run-1', 3600, controller)
    with pytest.raises(LockBusy):
        acquire(path, 'run-2', 60, local_controller(os.getpid()))


def test_an_expired_lease_frees_the_lock(path):
    acquire(path, 'run-1', 60, dict(host='elsewhere', boot_id='other', pid=1, start=1))
    record = read_record(path)
    record['expires'] = time.time() - 1
    with open(path, 'w') as handle:
        json.dump(record, handle)
    dummy, previous = acquire(path, 'run-2', 60)
    assert previous['state'] == 'expired'
    with pytest.raises(LockLost):
        renew(path, 'run-1')
    with pytest.raises(LockLost):
        register(path, 'run-1', os.getpid(), 'late work')


def test_the_owner_of_a_lease_that_ran_out_works_on_until_it_is_taken(path, dead_pid):
    acquire(path, 'run-1', 60, local_controller(dead_pid))
    record = read_record(path)
    record['expires'] = time.time() - 1
    with open(path, 'w') as handle:
        json.dump(record, handle)
    worker = sleeper()
    register(path, 'run-1', worker.pid, 'commit back after a cancel')
    assert [w['pid'] for w in read_record(path)['workers']] == [worker.pid]
    dummy, previous = acquire(path, 'run-2', 60, stop_timeout=5)
    assert [w['pid'] for w in previous['stopped']] == [worker.pid] and worker.wait(5) is not None
    with pytest.raises(LockLost):
        register(path, 'run-1', os.getpid(), 'too late')


def test_a_remote_holder_that_stops_renewing_is_waited_for(path):
    acquire(path, 'run-1', 2, dict(host='elsewhere', boot_id='other', pid=1, start=1))
    started = time.monotonic()
    dummy, previous = acquire(path, 'run-2', 60, wait=10)
    assert 1 < time.monotonic() - started < 5 and previous['state'] == 'expired'


def test_a_remote_holder_that_renews_is_alive(path):
    acquire(path, 'run-1', 3, dict(host='elsewhere', boot_id='other', pid=1, start=1))
    timer = threading.Timer(1.0, renew, (path, 'run-1'))
    timer.start()
    started = time.monotonic()
    with pytest.raises(LockBusy) as busy:
        acquire(path, 'run-2', 60, wait=10)
    timer.join()
    assert time.monotonic() - started < 3 and 'alive' in busy.value.why


def test_taking_over_stops_the_dead_runs_workers_and_their_children(path):
    controller = sleeper()
    acquire(path, 'run-1', 3600, local_controller(controller.pid))
    worker = sleeper('sh', '-c', 'sleep 60 & wait')  # a module with a qemu-img child
    time.sleep(0.2)
    register(path, 'run-1', worker.pid, 'copy of vda')
    child = _lock.descendants(worker.pid)
    assert child
    controller.kill()
    controller.wait()
    dummy, previous = acquire(path, 'run-2', 60, stop_timeout=5)
    assert [w['pid'] for w in previous['stopped']] == [worker.pid]
    worker.wait(5)
    assert not any(alive(identity(pid)) for pid in child)


def test_a_reused_pid_is_not_a_worker(path):
    acquire(path, 'run-1', 60)
    register(path, 'run-1', os.getpid(), 'me')
    record = read_record(path)
    record['workers'][0]['start'] -= 1  # another process had this pid before
    assert not alive(record['workers'][0])
    assert _lock.stop_workers(record['workers']) == []


def test_unregister_and_garbage(path):
    with open(path, 'w') as handle:
        handle.write('not json')
    record, previous = acquire(path, 'run-1', 60)
    assert previous is None
    register(path, 'run-1', os.getpid(), 'me')
    _lock.unregister(path, 'run-1', os.getpid())
    assert read_record(path)['workers'] == []
