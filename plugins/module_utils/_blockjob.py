# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Drive one block job on one disk: wait for READY or the end, pivot, cancel.

READY comes from the block-job event or ``<mirror ready='yes'>`` in the live
XML, never from ``cur == end``: libvirt refuses a pivot until it has itself
processed READY. Events are never replayed, so the watcher is registered
before a job is started or inspected, and a short poll covers a lost event.
"""

from __future__ import annotations

import threading
import time

from ansible_collections.virtops.libvirt.plugins.module_utils._chain import (
    find_disk,
    job_type_name,
    parse_disks,
    same_path,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._libvirt import (
    LibvirtFailure,
    error_code,
    libvirt,
    live_xml,
)

POLL_INTERVAL = 0.5
VANISH_TIMEOUT = 120


class Deadline(object):
    """A monotonic deadline; ``timeout`` of 0 or None never expires."""

    def __init__(self, timeout):
        self.timeout = timeout
        self._end = time.monotonic() + timeout if timeout else None

    def remaining(self):
        if self._end is None:
            return None
        return max(0.0, self._end - time.monotonic())

    def expired(self):
        return self._end is not None and time.monotonic() >= self._end

    def slice(self, interval):
        remaining = self.remaining()
        return interval if remaining is None else min(interval, remaining)


class JobTimeout(Exception):
    pass


class JobEnded(Exception):
    """The job ended on its own before the state we waited for."""

    def __init__(self, status):
        super(JobEnded, self).__init__(status)
        self.status = status


class BlockJob(object):
    """Watch the block job of one disk; use as a context manager."""

    def __init__(self, conn, domain, target):
        self.conn = conn
        self.domain = domain
        self.target = target
        self.last_info = {}
        self._cond = threading.Condition()
        self._status = None
        self._events = 0
        self._callback_id = conn.domainEventRegisterAny(
            domain, libvirt.VIR_DOMAIN_EVENT_ID_BLOCK_JOB_2, self._on_event, None)

    def close(self):
        if self._callback_id is not None:
            try:
                self.conn.domainEventDeregisterAny(self._callback_id)
            except libvirt.libvirtError:
                pass
            self._callback_id = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def _on_event(self, dummy_conn, dummy_dom, disk, dummy_type, status, dummy_opaque):
        # Runs on the event-loop thread: record and notify only.
        if disk != self.target:
            return
        with self._cond:
            self._status = status
            self._events += 1
            self._cond.notify_all()

    def reset_status(self):
        """Forget the last event; call before starting a new job on the disk."""
        with self._cond:
            self._status = None

    def _last_event(self):
        with self._cond:
            return self._events, self._status

    def _wait_event(self, seen, seconds):
        """Sleep until an event newer than ``seen`` arrives, or ``seconds`` pass."""
        with self._cond:
            if self._events == seen and seconds > 0:
                self._cond.wait(seconds)

    def info(self):
        """``{'type': name, 'cur': n, 'end': n}`` of the current job, or {}."""
        try:
            raw = self.domain.blockJobInfo(self.target, 0)
        except libvirt.libvirtError as exc:
            raise LibvirtFailure('cannot read the block job of %s: %s' % (self.target, exc),
                                 libvirt_code=error_code(exc))
        if not raw:
            return {}
        info = dict(type=job_type_name(raw.get('type')), cur=raw.get('cur', 0),
                    end=raw.get('end', 0), bandwidth=raw.get('bandwidth', 0))
        self.last_info = info
        return info

    def disk(self):
        """The disk as the live XML shows it now."""
        return find_disk(parse_disks(live_xml(self.domain)), self.target)

    def mirror_ready(self):
        mirror = self.disk().mirror
        return mirror is not None and mirror.ready

    def wait_ready(self, deadline, poll=POLL_INTERVAL, on_tick=None):
        """Block until the job is READY; JobTimeout at the deadline.

        JobEnded when the job disappears or fails before READY. ``on_tick(info)``
        is called on every look at the job (progress reporting).
        """
        while True:
            if on_tick is not None:
                on_tick(self.last_info)
            seen, status = self._last_event()
            if status == libvirt.VIR_DOMAIN_BLOCK_JOB_READY:
                return
            if status in (libvirt.VIR_DOMAIN_BLOCK_JOB_FAILED,
                          libvirt.VIR_DOMAIN_BLOCK_JOB_CANCELED,
                          libvirt.VIR_DOMAIN_BLOCK_JOB_COMPLETED):
                raise JobEnded(status)
            if not self.info():
                raise JobEnded(None)
            if self.mirror_ready():
                return
            if deadline.expired():
                raise JobTimeout()
            self._wait_event(seen, deadline.slice(poll))

    def wait_gone(self, deadline, poll=POLL_INTERVAL, on_tick=None):
        """Block until no job is left on the disk; return the last event status."""
        while True:
            if on_tick is not None:
                on_tick(self.last_info)
            seen, status = self._last_event()
            if not self.info():
                return status
            if deadline.expired():
                raise JobTimeout()
            self._wait_event(seen, deadline.slice(poll))

    def set_speed(self, bandwidth):
        try:
            self.domain.blockJobSetSpeed(self.target, bandwidth, 0)
        except libvirt.libvirtError as exc:
            raise LibvirtFailure('cannot set the bandwidth of the %s job: %s' % (self.target, exc),
                                 libvirt_code=error_code(exc))

    def pivot(self, base):
        """Switch the disk to the commit's base; synchronous.

        A pivot refused because the job is gone is a success when the live XML
        shows the disk on ``base`` with no job: another process (a run that
        was presumed dead) pivoted first.
        """
        try:
            self.domain.blockJobAbort(self.target, libvirt.VIR_DOMAIN_BLOCK_JOB_ABORT_PIVOT)
        except libvirt.libvirtError as exc:
            disk = self.disk()
            if self.info() or disk.mirror is not None or not same_path(disk.source or '', base):
                raise LibvirtFailure('pivot of %s failed: %s' % (self.target, exc),
                                     libvirt_code=error_code(exc))
            return False
        self._wait_vanished('pivot')
        return True

    def cancel(self):
        """Abort the job and wait until it is gone. Never pivots."""
        try:
            self.domain.blockJobAbort(self.target, 0)
        except libvirt.libvirtError as exc:
            # The job may have ended between our last look and the abort.
            if self.info():
                raise LibvirtFailure('cancel of the %s job failed: %s' % (self.target, exc),
                                     libvirt_code=error_code(exc))
        self._wait_vanished('cancel')

    def _wait_vanished(self, what):
        try:
            self.wait_gone(Deadline(VANISH_TIMEOUT))
        except JobTimeout:
            raise LibvirtFailure('the block job of %s was still there %d seconds after the %s; '
                                 'nothing was deleted' % (self.target, VANISH_TIMEOUT, what),
                                 job=dict(self.last_info))
