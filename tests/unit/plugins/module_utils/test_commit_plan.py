# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest

from ansible_collections.virtops.libvirt.plugins.module_utils._chain import (
    ChainError,
    Disk,
    Image,
    Mirror,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._commit_plan import plan_commit


def make_disk(*paths, **kwargs):
    chain = [Image(path, 'qcow2', len(paths) - pos) for pos, path in enumerate(paths)]
    return Disk('vda', 'disk', 'file', 'virtio', chain, **kwargs)


ACTIVE, MID, BASE = '/img/vm.2.qcow2', '/img/vm.1.qcow2', '/img/vm.qcow2'


def no_backing(path):
    raise AssertionError('backing_of must not be called for %s' % path)


def paths(images):
    return [image.path for image in images]


def test_default_commits_active_layer_into_immediate_backing():
    plan = plan_commit(make_disk(ACTIVE, MID, BASE), active=True, backing_of=no_backing)
    assert (plan.action, plan.top.path, plan.base.path) == ('commit', ACTIVE, MID)
    assert paths(plan.chain_after('pivot')) == [MID, BASE]
    assert paths(plan.chain_after('cancel')) == [ACTIVE, MID, BASE]
    assert paths(plan.removed('pivot')) == [ACTIVE]


def test_intermediate_commit_keeps_active_layer():
    plan = plan_commit(make_disk(ACTIVE, MID, BASE), top=MID, backing_of=no_backing)
    assert (plan.action, plan.active) == ('commit', False)
    assert paths(plan.chain_after(None)) == [ACTIVE, BASE]
    assert paths(plan.removed(None)) == [MID]


def test_explicit_base_commits_several_layers():
    plan = plan_commit(make_disk(ACTIVE, MID, BASE), base=BASE, active=True, backing_of=no_backing)
    assert paths(plan.removed('pivot')) == [ACTIVE, MID]
    assert paths(plan.chain_after('pivot')) == [BASE]


def test_index_specs():
    plan = plan_commit(make_disk(ACTIVE, MID, BASE), top='vda[2]', base='vda[1]',
                       backing_of=no_backing)
    assert (plan.top.path, plan.base.path) == (MID, BASE)


@pytest.mark.parametrize('kwargs, reason', [
    (dict(active=True), 'single image'),
    (dict(base=BASE, active=True), 'already is base'),
])
def test_nothing_to_commit(kwargs, reason):
    plan = plan_commit(make_disk(BASE), backing_of=no_backing, **kwargs)
    assert plan.action == 'noop' and not plan.changes
    assert reason in plan.reason
    assert plan.chain_after('pivot') == plan.disk.chain


def test_base_at_active_layer_is_noop_on_longer_chain():
    plan = plan_commit(make_disk(MID, BASE), base=MID, active=True, backing_of=no_backing)
    assert plan.action == 'noop' and 'already is base' in plan.reason


def test_top_without_backing_is_noop():
    plan = plan_commit(make_disk(ACTIVE, BASE), top=BASE, backing_of=no_backing)
    assert plan.action == 'noop' and 'no backing image' in plan.reason


def test_committed_top_deleted_before(tmp_path):
    gone = str(tmp_path / 'gone.qcow2')
    plan = plan_commit(make_disk(ACTIVE, BASE), top=gone, delete=True, backing_of=no_backing)
    assert plan.action == 'noop' and 'committed before' in plan.reason


def test_missing_top_without_delete_is_an_error(tmp_path):
    gone = str(tmp_path / 'gone.qcow2')
    with pytest.raises(ChainError, match='is not in the chain of vda'):
        plan_commit(make_disk(ACTIVE, BASE), top=gone, backing_of=no_backing)


@pytest.mark.parametrize('backing, base, committed', [
    (BASE, None, True),
    (MID, None, True),
    (BASE, BASE, True),
    (MID, BASE, False),
    ('/img/elsewhere.qcow2', None, False),
    (None, None, False),
])
def test_committed_top_still_on_disk(tmp_path, backing, base, committed):
    old = tmp_path / 'old.qcow2'
    old.write_text('x')
    disk = make_disk(ACTIVE, MID, BASE)
    kwargs = dict(top=str(old), base=base, backing_of=lambda path: backing)
    if committed:
        assert plan_commit(disk, **kwargs).action == 'noop'
    else:
        with pytest.raises(ChainError, match='not in the chain'):
            plan_commit(disk, **kwargs)


def test_relative_top_never_counts_as_committed():
    with pytest.raises(ChainError, match='not in the chain'):
        plan_commit(make_disk(ACTIVE, BASE), top='typo.qcow2', delete=True, backing_of=no_backing)


@pytest.mark.parametrize('kwargs, message', [
    (dict(), 'is the active layer of vda'),
    (dict(top=ACTIVE), 'Set active: true'),
    (dict(top=MID, active=True), 'not the active layer'),
    (dict(top=MID, base=ACTIVE), 'is not below top'),
    (dict(top=MID, base=MID), 'same image as top'),
    (dict(top=MID, base='/img/nope.qcow2'), 'base /img/nope.qcow2 is not in the chain'),
    (dict(top='/img/nope.qcow2', base='/img/nope2.qcow2'), 'base /img/nope2.qcow2 is not in'),
    (dict(top='vda[7]'), 'is not in the chain of vda'),
])
def test_invalid_requests(kwargs, message):
    with pytest.raises(ChainError, match=message):
        plan_commit(make_disk(ACTIVE, MID, BASE), backing_of=lambda path: None, **kwargs)


def test_network_images_are_refused():
    disk = make_disk(ACTIVE, BASE)
    disk.chain[1].kind = 'network'
    with pytest.raises(ChainError, match='network image'):
        plan_commit(disk, active=True, backing_of=no_backing)


def ready_mirror(path):
    return Mirror('active_commit', path, 'qcow2', True)


def test_adopt_active_commit_job():
    disk = make_disk(ACTIVE, MID, BASE, mirror=ready_mirror(BASE))
    plan = plan_commit(disk, active=True, job_type='active_commit', backing_of=no_backing)
    assert (plan.action, plan.top.path, plan.base.path) == ('adopt', ACTIVE, BASE)
    assert paths(plan.chain_after('pivot')) == [BASE]


def test_adopt_refuses_job_into_another_base():
    disk = make_disk(ACTIVE, MID, BASE, mirror=ready_mirror(BASE))
    with pytest.raises(ChainError, match='not into base /img/vm.1.qcow2'):
        plan_commit(disk, base=MID, active=True, job_type='active_commit', backing_of=no_backing)


def test_adopt_intermediate_job():
    plan = plan_commit(make_disk(ACTIVE, MID, BASE), top=MID, job_type='commit',
                       backing_of=no_backing)
    assert plan.action == 'adopt' and not plan.active
    assert plan.removed(None) == []


@pytest.mark.parametrize('job, active', [
    ('copy', True),
    ('copy', False),
    ('pull', False),
    ('active_commit', False),
    ('commit', True),
    ('backup', True),
])
def test_job_of_another_kind_is_refused(job, active):
    disk = make_disk(ACTIVE, MID, BASE, mirror=ready_mirror(BASE))
    kwargs = dict(active=True, top=ACTIVE) if active else dict(top=MID)
    with pytest.raises(ChainError, match=r'busy with a block job \(%s\)' % job.replace('_', ' ')):
        plan_commit(disk, job_type=job, backing_of=no_backing, **kwargs)
