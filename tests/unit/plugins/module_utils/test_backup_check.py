# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import hashlib
import json
import os

import pytest

from ansible_collections.virtops.libvirt.plugins.module_utils._backup_check import (
    BackupError,
    check_images,
    check_state_files,
    inspect,
    locate,
    read_manifest,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._libvirt import LibvirtFailure


class FakeQemuImg(object):
    """``qemu-img info`` answers from a dict keyed by path."""

    def __init__(self, infos):
        self.infos = infos

    def info(self, path, backing_chain=False, fmt=None):
        if path not in self.infos:
            raise LibvirtFailure('qemu-img info %s failed: Image is not in qcow2 format' % path)
        return self.infos[path]


def make_backup(root, stamp='20261127T010000Z', data=b'x' * 8192, state=b'vars'):
    directory = root / 'web01' / stamp
    (directory / 'nvram').mkdir(parents=True)
    (directory / 'vda.qcow2').write_bytes(data)
    (directory / 'nvram' / 'web01_VARS.fd').write_bytes(state)
    (directory / 'domain.xml').write_text('<domain/>')
    manifest = dict(domain='web01', uuid='u', consistency='crash', disks=[dict(
        target='vda', file='vda.qcow2', format='qcow2', virtual_size=1048576,
        size=os.stat(str(directory / 'vda.qcow2')).st_blocks * 512,
        sha256=hashlib.sha256(data).hexdigest())],
        state_files=[dict(kind='nvram', file='nvram/web01_VARS.fd', size=len(state),
                          sha256=hashlib.sha256(state).hexdigest())])
    (directory / 'manifest.json').write_text(json.dumps(manifest))
    qemu = FakeQemuImg({str(directory / 'vda.qcow2'): {'format': 'qcow2', 'virtual-size': 1048576}})
    return directory, manifest, qemu


def test_locate_picks_the_newest_complete_backup(tmp_path):
    make_backup(tmp_path, '20261127T010000Z')
    make_backup(tmp_path, '20261128T010000Z')
    (tmp_path / 'web01' / '20261129T010000Z.partial').mkdir()
    assert locate(dest=str(tmp_path), domain='web01') == str(tmp_path / 'web01' / '20261128T010000Z')
    assert locate(dest=str(tmp_path), domain='web01', point='20261127T010000Z') \
        == str(tmp_path / 'web01' / '20261127T010000Z')


@pytest.mark.parametrize('kwargs, message', [
    (dict(point='20261129T010000Z'), r'incomplete backup \(.partial\)'),
    (dict(point='yesterday'), 'is not a backup timestamp'),
    (dict(domain='db01'), 'no complete backup of db01'),
])
def test_locate_refusals(tmp_path, kwargs, message):
    make_backup(tmp_path)
    (tmp_path / 'web01' / '20261129T010000Z.partial').mkdir()
    args = dict(dest=str(tmp_path), domain='web01')
    args.update(kwargs)
    with pytest.raises(BackupError, match=message):
        locate(**args)


def test_locate_by_path_refuses_partial_and_missing(tmp_path):
    partial = tmp_path / 'web01' / '20261129T010000Z.partial'
    partial.mkdir(parents=True)
    for path in (str(partial), str(partial)[:-len('.partial')]):
        with pytest.raises(BackupError, match='incomplete backup'):
            locate(path=path)
    with pytest.raises(BackupError, match='does not exist'):
        locate(path=str(tmp_path / 'nothing'))


def test_only_partial_backups_are_named(tmp_path):
    (tmp_path / 'web01' / '20261129T010000Z.partial').mkdir(parents=True)
    with pytest.raises(BackupError, match=r'only incomplete ones: 20261129T010000Z.partial'):
        locate(dest=str(tmp_path), domain='web01')


def test_inspect_a_good_backup(tmp_path):
    directory, manifest, qemu = make_backup(tmp_path)
    result = inspect(qemu, str(directory), checksum=True)
    assert result['point'] == '20261127T010000Z'
    assert result['disks'][0]['path'] == str(directory / 'vda.qcow2')
    assert result['disks'][0]['sha256_checked'] is True
    assert result['state_files'][0]['path'] == str(directory / 'nvram' / 'web01_VARS.fd')
    assert result['bytes'] == manifest['disks'][0]['size']


@pytest.mark.parametrize('damage, message', [
    (lambda d: (d / 'manifest.json').unlink(), 'has no manifest.json'),
    (lambda d: (d / 'manifest.json').write_text('{"domain": '), 'is unreadable'),
    (lambda d: (d / 'manifest.json').write_text('{"domain": "web01", "disks": []}'), 'names no domain or no disks'),
    (lambda d: (d / 'domain.xml').unlink(), 'domain definition .* cannot be read'),
    (lambda d: (d / 'vda.qcow2').unlink(), 'vda.qcow2 is missing'),
    (lambda d: (d / 'vda.qcow2').write_bytes(b'y' * 8192), 'does not match the sha256'),
    (lambda d: (d / 'vda.qcow2').write_bytes(b'x' * 100000), 'does not match the sha256'),
    (lambda d: (d / 'nvram' / 'web01_VARS.fd').write_bytes(b'varz'), 'nvram/web01_VARS.fd does not match'),
    (lambda d: (d / 'nvram' / 'web01_VARS.fd').unlink(), 'web01_VARS.fd is missing'),
])
def test_inspect_refuses_damage(tmp_path, damage, message):
    directory, dummy, qemu = make_backup(tmp_path)
    damage(directory)
    with pytest.raises(BackupError, match=message):
        inspect(qemu, str(directory), checksum=True)


def test_checksum_off_does_not_read_images(tmp_path):
    directory, dummy, qemu = make_backup(tmp_path)
    (directory / 'vda.qcow2').write_bytes(b'y' * 8192)
    disks = check_images(qemu, str(directory), read_manifest(str(directory)), checksum=False)
    assert disks[0]['sha256_checked'] is False


def test_the_sha256_decides_over_the_size_on_disk(tmp_path):
    directory, manifest, qemu = make_backup(tmp_path)
    manifest['disks'][0]['size'] += 4096   # as after a copy to another file system
    assert check_images(qemu, str(directory), manifest, checksum=True)[0]['sha256_checked']
    with pytest.raises(BackupError, match='holds .* bytes, the manifest says'):
        check_images(qemu, str(directory), manifest, checksum=False)
    del manifest['disks'][0]['sha256']
    with pytest.raises(BackupError, match='records no sha256 to prove the data unchanged'):
        check_images(qemu, str(directory), manifest, checksum=True)


@pytest.mark.parametrize('info, message', [
    (None, 'is not a readable qcow2 image'),
    ({'format': 'qcow2', 'virtual-size': 4096}, 'virtual size of 4096 bytes, the manifest says 1048576'),
    ({'format': 'qcow2', 'virtual-size': 1048576, 'backing-filename': 'base.qcow2'}, 'has a backing file'),
])
def test_images_qemu_img_cannot_vouch_for(tmp_path, info, message):
    directory, manifest, dummy = make_backup(tmp_path)
    qemu = FakeQemuImg({str(directory / 'vda.qcow2'): info} if info else {})
    with pytest.raises(BackupError, match=message):
        check_images(qemu, str(directory), manifest, checksum=False)


def test_state_file_names_must_stay_in_the_backup(tmp_path):
    directory, manifest, dummy = make_backup(tmp_path)
    manifest['state_files'][0]['file'] = '../../etc/passwd'
    with pytest.raises(BackupError, match='no valid relative file name'):
        check_state_files(str(directory), manifest)
