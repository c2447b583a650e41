# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import json
import os

import pytest

from ansible_collections.virtops.libvirt.plugins.module_utils._backup_store import (
    StoreError,
    complete_backups,
    finalize,
    to_prune,
)


def make_backup(domain_dir, name, complete=True):
    path = domain_dir / name
    path.mkdir(parents=True)
    if complete:
        (path / 'manifest.json').write_text('{}')
    return path


def partial_with_image(domain_dir, stamp='20261127T010000Z'):
    partial = domain_dir / (stamp + '.partial')
    partial.mkdir(parents=True)
    (partial / 'vda.qcow2').write_bytes(b'x' * 8192)
    size = os.stat(str(partial / 'vda.qcow2')).st_blocks * 512
    manifest = dict(domain='web01', disks=[dict(target='vda', file='vda.qcow2', size=size)])
    return partial, manifest


@pytest.mark.parametrize('count, keep, pruned', [
    (5, 0, 0), (5, 2, 3), (2, 5, 0), (1, 1, 0), (3, 1, 2),
])
def test_to_prune_keeps_the_newest(count, keep, pruned):
    backups = ['2026112%dT010000Z' % i for i in range(count)]
    result = to_prune(backups, keep)
    assert len(result) == pruned
    assert backups[-1] not in result


def test_complete_backups_ignore_partial_and_foreign(tmp_path):
    make_backup(tmp_path, '20261126T010000Z')
    make_backup(tmp_path, '20261125T010000Z')
    make_backup(tmp_path, '20261127T010000Z.partial')
    make_backup(tmp_path, '20261124T010000Z', complete=False)
    make_backup(tmp_path, 'notes')
    assert complete_backups(str(tmp_path)) == ['20261125T010000Z', '20261126T010000Z']


def test_finalize_writes_manifest_renames_and_prunes(tmp_path):
    for day in (24, 25, 26):
        make_backup(tmp_path, '202611%dT010000Z' % day)
    partial, manifest = partial_with_image(tmp_path)
    result = finalize(str(partial), manifest, keep=2)
    final = tmp_path / '20261127T010000Z'
    assert result['changed'] and result['path'] == str(final)
    assert not partial.exists()
    written = json.loads((final / 'manifest.json').read_text())
    assert written['domain'] == 'web01' and written['finished'].endswith('Z')
    assert oct(os.stat(str(final / 'manifest.json')).st_mode & 0o777) == '0o600'
    assert sorted(os.listdir(str(tmp_path))) == ['20261126T010000Z', '20261127T010000Z']
    again = finalize(str(partial), manifest, keep=2)
    assert not again['changed'] and again['pruned'] == []


def test_check_mode_changes_nothing(tmp_path):
    make_backup(tmp_path, '20261126T010000Z')
    partial, manifest = partial_with_image(tmp_path)
    result = finalize(str(partial), manifest, keep=1, check_mode=True)
    assert result['changed'] and result['pruned'] == [str(tmp_path / '20261126T010000Z')]
    assert partial.exists() and (tmp_path / '20261126T010000Z').exists()


@pytest.mark.parametrize('change, message', [
    (lambda p, m: os.unlink(str(p / 'vda.qcow2')), 'is missing'),
    (lambda p, m: m['disks'][0].update(size=1), 'the manifest says 1'),
    (lambda p, m: m['disks'][0].update(file='../escape'), 'no valid relative file name'),
])
def test_incomplete_backup_is_never_completed(tmp_path, change, message):
    partial, manifest = partial_with_image(tmp_path)
    change(partial, manifest)
    with pytest.raises(StoreError, match=message):
        finalize(str(partial), manifest, keep=0)
    assert partial.exists() and not (tmp_path / '20261127T010000Z').exists()


def test_a_second_backup_with_the_same_timestamp_is_refused(tmp_path):
    make_backup(tmp_path, '20261127T010000Z')
    partial, manifest = partial_with_image(tmp_path)
    with pytest.raises(StoreError, match='already complete'):
        finalize(str(partial), manifest, keep=0)
    assert partial.exists()


def test_names_are_checked(tmp_path):
    with pytest.raises(StoreError, match='does not end with'):
        finalize(str(tmp_path / '20261127T010000Z'), {}, 0)
    with pytest.raises(StoreError, match='not named by a UTC timestamp'):
        finalize(str(tmp_path / 'latest.partial'), {}, 0)
