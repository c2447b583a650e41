# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The supervisor of backup_domains with real forked children; only the domain's workflow is
replaced (by FakeRun), so the scheduling, the bound, the recovery of a dead child, the stop
when nobody waits and the progress file are tested as they run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from ansible_collections.virtops.libvirt.plugins.module_utils import _backup_run
from ansible_collections.virtops.libvirt.plugins.module_utils._backup_run import (
    Supervisor,
    _line,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._forked import Child, wait_any
from ansible_collections.virtops.libvirt.plugins.module_utils._lock import boot_id, identity


class FakeRun(object):
    """Each domain's behaviour comes from its name: ``ok``, ``fail``, ``die``, ``slow``."""

    def __init__(self, params, entry, qemu):
        self.p = params
        self.name = entry['name']

    def run(self):
        log = os.path.join(self.p['log'], '%s.%s' % (self.name, os.getpid()))
        with open(log, 'w') as handle:
            handle.write(json.dumps(dict(start=time.time(), recover=self.p['recover_only'])))
        if self.p['recover_only']:
            return dict(domain=self.name, status='ok', overlays=['vda'], summary='recovered')
        if self.name.startswith('die'):
            os.kill(os.getpid(), signal.SIGKILL)
        if self.name.startswith('long'):
            # as DomainRun: SIGTERM stops the copies, the VM is brought back, the domain failed
            def interrupted(signum, dummy_frame):
                raise KeyboardInterrupt('interrupted by signal %d' % signum)
            signal.signal(signal.SIGTERM, interrupted)
            try:
                time.sleep(60)
            except KeyboardInterrupt as exc:
                return dict(domain=self.name, status='failed', error=str(exc), vm='on its own images',
                            summary=str(exc) + '; the VM is on its own images')
        if self.name.startswith('slow'):
            partial = os.path.join(self.p['dest'], self.name, '20261128T000000Z.partial')
            os.makedirs(partial)
            with open(os.path.join(partial, '.vda.progress'), 'w') as handle:
                json.dump(dict(bytes_done=512, bytes_total=1024), handle)
            time.sleep(0.6)
        if self.name.startswith('fail'):
            return dict(domain=self.name, status='failed', error='boom', summary='boom')
        time.sleep(0.2)
        return dict(domain=self.name, status='ok', summary='fine')

    def preview(self):
        return dict(domain=self.name, status='planned', summary='would')


@pytest.fixture
def params(tmp_path, monkeypatch):
    monkeypatch.setattr(_backup_run, 'DomainRun', FakeRun)
    log = tmp_path / 'log'
    log.mkdir()
    return dict(parallel=2, lease=120, lock_dir=str(tmp_path / 'locks'), recover_only=False,
                progress_file=None, log=str(log), dest=str(tmp_path / 'dest'))


def starts(params):
    records = []
    for name in os.listdir(params['log']):
        with open(os.path.join(params['log'], name)) as handle:
            records.append(dict(json.load(handle), name=name.split('.')[0]))
    return records


def run(params, names, waiter=None):
    supervisor = Supervisor(params, None, waiter, [dict(name=n, uuid='u-' + n) for n in names])
    try:
        return supervisor.run()
    finally:
        supervisor.close()


def test_results_in_domain_order_and_a_failure_stops_nothing(params):
    results = run(params, ['slow1', 'fail2', 'ok3', 'ok4'])
    assert [r['domain'] for r in results] == ['slow1', 'fail2', 'ok3', 'ok4']
    assert [r['status'] for r in results] == ['ok', 'failed', 'ok', 'ok']


def test_at_most_parallel_domains_at_once(params):
    params['parallel'] = 2
    started = time.time()
    run(params, ['slow1', 'slow2', 'slow3', 'slow4'])
    begins = sorted(r['start'] - started for r in starts(params))
    # two at once: the third starts only after one of the first two (0.6 s) ended
    assert begins[1] < 0.5
    assert begins[2] >= 0.55


def test_parallel_one_is_one_after_the_other(params):
    params['parallel'] = 1
    started = time.time()
    run(params, ['slow1', 'slow2'])
    begins = sorted(r['start'] - started for r in starts(params))
    assert begins[1] >= 0.55


def test_a_killed_domain_process_is_failed_and_its_vm_recovered(params):
    results = run(params, ['die1', 'ok2'])
    assert results[1]['status'] == 'ok'
    assert results[0]['status'] == 'failed'
    assert 'killed by signal 9' in results[0]['error']
    assert 'brought back onto its own images: vda' in results[0]['error']
    recoveries = [r for r in starts(params) if r['recover']]
    assert [r['name'] for r in recoveries] == ['die1']


def test_no_domain_starts_once_nobody_waits(params, tmp_path):
    waiter = tmp_path / 'job.progress.waiter'
    waiter.write_text('')
    old = time.time() - 3600
    os.utime(str(waiter), (old, old))
    results = run(params, ['ok1', 'ok2'], waiter=str(waiter))
    assert [r['status'] for r in results] == ['failed', 'failed']
    assert 'the run is gone' in results[0]['error']
    assert starts(params) == []


def test_at_the_time_limit_the_domains_in_progress_stop_and_no_other_starts(params):
    params.update(parallel=1, job=dict(limit=1, async_dir='unused'))
    results = run(params, ['long1', 'ok2'])
    assert results[0]['status'] == 'failed'
    assert results[0]['error'] == "interrupted by signal 15 (the job's time limit of 1 s (async) was reached)"
    assert results[0]['summary'] == ("interrupted by signal 15 (the job's time limit of 1 s (async) was "
                                     "reached); the VM is on its own images")
    assert results[1] == dict(results[1], status='failed',
                              error="not started: the job's time limit of 1 s (async) was reached")
    assert [r['name'] for r in starts(params)] == ['long1']


def test_a_wait_that_has_not_begun_stops_nothing(params, tmp_path):
    # more hosts than forks: this host's wait starts when a fork frees up
    waiter = tmp_path / 'job.progress.waiter'
    assert [r['status'] for r in run(params, ['ok1', 'ok2'], waiter=str(waiter))] == ['ok'] * 2


def test_no_domain_starts_once_the_local_controller_is_gone(params):
    dead = subprocess.Popen([sys.executable, '-c', 'pass'])
    dead.wait()
    params['controller'] = dict(identity(dead.pid), host='here', boot_id=boot_id())
    results = run(params, ['ok1'])
    assert results[0]['status'] == 'failed' and 'the run is gone' in results[0]['error']
    assert starts(params) == []


def test_a_waiter_seen_lately_lets_every_domain_start(params, tmp_path):
    waiter = tmp_path / 'job.progress.waiter'
    waiter.write_text('')
    assert [r['status'] for r in run(params, ['ok1', 'ok2', 'ok3'], waiter=str(waiter))] == ['ok'] * 3


def test_progress_file_lists_lines_and_locks(params, tmp_path):
    progress = tmp_path / 'job.progress'
    params['progress_file'] = str(progress)
    supervisor = Supervisor(params, None, domains=[dict(name='slow1', uuid='abc')])
    seen = []
    original = supervisor.progress

    def spy(force=False):
        original(force=True)
        if progress.exists():
            seen.append(json.loads(progress.read_text()))
    supervisor.progress = spy
    try:
        supervisor.run()
    finally:
        supervisor.close()
    busy = [s for s in seen if s['lines']]
    assert busy, seen
    assert busy[0]['lines'] == ['slow1 copy of vda: 50.0% (512 Bytes of 1.0 KiB)']
    assert busy[0]['locks'] == [os.path.join(params['lock_dir'], 'abc.lock')]
    assert busy[0]['pid'] == os.getpid()
    assert not progress.exists()  # removed at the end


def test_check_mode_runs_no_child(params):
    supervisor = Supervisor(params, None, domains=[dict(name='a', uuid='1'), dict(name='b', uuid='2')])
    try:
        assert [r['status'] for r in supervisor.preview()] == ['planned', 'planned']
    finally:
        supervisor.close()
    assert starts(params) == []


def test_line_of_a_commit_at_ready():
    assert _line('web01', 'commit', 'vda', dict(bytes_done=2048, bytes_total=2048, ready=True)) == \
        'web01 commit of vda: 100.0% (2.0 KiB of 2.0 KiB), READY'
    assert _line('web01', 'copy', 'vdb', {}) == 'web01 copy of vdb: running'


def test_child_reports_an_exception_and_a_signal(tmp_path):
    def broken():
        raise ValueError('no luck')
    child = Child(broken, str(tmp_path / 'r.json'))
    while not child.poll():
        time.sleep(0.01)
    assert child.result() is None
    assert child.how_it_ended() == 'exited with status 1: ValueError: no luck'

    def sleeper():
        time.sleep(30)
    child = Child(sleeper, str(tmp_path / 's.json'))
    child.signal(signal.SIGKILL)
    while not child.poll():
        time.sleep(0.01)
    assert child.how_it_ended() == 'killed by signal 9'


def test_wait_any_returns_a_child_as_it_ends_not_at_the_timeout(tmp_path):
    quick = Child(lambda: dict(done=True), str(tmp_path / 'q.json'))
    slow = Child(lambda: time.sleep(30), str(tmp_path / 's.json'))
    try:
        # Were the end noticed only at the timeout, nothing would have ended by then.
        assert wait_any([quick, slow], 30) == [quick]
        assert quick.result() == dict(done=True) and quick.watch is None
        assert slow.watch is not None and not slow.poll()
    finally:
        slow.signal(signal.SIGKILL)
        while not slow.poll():
            time.sleep(0.01)
    assert slow.watch is None and wait_any([quick, slow], 0.01) == []
