# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Ansible async jobs on the host that runs them: one long poll, and a job a module starts itself.

``poll`` waits for the job's status file (written by Ansible's async wrapper, or by
``start_job``) for a few seconds, checking often, so a finished job is seen at once without
the controller asking again and again. Our async modules write a progress file that names
their process: a job whose process is gone without a result is reported dead instead of being
waited for until its async limit.

``start_job`` is the async wrapper's work done by the module itself: the module checks its
arguments, then forks the job and returns at once. The job begins while the task returns,
without a wrapper process and a second start of the module; ``async_status`` and
``async_progress`` read its status file as any other.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
import traceback

from ansible_collections.virtops.libvirt.plugins.module_utils._backup_record import size_text
from ansible_collections.virtops.libvirt.plugins.module_utils._lock import alive, process_start

# A stat of the job's status file: cheap enough to notice a finished job within 20 ms.
CHECK_EVERY = 0.02
# Whether the job's process still lives (files and /proc read): less often.
ALIVE_EVERY = 0.5
# A job must show a progress file this long after it started, or it is taken for dead.
STARTUP_GRACE = 60
# A suspicion of death must hold this long: a module that just ended writes its result a moment later.
DEATH_GRACE = 3


def progress_line(label, done, total, ready=False):
    """``web01 copy of vda: 42.0% (8.4 GiB of 20.0 GiB)``, as async_progress prints it."""
    if not total:
        return '%s: running' % label
    return '%s: %.1f%% (%s of %s)%s' % (label, 100.0 * done / total, size_text(done),
                                        size_text(total), ', READY' if ready else '')


def write_json(path, record):
    """Atomically replace ``path`` with ``record``."""
    tmp = path + '.tmp'
    with open(tmp, 'w') as handle:
        json.dump(record, handle)
    os.replace(tmp, path)


def write_progress(path, record):
    """Atomically replace the progress file; the record names this process."""
    pid = os.getpid()
    write_json(path, dict(record, pid=pid, start=process_start(pid)))


def start_job(async_dir, run, background=True):
    """Start ``run()`` as an async job; return what an async task returns when it starts one.

    The status file ``<async_dir>/<jid>`` says "started" until it holds ``run()``'s result (a
    dict), as the async wrapper writes it. In the background (a detached process, in a session
    of its own, its standard streams on /dev/null, so the task's connection returns at once),
    else (a quick check-mode preview) in this process, before returning.

    ``run`` must need no import that it did not make before: the module's payload, from which
    it was imported, is removed when the module returns.
    """
    async_dir = os.path.expanduser(async_dir)
    os.makedirs(async_dir, exist_ok=True)
    jid = 'j%d.%d' % (random.randint(0, 999999999999), os.getpid())
    path = os.path.join(async_dir, jid)
    write_json(path, dict(started=True, finished=False, ansible_job_id=jid))
    started = dict(started=True, finished=False, ansible_job_id=jid, results_file=path)
    if not background:
        write_json(path, _result_of(run))
        return started
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the job's processes
        try:
            os.setsid()
            if os.fork():
                os._exit(0)  # pylint: disable=protected-access
            os.umask(0o022)
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            write_json(path, _result_of(run))
        finally:
            # never the module's exit: no JSON on the task's stdout, no removal of its payload
            os._exit(0)  # pylint: disable=protected-access
    os.waitpid(pid, 0)
    return started


def _result_of(run):
    try:
        return run()
    except BaseException:  # pylint: disable=broad-except
        return dict(failed=True, msg='the job failed: %s' % traceback.format_exc()[-2000:])


def read_json(path):
    try:
        with open(path) as handle:
            data = json.load(handle)
    except (IOError, OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def job_result(job_file):
    """The job's result when it has finished, else None."""
    data = read_json(job_file)
    if data is None or ('started' in data and not data.get('finished')):
        return None
    return data


def _dead_reason(job_file, progress_file, now):
    """Why the job's process looks dead, or None."""
    if not progress_file:
        return None
    progress = read_json(progress_file)
    if progress and progress.get('pid'):
        if not alive(progress):
            return 'its process %s is gone' % progress['pid']
        return None
    try:
        age = now - os.stat(job_file).st_mtime
    except OSError:
        return 'its status file %s is missing' % job_file
    if age > STARTUP_GRACE:
        return 'it has written no progress file for %d seconds' % age
    return None


def poll(job_file, progress_file, wait):
    """Wait up to ``wait`` seconds; return ``(result, progress, dead)``.

    ``result`` is the finished job's result or None, ``progress`` the last
    progress record (or {}), ``dead`` a reason when the job died without a
    result, else None.
    """
    deadline = time.monotonic() + wait
    suspect_since = None
    seen = None
    alive_checked = 0.0
    while True:
        try:
            stat = os.stat(job_file)
            changed = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        except OSError:
            changed = None
        if changed != seen:  # written (or replaced) since the last look
            seen = changed
            result = job_result(job_file)
            if result is not None:
                return result, {}, None
        now = time.monotonic()
        if now - alive_checked >= ALIVE_EVERY:
            alive_checked = now
            reason = _dead_reason(job_file, progress_file, time.time())
            if reason is None:
                suspect_since = None
            elif suspect_since is None:
                suspect_since = now
            elif now - suspect_since >= DEATH_GRACE:
                return None, {}, reason
        if now >= deadline and suspect_since is None:
            return None, (read_json(progress_file) if progress_file else None) or {}, None
        time.sleep(CHECK_EVERY)
