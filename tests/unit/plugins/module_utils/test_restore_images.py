# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import os
import stat
import sys

import pytest
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args

from ansible_collections.virtops.libvirt.plugins.module_utils._file_args import FileAttributes
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


FAKE_CONVERT = r'''#!%s
import sys
with open(sys.argv[-1], 'wb') as out:
    out.write(b'restored')
'''


def writer(tmp_path, existing=(), infos=None, attributes=None):
    """An ImageRestore whose qemu-img convert is a script that writes the destination."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    restore, qemu = plan(tmp_path, existing, infos)
    script = tmp_path / 'qemu-img'
    script.write_text(FAKE_CONVERT % sys.executable)
    script.chmod(0o755)
    qemu.binary = str(script)
    restore.attributes = attributes
    return restore


def file_attributes(check_mode=False, **file_args):
    with patch_module_args(dict(file_args, _ansible_check_mode=check_mode)):
        module = AnsibleModule(argument_spec={}, add_file_common_args=True, supports_check_mode=True)
    return FileAttributes(module)


def test_images_get_their_mode_before_any_rename_and_chattr_after(tmp_path):
    calls = []
    restore_dir = tmp_path / 'restore'

    class Recorder(object):
        def prepare(self, path, final):
            calls.append(('prepare', os.path.basename(path), sorted(os.listdir(str(restore_dir)))))

        def apply(self, path, changed=False):
            calls.append(('apply', os.path.basename(path), changed))
            return changed
    result = writer(tmp_path, attributes=Recorder()).run()
    assert result['changed']
    assert calls == [
        ('prepare', 'vda.qcow2.partial', ['vda.qcow2.partial']),
        ('prepare', 'vdb.qcow2.partial', ['vda.qcow2.partial', 'vdb.qcow2.partial']),
        ('apply', 'vda.qcow2', True), ('apply', 'vdb.qcow2', True)]


def test_images_get_the_mode_asked_or_stay_private(tmp_path):
    old = os.umask(0o022)
    try:
        writer(tmp_path / 'a', attributes=file_attributes(mode='0640')).run()
        writer(tmp_path / 'b', attributes=file_attributes()).run()
    finally:
        os.umask(old)
    for sub, mode in (('a', 0o640), ('b', 0o600)):
        for name in ('vda.qcow2', 'vdb.qcow2'):
            path = tmp_path / sub / 'restore' / name
            assert path.read_bytes() == b'restored'
            assert stat.S_IMODE(path.stat().st_mode) == mode


def test_a_failing_file_argument_restores_nothing(tmp_path):
    class Failing(object):
        def prepare(self, path, final):
            if path.endswith('vdb.qcow2.partial'):
                raise SystemExit(1)  # what fail_json does
    with pytest.raises(SystemExit):
        writer(tmp_path, attributes=Failing()).run()
    assert not (tmp_path / 'restore').exists()


def test_kept_images_get_the_file_arguments(tmp_path):
    same = {str(tmp_path / 'restore' / 'vda.qcow2'): {'format': 'qcow2', 'virtual-size': 1024},
            str(tmp_path / 'restore' / 'vdb.qcow2'): {'format': 'qcow2', 'virtual-size': 2048}}
    restore = writer(tmp_path, ['vda.qcow2', 'vdb.qcow2'], same)
    vda = tmp_path / 'restore' / 'vda.qcow2'
    vda.chmod(0o600)
    (tmp_path / 'restore' / 'vdb.qcow2').chmod(0o600)
    assert not restore.run()['changed']
    restore.attributes = file_attributes(True, mode='0640')
    checked = restore.run(check_mode=True)
    assert checked['changed'] and stat.S_IMODE(vda.stat().st_mode) == 0o600
    restore.attributes = file_attributes(mode='0640')
    result = restore.run()
    assert result['changed'] and [i['action'] for i in result['images']] == ['keep', 'keep']
    assert stat.S_IMODE(vda.stat().st_mode) == 0o640 and vda.read_bytes() == b'old'
    assert not restore.run()['changed']
