# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the live backup does with a domain, and the directory a backup starts in."""

from __future__ import annotations

import os

import pytest

from ansible_collections.virtops.libvirt.plugins.module_utils._backup_prepare import (
    PrepareError,
    decide,
    preview,
    stale_partials,
    start_directory,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._retention import policy

XML = "<domain><name>web01</name><devices></devices></domain>"


def _domain(running=True, overlays=()):
    return dict(name='web01', uuid='u-1', running=running, backup_overlays=list(overlays))


def _disk(target, skip_reason=None, source=None):
    return dict(target=target, skip_reason=skip_reason, source=source or '/img/%s.qcow2' % target)


DISKS = [_disk('vda'), _disk('vdb'), _disk('sda', 'device cdrom')]


def test_running_domain_is_backed_up_with_its_exclusions():
    plan = decide(_domain(), DISKS, ['vdb', 'db01:vda', 'vdz'], 'copy')
    assert plan['action'] == 'backup'
    assert plan['exclude'] == ['vdb']  # db01's and unknown exclusions do not apply
    assert plan['skipped'] == [dict(target='vdb', reason='excluded'),
                               dict(target='sda', reason='device cdrom')]
    assert plan['disks'] == [] and plan['consistency'] is None  # the snapshot decides


def test_shut_off_domain_copies_its_eligible_sources():
    plan = decide(_domain(running=False), DISKS, ['web01:vdb'], 'copy')
    assert plan['action'] == 'backup' and plan['consistency'] == 'offline'
    assert plan['disks'] == [dict(target='vda', source='/img/vda.qcow2')]


def test_shut_off_domain_is_skipped_when_asked():
    plan = decide(_domain(running=False), DISKS, [], 'skip')
    assert plan['action'] == 'skip'
    assert plan['summary'] == 'shut off (live_backup_offline is skip)'


def test_overlays_of_ours_come_first():
    plan = decide(_domain(overlays=['vda']), DISKS, [], 'copy')
    assert plan['action'] == 'recover' and plan['overlays'] == ['vda']


def test_nothing_to_back_up_is_refused_with_every_reason():
    with pytest.raises(PrepareError) as err:
        decide(_domain(), DISKS, ['vda', 'vdb'], 'copy')
    assert str(err.value) == ('no disk of web01 can be backed up: vda (excluded), vdb (excluded), '
                              'sda (device cdrom); nothing was touched')


def test_start_directory_replaces_incomplete_backups(tmp_path):
    domain_dir = tmp_path / 'web01'
    (domain_dir / '20261101T000000Z.partial').mkdir(parents=True)
    (domain_dir / '20261101T000000Z.partial' / 'vda.qcow2').write_bytes(b'x')
    (domain_dir / '20261102T000000Z').mkdir()  # complete: kept
    path, started, removed, state_files = start_directory(
        str(tmp_path), 'web01', XML, now=1795219200)
    assert path == str(domain_dir / '20261121T000000Z.partial')
    assert started == '2026-11-21T00:00:00Z'
    assert removed == [str(domain_dir / '20261101T000000Z.partial')]
    assert state_files == []
    assert sorted(os.listdir(domain_dir)) == ['20261102T000000Z', '20261121T000000Z.partial']
    assert (domain_dir / '20261121T000000Z.partial' / 'domain.xml').read_text() == XML
    assert oct(os.stat(path).st_mode & 0o777) == '0o700'


def test_a_run_within_the_second_of_a_completed_backup_takes_the_next_second(tmp_path):
    (tmp_path / 'web01' / '20261121T000000Z').mkdir(parents=True)
    (tmp_path / 'web01' / '20261121T000001Z').mkdir()
    path, started, dummy, dummy = start_directory(str(tmp_path), 'web01', XML, now=1795219200.5)
    assert path == str(tmp_path / 'web01' / '20261121T000002Z.partial')
    assert started == '2026-11-21T00:00:02Z'


def test_start_directory_in_check_mode_changes_nothing(tmp_path):
    (tmp_path / 'web01' / 'old.partial').mkdir(parents=True)
    path, dummy, removed, dummy = start_directory(str(tmp_path), 'web01', XML, check_mode=True)
    assert removed == [str(tmp_path / 'web01' / 'old.partial')]
    assert os.listdir(tmp_path / 'web01') == ['old.partial']
    assert not os.path.exists(path)


def test_stale_partials_of_a_new_domain():
    assert stale_partials('/nonexistent/web01') == []


def test_preview_says_what_a_run_would_do(tmp_path):
    images = tmp_path / 'img'
    images.mkdir()
    (images / 'vda.base.qcow2').write_bytes(b'b' * 8192)
    (images / 'vda.qcow2').write_bytes(b'a' * 4096)
    disks = [dict(target='vda', skip_reason=None, source=str(images / 'vda.qcow2'),
                  chain=[dict(path=str(images / 'vda.qcow2')), dict(path=str(images / 'vda.base.qcow2'))]),
             dict(target='sda', skip_reason='device cdrom', source=None, chain=[])]
    plan = decide(_domain(), disks, [], 'copy')
    plan['domain'] = _domain()
    dest = tmp_path / 'dest'
    for name in ('20261101T000000Z', '20261102T000000Z'):
        (dest / 'web01' / name).mkdir(parents=True)
        (dest / 'web01' / name / 'manifest.json').write_text('{}')
    (dest / 'web01' / '20261103T000000Z.partial').mkdir()
    lock = tmp_path / 'web01.lock'
    lock.write_text('{"owner": "other-run", "expires": 1, "since": "2026-11-01T00:00:00Z"}')
    result, summary = preview(plan, disks, str(dest), policy(last=2), str(lock), now=1795219200)
    assert result['disks'] == [dict(target='vda', bytes=12288, chain=[
        str(images / 'vda.qcow2'), str(images / 'vda.base.qcow2')])]
    assert result['bytes'] == 12288 and result['dest_free'] > 0
    assert result['lock'] == dict(state='expired', owner='other-run', since='2026-11-01T00:00:00Z')
    assert result['partials'] == ['20261103T000000Z.partial']
    assert result['prune'] == [str(dest / 'web01' / '20261101T000000Z')]
    assert summary.startswith('would back up vda (%s <- %s): about 12.0 KiB into %s (' % (
        images / 'vda.qcow2', images / 'vda.base.qcow2', dest / 'web01'))
    assert summary.endswith('free); skip sda (device cdrom); lock expired (other-run); '
                            'would remove 1 incomplete backup(s); would prune 20261101T000000Z')


def test_preview_of_a_domain_on_overlays_of_ours(tmp_path):
    disks = [dict(target='vda', skip_reason=None, source='/img/vda.qcow2.virtops-backup.qcow2',
                  chain=[dict(path='/img/vda.qcow2.virtops-backup.qcow2'), dict(path='/img/vda.qcow2')])]
    plan = decide(_domain(overlays=['vda']), disks, [], 'copy')
    plan['domain'] = _domain()
    result, summary = preview(plan, disks, str(tmp_path), policy(), None)
    assert summary.startswith('runs on overlays of ours (vda): would commit them back first; '
                              'would back up vda (/img/vda.qcow2.virtops-backup.qcow2 <- /img/vda.qcow2)')
    assert result['lock'] == dict(state='free', owner=None, since=None)
    assert result['bytes'] == 0  # images that do not exist count nothing
