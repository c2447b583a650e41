# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Pure: rewrite a backed-up domain definition for its restore.

A restore under another name gets a new UUID and new MAC addresses so it can run beside the
original. Both are derived from the original UUID and the new name (UUID v5, a hash for the
MACs): a repeated restore defines the very same domain, which keeps it idempotent.

This is a private module_utils: its API may change without notice.
"""

from __future__ import annotations

import hashlib
import os
import uuid as uuidlib
import xml.etree.ElementTree as ET

METADATA_NS = 'https://github.com/virtops/libvirt/restore'
METADATA_PREFIX = 'virtops'
SWTPM_STATE_ROOT = '/var/lib/libvirt/swtpm'


class RewriteError(Exception):
    pass


def derived_uuid(original_uuid, name):
    return str(uuidlib.uuid5(uuidlib.UUID(original_uuid), name))


def derived_mac(original_uuid, name, index):
    # 52:54:00 is QEMU's prefix, the one libvirt itself uses for generated addresses.
    digest = hashlib.sha256(('%s/%s/%d' % (original_uuid, name, index)).encode('utf-8')).digest()
    return '52:54:00:%02x:%02x:%02x' % (digest[0], digest[1], digest[2])


def parse(xml):
    try:
        return ET.fromstring(xml)
    except ET.ParseError as exc:
        raise RewriteError('the domain XML cannot be parsed: %s' % exc)


def domain_identity(xml):
    root = parse(xml)
    return dict(name=root.findtext('name'), uuid=root.findtext('uuid'))


def nvram_path(xml):
    """The NVRAM file of a UEFI domain, or None."""
    node = parse(xml).find('os/nvram')
    return node.text.strip() if node is not None and node.text and node.text.strip() else None


def tpm_state_dir(xml):
    """The swtpm state directory of an emulated TPM, or None.

    libvirt keeps it under ``/var/lib/libvirt/swtpm/<uuid>`` unless ``<backend><source
    type='dir' path=...>`` names another one.
    """
    root = parse(xml)
    for tpm in root.findall('devices/tpm'):
        backend = tpm.find('backend')
        if backend is None or backend.get('type') != 'emulator':
            continue
        source = backend.find('source')
        if source is not None and source.get('path'):
            return source.get('path')
        return os.path.join(SWTPM_STATE_ROOT, root.findtext('uuid') or '')
    return None


def macs(xml):
    return [node.get('address') for node in parse(xml).findall('devices/interface/mac')]


def digest(xml):
    return hashlib.sha256(xml.encode('utf-8')).hexdigest()


def _writable_disk(disk):
    return disk.get('device', 'disk') == 'disk' and disk.find('readonly') is None \
        and disk.find('shareable') is None


def rewrite(xml, name, images, new_identity, nvram=None, backup=None):
    """The definition to restore, and the disks left out of it.

    ``images`` maps a disk target to ``(path, format)``: those disks get a standalone file
    image (no ``<backingStore>``). With ``new_identity`` the domain gets a derived UUID and
    MACs, and writable disks that are not restored are dropped, so the copy never shares a
    writable disk with the original. ``nvram`` is the path of the restored NVRAM file.
    ``backup`` is recorded in the domain's metadata with a digest of the definition.
    Returns ``(xml, dropped_targets)``.
    """
    root = parse(xml)
    original_uuid = root.findtext('uuid')
    if new_identity and not original_uuid:
        raise RewriteError('the backed-up definition has no UUID to derive a new one from')
    _set_text(root, 'name', name)
    if new_identity:
        _set_text(root, 'uuid', derived_uuid(original_uuid, name))
    # Runtime-only ids from a live definition have no place in a new one.
    for key in ('id',):
        root.attrib.pop(key, None)
    devices = root.find('devices')
    dropped = []
    found = set()
    for disk in list(devices.findall('disk')) if devices is not None else []:
        target = disk.find('target')
        dev = target.get('dev') if target is not None else None
        if dev in images:
            _restore_disk(disk, *images[dev])
            found.add(dev)
        elif new_identity and _writable_disk(disk):
            devices.remove(disk)
            dropped.append(dev)
    missing = sorted(set(images) - found)
    if missing:
        raise RewriteError('the backed-up definition has no disk %s' % ', '.join(missing))
    if new_identity and devices is not None:
        for index, mac in enumerate(devices.findall('interface/mac')):
            mac.set('address', derived_mac(original_uuid, name, index))
    if nvram:
        node = root.find('os/nvram')
        if node is None:
            raise RewriteError('the backed-up definition has no <os><nvram> for the NVRAM file')
        node.text = nvram
    text = ET.tostring(root, encoding='unicode')
    if backup:
        text = with_marker(root, backup, digest(text))
    return text, dropped


def with_marker(root, backup, definition_digest):
    metadata = root.find('metadata')
    if metadata is None:
        metadata = ET.SubElement(root, 'metadata')
    for old in metadata.findall('{%s}restore' % METADATA_NS):
        metadata.remove(old)
    marker = ET.SubElement(metadata, '{%s}restore' % METADATA_NS)
    marker.set('backup', backup)
    marker.set('digest', definition_digest)
    ET.register_namespace(METADATA_PREFIX, METADATA_NS)
    return ET.tostring(root, encoding='unicode')


def marker_of(xml):
    """``{backup, digest}`` recorded by a restore, or None."""
    node = parse(xml).find('metadata/{%s}restore' % METADATA_NS)
    if node is None:
        return None
    return dict(backup=node.get('backup'), digest=node.get('digest'))


def _set_text(root, tag, value):
    node = root.find(tag)
    if node is None:
        node = ET.SubElement(root, tag)
    node.text = value


def _restore_disk(disk, path, fmt):
    disk.set('type', 'file')
    for child in disk.findall('backingStore'):
        disk.remove(child)
    for child in disk.findall('source'):
        disk.remove(child)
    driver = disk.find('driver')
    if driver is None:
        driver = ET.Element('driver', name='qemu')
        disk.insert(0, driver)
    driver.set('type', fmt)
    source = ET.Element('source', file=path)
    disk.insert(list(disk).index(driver) + 1, source)
