# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Pure model of a domain's disks and backing chains, from its live XML.

Nothing here talks to libvirt: it parses XML and resolves user specs, so it
is unit-tested directly.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET


class ChainError(Exception):
    """A user-facing problem with a disk, top or base specification."""


# libvirt's <mirror job='...'> names and the block-job type names we report.
JOB_TYPES = {
    0: 'unknown',
    1: 'pull',
    2: 'copy',
    3: 'commit',
    4: 'active_commit',
    5: 'backup',
}
MIRROR_JOBS = {'copy': 'copy', 'active-commit': 'active_commit'}

_INDEX_SPEC = re.compile(r'^(?P<target>[A-Za-z0-9_-]+)\[(?P<index>\d+)\]$')


class Image(object):
    """One image of a backing chain; ``index`` is libvirt's, or None."""

    def __init__(self, path, fmt, index=None, kind='file'):
        self.path = path
        self.format = fmt
        self.index = index
        self.kind = kind

    def as_dict(self):
        return dict(path=self.path, format=self.format, index=self.index)

    def short(self):
        return dict(path=self.path, format=self.format)

    def __repr__(self):
        return 'Image(%r, %r, %r)' % (self.path, self.format, self.index)


class Mirror(object):
    """A block job's destination as shown in the live XML (copy, active commit)."""

    def __init__(self, job, path, fmt, ready):
        self.job = job
        self.path = path
        self.format = fmt
        self.ready = ready


class Disk(object):
    """A domain disk with its backing chain, active layer first."""

    def __init__(self, target, device, kind, bus, chain, readonly=False,
                 shareable=False, mirror=None, alias=None):
        self.target = target
        self.device = device
        self.kind = kind
        self.bus = bus
        self.chain = chain
        self.readonly = readonly
        self.shareable = shareable
        self.mirror = mirror
        self.alias = alias

    @property
    def source(self):
        return self.chain[0].path if self.chain else None

    @property
    def format(self):
        return self.chain[0].format if self.chain else None

    def position(self, path):
        """Position of an image path in the chain (0 = active), or None."""
        for pos, image in enumerate(self.chain):
            if image.path is not None and same_path(image.path, path):
                return pos
        return None


def same_path(first, second):
    return os.path.normpath(first) == os.path.normpath(second)


def _source_path(source, kind):
    if source is None:
        return None
    if kind == 'file':
        return source.get('file')
    if kind == 'block':
        return source.get('dev')
    if kind == 'dir':
        return source.get('dir')
    if kind == 'volume':
        return source.get('volume')
    if kind == 'network':
        name = source.get('name')
        return '%s:%s' % (source.get('protocol'), name) if name else None
    return None


def _int_or_none(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _chain_of(disk_el):
    """Walk <source>/<backingStore> elements into a list of Images."""
    kind = disk_el.get('type', 'file')
    driver = disk_el.find('driver')
    source = disk_el.find('source')
    path = _source_path(source, kind)
    if path is None:
        return []
    chain = [Image(path, driver.get('type') if driver is not None else None,
                   _int_or_none(source.get('index')), kind)]
    store = disk_el.find('backingStore')
    while store is not None and store.find('source') is not None:
        store_kind = store.get('type', 'file')
        fmt = store.find('format')
        chain.append(Image(
            _source_path(store.find('source'), store_kind),
            fmt.get('type') if fmt is not None else None,
            _int_or_none(store.get('index')) if store.get('index') is not None
            else _int_or_none(store.find('source').get('index')),
            store_kind))
        store = store.find('backingStore')
    return chain


def _mirror_of(disk_el):
    mirror = disk_el.find('mirror')
    if mirror is None:
        return None
    kind = mirror.get('type', 'file')
    fmt = mirror.find('format')
    path = _source_path(mirror.find('source'), kind) or mirror.get('file')
    return Mirror(
        MIRROR_JOBS.get(mirror.get('job', 'copy'), mirror.get('job')),
        path,
        fmt.get('type') if fmt is not None else mirror.get('format'),
        mirror.get('ready') == 'yes')


def parse_disks(xml):
    """Every <disk> of a domain XML document, in document order."""
    root = ET.fromstring(xml)
    disks = []
    for disk_el in root.findall('./devices/disk'):
        target = disk_el.find('target')
        alias = disk_el.find('alias')
        disks.append(Disk(
            target=target.get('dev') if target is not None else None,
            device=disk_el.get('device', 'disk'),
            kind=disk_el.get('type', 'file'),
            bus=target.get('bus') if target is not None else None,
            chain=_chain_of(disk_el),
            readonly=disk_el.find('readonly') is not None,
            shareable=disk_el.find('shareable') is not None,
            mirror=_mirror_of(disk_el),
            alias=alias.get('name') if alias is not None else None,
        ))
    return disks


def find_disk(disks, spec):
    """A disk by target name (``vda``) or by its active image's path."""
    for disk in disks:
        if disk.target == spec:
            return disk
    for disk in disks:
        if disk.source is not None and same_path(disk.source, spec):
            return disk
    raise ChainError('disk %s not found: the domain has %s' % (
        spec, ', '.join(d.target for d in disks if d.target) or 'no disks'))


def resolve_image(disk, spec, what):
    """Position in ``disk.chain`` of a path or ``vda[N]`` spec.

    Returns None for a well-formed path that is not in the chain (the caller
    decides whether that means "already committed"); raises for an index spec
    that names another disk or no image.
    """
    match = _INDEX_SPEC.match(spec)
    if match and not os.path.isabs(spec):
        if match.group('target') != disk.target:
            raise ChainError('%s %s names disk %s, not %s' % (
                what, spec, match.group('target'), disk.target))
        index = int(match.group('index'))
        for pos, image in enumerate(disk.chain):
            if image.index == index:
                return pos
        raise ChainError('%s %s is not in the chain of %s (indexes: %s)' % (
            what, spec, disk.target,
            ', '.join('%s[%s]' % (disk.target, i.index) for i in disk.chain if i.index is not None)))
    return disk.position(spec)


def job_type_name(code):
    return JOB_TYPES.get(code, 'unknown')
