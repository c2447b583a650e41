# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Check a live backup's settings before any domain is touched.

A value refused half-way (after a snapshot) would leave a VM on its overlay,
so every setting is checked first, against the domains it will apply to.
"""

from __future__ import annotations

import fnmatch
import os
import re
import xml.etree.ElementTree as ET

from ansible_collections.virtops.libvirt.plugins.module_utils._chain import parse_disks
from ansible_collections.virtops.libvirt.plugins.module_utils._libvirt import (
    LibvirtClient,
    LibvirtFailure,
    libvirt,
    run_libvirt,
    undefined_meanwhile,
)

# The settings of a run, as backup_plan and backup_domains take them (doc fragment
# virtops.libvirt.backup_settings). Paths are str: a relative one is refused by name, not expanded.
SETTINGS_ARGUMENT_SPEC = dict(
    domains=dict(type='raw', default='all'),
    exclude_domains=dict(type='list', elements='str', default=[]),
    tag=dict(type='str', default=''),
    dest=dict(type='str', required=True),
    exclude_disks=dict(type='list', elements='str', default=[]),
    bandwidth=dict(type='int', default=0),
    copy_bandwidth=dict(type='int', default=0),
    timeout=dict(type='int', default=3600),
    copy_timeout=dict(type='int', default=86400),
    keep=dict(type='int', default=7),
    keep_daily=dict(type='int', default=0),
    keep_weekly=dict(type='int', default=0),
    keep_monthly=dict(type='int', default=0),
    lease=dict(type='int', default=120),
    progress_interval=dict(type='int', default=10),
    parallel=dict(type='int', default=2),
    lock_dir=dict(type='str', default='/run/lock/virtops-libvirt'),
    block_overlay_dir=dict(type='str', default='/var/lib/libvirt/images'),
)

# setting -> (lowest allowed value, what the value means)
MINIMUMS = dict(
    bandwidth=(0, 'MiB/s of the commit, 0 unlimited'),
    copy_bandwidth=(0, 'MiB/s of the copy, 0 unlimited'),
    timeout=(0, 'seconds to READY, 0 waits forever'),
    keep=(0, 'newest backups kept per domain'),
    keep_daily=(0, 'days whose newest backup is kept'),
    keep_weekly=(0, 'weeks whose newest backup is kept'),
    keep_monthly=(0, 'months whose newest backup is kept'),
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
        errors.append('live_backup_domains must be all, or a non-empty list of domain names, '
                      'UUIDs or patterns, got %r' % (domains,))
    if not all(isinstance(d, str) and d for d in params['exclude_domains']):
        errors.append('live_backup_exclude_domains must be a list of domain names, UUIDs or '
                      'patterns, got %r' % (params['exclude_domains'],))
    if params['tag'] and not re.match(r'^[\w.-]+$', params['tag']):
        errors.append('live_backup_tag must be one word (letters, digits, _ . -), got %r'
                      % params['tag'])
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


# --- which domains -------------------------------------------------------------------------

# The namespace of the <metadata> element that tags a domain for backup:
#   <metadata><virtops:backup xmlns:virtops="https://github.com/virtops/libvirt" tags="nightly"/>
METADATA_NS = 'https://github.com/virtops/libvirt'
_GLOB = re.compile(r'[*?[]')


def is_pattern(spec):
    return bool(_GLOB.search(spec))


def domain_tags(xml):
    """The backup tags of a definition: the metadata element's ``tags`` and #hashtags of the
    title and description."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return set()
    tags = set()
    for element in root.findall('metadata/{%s}backup' % METADATA_NS):
        tags.update((element.get('tags') or '').replace(',', ' ').split())
    for field in ('title', 'description'):
        tags.update(re.findall(r'(?:^|\s)#([\w.-]+)', root.findtext(field) or ''))
    return tags


def _matches(spec, name, uuid):
    return fnmatch.fnmatchcase(name, spec) if is_pattern(spec) else spec in (name, uuid)


