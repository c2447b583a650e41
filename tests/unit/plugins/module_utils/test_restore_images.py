# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest

from ansible_collections.virtops.libvirt.plugins.module_utils._libvirt import LibvirtFailure
from ansible_collections.virtops.libvirt.plugins.module_utils._restore_images import (
    ImageRestore,
    RefusedError,
    compare_argv,
    destinations,
)


class FakeModule(object):
    def __init__(self, compare_rc):
        self.compare_rc = compare_rc
        self.calls = []

    def run_command(self, argv):
        self.calls.append(argv)
        return self.compare_rc, '', 'Content mismatch' if self.compare_rc == 1 else ''


class FakeQemuImg(object):
    binary = 'qemu-img'

    def __init__(self, infos, compare_rc=0):
        self.infos = infos
        self.module = FakeModule(compare_rc)

    def info(self, path, backing_chain=False, fmt=None):
        if path not in self.infos:
            raise LibvirtFailure('not an image')
        return self.infos[path]


DISKS = [dict(target='vda', path='/b/vda.qcow2', virtual_size=1024, source='/images/web01/vda.1.qcow2'),
         dict(target='vdb', path='/b/vdb.qcow2', virtual_size=2048, source='/images/web01/vdb.raw')]


def test_destinations_in_a_directory_or_in_place():
    assert destinations(DISKS, 'raw', '/r') == {'vda': '/r/vda.raw', 'vdb': '/r/vdb.raw'}
    assert destinations(DISKS, 'qcow2', in_place=True) == {
        'vda': '/images/web01/vda.1.qcow2', 'vdb': '/images/web01/vdb.raw'}


@pytest.mark.parametrize('disks, message', [
    ([dict(target='vda', source='/dev/vg0/web01')], 'block device /dev/vg0/web01'),
    ([dict(target='vda')], 'no original path'),
    ([dict(target='vda', source='/i/a'), dict(target='vdb', source='/i/a')], 'to the same path'),
])
def test_in_place_refusals(disks, message):
    with pytest.raises(RefusedError, match=message):
        destinations(disks, 'qcow2', in_place=True)


def test_compare_takes_the_image_lock():
    assert '-U' not in compare_argv('/b/vda.qcow2', '/r/vda.raw', 'raw')


def plan(tmp_path, existing=(), infos=None, compare_rc=0, force=False, image_dir=None):
    image_dir = image_dir or str(tmp_path / 'restore')
    for name in existing:
        (tmp_path / 'restore').mkdir(exist_ok=True)
        (tmp_path / 'restore' / name).write_bytes(b'old')
    qemu = FakeQemuImg(infos or {}, compare_rc)
    dests = destinations(DISKS, 'qcow2', image_dir)
    return ImageRestore(qemu, DISKS, dests, 'qcow2', force=force, image_dir=image_dir), qemu


def test_new_images_are_created(tmp_path):
    restore, dummy = plan(tmp_path)
    assert [i['action'] for i in restore.plan()] == ['create', 'create']


def test_identical_images_are_kept_and_differing_ones_refused_or_replaced(tmp_path):
    same = {str(tmp_path / 'restore' / 'vda.qcow2'): {'format': 'qcow2', 'virtual-size': 1024},
            str(tmp_path / 'restore' / 'vdb.qcow2'): {'format': 'qcow2', 'virtual-size': 2048}}
    restore, qemu = plan(tmp_path, ['vda.qcow2', 'vdb.qcow2'], same)
    assert [i['action'] for i in restore.plan()] == ['keep', 'keep']
    assert qemu.module.calls[0][:2] == ['qemu-img', 'compare']
    restore, dummy = plan(tmp_path, ['vda.qcow2'], same, compare_rc=1)
    with pytest.raises(RefusedError, match='vda.qcow2 exists and differs from the backup; set restore_force'):
        restore.plan()
    restore, dummy = plan(tmp_path, ['vda.qcow2'], same, compare_rc=1, force=True)
    assert [i['action'] for i in restore.plan()] == ['replace', 'replace']


@pytest.mark.parametrize('info', [
    {'format': 'raw', 'virtual-size': 1024},
    {'format': 'qcow2', 'virtual-size': 4096},
    {'format': 'qcow2', 'virtual-size': 1024, 'backing-filename': 'base'},
    None,
])
def test_an_image_of_another_shape_is_never_kept(tmp_path, info):
    infos = {str(tmp_path / 'restore' / 'vda.qcow2'): info} if info else {}
    restore, qemu = plan(tmp_path, ['vda.qcow2'], infos, force=True)
    assert restore.plan()[0]['action'] == 'replace'
    assert qemu.module.calls == []


def test_an_image_in_use_cannot_be_compared(tmp_path):
    infos = {str(tmp_path / 'restore' / 'vda.qcow2'): {'format': 'qcow2', 'virtual-size': 1024}}
    restore, dummy = plan(tmp_path, ['vda.qcow2'], infos, compare_rc=2, force=True)
    with pytest.raises(RefusedError, match='is a VM using it'):
        restore.plan()


def test_a_destination_outside_an_existing_directory(tmp_path):
    restore, dummy = plan(tmp_path, image_dir=str(tmp_path / 'missing' / 'copy'))
    with pytest.raises(RefusedError, match='its parent directory .*missing does not exist'):
        restore.plan()
    (tmp_path / 'file').write_bytes(b'')
    restore, dummy = plan(tmp_path, image_dir=str(tmp_path / 'file'))
    with pytest.raises(RefusedError, match='is not a directory'):
        restore.plan()


def test_check_mode_writes_nothing(tmp_path):
    restore, dummy = plan(tmp_path)
    result = restore.run(check_mode=True)
    assert result['changed'] is True and result['created_dir'] is False
    assert not (tmp_path / 'restore').exists()
