# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The live backup of one domain, and of many, ``parallel`` at a time.

``DomainRun`` is the workflow of one domain, in the order the role used to
write it as tasks: take the lock, decide (``backup_prepare``), bring back a VM
an earlier run left on overlays of ours, freeze the disks with one atomic
snapshot, copy them (at the same time), commit every overlay back and pivot
(always, also after a failed copy), complete the backup (manifest last, rename,
retention), release the lock. Each step is the code of the module of the same
name, so a rule lives in one place.

``run_domains`` runs one ``DomainRun`` per domain in a forked child, up to
``parallel`` at once, and writes one progress file for ``async_progress``.

This is a private module_utils: its API may change without notice.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time

from ansible_collections.virtops.libvirt.plugins.module_utils._async_job import (
    progress_line,
    read_json,
    write_progress,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._backup_plan import PlanError, plan
from ansible_collections.virtops.libvirt.plugins.module_utils._backup_prepare import (
    BACKUP,
    RECOVER,
    SKIP,
    PrepareError,
    preview,
    read_domain,
    remove_partials,
    stale_partials,
    start,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._backup_record import (
    manifest,
    ok_record,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._backup_store import finalize
from ansible_collections.virtops.libvirt.plugins.module_utils._blockjob import Deadline
from ansible_collections.virtops.libvirt.plugins.module_utils._commit import (
    CommitRun,
    signals_deferred,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._chain import ChainError
from ansible_collections.virtops.libvirt.plugins.module_utils._disk_info import domain_facts
from ansible_collections.virtops.libvirt.plugins.module_utils._failpoint import failpoint
from ansible_collections.virtops.libvirt.plugins.module_utils._forked import Child, wait_any
from ansible_collections.virtops.libvirt.plugins.module_utils._image_copy import (
    ImageCopy,
    die_with_parent,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._libvirt import (
    LibvirtClient,
    LibvirtFailure,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._lock import (
    LockBusy,
    acquire,
    busy_message,
    controller_gone,
    holder_state,
    read_record,
    release,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._offline_repair import OfflineRepair
from ansible_collections.virtops.libvirt.plugins.module_utils._qemu_img import QemuImg
from ansible_collections.virtops.libvirt.plugins.module_utils._retention import policy
from ansible_collections.virtops.libvirt.plugins.module_utils._snapshot import DEFAULT_SUFFIX, SnapshotRun
from ansible_collections.virtops.libvirt.plugins.module_utils._worker import LostLock, Worker

try:
    import libvirt
except ImportError:  # pragma: no cover - ensure_libvirt reports it
    libvirt = None

TICK = 0.1
PROGRESS_EVERY = 0.5


class Interrupted(BaseException):
    """SIGTERM reached the domain's process: the copies stop, the overlays are committed back.

    A BaseException, so that no ``except Exception`` on the way (AnsibleModule.run_command
    turns those into fail_json) takes it for an ordinary error.
    """


class ChildQemuImg(QemuImg):
    """``qemu-img`` for a domain's process: killed with it, and killed when it is interrupted.

    AnsibleModule.run_command would turn an interruption into fail_json (an exit, with JSON on
    the job's stdout) and leave its qemu-img running.
    """

    def run(self, args, what):
        argv = [self.binary] + list(args)
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, preexec_fn=die_with_parent,
                                env=dict(os.environ, LANG='C', LC_ALL='C'))
        try:
            out, err = proc.communicate()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        out, err = out.decode('utf-8', 'replace'), err.decode('utf-8', 'replace')
        if proc.returncode != 0:
            raise LibvirtFailure('%s failed: %s' % (what, (err or out).strip()), rc=proc.returncode)
        return out


def _interrupted(signum, dummy_frame):
    raise Interrupted('interrupted by signal %d' % signum)


def _kill(pids):
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def failure_record(name, error):
    return dict(domain=name, status='failed', summary=error, error=error, bytes=0, seconds=0,
                consistency=None, path=None)


def failure_summary(record):
    """A failed domain's line: why, then where its VM is when that was checked after the failure."""
    return '%s; the VM is %s' % (record['error'], record['vm']) if record.get('vm') else record['error']


def lock_path(lock_dir, uuid):
    return os.path.join(lock_dir, '%s.lock' % uuid)


def commit_progress(lock_dir, uuid, target):
    return os.path.join(lock_dir, '.%s.%s.commit' % (uuid, target))


def progress_files(params, entry):
    """``[(kind, target, path)]`` of the copies and commits of a domain in progress."""
    found = []
    pattern = os.path.join(glob.escape(params['dest']), glob.escape(entry['name']), '*.partial', '.*.progress')
    for path in sorted(glob.glob(pattern)):
        found.append(('copy', os.path.basename(path)[1:-len('.progress')], path))
    prefix = os.path.join(params['lock_dir'], '.%s.' % entry['uuid'])
    for path in sorted(glob.glob(glob.escape(prefix) + '*.commit')):
        found.append(('commit', path[len(prefix):-len('.commit')], path))
    return found


def _message(exc):
    return getattr(exc, 'msg', None) or str(exc) or type(exc).__name__


class DomainRun(object):
    """The backup (or, with ``recover_only``, the recovery) of one domain, in its own process.

    ``params`` are the ``backup_domains`` options; ``qemu`` a ``QemuImg``.
    """

    def __init__(self, params, entry, qemu):
        self.p = params
        self.name = entry['name']
        self.uuid = entry.get('uuid')
        self.qemu = qemu
        self.lock = lock_path(params['lock_dir'], self.uuid) if self.uuid else None
        self.locked = dict(lock=self.lock, lock_owner=params['lock_owner'])
        self.notes = []
        self.timeline = {}

    # --- the whole domain ---------------------------------------------------------------

    def run(self):
        if not self.uuid:
            return failure_record(self.name, 'domain %s not found at %s' % (self.name, self.p['uri']))
        signal.signal(signal.SIGTERM, _interrupted)
        taken = []
        try:
            # Takes over at once from a dead run whose controller ran here (stopping what it
            # left running), waits for the lease of one from elsewhere. Not interrupted
            # between taking a dead run's lock and stopping its processes.
            with signals_deferred():
                taken.append(acquire(self.lock, self.p['lock_owner'], self.p['lease'],
                                     self.p['controller'], self.p['lease'] + 10))
        except LockBusy as exc:
            return failure_record(self.name, busy_message(self.lock, exc.holder, exc.why))
        except (OSError, Interrupted) as exc:
            if taken:
                self._release({})
            return failure_record(self.name, 'cannot lock %s: %s' % (self.lock, _message(exc)))
        previous = taken[0][1]
        try:
            record = self._recover(previous) if self.p['recover_only'] else self._backup()
        except BaseException as exc:  # pylint: disable=broad-except
            record = failure_record(self.name, _message(exc))
            # Whatever failed, the VM goes back onto its own images; the summary says it is.
            try:
                brought = self.bring_back()
            except BaseException as again:  # pylint: disable=broad-except
                record['error'] = record['summary'] = '%s; then: %s' % (record['error'],
                                                                        _message(again))
            else:
                record['vm'] = 'brought back onto its own images: %s' % ', '.join(brought) \
                    if brought else 'on its own images'
                record['summary'] = failure_summary(record)
        finally:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
        record['timeline'] = self.timeline
        self._release(record)
        return record

    def _release(self, record):
        try:
            release(self.lock, self.p['lock_owner'])
        except (LockBusy, OSError) as exc:
            record.setdefault('warnings', []).append('the lock %s was not released: %s' % (
                self.lock, exc))

    def step(self, what):
        """Check that the run still holds the lock and record this process in it (for good)."""
        return Worker(self.locked, what, stay=True)

    def _phase(self, name, started):
        self.timeline[name] = [round(started, 3), round(time.time(), 3)]

    def _backup(self):
        started = time.time()
        prepared = self.prepare()
        if prepared['action'] == RECOVER:
            self.bring_back()
            prepared = self.prepare()
            if prepared['action'] == RECOVER:
                raise LibvirtFailure('%s still runs on overlays of ours after the recovery: %s' % (
                    self.name, ', '.join(prepared['overlays'])))
        self._phase('prepare', started)
        if prepared['action'] == SKIP:
            return dict(domain=self.name, status='skipped', summary=prepared['summary'], bytes=0,
                        seconds=0, consistency=None, path=None)
        snapshot = None
        failed = None
        try:
            if prepared['domain']['running']:
                snapshot = self.snapshot(prepared)
                sources = [(disk['target'], disk['frozen']) for disk in snapshot['disks']
                           if disk['status'] == 'snapshotted']
            else:
                sources = [(disk['target'], disk['source']) for disk in prepared['disks']]
            copies = self.copy(prepared, sources)
        except BaseException as exc:
            failed = exc
            raise
        finally:
            if snapshot:
                try:
                    self.commit_back([(disk['target'], disk['overlay'])
                                      for disk in snapshot['disks']
                                      if disk['status'] == 'snapshotted'])
                except BaseException as exc:
                    if failed is None:
                        raise
                    # the copy's error first: it is why the backup failed
                    raise LibvirtFailure('%s; then: %s' % (_message(failed), _message(exc)))
        started = time.time()
        the_manifest = manifest(prepared, snapshot, copies)
        retention = policy(last=self.p['keep'], daily=self.p['keep_daily'],
                           weekly=self.p['keep_weekly'], monthly=self.p['keep_monthly'])
        with self.step('completion of %s' % prepared['path']):
            final = finalize(prepared['path'], the_manifest, retention)
        self._phase('finalize', started)
        return dict(ok_record(the_manifest, final, self.notes),
                    quiesce_error=snapshot.get('quiesce_error') if snapshot else None)

    def _recover(self, previous):
        overlays = self.bring_back()
        with self.step('removal of the incomplete backups of %s' % self.name):
            removed = remove_partials(os.path.join(self.p['dest'], self.name))
        parts = []
        if previous:
            parts.append('lock of the dead run %s taken over (%d process(es) stopped)' % (
                previous.get('owner'), len(previous.get('stopped') or [])))
        parts.append('disks on overlays were brought back: %s' % ', '.join(overlays)
                     if overlays else 'no disk on an overlay')
        parts.append('%d incomplete backup(s) removed' % len(removed))
        return dict(domain=self.name, status='ok', summary='; '.join(parts), overlays=overlays,
                    took_over=previous.get('owner') if previous else None,
                    stopped=(previous.get('stopped') or []) if previous else [], partials=removed,
                    notes=self.notes)

    # --- check mode ---------------------------------------------------------------------

    def preview(self):
        """What a run would do with the domain, changing nothing and taking no lock."""
        if not self.uuid:
            return failure_record(self.name, 'domain %s not found at %s' % (self.name, self.p['uri']))
        try:
            if self.p['recover_only']:
                return self._recover_preview()
            plan, disks, dummy = read_domain(self.p['uri'], self.uuid, self.qemu,
                                             self.p['exclude_disks'], self.p['offline'], DEFAULT_SUFFIX)
            if plan['action'] == SKIP:
                return dict(domain=self.name, status='skipped', summary=plan['summary'],
                            plan=None, bytes=0, seconds=0, consistency=None, path=None)
            retention = policy(last=self.p['keep'], daily=self.p['keep_daily'],
                               weekly=self.p['keep_weekly'], monthly=self.p['keep_monthly'])
            the_plan, summary = preview(plan, disks, self.p['dest'], retention, self.lock)
        except (PrepareError, LibvirtFailure, OSError) as exc:
            return failure_record(self.name, _message(exc))
        return dict(domain=self.name, status='planned', summary=summary, plan=the_plan, bytes=0,
                    seconds=0, consistency=None, path=None)

    def _recover_preview(self):
        holder = read_record(self.lock)
        state = holder_state(holder)
        if state == 'held':
            return failure_record(self.name, busy_message(self.lock, holder))
        with LibvirtClient(self.p['uri']) as client:
            domain = domain_facts(client.domain(self.uuid), self.qemu, DEFAULT_SUFFIX)[0]
        overlays = list(domain['backup_overlays'])
        partials = stale_partials(os.path.join(self.p['dest'], self.name))
        parts = ['lock of the dead run %s would be taken over' % holder.get('owner')] \
            if state in ('expired', 'dead') else []
        parts.append('disks on overlays would be brought back: %s' % ', '.join(overlays)
                     if overlays else 'no disk on an overlay')
        parts.append('%d incomplete backup(s) would be removed' % len(partials))
        return dict(domain=self.name, status='ok', summary='; '.join(parts), overlays=overlays,
                    took_over=holder.get('owner') if state in ('expired', 'dead') else None,
                    stopped=[], partials=partials, notes=[])

    # --- the steps ----------------------------------------------------------------------

    def prepare(self):
        """Read the domain, decide, and for a backup start its directory (``backup_prepare``)."""
        with self.step('start of the backup of %s' % self.name):
            plan, dummy, xml = read_domain(self.p['uri'], self.uuid, self.qemu,
                                           self.p['exclude_disks'], self.p['offline'], DEFAULT_SUFFIX)
            return start(plan, self.p['dest'], xml) if plan['action'] == BACKUP else plan

    def snapshot(self, prepared):
        started = time.time()
        params = dict(uri=self.p['uri'], domain=self.uuid, disks=None, exclude=prepared['exclude'],
                      quiesce=self.p['quiesce'], suffix=DEFAULT_SUFFIX,
                      block_overlay_dir=self.p['block_overlay_dir'], **self.locked)
        with self.step('snapshot of %s' % self.name):
            with LibvirtClient(self.p['uri']) as client:
                result = SnapshotRun(client, params).run(False)
        if result.get('stale_overlays'):
            self.notes.append('removed %s first: committed and pivoted away from by a run killed '
                              'before it deleted them' % ', '.join(result['stale_overlays']))
        self._phase('snapshot', started)
        failpoint('after_snapshot')
        return result

    def copy(self, prepared, sources):
        """Copy every disk at once (one thread each); the copies' results, in disk order."""
        started = time.time()
        results = [None] * len(sources)
        errors = []
        running = {}  # index -> pid of the copy's qemu-img while it runs

        with self.step('copies of %s' % self.name) as worker:
            class Recorder(object):
                """Records a copy's qemu-img in the lock and here, to stop it."""

                def __init__(self, index):
                    self.index = index

                def add(self, pid, what):
                    running[self.index] = pid
                    worker.add(pid, what)

            def one(index, target, source):
                params = dict(src=source, dest=os.path.join(prepared['path'], target + '.qcow2'),
                              src_format=None, format='qcow2', compress=self.p['compress'],
                              backing_chain=True, checksum=self.p['checksum'],
                              verify=self.p['verify'], force=False,
                              progress_file=os.path.join(prepared['path'], '.%s.progress' % target),
                              # qemu-img takes the image lock: a running VM holds its frozen
                              # image read-only, which allows it; a shut-off one cannot start on
                              # it mid-copy; an image still written makes the copy fail.
                              force_share=False, bandwidth=self.p['copy_bandwidth'])
                try:
                    results[index] = ImageCopy(self.qemu, params, Recorder(index)).run()
                except BaseException as exc:  # pylint: disable=broad-except
                    errors.append('copy of %s: %s' % (target, _message(exc)))
                finally:
                    # its qemu-img has been waited for: the pid may be another process's soon
                    running.pop(index, None)

            def stop_copies():
                if running:
                    timed_out.append(True)
                    _kill(list(running.values()))

            timed_out = []
            timer = threading.Timer(self.p['copy_timeout'], stop_copies)
            timer.daemon = True
            timer.start()
            try:
                self._copy_all(one, sources, running)
            finally:
                timer.cancel()
        self._phase('copy', started)
        if timed_out:
            errors.insert(0, 'the copies did not finish within %ds (live_backup_copy_timeout) '
                             'and were stopped' % self.p['copy_timeout'])
        if errors:
            raise LibvirtFailure('; '.join(errors))
        return results

    @staticmethod
    def _copy_all(one, sources, running):
        """Run ``one`` for each disk: in this thread for one disk, else a thread each."""
        if len(sources) == 1:
            one(0, *sources[0])
        else:
            threads = [threading.Thread(target=one, args=(index,) + source)
                       for index, source in enumerate(sources)]
            try:
                for thread in threads:
                    thread.start()
                for thread in threads:
                    while thread.is_alive():
                        thread.join(TICK)
            except BaseException:
                _kill(list(running.values()))
                for thread in threads:
                    thread.join()
                raise

    def commit_back(self, overlays):
        """Commit each overlay back into its disk's image and pivot; every disk is tried."""
        started = time.time()
        errors = []
        for target, top in overlays:
            try:
                self.commit(target, top)
            except BaseException as exc:  # pylint: disable=broad-except
                errors.append('%s: %s' % (target, _message(exc)))
        self._phase('commit', started)
        if errors:
            raise LibvirtFailure('the VM could not be brought back onto its own images: %s'
                                 % '; '.join(errors))

    def commit(self, target, top, bandwidth=None):
        """The active commit of ``top`` into its backing image, and the pivot.

        A commit that could not reach READY within the bandwidth (the guest writes faster)
        is done again unthrottled; a VM that stopped meanwhile is repaired offline.
        """
        params = dict(uri=self.p['uri'], domain=self.uuid, disk=target, top=top, base=None,
                      active=True, finish='pivot', delete=True, keep_relative=False,
                      bandwidth=self.p['bandwidth'] if bandwidth is None else bandwidth,
                      timeout=self.p['timeout'],
                      progress_file=commit_progress(self.p['lock_dir'], self.uuid, target),
                      **self.locked)
        try:
            with self.step('commit of %s' % target):
                with LibvirtClient(self.p['uri'], events=True) as client:
                    run = CommitRun(client, params, self.qemu.backing_of)
                    try:
                        return run.run(False)
                    finally:
                        run.client.close()
                        for path in (params['progress_file'], params['progress_file'] + '.tmp'):
                            if os.path.exists(path):
                                os.unlink(path)
        except (LibvirtFailure, ChainError, libvirt.libvirtError) as exc:
            if bandwidth == 0 or isinstance(exc, LostLock):
                raise
            if self.running():
                self.commit(target, top, bandwidth=0)
                how = 'committed unthrottled'
            else:
                self.offline_repair()
                how = 'merged offline'
            self.notes.append('%s: %s after: %s' % (target, how, _message(exc)))
            return None

    def running(self):
        with LibvirtClient(self.p['uri']) as client:
            return bool(client.domain(self.uuid).isActive())

    def offline_repair(self):
        with self.step('offline repair of %s' % self.name):
            with LibvirtClient(self.p['uri']) as client:
                return OfflineRepair(client, self.qemu,
                                     dict(domain=self.uuid, suffix=DEFAULT_SUFFIX)).run(False)

    def bring_back(self):
        """Every disk on an overlay of ours back onto its own image; the targets brought back."""
        with LibvirtClient(self.p['uri']) as client:
            domain, disks = domain_facts(client.domain(self.uuid), self.qemu, DEFAULT_SUFFIX)
        if not domain['backup_overlays']:
            return []
        if domain['running']:
            self.commit_back([(disk['target'], disk['source']) for disk in disks
                              if disk['backup_overlay']])
        else:
            self.offline_repair()
        return list(domain['backup_overlays'])


# --- many domains -----------------------------------------------------------------------

def plan_run(params, work):
    """``backup_plan``'s ``(domains, warnings)``, computed in a child: this process forks the
    domains' processes next, and opens no libvirt connection of its own."""
    def job():
        try:
            domains, warnings = plan(params)
        except PlanError as exc:
            return dict(errors=exc.errors)
        except LibvirtFailure as exc:
            return dict(failure=exc.msg)
        return dict(domains=domains, warnings=warnings)
    child = Child(job, os.path.join(work, 'plan.json'))
    while not child.poll():
        wait_any([child], TICK)
    result = child.result()
    if result is None:
        raise LibvirtFailure('the check of the settings %s' % child.how_it_ended())
    if 'errors' in result:
        raise PlanError(result['errors'])
    if 'failure' in result:
        raise LibvirtFailure(result['failure'])
    return result['domains'], result['warnings']


def _line(name, kind, target, record):
    return progress_line('%s %s of %s' % (name, kind, target), int(record.get('bytes_done') or 0),
                         int(record.get('bytes_total') or 0), bool(record.get('ready')))


class Supervisor(object):
    """Runs the domains' children, ``parallel`` at a time, and writes the job's progress."""

    GONE = 'the run is gone (cancelled, or its controller died)'
    LIMIT = "the job's time limit of %d s (async) was reached"

    def __init__(self, params, qemu, waiter=None, domains=None):
        self.p = params
        self.qemu = qemu
        self.work = tempfile.mkdtemp(prefix='virtops-backup-')
        self.domains = domains
        self.warnings = []
        self.results = []
        self.children = {}
        self.waiter = waiter
        self.last_progress = 0
        self.stopped = None

    def _start(self, index, params):
        """Fork the domain's process; False (and the domain failed) when that fails."""
        entry = self.domains[index]
        try:
            work = os.path.join(self.work, str(index))
            os.makedirs(work, exist_ok=True)
            run = DomainRun(params, entry, self.qemu)
            self.children[index] = Child(run.run, os.path.join(work, 'result.json'))
        except OSError as exc:
            error = 'cannot start the process of %s: %s' % (entry['name'], exc)
            if self.results[index] is None:
                self.results[index] = failure_record(entry['name'], error)
            else:
                self.results[index]['error'] += '; then its recovery: ' + error
                self.results[index]['summary'] = self.results[index]['error']
            return False
        return True

    def gone(self):
        """Why no further domain may start, or None.

        The job's time limit (``job.limit``, the task's ``async``) stopped it, or the run is gone:
        cancelled, or its controller died. Its controller, when it runs on this machine, is
        watched directly. Otherwise the wait (async_progress) touches the waiter file at every
        round trip: a wait that began and then stopped for a lease is a dead run. A wait that
        has not begun is not: with more hosts than forks, a host's wait starts only when a fork
        frees up.
        """
        if self.stopped:
            return self.stopped
        if controller_gone(self.p.get('controller')):
            return self.GONE
        if not self.waiter:
            return None
        try:
            seen = os.stat(self.waiter).st_mtime
        except OSError:
            return None
        return self.GONE if time.time() - seen > self.p['lease'] else None

    def select(self):
        """Check the settings and list the domains (unless given): ``PlanError``, ``LibvirtFailure``."""
        if self.domains is None:
            self.domains, self.warnings = plan_run(self.p, self.work)
        self.results = [None] * len(self.domains)
        return self.domains

    def preview(self):
        """Check mode: each domain's plan, one after the other, in this process."""
        return [DomainRun(self.p, entry, self.qemu).preview() for entry in self.select()]

    def run(self):
        pending = list(range(len(self.select())))
        limit = (self.p.get('job') or {}).get('limit')
        deadline = Deadline(limit)
        recovering = set()
        while pending or self.children:
            for index, child in list(self.children.items()):
                if child.poll():
                    del self.children[index]
                    self._ended(index, child, recovering)
            if self.stopped is None and deadline.expired():
                # Out of time: the domains in progress stop their copies and bring their VMs back.
                self.stopped = self.LIMIT % limit
                for child in self.children.values():
                    child.signal(signal.SIGTERM)
            while pending and len(self.children) < self.p['parallel']:
                index = pending.pop(0)
                reason = self.gone()
                if reason:
                    self.results[index] = failure_record(self.domains[index]['name'],
                                                         'not started: ' + reason)
                    continue
                self._start(index, self.p)
            if not self.children:
                break
            self.progress()
            # back at once when a domain's process ends: the next domain starts without delay
            wait_any(self.children.values(), TICK)
        self.progress(force=True)
        return self.results

    def _ended(self, index, child, recovering):
        """Record the result of a domain's process; start its recovery when it died without one."""
        result = child.result()
        if result is not None and self.stopped and result.get('status') == 'failed':
            result['error'] = '%s (%s)' % (result['error'], self.stopped)
            result['summary'] = failure_summary(result)
        if result is not None:
            if index in recovering:
                self._after_recovery(index, result)
            else:
                self.results[index] = result
            return
        error = 'the process backing up %s %s' % (self.domains[index]['name'], child.how_it_ended())
        if index in recovering:
            self.results[index]['error'] += '; then its recovery: ' + error
            self.results[index]['summary'] = self.results[index]['error']
            return
        self.results[index] = failure_record(self.domains[index]['name'], error)
        # The domain's process died without bringing the VM back: a recovery does.
        recovering.add(index)
        self._start(index, dict(self.p, recover_only=True))

    def _after_recovery(self, index, result):
        record = self.results[index]
        if result.get('status') == 'failed':
            record['error'] += '; then its recovery: ' + result['error']
        elif result.get('overlays'):
            record['error'] += '; brought back onto its own images: ' + ', '.join(result['overlays'])
        record['summary'] = record['error']

    def progress(self, force=False):
        """Rewrite the job's progress file: one line per running copy or commit, the locks."""
        path = self.p['progress_file']
        now = time.monotonic()
        if not path or (not force and now - self.last_progress < PROGRESS_EVERY):
            return
        self.last_progress = now
        lines = []
        done = total = 0
        for index in sorted(self.children):
            entry = self.domains[index]
            if not entry.get('uuid'):
                continue
            for kind, target, name in progress_files(self.p, entry):
                record = read_json(name)
                if record:
                    lines.append(_line(entry['name'], kind, target, record))
                    done += int(record.get('bytes_done') or 0)
                    total += int(record.get('bytes_total') or 0)
        locks = [lock_path(self.p['lock_dir'], self.domains[index]['uuid'])
                 for index in sorted(self.children) if self.domains[index].get('uuid')]
        try:
            write_progress(path, dict(phase='running', lines=lines, bytes_done=done,
                                      bytes_total=total, locks=locks,
                                      finished=len([r for r in self.results if r is not None]),
                                      domains=len(self.domains)))
        except OSError:
            pass  # progress is for the eyes; a full lock directory must not stop the backups

    def close(self):
        """Stop the children still running (only after an error of the supervisor), clean up.

        SIGTERM makes a domain's process stop its copies and bring its VM back; that is waited
        for (each commit is bounded by ``timeout``), never cut short.
        """
        for child in self.children.values():
            child.signal(signal.SIGTERM)
        while any(not child.poll() for child in self.children.values()):
            wait_any(self.children.values(), TICK)
        shutil.rmtree(self.work, ignore_errors=True)
        for path in filter(None, (self.p['progress_file'], self.waiter)):
            for name in (path, path + '.tmp'):
                if os.path.exists(name):
                    os.unlink(name)