def select_domains(wanted, exclude, tag, available):
    """``(selected, warnings)`` from the role's settings.

    ``available`` is ``[(name, uuid, xml)]`` of the defined domains, sorted by name; ``wanted``
    is ``all`` or names, UUIDs and glob patterns. ``selected`` is ``[(label, name or None)]`` in
    the order asked (a pattern by name where it stands); a named domain that does not exist is
    kept with ``None`` so the role fails it alone. ``exclude`` (names, UUIDs, patterns) and
    ``tag`` (only domains carrying it) then narrow the selection.
    """
    warnings = []
    chosen = []
    for spec in (['*'] if wanted == 'all' else wanted):
        found = [name for name, uuid, dummy in available if _matches(spec, name, uuid)]
        if not found and not is_pattern(spec):
            chosen.append((spec, None))
        elif not found:
            warnings.append('live_backup_domains pattern %s matches no domain' % spec)
        for name in found:
            chosen.append((spec if not is_pattern(spec) else name, name))
    tags = dict((name, domain_tags(xml)) for name, dummy, xml in available) if tag else {}
    uuids = dict((name, uuid) for name, uuid, dummy in available)
    selected, seen = [], set()
    for label, name in chosen:
        if name is not None and (name in seen or any(
                _matches(spec, name, uuids[name]) for spec in exclude)):
            continue
        if name is not None and tag and tag not in tags[name]:
            continue
        seen.add(name)
        selected.append((label, name))
    for spec in exclude:
        if not any(_matches(spec, name, uuid) for name, uuid, dummy in available):
            warnings.append('live_backup_exclude_domains names %s, which matches no domain' % spec)
    if tag and not any(tag in found for found in tags.values()):
        warnings.append('no domain carries the backup tag %s (live_backup_tag)' % tag)
    return selected, warnings


# --- the plan of a run ------------------------------------------------------------------------

class PlanError(Exception):
    """Settings that cannot work; nothing was touched."""

    def __init__(self, errors):
        self.errors = errors
        super(PlanError, self).__init__('invalid settings, nothing was touched: ' + '; '.join(errors))


def _definition(dom, name):
    """The persistent definition, or None for a domain undefined since it was listed."""
    try:
        return run_libvirt(lambda: dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE),
                           'cannot read the definition of %s' % name)
    except LibvirtFailure as exc:
        if undefined_meanwhile(exc):
            return None
        raise


def plan(params):
    """``(domains, warnings)`` of a run: every setting checked, the domains selected.

    ``params`` are ``backup_plan``'s options. ``domains`` is ``[{name, uuid}]`` in the order
    asked, ``uuid`` None for a named domain that does not exist. Raises ``PlanError`` for
    settings that cannot work (before any domain is read when the settings alone tell), and
    ``LibvirtFailure``.
    """
    errors = setting_errors(params)
    if errors:
        raise PlanError(errors)
    warnings, targets = [], set()
    with LibvirtClient(params['uri']) as client:
        conn = client.conn
        found = run_libvirt(lambda: conn.listAllDomains(0), 'cannot list domains')
        by_name = dict((dom.name(), dom) for dom in found)
        # The definitions of every domain only to look for tags; else of the chosen ones.
        xml_of = dict((name, _definition(dom, name) if params['tag'] else '')
                      for name, dom in sorted(by_name.items()))
        available = [(name, by_name[name].UUIDString(), xml)
                     for name, xml in sorted(xml_of.items()) if xml is not None]
        chosen, warned = select_domains(params['domains'], params['exclude_domains'],
                                        params['tag'], available)
        warnings.extend(warned)
        selected = []
        for label, name in chosen:
            xml = xml_of[name] or _definition(by_name[name], name) if name else None
            if name and xml is None:
                name = None  # undefined meanwhile: fails alone, as a domain not found
            selected.append(dict(name=label, uuid=by_name[name].UUIDString() if name else None))
            if name is None:
                continue
            targets.update(disk.target for disk in parse_disks(xml))
            bad, warned = domain_problems(name, xml, params['dest'], params['exclude_disks'])
            errors.extend(bad)
            warnings.extend(warned)
    if errors:
        raise PlanError(errors)
    return selected, warnings + unmatched_any_domain_excludes(params['exclude_disks'], targets)
