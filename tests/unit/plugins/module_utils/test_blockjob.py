# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The READY/timeout logic of the block-job driver, against a fake domain.

Real jobs are exercised by the integration tests; this pins the rules that
are hard to provoke there: a lost event, cur == end without READY, a job
that fails or vanishes.
"""

from __future__ import annotations

import threading

import pytest

from ansible_collections.virtops.libvirt.plugins.module_utils import _blockjob
from ansible_collections.virtops.libvirt.plugins.module_utils._blockjob import (
    BlockJob,
    Deadline,
    JobEnded,
    JobTimeout,
)

libvirt = pytest.importorskip('libvirt')

XML = """<domain><devices><disk type='file' device='disk'>
<driver name='qemu' type='qcow2'/><source file='/img/top.qcow2' index='2'/>
<backingStore type='file' index='1'><format type='qcow2'/><source file='/img/base.qcow2'/>
<backingStore/></backingStore>%s<target dev='vda' bus='virtio'/></disk></devices></domain>"""
MIRROR = ("<mirror type='file' job='active-commit' ready='%s'><format type='qcow2'/>"
          "<source file='/img/base.qcow2' index='1'/></mirror>")


class FakeDomain(object):
    def __init__(self, job=None, ready=None):
        self.job = job
        self.ready = ready
        self.aborts = []

    def blockJobInfo(self, target, flags):
        return dict(self.job) if self.job else {}

    def XMLDesc(self, flags):
        return XML % (MIRROR % self.ready if self.ready is not None else '')

    def blockJobAbort(self, target, flags):
        self.aborts.append(flags)
        self.job = None


class FakeConn(object):
    def __init__(self):
        self.callback = None

    def domainEventRegisterAny(self, dom, event, callback, opaque):
        self.callback = callback
        return 7

    def domainEventDeregisterAny(self, callback_id):
        self.callback = None


COPYING = {'type': 4, 'cur': 10, 'end': 100, 'bandwidth': 0}
CAUGHT_UP = {'type': 4, 'cur': 100, 'end': 100, 'bandwidth': 0}


def watch(domain):
    conn = FakeConn()
    return conn, BlockJob(conn, domain, 'vda')


def test_ready_from_the_event():
    domain = FakeDomain(job=COPYING, ready='no')
    conn, job = watch(domain)
    timer = threading.Timer(0.05, conn.callback, (conn, domain, 'vda', 4,
                                                  libvirt.VIR_DOMAIN_BLOCK_JOB_READY, None))
    timer.start()
    job.wait_ready(Deadline(5), poll=10)
    timer.join()


def test_events_of_other_disks_are_ignored():
    domain = FakeDomain(job=COPYING, ready='no')
    conn, job = watch(domain)
    conn.callback(conn, domain, 'vdb', 4, libvirt.VIR_DOMAIN_BLOCK_JOB_READY, None)
    with pytest.raises(JobTimeout):
        job.wait_ready(Deadline(0.2), poll=0.05)


def test_ready_from_the_live_xml_when_the_event_is_lost():
    domain = FakeDomain(job=CAUGHT_UP, ready='yes')
    dummy, job = watch(domain)
    job.wait_ready(Deadline(1), poll=0.01)


def test_cur_equal_end_is_not_ready():
    domain = FakeDomain(job=CAUGHT_UP, ready='no')
    dummy, job = watch(domain)
    with pytest.raises(JobTimeout):
        job.wait_ready(Deadline(0.2), poll=0.05)


@pytest.mark.parametrize('status', ['FAILED', 'CANCELED'])
def test_failed_job_ends_the_wait(status):
    domain = FakeDomain(job=COPYING, ready='no')
    conn, job = watch(domain)
    conn.callback(conn, domain, 'vda', 4, getattr(libvirt, 'VIR_DOMAIN_BLOCK_JOB_' + status), None)
    with pytest.raises(JobEnded):
        job.wait_ready(Deadline(1))


def test_vanished_job_ends_the_wait():
    dummy, job = watch(FakeDomain(job=None))
    with pytest.raises(JobEnded):
        job.wait_ready(Deadline(1))


def test_cancel_never_pivots(monkeypatch):
    monkeypatch.setattr(_blockjob, 'VANISH_TIMEOUT', 1)
    domain = FakeDomain(job=CAUGHT_UP, ready='yes')
    dummy, job = watch(domain)
    job.cancel()
    assert domain.aborts == [0]


def test_pivot_uses_the_pivot_flag(monkeypatch):
    monkeypatch.setattr(_blockjob, 'VANISH_TIMEOUT', 1)
    domain = FakeDomain(job=CAUGHT_UP, ready='yes')
    dummy, job = watch(domain)
    assert job.pivot('/img/base.qcow2') is True
    assert domain.aborts == [libvirt.VIR_DOMAIN_BLOCK_JOB_ABORT_PIVOT]


class GoneDomain(FakeDomain):
    """Another process pivoted first: the job is gone and the disk is on ``source``."""

    def __init__(self, source):
        super(GoneDomain, self).__init__()
        self.source = source

    def XMLDesc(self, flags):
        return XML.replace('/img/top.qcow2', self.source) % ''

    def blockJobAbort(self, target, flags):
        raise libvirt.libvirtError('disk vda does not have an active block job')


def test_pivot_by_another_process_is_success():
    dummy, job = watch(GoneDomain('/img/base.qcow2'))
    assert job.pivot('/img/base.qcow2') is False


def test_pivot_refused_while_the_disk_is_not_on_base_fails():
    dummy, job = watch(GoneDomain('/img/top.qcow2'))
    with pytest.raises(Exception, match='pivot of vda failed'):
        job.pivot('/img/base.qcow2')


def test_close_deregisters():
    conn, job = watch(FakeDomain())
    job.close()
    assert conn.callback is None


def test_deadline():
    assert Deadline(0).remaining() is None and not Deadline(0).expired()
    assert Deadline(None).slice(0.5) == 0.5
    assert Deadline(0.0001).slice(5) <= 0.0001


def test_a_stale_event_neither_ends_nor_spins_the_next_wait():
    domain = FakeDomain(job=COPYING, ready='no')
    conn, job = watch(domain)
    conn.callback(conn, domain, 'vda', 3, libvirt.VIR_DOMAIN_BLOCK_JOB_COMPLETED, None)
    job.reset_status()
    calls = []
    original = domain.blockJobInfo

    def counting(target, flags):
        calls.append(1)
        return original(target, flags)
    domain.blockJobInfo = counting
    with pytest.raises(JobTimeout):
        job.wait_ready(Deadline(0.3), poll=0.1)
    assert len(calls) < 10  # it slept between polls instead of spinning on the old event


def test_a_job_that_never_vanishes_after_cancel_is_a_clean_failure(monkeypatch):
    from ansible_collections.virtops.libvirt.plugins.module_utils._libvirt import LibvirtFailure
    monkeypatch.setattr(_blockjob, 'VANISH_TIMEOUT', 0.2)
    domain = FakeDomain(job=CAUGHT_UP, ready='yes')
    domain.blockJobAbort = lambda target, flags: None  # the job stays
    dummy, job = watch(domain)
    with pytest.raises(LibvirtFailure, match='still there'):
        job.cancel()


def test_a_signal_during_the_pivot_section_waits_for_its_end():
    """Even when it reaches another thread (libvirt's event loop), where a mask would not hold."""
    import os
    import signal as signals
    from ansible_collections.virtops.libvirt.plugins.module_utils._commit import signals_deferred

    seen = []
    previous = signals.signal(signals.SIGTERM, lambda num, frame: seen.append('handled'))
    try:
        with signals_deferred():
            thread = threading.Thread(target=os.kill, args=(os.getpid(), signals.SIGTERM))
            thread.start()
            thread.join()
            for dummy in range(100):  # let the interpreter run pending handlers
                pass
            seen.append('section done')
        for dummy in range(100):
            pass
    finally:
        signals.signal(signals.SIGTERM, previous)
    assert seen == ['section done', 'handled']
