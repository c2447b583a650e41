# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The committed marks around a pivot (real files; the plan and the job are stand-ins).

The whole sequence runs on real VMs: the blockcommit integration target (no mark is left after
a pivot) and the fault suite's after_pivot kill point (a SIGKILL there leaves the overlay with
its mark, and the next run removes it).
"""

from __future__ import annotations

import os

from ansible_collections.virtops.libvirt.plugins.module_utils._commit import CommitRun
from ansible_collections.virtops.libvirt.plugins.module_utils._snapshot import committed_mark


class Image(object):
    def __init__(self, path, kind='file'):
        self.path = path
        self.kind = kind


class Plan(object):
    def __init__(self, removed):
        self._removed = removed

    def removed(self, finish):
        return self._removed if finish == 'pivot' else []


class Disk(object):
    def __init__(self, chain):
        self.chain = chain

    def position(self, path):
        return self.chain.index(path) if path in self.chain else None


class Job(object):
    def __init__(self, chain):
        self.chain = chain

    def disk(self):
        return Disk(self.chain)


def commit_run(**params):
    run = CommitRun.__new__(CommitRun)
    run.params = dict(dict(delete=True, finish='pivot'), **params)
    return run


def test_the_files_a_pivot_drops_are_marked_before_it(tmp_path):
    overlay = str(tmp_path / 'vda.qcow2.virtops-backup.qcow2')
    plan = Plan([Image(overlay), Image('/dev/vg/snap', kind='block')])
    assert commit_run()._mark_committed(plan, '/img/vda.qcow2') == [overlay]
    with open(committed_mark(overlay)) as handle:
        assert handle.read() == 'committed into /img/vda.qcow2\n'
    assert not os.path.exists(committed_mark('/dev/vg/snap'))


def test_nothing_is_marked_without_delete_or_when_the_directory_refuses(tmp_path):
    overlay = str(tmp_path / 'vda.qcow2.virtops-backup.qcow2')
    assert commit_run(delete=False)._mark_committed(Plan([Image(overlay)]), '/img/b') == []
    assert not os.path.exists(committed_mark(overlay))
    # a mark that cannot be written only loses the cleanup it allows; the pivot goes on
    missing = str(tmp_path / 'no-such-dir' / 'vda.qcow2.virtops-backup.qcow2')
    assert commit_run()._mark_committed(Plan([Image(missing)]), '/img/b') == []


def test_a_failed_pivot_leaves_no_mark_on_an_image_the_disk_still_runs_on(tmp_path):
    still, gone = str(tmp_path / 'still.qcow2'), str(tmp_path / 'gone.qcow2')
    marked = commit_run()._mark_committed(Plan([Image(still), Image(gone)]), '/img/b')
    CommitRun._unmark_in_chain(Job([still, '/img/b']), marked)
    assert not os.path.exists(committed_mark(still))
    assert os.path.exists(committed_mark(gone))
