# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The long poll of an async job, with real files and real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

from ansible_collections.virtops.libvirt.plugins.module_utils import _async_job
from ansible_collections.virtops.libvirt.plugins.module_utils._async_job import (
    poll,
    start_job,
    write_progress,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._lock import identity


def write(path, data):
    with open(path, 'w') as handle:
        json.dump(data, handle)


def test_a_finished_job_is_seen_within_a_fraction_of_a_second(tmp_path):
    job = str(tmp_path / 'job')
    write(job, dict(started=True, finished=False))
    threading.Timer(0.3, write, (job, dict(changed=True, rc=0))).start()
    started = time.monotonic()
    result, dummy, dead = poll(job, None, 5)
    assert result == dict(changed=True, rc=0) and dead is None
    assert time.monotonic() - started < 0.6


def test_a_running_job_returns_its_progress_after_the_wait(tmp_path):
    job, progress = str(tmp_path / 'job'), str(tmp_path / 'progress')
    write(job, dict(started=True, finished=False))
    write_progress(progress, dict(bytes_done=5, bytes_total=10))
    result, seen, dead = poll(job, progress, 0.3)
    assert result is None and dead is None
    assert seen['bytes_done'] == 5 and seen['pid'] == os.getpid()


def test_a_job_whose_process_died_is_reported_dead(tmp_path, monkeypatch):
    monkeypatch.setattr(_async_job, 'DEATH_GRACE', 0.3)
    proc = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(0.2)'])
    job, progress = str(tmp_path / 'job'), str(tmp_path / 'progress')
    write(job, dict(started=True, finished=False))
    write(progress, dict(identity(proc.pid), bytes_done=1, bytes_total=2))
    proc.wait()
    result, dummy, dead = poll(job, progress, 5)
    assert result is None and 'is gone' in dead


def test_a_job_that_never_wrote_progress_is_dead_after_the_grace(tmp_path, monkeypatch):
    monkeypatch.setattr(_async_job, 'DEATH_GRACE', 0.2)
    job = str(tmp_path / 'job')
    write(job, dict(started=True, finished=False))
    old = time.time() - _async_job.STARTUP_GRACE - 5
    os.utime(job, (old, old))
    dummy, dummy, dead = poll(job, str(tmp_path / 'progress'), 5)
    assert 'no progress file' in dead


def test_a_job_started_in_the_background_returns_at_once_and_leaves_its_result(tmp_path):
    go = tmp_path / 'go'

    def job():
        while not go.exists():
            time.sleep(0.01)
        return dict(changed=True, session=os.getsid(0), stdout=os.readlink('/proc/self/fd/1'),
                    pid=os.getpid())

    started = start_job(str(tmp_path / 'async'), job)
    jid = started['ansible_job_id']
    assert started == dict(started=True, finished=False, ansible_job_id=jid,
                           results_file=str(tmp_path / 'async' / jid))
    # the task has returned; the job waits for us
    with open(started['results_file']) as handle:
        assert json.load(handle) == dict(started=True, finished=False, ansible_job_id=jid)
    go.write_text('')
    result, dummy, dead = poll(started['results_file'], None, 10)
    assert dead is None and result['changed'] is True
    # detached: a session of its own, nothing of the task's output held open
    assert result['session'] != os.getsid(0) and result['stdout'] == os.devnull
    assert result['pid'] != os.getpid()


def test_a_job_that_raises_has_a_failed_result(tmp_path):
    def job():
        raise ValueError('no luck')
    started = start_job(str(tmp_path), job)
    result, dummy, dummy = poll(started['results_file'], None, 10)
    assert result['failed'] is True and 'ValueError: no luck' in result['msg']


def test_a_job_in_the_foreground_has_its_result_before_returning(tmp_path):
    started = start_job(str(tmp_path), lambda: dict(changed=False, domains=[]), background=False)
    with open(started['results_file']) as handle:
        assert json.load(handle) == dict(changed=False, domains=[])
