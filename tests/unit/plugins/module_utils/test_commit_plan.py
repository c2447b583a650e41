# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import json
import os

import pytest

from ansible_collections.virtops.libvirt.plugins.module_utils._chain import (
    ChainError,
    Disk,
    Image,
    Mirror,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._commit_plan import plan_commit
from ansible_collections.virtops.libvirt.plugins.module_utils._qemu_img import QemuImg


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


# Multi-layer commits (issue 6, item 6): base <- s1 <- s2 <- s3 <- s4, s4 active.

LAYERS = ('base', 's1', 's2', 's3', 's4')


def layer_files(tmp_path, nested=False):
    """Paths of the five layers; ``nested`` puts each in a directory of its own."""
    files = {}
    for name in LAYERS:
        directory = tmp_path / (name + '.d') if nested else tmp_path
        directory.mkdir(exist_ok=True)
        files[name] = str(directory / ('%s.qcow2' % name))
    return files


def backing_names(files, relative):
    """The backing name each layer's file holds, as qemu-img would print it."""
    names = {}
    for upper, lower in zip(LAYERS[1:], LAYERS):
        names[files[upper]] = (os.path.relpath(files[lower], os.path.dirname(files[upper]))
                               if relative else files[lower])
    return names


class Files(object):
    """``backing_of`` over a dict: the backing name of a file, None for a missing file."""

    def __init__(self, names):
        self.names = names
        self.calls = []

    def __call__(self, path):
        self.calls.append(path)
        return self.names.get(path)


def disk_of(files, *names):
    return make_disk(*[files[name] for name in names])


# (chain left by the earlier run, base of the repeated task)
AFTER_COMMIT = [
    (('s4', 'base'), 'base'),      # top s3, base base: s3, s2 and s1 left
    (('s4', 's1', 'base'), 's1'),  # top s3, base s1: s3 and s2 left
    (('s4', 'base'), None),        # committed into base, repeated without base
    (('s4', 's2', 's1', 'base'), None),  # top s3 alone: committed into s2
]


@pytest.mark.parametrize('relative', [True, False], ids=['relative', 'absolute'])
@pytest.mark.parametrize('nested', [False, True], ids=['one-dir', 'dir-per-layer'])
@pytest.mark.parametrize('delete', [False, True], ids=['keep', 'delete'])
@pytest.mark.parametrize('chain, base', AFTER_COMMIT)
def test_multilayer_commit_repeated_is_noop(tmp_path, relative, nested, delete, chain, base):
    files = layer_files(tmp_path, nested)
    open(files['s3'], 'w').close()  # still there: delete: true alone does not make it a no-op
    backing_of = Files(backing_names(files, relative))
    plan = plan_commit(disk_of(files, *chain), top=files['s3'],
                       base=files[base] if base else None, delete=delete,
                       backing_of=backing_of)
    assert plan.action == 'noop' and 'committed before' in plan.reason
    # Walked from s3 down to the first image of the current chain, and no further.
    entered = LAYERS.index([name for name in ('s2', 's1', 'base') if name in chain][0])
    assert backing_of.calls == [files[LAYERS[pos]] for pos in range(3, entered, -1)]


@pytest.mark.parametrize('chain, base', AFTER_COMMIT)
def test_multilayer_commit_deleted_is_noop(tmp_path, chain, base):
    files = layer_files(tmp_path)  # no file exists: delete: true removed them
    plan = plan_commit(disk_of(files, *chain), top=files['s3'],
                       base=files[base] if base else None, delete=True, backing_of=no_backing)
    assert plan.action == 'noop'


def test_committed_into_an_image_above_base_is_an_error(tmp_path):
    # s3 went into s1, which is still in the chain: its data is not in base.
    files = layer_files(tmp_path)
    open(files['s3'], 'w').close()
    with pytest.raises(ChainError, match='top %s is not in the chain' % files['s3']):
        plan_commit(disk_of(files, 's4', 's1', 'base'), top=files['s3'], base=files['base'],
                    backing_of=Files(backing_names(files, True)))


def test_chain_that_never_reaches_the_disk_is_an_error(tmp_path):
    files = layer_files(tmp_path)
    open(files['s3'], 'w').close()
    names = backing_names(files, False)
    names[files['s1']] = '/templates/other.qcow2'  # s1 sits on an image of no chain here
    with pytest.raises(ChainError, match='not in the chain'):
        plan_commit(disk_of(files, 's4', 'base'), top=files['s3'], base=files['base'],
                    backing_of=Files(names))


def test_broken_chain_is_an_error(tmp_path):
    # s2 was removed by hand: nothing proves that s3 ever sat on base.
    files = layer_files(tmp_path)
    open(files['s3'], 'w').close()
    names = backing_names(files, True)
    del names[files['s2']]
    with pytest.raises(ChainError, match='not in the chain'):
        plan_commit(disk_of(files, 's4', 'base'), top=files['s3'], base=files['base'],
                    backing_of=Files(names))


def test_backing_cycle_stops(tmp_path):
    files = layer_files(tmp_path)
    open(files['s3'], 'w').close()
    backing_of = Files({files['s3']: 's2.qcow2', files['s2']: 's1.qcow2',
                        files['s1']: 's3.qcow2'})
    with pytest.raises(ChainError, match='not in the chain'):
        plan_commit(disk_of(files, 's4', 'base'), top=files['s3'], base=files['base'],
                    backing_of=backing_of)
    assert backing_of.calls == [files['s3'], files['s2'], files['s1']]


def test_backing_walk_is_bounded(tmp_path):
    top = tmp_path / 'top.qcow2'
    top.write_text('x')
    calls = []

    def endless(path):
        calls.append(path)
        return '/img/layer%d.qcow2' % len(calls)

    with pytest.raises(ChainError, match='not in the chain'):
        plan_commit(make_disk(ACTIVE, BASE), top=str(top), backing_of=endless)
    assert len(calls) == 64


def test_typo_in_multilayer_top_is_an_error(tmp_path):
    files = layer_files(tmp_path)
    for name in LAYERS:
        open(files[name], 'w').close()
    with pytest.raises(ChainError, match='not in the chain'):
        plan_commit(disk_of(files, 's4', 'base'), top=files['s3'][:-1], base=files['base'],
                    backing_of=Files(backing_names(files, True)))


class FakeModule(object):
    """Just enough of AnsibleModule for QemuImg: ``qemu-img info`` answers from a dict."""

    def __init__(self, infos):
        self.infos = infos

    def get_bin_path(self, name, required=False):
        return '/usr/bin/' + name

    def run_command(self, argv):
        info = self.infos.get(argv[-1])
        if info is None:
            return 1, '', "qemu-img: Could not open '%s'" % argv[-1]
        return 0, json.dumps(info), ''


@pytest.mark.parametrize('relative', [True, False], ids=['relative', 'absolute'])
def test_qemu_img_backing_of_walks_relative_names(tmp_path, relative):
    # The function blockcommit injects, over qemu-img's JSON with only backing-filename
    # (qemu-img prints full-backing-filename only when it can open the file).
    files = layer_files(tmp_path, nested=True)
    open(files['s3'], 'w').close()
    infos = dict((path, {'filename': path, 'backing-filename': name})
                 for path, name in backing_names(files, relative).items())
    backing_of = QemuImg(FakeModule(infos)).backing_of
    assert backing_of(files['s3']) == files['s2']
    plan = plan_commit(disk_of(files, 's4', 'base'), top=files['s3'], base=files['base'],
                       backing_of=backing_of)
    assert plan.action == 'noop'
    with pytest.raises(ChainError, match='not in the chain'):
        plan_commit(disk_of(files, 's4', 's1', 'base'), top=files['s3'], base=files['base'],
                    backing_of=backing_of)
