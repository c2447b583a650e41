# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Find a backup and prove it complete before anything is restored from it.

A backup is usable when it is complete (not ``.partial``), its manifest reads, every image
and state file it names is there unchanged (the recorded sha256, or else the recorded size),
and ``qemu-img info`` finds each image in the recorded format and virtual size.

This is a private module_utils: its API may change without notice.
"""

from __future__ import annotations

import json
import os

from ansible_collections.virtops.libvirt.plugins.module_utils._backup_store import (
    MANIFEST,
    PARTIAL,
    TIMESTAMP,
    complete_backups,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._image_copy import sha256_file
from ansible_collections.virtops.libvirt.plugins.module_utils._libvirt import LibvirtFailure

DOMAIN_XML = 'domain.xml'


class BackupError(Exception):
    pass


def locate(path=None, dest=None, domain=None, point=None):
    """The complete backup directory named by ``path``, or by ``dest``/``domain`` (+ ``point``)."""
    if path:
        path = os.path.abspath(path.rstrip('/'))
        if path.endswith(PARTIAL) or (not os.path.exists(path) and os.path.isdir(path + PARTIAL)):
            raise BackupError('%s is an incomplete backup (.partial): it was never finished and '
                              'cannot be restored' % path)
        if not os.path.isdir(path):
            raise BackupError('backup %s does not exist' % path)
        return path
    domain_dir = os.path.join(os.path.abspath(dest), domain)
    if point:
        if not TIMESTAMP.match(point):
            raise BackupError('point %r is not a backup timestamp (YYYYmmddTHHMMSSZ)' % point)
        return locate(path=os.path.join(domain_dir, point))
    backups = complete_backups(domain_dir)
    if not backups:
        partial = sorted(name for name in _listdir(domain_dir) if name.endswith(PARTIAL))
        raise BackupError('no complete backup of %s in %s%s' % (
            domain, domain_dir, ' (only incomplete ones: %s)' % ', '.join(partial) if partial else ''))
    return os.path.join(domain_dir, backups[-1])


def _listdir(path):
    try:
        return os.listdir(path)
    except OSError:
        return []


def read_manifest(directory):
    path = os.path.join(directory, MANIFEST)
    if not os.path.isfile(path):
        raise BackupError('%s has no %s: the backup is incomplete or damaged' % (directory, MANIFEST))
    try:
        with open(path) as handle:
            manifest = json.load(handle)
    except (OSError, ValueError) as exc:
        raise BackupError('%s is unreadable: %s' % (path, exc))
    if not isinstance(manifest, dict) or not isinstance(manifest.get('disks'), list) \
            or not manifest['disks'] or not manifest.get('domain'):
        raise BackupError('%s names no domain or no disks' % path)
    for disk in manifest['disks']:
        if not isinstance(disk, dict) or not disk.get('target') or not disk.get('file'):
            raise BackupError('%s has a disk without target or file' % path)
    return manifest


def read_domain_xml(directory):
    path = os.path.join(directory, DOMAIN_XML)
    try:
        with open(path) as handle:
            return handle.read()
    except OSError as exc:
        raise BackupError('the domain definition %s cannot be read: %s' % (path, exc))


def _relative_file(directory, entry, what):
    name = entry.get('file')
    if not name or os.path.isabs(name) or '..' in name.split('/'):
        raise BackupError('%s has no valid relative file name' % what)
    return os.path.join(directory, name)


def check_state_files(directory, manifest):
    """NVRAM and TPM state files: present, recorded size and sha256."""
    files = []
    for entry in manifest.get('state_files') or []:
        what = '%s state file %s' % (entry.get('kind'), entry.get('file'))
        path = _relative_file(directory, entry, what)
        if not os.path.isfile(path):
            raise BackupError('%s is missing: the backup is incomplete' % path)
        size = os.stat(path).st_size
        if entry.get('size') is not None and int(entry['size']) != size:
            raise BackupError('%s holds %d bytes, the manifest says %s' % (path, size, entry['size']))
        if entry.get('sha256') and sha256_file(path) != entry['sha256']:
            raise BackupError('%s does not match the sha256 in the manifest' % path)
        files.append(dict(entry, path=path))
    return files


def check_images(qemu, directory, manifest, checksum):
    """Every disk image: present, readable as the recorded format and virtual size, unchanged.

    Unchanged means the recorded sha256 when there is one and ``checksum`` is on; else the
    recorded size on disk. The sha256 decides when it can: a backup copied to another file
    system keeps its data but may take another number of blocks.
    """
    disks = []
    for disk in manifest['disks']:
        path = _relative_file(directory, disk, 'disk %s' % disk['target'])
        if not os.path.isfile(path):
            raise BackupError('%s is missing: the backup is incomplete' % path)
        fmt = disk.get('format') or 'qcow2'
        try:
            info = qemu.info(path, fmt=fmt)
        except LibvirtFailure as exc:
            raise BackupError('%s is not a readable %s image: %s' % (path, fmt, exc.msg))
        recorded = disk.get('virtual_size')
        if recorded is not None and int(recorded) != info.get('virtual-size'):
            raise BackupError('%s has a virtual size of %s bytes, the manifest says %s'
                              % (path, info.get('virtual-size'), recorded))
        if info.get('backing-filename'):
            raise BackupError('%s has a backing file (%s); a restore needs standalone images'
                              % (path, info['backing-filename']))
        checked = False
        if checksum and disk.get('sha256'):
            if sha256_file(path) != disk['sha256']:
                raise BackupError('%s does not match the sha256 in the manifest' % path)
            checked = True
        elif disk.get('size') is not None:
            actual = os.stat(path).st_blocks * 512
            if int(disk['size']) != actual:
                raise BackupError('%s holds %d bytes, the manifest says %s%s' % (
                    path, actual, disk['size'],
                    '' if disk.get('sha256') else ' (and records no sha256 to prove the data unchanged)'))
        disks.append(dict(disk, path=path, format=fmt, virtual_size=info.get('virtual-size'),
                          sha256_checked=checked))
    return disks


def inspect(qemu, directory, checksum):
    """Everything a restore needs to know about one backup, or a BackupError."""
    manifest = read_manifest(directory)
    xml = read_domain_xml(directory)
    disks = check_images(qemu, directory, manifest, checksum)
    state_files = check_state_files(directory, manifest)
    return dict(path=directory, manifest=manifest, domain_xml=xml, disks=disks,
                state_files=state_files, point=os.path.basename(directory),
                bytes=sum(int(d.get('size') or 0) for d in manifest['disks']))
