# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The committed mark around a pivot (real files; the plan and the job are stand-ins).

The whole sequence runs on real VMs: the blockcommit integration target (no mark is left after
a pivot) and the fault suite's after_pivot kill point (a SIGKILL there leaves the overlay with
its mark, and the next run removes it).
"""

from __future__ import annotations

import os

import pytest

from ansible_collections.virtops.libvirt.plugins.module_utils._commit import CommitRun
from ansible_collections.virtops.libvirt.plugins.module_utils._libvirt import LibvirtFailure
from ansible_collections.virtops.libvirt.plugins.module_utils._snapshot import committed_mark


class Image(object):
    def __init__(self, path, kind='file'):
        self.path = path
        self.kind = kind

    def short(self):
        return dict(path=self.path, format='qcow2')


class Plan(object):
    """An active commit of ``chain[0]`` (the top) into ``chain[-1]``."""

    def __init__(self, chain):
        self.chain = chain
        self.top = chain[0]
        self.base = chain[-1]

    def removed(self, finish):
        return self.chain[:-1] if finish == 'pivot' else []


class Disk(object):
    def __init__(self, chain, mirror=None):
        self.chain = [Image(path) for path in chain]
        self.source = chain[0]
        self.mirror = mirror

    def position(self, path):
        paths = [image.path for image in self.chain]
        return paths.index(path) if path in paths else None


class Job(object):
    """READY at once; ``pivot`` does ``pivots`` (a chain the disk then has, or an exception)."""

    target = 'vda'
    last_info = {}

    def __init__(self, before, pivots):
        self.chain = before
        self.pivots = pivots
        self.unreadable = False

    def wait_ready(self, deadline, on_tick=None):
        pass

    def info(self):
        return dict(type='active_commit', cur=1, end=1)

    def disk(self):
        if self.unreadable:
            raise LibvirtFailure('cannot read the XML')
        return Disk(self.chain)

    def pivot(self, base):
        if isinstance(self.pivots, BaseException):
            raise self.pivots
        self.chain = self.pivots
        return True


def commit_run(**params):
    run = CommitRun.__new__(CommitRun)
    run.params = dict(dict(delete=True, finish='pivot', progress_file=None), **params)
    run.deadline = None
    run.last_job = None
    run._progress_at = None
    return run


@pytest.fixture
def chain(tmp_path):
    overlay = str(tmp_path / 'vda.qcow2.virtops-backup.qcow2')
    middle = str(tmp_path / 'vda.1.qcow2')
    base = str(tmp_path / 'vda.qcow2')
    for path in (overlay, middle, base):
        open(path, 'w').close()
    return overlay, middle, base


def test_the_active_image_the_pivot_drops_is_marked_before_it(chain):
    overlay, middle, base = chain
    plan = Plan([Image(overlay), Image(middle), Image(base)])
    assert commit_run()._mark_committed(plan, base) == [overlay]
    with open(committed_mark(overlay)) as handle:
        assert handle.read() == 'committed into %s\n' % base
    # nothing reads a mark next to an intermediate image: none is written
    assert not os.path.exists(committed_mark(middle))


def test_nothing_is_marked_without_delete_for_a_device_or_when_the_directory_refuses(chain, tmp_path):
    overlay, dummy, base = chain
    assert commit_run(delete=False)._mark_committed(Plan([Image(overlay), Image(base)]), base) == []
    assert commit_run()._mark_committed(Plan([Image('/dev/vg/top', 'block'), Image(base)]), base) == []
    assert not os.path.exists(committed_mark(overlay))
    # a mark that cannot be written only loses the cleanup it allows; the pivot goes on
    missing = str(tmp_path / 'no-such-dir' / 'top.qcow2')
    assert commit_run()._mark_committed(Plan([Image(missing), Image(base)]), base) == []


@pytest.mark.parametrize('pivots, unreadable', [
    (LibvirtFailure('pivot of vda failed: internal error'), False),
    (LibvirtFailure('pivot of vda failed: internal error'), True),
    (KeyboardInterrupt(), False),
])
def test_a_failed_pivot_leaves_no_mark_on_the_image_the_disk_runs_on(chain, pivots, unreadable):
    overlay, dummy, base = chain
    job = Job([overlay, base], pivots)
    job.unreadable = unreadable
    with pytest.raises(type(pivots)):
        commit_run()._finish_active(job, Plan([Image(overlay), Image(base)]))
    assert not os.path.exists(committed_mark(overlay))
    assert os.path.exists(overlay)


def test_an_unconfirmed_pivot_leaves_no_mark_and_deletes_nothing(chain):
    overlay, dummy, base = chain
    job = Job([overlay, base], [overlay, base])  # the live XML still shows the overlay
    with pytest.raises(LibvirtFailure, match='not confirmed by the live XML; nothing was deleted'):
        commit_run()._finish_active(job, Plan([Image(overlay), Image(base)]))
    assert not os.path.exists(committed_mark(overlay))
    assert os.path.exists(overlay)
