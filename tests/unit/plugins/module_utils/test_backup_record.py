# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The manifest and the per-domain record, from the results of the backup steps."""

from __future__ import annotations

import pytest

from ansible_collections.virtops.libvirt.plugins.module_utils._backup_record import (
    RecordError,
    manifest,
    ok_record,
    size_text,
)

DIR = '/srv/b/web01/20261127T010000Z.partial'
PREPARED = dict(path=DIR, started='2026-11-27T01:00:00Z', consistency=None, disks=[],
                domain=dict(name='web01', uuid='u-1', running=True),
                skipped=[dict(target='vdb', reason='excluded')],
                state_files=[dict(kind='nvram', file='nvram/web01_VARS.fd', size=10)])
SNAPSHOT = dict(consistency='quiesced', disks=[
    dict(target='vda', status='snapshotted', frozen='/img/vda.qcow2', overlay='/img/o'),
    dict(target='vdb', status='skipped', reason='excluded', frozen=None, overlay=None)])


def _copy(src, dest=DIR + '/vda.qcow2', size=1 << 20):
    return dict(src=src, dest=dest, src_format='qcow2', format='qcow2', virtual_size=1 << 30,
                size=size, sha256='ab', verified=True, duration=1.5, changed=True)


def test_running_domain_manifest():
    result = manifest(PREPARED, SNAPSHOT, [_copy('/img/vda.qcow2')])
    assert result == dict(
        domain='web01', uuid='u-1', started='2026-11-27T01:00:00Z', consistency='quiesced',
        disks=[dict(target='vda', source='/img/vda.qcow2', source_format='qcow2', format='qcow2',
                    file='vda.qcow2', virtual_size=1 << 30, size=1 << 20, sha256='ab',
                    verified=True, seconds=1.5)],
        state_files=PREPARED['state_files'],
        skipped=[dict(target='vdb', reason='excluded')])


def test_shut_off_domain_manifest_uses_the_prepared_disks():
    prepared = dict(PREPARED, consistency='offline',
                    disks=[dict(target='vda', source='/img/vda.base.qcow2')])
    result = manifest(prepared, None, [_copy('/img/vda.base.qcow2')])
    assert result['consistency'] == 'offline'
    assert [d['source'] for d in result['disks']] == ['/img/vda.base.qcow2']
    assert result['skipped'] == [dict(target='vdb', reason='excluded')]


@pytest.mark.parametrize('copies,message', [
    ([], 'no copy of vda (/img/vda.qcow2) was made'),
    ([_copy('/img/vda.qcow2', dest='/elsewhere/vda.qcow2')], 'not into ' + DIR),
    ([dict(src='/img/vda.qcow2', dest=DIR + '/vda.qcow2')], 'incomplete (KeyError'),
])
def test_a_missing_or_misplaced_copy_is_refused(copies, message):
    with pytest.raises(RecordError) as err:
        manifest(PREPARED, SNAPSHOT, copies)
    assert message in str(err.value)


def test_a_snapshot_that_froze_nothing_is_refused():
    snapshot = dict(SNAPSHOT, disks=SNAPSHOT['disks'][1:])
    with pytest.raises(RecordError, match='no disk of web01 could be backed up'):
        manifest(PREPARED, snapshot, [])


def test_ok_record():
    the_manifest = manifest(PREPARED, SNAPSHOT, [_copy('/img/vda.qcow2', size=1610612736)])
    final = dict(path=DIR[:-len('.partial')], pruned=['/srv/b/web01/20261101T010000Z'])
    record = ok_record(the_manifest, final, ['vda: committed unthrottled after: timeout'],
                       now=1795741242)
    assert record == dict(
        domain='web01', status='ok', bytes=1610612736, seconds=42, consistency='quiesced',
        summary='1 disk(s), 1.5 GiB, quiesced, /srv/b/web01/20261127T010000Z, '
                'vda: committed unthrottled after: timeout',
        path='/srv/b/web01/20261127T010000Z', pruned=final['pruned'],
        notes=['vda: committed unthrottled after: timeout'])


@pytest.mark.parametrize('num,text', [(0, '0 Bytes'), (1, '1 Byte'), (1023, '1023 Bytes'),
                                      (1024, '1.0 KiB'), (3 << 30, '3.0 GiB'),
                                      (5 << 50, '5120.0 TiB')])
def test_size_text(num, text):
    assert size_text(num) == text
