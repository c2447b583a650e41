# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Check a live backup's settings before any domain is touched.

A value refused half-way (after a snapshot) would leave a VM on its overlay,
so every setting is checked first, against the domains it will apply to.
"""

from __future__ import annotations

import os

from ansible_collections.virtops.libvirt.plugins.module_utils._chain import parse_disks

# setting -> (lowest allowed value, what the value means)
MINIMUMS = dict(
    bandwidth=(0, 'MiB/s of the commit, 0 unlimited'),
    copy_bandwidth=(0, 'MiB/s of the copy, 0 unlimited'),
    timeout=(0, 'seconds to READY, 0 waits forever'),
    keep=(0, 'backups kept per domain, 0 keeps all'),
    lease=(10, 'seconds'),
    progress_interval=(1, 'seconds'),
    copy_timeout=(1, 'seconds'),
    parallel=(1, 'domains backed up at the same time'),
)


def variable(option):
    """The role variable behind a module option."""
    return 'live_backup_lock_lease' if option == 'lease' else 'live_backup_' + option


def setting_errors(params):
    """Messages for settings that cannot work, whatever the domains."""
    errors = []
    for name, (lowest, meaning) in sorted(MINIMUMS.items()):
        if params[name] < lowest:
            errors.append('%s must be %d or more (%s), got %s' % (
                variable(name), lowest, meaning, params[name]))
    for name in ('dest', 'lock_dir', 'block_overlay_dir'):
        if not os.path.isabs(params[name]):
            errors.append('%s must be an absolute path, got %s' % (variable(name), params[name]))
    if params['lease'] >= 10 and params['progress_interval'] * 2 > params['lease']:
        errors.append('live_backup_progress_interval (%s) must be at most half of '
                      'live_backup_lock_lease (%s): the lease is renewed at every progress poll'
                      % (params['progress_interval'], params['lease']))
    domains = params['domains']
    if not (domains == 'all' or (isinstance(domains, list) and domains
                                 and all(isinstance(d, str) and d for d in domains))):
        errors.append('live_backup_domains must be all, or a non-empty list of domain names or '
                      'UUIDs, got %r' % (domains,))
    for spec in params['exclude_disks']:
        if not spec or spec.count(':') > 1 or spec.endswith(':') or spec.startswith(':'):
            errors.append('live_backup_exclude_disks entries are TARGET or DOMAIN:TARGET, got %r'
                          % spec)
    return errors


def excluded_targets(exclude, domain_name):
    """The targets excluded for one domain: ``vdb`` for every domain, ``web01:vdb`` for one."""
    return [spec.split(':', 1)[1] if ':' in spec else spec for spec in exclude
            if ':' not in spec or spec.split(':', 1)[0] == domain_name]


def _inside(path, directory):
    path, directory = os.path.realpath(path), os.path.realpath(directory)
    return path == directory or path.startswith(directory.rstrip('/') + '/')


def domain_problems(name, xml, dest, exclude):
    """``(errors, warnings)`` of the settings for one domain, from its definition."""
    errors, warnings = [], []
    disks = parse_disks(xml)
    targets = [disk.target for disk in disks]
    excluded = excluded_targets(exclude, name)
    for spec in exclude:
        if ':' in spec and spec.split(':', 1)[0] == name and spec.split(':', 1)[1] not in targets:
            warnings.append('live_backup_exclude_disks names %s, but %s has no disk %s (it has %s)'
                            % (spec, name, spec.split(':', 1)[1], ', '.join(targets) or 'none'))
    image_dirs = {}
    for disk in disks:
        if disk.target in excluded or disk.kind != 'file':
            continue
        for image in disk.chain:
            if image.path:
                image_dirs.setdefault(os.path.dirname(image.path), []).append(disk.target)
    for directory, users in sorted(image_dirs.items()):
        if _inside(dest, directory):
            errors.append('live_backup_dest %s is inside %s, the image directory of %s disk%s %s'
                          % (dest, directory, name, 's' if len(set(users)) > 1 else '',
                             ', '.join(sorted(set(users)))))
    return errors, warnings


def unmatched_any_domain_excludes(exclude, all_targets):
    """Warnings for ``vdb``-style entries that match no disk of any selected domain."""
    return ['live_backup_exclude_disks names %s, but no selected domain has that disk' % spec
            for spec in exclude if ':' not in spec and spec not in all_targets]
