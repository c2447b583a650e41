# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What a VM needs besides its disks to boot again: UEFI NVRAM and swtpm (vTPM) state.

The backup keeps them beside the disk images (``nvram/<file>``, ``tpm/<relative path>``),
each listed in the manifest under ``state_files`` with its size and sha256. A running VM's
NVRAM is copied as the firmware last wrote it; the TPM state as swtpm last saved it.

This is a private module_utils: its API may change without notice.
"""

from __future__ import annotations

import grp
import os
import pwd

from ansible_collections.virtops.libvirt.plugins.module_utils._backup_store import (
    fsync_dir,
    write_file,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._image_copy import sha256_file
from ansible_collections.virtops.libvirt.plugins.module_utils._restore_xml import (
    SWTPM_STATE_ROOT,
    nvram_path,
    tpm_state_dir,
)

NVRAM_DIR = 'nvram'
TPM_DIR = 'tpm'
# swtpm's lock file and anything that is not state.
_TPM_SKIP = ('.lock',)


def sources(xml):
    """``[{kind, source, file}]``: the state files the definition refers to that exist."""
    found = []
    nvram = nvram_path(xml)
    if nvram and os.path.isfile(nvram):
        found.append(dict(kind='nvram', source=nvram,
                          file=os.path.join(NVRAM_DIR, os.path.basename(nvram))))
    tpm_dir = tpm_state_dir(xml)
    if tpm_dir and os.path.isdir(tpm_dir):
        for top, dirs, names in os.walk(tpm_dir):
            dirs.sort()
            for name in sorted(names):
                path = os.path.join(top, name)
                if name in _TPM_SKIP or not os.path.isfile(path) or os.path.islink(path):
                    continue
                relative = os.path.relpath(path, tpm_dir)
                found.append(dict(kind='tpm', source=path, relative=relative,
                                  file=os.path.join(TPM_DIR, relative)))
    return found


def read_file(path):
    with open(path, 'rb') as handle:
        return handle.read()


def save(backup_dir, xml, check_mode=False):
    """Copy the state files into a backup; returns their manifest entries."""
    entries = []
    for item in sources(xml):
        data = read_file(item['source'])
        entry = dict(item, size=len(data))
        if not check_mode:
            dest = os.path.join(backup_dir, item['file'])
            _makedirs(os.path.dirname(dest), backup_dir)
            write_file(dest, data)
            entry['sha256'] = sha256_file(dest)
        entries.append(entry)
    return entries


def _makedirs(path, top, mode=0o700):
    """Create ``path`` and missing parents below the existing ``top``."""
    missing = []
    while not os.path.isdir(path):
        missing.append(path)
        if path == top or path == os.path.dirname(path):
            break
        path = os.path.dirname(path)
    for directory in reversed(missing):
        os.mkdir(directory, mode)
        fsync_dir(os.path.dirname(directory))
    return list(reversed(missing))


def targets(entries, nvram_dest, tpm_dest):
    """Where each backed-up state file goes: ``[dict(entry, dest=...)]``."""
    placed = []
    for entry in entries:
        if entry['kind'] == 'nvram':
            if not nvram_dest:
                continue
            dest = nvram_dest
        elif entry['kind'] == 'tpm':
            if not tpm_dest:
                continue
            relative = entry.get('relative') or os.path.relpath(entry['file'], TPM_DIR)
            dest = os.path.join(tpm_dest, relative)
        else:
            continue
        placed.append(dict(entry, dest=dest))
    return placed


def default_tpm_dir(uuid):
    return os.path.join(SWTPM_STATE_ROOT, uuid)


QEMU_CONF = '/etc/libvirt/qemu.conf'


def swtpm_owner(conf=QEMU_CONF):
    """``(uid, gid)`` that libvirt runs swtpm as: ``swtpm_user``/``swtpm_group`` of qemu.conf,
    else ``tss`` when that user exists (libvirt's default), else root."""
    names = dict(swtpm_user='tss', swtpm_group='tss')
    try:
        with open(conf) as handle:
            for line in handle:
                key, sep, value = line.partition('=')
                if sep and key.strip() in names:
                    names[key.strip()] = value.strip().strip('"\'')
    except (IOError, OSError):
        pass
    try:
        uid = pwd.getpwnam(names['swtpm_user']).pw_uid
    except KeyError:
        return 0, 0
    try:
        gid = grp.getgrnam(names['swtpm_group']).gr_gid
    except KeyError:
        gid = pwd.getpwnam(names['swtpm_user']).pw_gid
    return uid, gid


def differs(item):
    """True when the destination is missing or holds other data than the backup."""
    if not os.path.isfile(item['dest']):
        return True
    return sha256_file(item['dest']) != sha256_file(item['path'])


def put_back(items, top_dirs):
    """Write each state file through a temporary name, fsync, rename.

    ``top_dirs`` maps a destination directory tree to its existing parent, so missing
    directories are created. On a failure, the files and directories this call created are
    removed again. Returns ``(new files, created directories)``: what undoing it removes.
    """
    new_files = []
    created = []
    try:
        for item in items:
            top = next((parent for tree, parent in top_dirs if item['dest'].startswith(tree + '/')),
                       None)
            if top is not None:
                created += _makedirs(os.path.dirname(item['dest']), top)
            if not os.path.isdir(os.path.dirname(item['dest'])):
                raise OSError('the directory of %s does not exist' % item['dest'])
            existed = os.path.exists(item['dest'])
            write_file(item['dest'], read_file(item['path']))
            if not existed:
                new_files.append(item['dest'])
            if item.get('kind') == 'tpm':
                # swtpm opens its state as its own user; a root-owned copy makes QEMU's TPM
                # fail to start ("CMD_INIT: 0x9 operation failed").
                owner = swtpm_owner()
                os.chown(item['dest'], *owner)
                for directory in created:
                    if item['dest'].startswith(directory + '/'):
                        os.chown(directory, *owner)
    except BaseException:
        remove(new_files, created)
        raise
    return new_files, created


def remove(paths, directories=()):
    for path in paths:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
    for directory in reversed(list(directories)):
        try:
            os.rmdir(directory)
        except OSError:
            pass
