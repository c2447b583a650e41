# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The settings checks that run before any domain is touched."""

from __future__ import annotations

import pytest

from ansible_collections.virtops.libvirt.plugins.module_utils._backup_plan import (
    domain_problems,
    domain_tags,
    excluded_targets,
    select_domains,
    setting_errors,
    unmatched_any_domain_excludes,
)

GOOD = dict(domains='all', exclude_domains=[], tag='', dest='/srv/backups', exclude_disks=[], bandwidth=0, copy_bandwidth=0,
            timeout=3600, copy_timeout=86400, keep=7, keep_daily=0, keep_weekly=0, keep_monthly=0, lease=120, progress_interval=10, parallel=2,
            lock_dir='/run/lock/virtops-libvirt', block_overlay_dir='/var/lib/libvirt/images')

XML = """<domain><name>web01</name><devices>
<disk type='file' device='disk'><driver type='qcow2'/><source file='/img/web01/vda.qcow2'/>
<target dev='vda'/></disk>
<disk type='file' device='disk'><driver type='raw'/><source file='/data/web01-vdb.raw'/>
<target dev='vdb'/></disk></devices></domain>"""


def test_good_settings_pass():
    assert setting_errors(GOOD) == []


@pytest.mark.parametrize('change,expect', [
    (dict(bandwidth=-5), 'live_backup_bandwidth must be 0 or more'),
    (dict(copy_bandwidth=-1), 'live_backup_copy_bandwidth must be 0 or more'),
    (dict(timeout=-1), 'live_backup_timeout must be 0 or more'),
    (dict(keep=-1), 'live_backup_keep must be 0 or more'),
    (dict(keep_daily=-1), 'live_backup_keep_daily must be 0 or more'),
    (dict(keep_weekly=-7), 'live_backup_keep_weekly must be 0 or more'),
    (dict(keep_monthly=-1), 'live_backup_keep_monthly must be 0 or more'),
    (dict(lease=5), 'live_backup_lock_lease must be 10 or more'),
    (dict(progress_interval=0), 'live_backup_progress_interval must be 1 or more'),
    (dict(copy_timeout=0), 'live_backup_copy_timeout must be 1 or more'),
    (dict(parallel=0), 'live_backup_parallel must be 1 or more'),
    (dict(tag='two words'), 'live_backup_tag must be one word'),
    (dict(exclude_domains=['']), 'live_backup_exclude_domains must be a list'),
    (dict(lease=15), 'at most half of live_backup_lock_lease'),
    (dict(dest='backups'), 'live_backup_dest must be an absolute path'),
    (dict(lock_dir='locks'), 'live_backup_lock_dir must be an absolute path'),
    (dict(domains=[]), 'live_backup_domains must be all'),
    (dict(domains='some'), 'live_backup_domains must be all'),
    (dict(domains=['web01', 3]), 'live_backup_domains must be all'),
    (dict(exclude_disks=['web01:']), 'live_backup_exclude_disks entries'),
    (dict(exclude_disks=['a:b:c']), 'live_backup_exclude_disks entries'),
])
def test_bad_settings_are_named(change, expect):
    errors = setting_errors(dict(GOOD, **change))
    assert len(errors) == 1 and expect in errors[0]


def test_excluded_targets_per_domain():
    assert excluded_targets(['vdb', 'web01:vdc', 'db01:vdd'], 'web01') == ['vdb', 'vdc']


def test_a_destination_in_an_image_directory_is_refused_once_per_directory():
    errors, warnings = domain_problems('web01', XML, '/img/web01/backups', [])
    assert errors == ['live_backup_dest /img/web01/backups is inside /img/web01, the image '
                      'directory of web01 disk vda'] and warnings == []
    assert domain_problems('web01', XML, '/img/web01/backups', ['vda']) == ([], [])
    assert domain_problems('web01', XML, '/img/web01-backups', [])[0] == []


def test_excludes_that_match_no_disk_are_warnings():
    errors, warnings = domain_problems('web01', XML, '/srv', ['web01:vdz'])
    assert errors == [] and 'web01 has no disk vdz' in warnings[0]
    assert unmatched_any_domain_excludes(['vdb', 'vdz', 'web01:vdq'], {'vda', 'vdb'}) == [
        'live_backup_exclude_disks names vdz, but no selected domain has that disk']


def _xml(name, title='', description='', tags=None):
    meta = ('<metadata><v:backup xmlns:v="https://github.com/virtops/libvirt" tags="%s"/></metadata>'
            % tags) if tags is not None else ''
    return '<domain><name>%s</name><title>%s</title><description>%s</description>%s</domain>' % (
        name, title, description, meta)


AVAILABLE = [('db01', 'u-db01', _xml('db01', tags='nightly weekly')),
             ('web01', 'u-web01', _xml('web01', description='Web front #nightly')),
             ('web02', 'u-web02', _xml('web02', title='#weekly only')),
             ('zz-test', 'u-zz', _xml('zz-test'))]


def test_domain_tags_from_metadata_and_hashtags():
    assert domain_tags(AVAILABLE[0][2]) == {'nightly', 'weekly'}
    assert domain_tags(AVAILABLE[1][2]) == {'nightly'}
    assert domain_tags(AVAILABLE[2][2]) == {'weekly'}
    assert domain_tags('<domain><metadata><other xmlns="x" tags="nightly"/></metadata></domain>') == set()
    assert domain_tags('not xml') == set()


@pytest.mark.parametrize('wanted,exclude,tag,expect', [
    ('all', [], '', [('db01', 'db01'), ('web01', 'web01'), ('web02', 'web02'), ('zz-test', 'zz-test')]),
    (['web*', 'db01'], [], '', [('web01', 'web01'), ('web02', 'web02'), ('db01', 'db01')]),
    (['u-web02', 'missing'], [], '', [('u-web02', 'web02'), ('missing', None)]),
    ('all', ['zz-*', 'u-db01'], '', [('web01', 'web01'), ('web02', 'web02')]),
    ('all', [], 'nightly', [('db01', 'db01'), ('web01', 'web01')]),
    (['web*'], ['web01'], 'weekly', [('web02', 'web02')]),
    (['web01', 'web*'], [], '', [('web01', 'web01'), ('web02', 'web02')]),  # once each
])
def test_select_domains(wanted, exclude, tag, expect):
    selected, dummy = select_domains(wanted, exclude, tag, AVAILABLE)
    assert selected == expect


def test_selection_warnings():
    dummy, warnings = select_domains(['app*'], ['old*'], 'monthly', AVAILABLE)
    assert warnings == ['live_backup_domains pattern app* matches no domain',
                        'live_backup_exclude_domains names old*, which matches no domain',
                        'no domain carries the backup tag monthly (live_backup_tag)']
