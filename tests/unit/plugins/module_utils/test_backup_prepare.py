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
    stale_partials,
    start_directory,
)

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


def test_start_directory_in_check_mode_changes_nothing(tmp_path):
    (tmp_path / 'web01' / 'old.partial').mkdir(parents=True)
    path, dummy, removed, dummy = start_directory(str(tmp_path), 'web01', XML, check_mode=True)
    assert removed == [str(tmp_path / 'web01' / 'old.partial')]
    assert os.listdir(tmp_path / 'web01') == ['old.partial']
    assert not os.path.exists(path)


def test_stale_partials_of_a_new_domain():
    assert stale_partials('/nonexistent/web01') == []
