# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Run a planned block commit: start or adopt the job, wait, finish, verify, clean up."""

from __future__ import annotations

import contextlib
import os
import signal
import time

from ansible_collections.virtops.libvirt.plugins.module_utils._async_job import write_progress
from ansible_collections.virtops.libvirt.plugins.module_utils._blockjob import (
    BlockJob,
    Deadline,
    JobEnded,
    JobTimeout,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._chain import (
    ChainError,
    find_disk,
    parse_disks,
    same_path,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._commit_plan import plan_commit
from ansible_collections.virtops.libvirt.plugins.module_utils._failpoint import failpoint
from ansible_collections.virtops.libvirt.plugins.module_utils._libvirt import (
    LibvirtClient,
    LibvirtFailure,
    error_code,
    libvirt,
    live_xml,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._snapshot import (
    delete_committed,
    remove_committed_mark,
    write_committed_mark,
)

# A libvirtd restart drops our connection; QEMU keeps the job, so reconnect and adopt it.
RECONNECT_WINDOW = 90
RECONNECTS = 3
PROGRESS_EVERY = 1.0


@contextlib.contextmanager
def signals_deferred():
    """Hold SIGTERM/SIGINT/SIGHUP: a pivot is never left between confirmation and clean-up.

    A Python handler, not a signal mask: a mask holds only the calling thread, and
    the default action of a signal that reaches libvirt's event-loop thread would
    still end the process. The handler records the signal; it is sent again, with
    the old disposition, once the section is over.
    """
    held = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    caught = []
    previous = dict((signum, signal.signal(signum, lambda num, frame: caught.append(num)))
                    for signum in held)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum in caught[:1]:
            os.kill(os.getpid(), signum)


def _chain_list(chain):
    return [image.short() for image in chain]


def _chain_text(chain):
    return ''.join('%s (%s)\n' % (image['path'], image['format']) for image in chain)


def chain_diff(before, after):
    return dict(before=_chain_text(before), after=_chain_text(after))


class CommitRun(object):
    """One blockcommit task against one disk of a running domain."""

    def __init__(self, client, params, backing_of):
        self.client = client
        self.params = params
        self.backing_of = backing_of
        self.started = time.monotonic()
        self.domain = client.domain(params['domain'])
        self.adopted = False
        self.deleted = []
        self.last_job = {}
        self.deadline = None
        self.reconnected = 0
        self._progress_at = None

    def progress(self, info, ready=False, force=False):
        """Rewrite the progress file (at most once a second unless forced)."""
        path = self.params.get('progress_file')
        now = time.monotonic()
        if not path or (not force and self._progress_at is not None
                        and now - self._progress_at < PROGRESS_EVERY):
            return
        self._progress_at = now
        info = info or {}
        write_progress(path, dict(phase='ready' if ready else 'copy', ready=ready,
                                  bytes_done=info.get('cur', 0), bytes_total=info.get('end', 0)))

    def _connection_lost(self):
        try:
            return not self.client.conn.isAlive()
        except libvirt.libvirtError:
            return True

    def _reconnect(self):
        """Open a new connection once libvirtd answers again; False when it does not."""
        self.client.close()
        deadline = time.monotonic() + RECONNECT_WINDOW
        while time.monotonic() < deadline:
            try:
                self.client = LibvirtClient(self.client.uri, events=True)
                self.domain = self.client.domain(self.params['domain'])
                self.reconnected += 1
                return True
            except LibvirtFailure:
                time.sleep(1)
        return False

    def fail(self, msg, job=None):
        disk = job.disk() if job is not None else None
        raise LibvirtFailure(msg, chain=_chain_list(disk.chain) if disk else None,
                             job=self.last_job)

    def _plan(self, job):
        info = job.info()
        disk = job.disk()
        try:
            plan = plan_commit(disk, top=self.params['top'], base=self.params['base'],
                               active=self.params['active'], delete=self.params['delete'],
                               job_type=info.get('type') if info else None,
                               backing_of=self.backing_of)
        except ChainError as exc:
            raise LibvirtFailure(str(exc), chain=_chain_list(disk.chain), job=info)
        return plan

    def run(self, check_mode):
        """Plan and carry out the commit; across a libvirtd restart, adopt the job and go on."""
        if not check_mode:
            self.progress({}, force=True)
        self.deadline = Deadline(self.params['timeout'])
        while True:
            try:
                return self._run_once(check_mode)
            except (LibvirtFailure, libvirt.libvirtError):
                if check_mode or self.reconnected >= RECONNECTS or not self._connection_lost():
                    raise
                if not self._reconnect():
                    raise

    def _run_once(self, check_mode):
        params = self.params
        if not self.domain.isActive():
            raise LibvirtFailure(
                'domain %s is shut off: libvirt can only commit the disks of a running '
                'domain' % self.domain.name())
        target = find_disk(parse_disks(live_xml(self.domain)), params['disk']).target
        with BlockJob(self.client.conn, self.domain, target) as job:
            plan = self._plan(job)
            chain_before = _chain_list(plan.disk.chain)
            result = dict(changed=plan.changes, chain_before=chain_before, job={},
                          committed_bytes=0, adopted=plan.action == 'adopt', deleted=[],
                          msg=plan.reason)
            if not plan.changes or check_mode:
                result.update(chain_after=_chain_list(plan.chain_after(params['finish'])),
                              elapsed=self._elapsed())
                if plan.changes:
                    result['msg'] = self._describe(plan)
                return result
            msg = self._execute(job, plan)
            disk = job.disk()
        result.update(chain_after=_chain_list(disk.chain), job=self._job_result(),
                      committed_bytes=self.last_job.get('end', 0), adopted=self.adopted,
                      deleted=self.deleted, elapsed=self._elapsed(), msg=msg)
        return result

    def _elapsed(self):
        return round(time.monotonic() - self.started, 3)

    def _job_result(self):
        return dict((key, self.last_job.get(key)) for key in ('type', 'cur', 'end'))

    @staticmethod
    def _describe(plan):
        if plan.action == 'adopt':
            return 'would finish the %s' % plan.reason
        return 'would commit %s into %s' % (plan.top.path, plan.base.path)

    def _execute(self, job, plan):
        if plan.action == 'adopt' and not plan.active:
            self.adopted = True
            self._wait_intermediate(job, None)
            plan = self._plan(job)
            if not plan.changes:
                return 'finished an intermediate commit job left on %s' % job.target
        if plan.action == 'adopt':
            self.adopted = True
            if (job.info() or {}).get('bandwidth', 0) != self.params['bandwidth'] * 1024 * 1024:
                job.set_speed(self.params['bandwidth'])  # a dead run's limit is not ours
        else:
            self._start(job, plan)
        if plan.active:
            return self._finish_active(job, plan)
        self._wait_intermediate(job, plan)
        self._delete(job, plan)
        return 'committed %s into %s' % (plan.top.path, plan.base.path)

    def _start(self, job, plan):
        flags = 0
        if plan.active:
            flags |= libvirt.VIR_DOMAIN_BLOCK_COMMIT_ACTIVE
        if self.params['keep_relative']:
            flags |= libvirt.VIR_DOMAIN_BLOCK_COMMIT_RELATIVE
        job.reset_status()  # an adopted job's last event must not speak for this one
        try:
            self.domain.blockCommit(job.target, plan.base.path, plan.top.path,
                                    self.params['bandwidth'], flags)
        except libvirt.libvirtError as exc:
            raise LibvirtFailure('cannot start the commit of %s into %s: %s' % (
                plan.top.path, plan.base.path, exc), libvirt_code=error_code(exc))
        # A small commit can end before this first look: its type is still known.
        self.last_job = job.info() or dict(type='active_commit' if plan.active else 'commit',
                                           cur=0, end=0)

    def _timeout(self, job, what):
        self.last_job = dict(job.last_info)
        job.cancel()
        self.fail('timeout: %s did not %s within %s seconds; the job was cancelled (never '
                  'pivoted) and the disk still runs on its active layer' % (
                      what, 'reach READY' if 'active' in what else 'finish',
                      self.params['timeout']), job)

    def _finish_active(self, job, plan):
        top, base = plan.top.path, plan.base.path
        try:
            job.wait_ready(self.deadline, on_tick=self.progress)
        except JobTimeout:
            self._timeout(job, 'the active commit of %s' % job.target)
        except JobEnded as ended:
            if self.params['finish'] == 'pivot' and self._pivoted_by_another(job, top, base):
                self._delete(job, plan)
                return 'another process pivoted %s to %s: %s is the active layer' % (
                    job.target, base, base)
            self.fail('the active commit of %s ended before READY (status %s); the disk '
                      'was not pivoted' % (job.target, ended.status), job)
        self.last_job = job.info() or dict(job.last_info)
        self.progress(self.last_job, ready=True, force=True)
        failpoint('before_pivot')
        if self.params['finish'] == 'cancel':
            job.cancel()
            disk = job.disk()
            if disk.mirror is not None or not same_path(disk.source, top):
                self.fail('after the cancel, %s is not on %s alone' % (job.target, top), job)
            return 'committed %s into %s; cancelled: %s stays the active layer' % (
                top, base, top)
        with signals_deferred():
            marked = self._mark_committed(plan, base)
            try:
                ours = job.pivot(base)
                disk = job.disk()
                if disk.mirror is not None or not same_path(disk.source, base):
                    self.fail('the pivot of %s to %s is not confirmed by the live XML; nothing '
                              'was deleted' % (job.target, base), job)
            except BaseException:
                self._unmark_in_chain(job, marked)
                raise
            failpoint('after_pivot')
            self._delete(job, plan)
        return 'committed %s into %s and pivoted%s: %s is the active layer' % (
            top, base, '' if ours else ' (by another process, first)', base)

    @staticmethod
    def _pivoted_by_another(job, top, base):
        """The job vanished and the live XML shows the end state we wanted."""
        disk = job.disk()
        return (not job.info() and disk.mirror is None and same_path(disk.source or '', base)
                and disk.position(top) is None)

    def _wait_intermediate(self, job, plan):
        try:
            status = job.wait_gone(self.deadline, on_tick=self.progress)
        except JobTimeout:
            self._timeout(job, 'the commit on %s' % job.target)
        self.last_job = dict(job.last_info)
        if status in (libvirt.VIR_DOMAIN_BLOCK_JOB_FAILED, libvirt.VIR_DOMAIN_BLOCK_JOB_CANCELED):
            self.fail('the commit job on %s %s' % (
                job.target,
                'failed' if status == libvirt.VIR_DOMAIN_BLOCK_JOB_FAILED else 'was cancelled'),
                job)
        if self.last_job:
            self.last_job['cur'] = self.last_job.get('end')
        if plan is not None and job.disk().position(plan.top.path) is not None:
            self.fail('the commit job on %s ended but %s is still in the chain' % (
                job.target, plan.top.path), job)

    def _mark_committed(self, plan, base):
        """Before the pivot, mark the active image that it drops and ``_delete`` removes.

        A run killed between the pivot and the deletion leaves the file; the mark tells the
        next snapshot that it holds nothing the VM lacks, so it removes it instead of refusing
        it as a leftover that may hold guest data. Only the active image (the backup's overlay)
        is marked: nothing reads a mark next to an intermediate image.
        """
        if not self.params['delete'] or plan.top.kind != 'file':
            return []
        try:
            write_committed_mark(plan.top.path, base)
        except OSError:
            return []  # only the cleanup after a kill is lost
        return [plan.top.path]

    @staticmethod
    def _unmark_in_chain(job, marked):
        """After a failed or unconfirmed pivot, a mark stays only on an image the disk left.

        When the disk cannot be read, none stays: a missing mark only costs the cleanup, a
        mark on an image still in use could cost its data.
        """
        try:
            position = job.disk().position
        except (LibvirtFailure, libvirt.libvirtError):
            position = None
        for path in marked:
            if position is None or position(path) is not None:
                remove_committed_mark(path)

    def _delete(self, job, plan):
        """Remove committed images that no disk of the domain uses any more."""
        if not self.params['delete']:
            return
        in_use = [image.path for disk in parse_disks(live_xml(self.domain))
                  for image in disk.chain if image.path]
        for image in plan.removed(self.params['finish']):
            if image.kind != 'file':
                continue
            if any(same_path(image.path, p) for p in in_use):
                remove_committed_mark(image.path)  # still used: no longer a committed leftover
                continue
            try:
                if delete_committed(image.path):
                    self.deleted.append(image.path)
            except OSError as exc:
                self.fail('the commit succeeded but %s could not be deleted: %s' % (
                    image.path, exc), job)
