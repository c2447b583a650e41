# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Bring a shut-off domain back from backup overlays onto its own images.

A VM that stops during its backup (destroyed, or shut down by its guest)
stays defined on the overlay: libvirt wrote the snapshot into the persistent
definition, and libvirt cannot commit the disks of a shut-off domain. Here
``qemu-img commit`` merges each overlay into its backing image, the disk
element of the definition gets its original source back (every other part
of the definition is kept), and only then is the overlay deleted.
"""

from __future__ import annotations

import os
import stat
import xml.etree.ElementTree as ET

from ansible_collections.virtops.libvirt.plugins.module_utils._chain import parse_disks
from ansible_collections.virtops.libvirt.plugins.module_utils._commit import signals_deferred
from ansible_collections.virtops.libvirt.plugins.module_utils._libvirt import (
    LibvirtFailure,
    libvirt,
    run_libvirt,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._qemu_img import backing_file
from ansible_collections.virtops.libvirt.plugins.module_utils._snapshot import (
    is_overlay,
    remove_committed_mark,
    write_committed_mark,
)


class Repair(object):
    """One overlay to merge: the disk ``target`` runs on ``overlay`` over ``base`` (``format``)."""

    def __init__(self, target, overlay, base, fmt):
        self.target = target
        self.overlay = overlay
        self.base = base
        self.format = fmt

    def as_dict(self):
        return dict(target=self.target, overlay=self.overlay, base=self.base, format=self.format)


def plan_repairs(xml, suffix, image_info):
    """The overlays of ours in a persistent definition; ``image_info(path)`` is qemu-img info."""
    repairs = []
    for disk in parse_disks(xml):
        if not is_overlay(disk.source, suffix):
            continue
        if not os.path.exists(disk.source):
            raise LibvirtFailure(
                'disk %s is defined on the backup overlay %s, which does not exist: the domain '
                'cannot start; nothing was changed, repair the definition by hand' % (
                    disk.target, disk.source))
        backing = backing_file(image_info(disk.source), disk.source)
        if not backing:
            raise LibvirtFailure('the backup overlay %s of disk %s has no backing image; nothing '
                                 'was changed' % (disk.source, disk.target))
        fmt = backing[1] or image_info(backing[0]).get('format')
        repairs.append(Repair(disk.target, disk.source, backing[0], fmt))
    return repairs


def restored_xml(xml, repairs):
    """The definition with each repaired disk back on its base image, nothing else changed."""
    root = ET.fromstring(xml)
    by_target = dict((r.target, r) for r in repairs)
    for disk_el in root.findall('./devices/disk'):
        target = disk_el.find('target')
        repair = by_target.get(target.get('dev') if target is not None else None)
        if repair is None:
            continue
        block = _is_block(repair.base)
        disk_el.set('type', 'block' if block else 'file')
        driver = disk_el.find('driver')
        if driver is None:
            driver = ET.SubElement(disk_el, 'driver', name='qemu')
        driver.set('type', repair.format)
        source = disk_el.find('source')
        for attr in ('file', 'dev', 'index'):
            source.attrib.pop(attr, None)
        source.set('dev' if block else 'file', repair.base)
        for store in disk_el.findall('backingStore'):
            disk_el.remove(store)
    return ET.tostring(root, encoding='unicode')


def _is_block(path):
    try:
        return stat.S_ISBLK(os.stat(path).st_mode)
    except OSError:
        return False


class OfflineRepair(object):
    """The repair of one shut-off domain."""

    def __init__(self, client, qemu, params):
        self.conn = client.conn
        self.qemu = qemu
        self.params = params
        self.domain = client.domain(params['domain'])
        self.name = self.domain.name()

    def _definition(self):
        flags = libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE
        return run_libvirt(lambda: self.domain.XMLDesc(flags),
                           'cannot read the definition of %s' % self.name)

    def _running(self):
        return run_libvirt(self.domain.isActive, 'cannot read the state of %s' % self.name)

    def run(self, check_mode):
        if self._running():
            raise LibvirtFailure(
                'domain %s is running: its overlays are committed live with blockcommit, not '
                'offline; nothing was changed' % self.name)
        old_xml = self._definition()
        repairs = plan_repairs(old_xml, self.params['suffix'], self.qemu.info)
        result = dict(changed=bool(repairs), repaired=[r.as_dict() for r in repairs])
        if not repairs or check_mode:
            result['msg'] = ('would merge %s' % ', '.join(r.overlay for r in repairs) if repairs
                             else 'no disk of %s is defined on a backup overlay' % self.name)
            return result
        for repair in repairs:
            # qemu-img takes the images' locks: a VM started meanwhile would make it fail.
            self.qemu.run(['commit', '-q', '-f', 'qcow2', '-d', repair.overlay],
                          'qemu-img commit of %s into %s' % (repair.overlay, repair.base))
        new_xml = restored_xml(old_xml, repairs)
        try:
            # Every overlay is merged. Killed after the definition changes, the run leaves them:
            # the marks let the next snapshot remove them (see _snapshot.committed_mark).
            for repair in repairs:
                try:
                    write_committed_mark(repair.overlay, repair.base)
                except OSError:
                    pass
            self._switch(old_xml, new_xml, repairs)
        except BaseException:
            # the VM may run on the overlays again: no mark stays on them
            for repair in repairs:
                remove_committed_mark(repair.overlay)
            raise
        result['msg'] = 'merged %s and defined %s on its own images' % (
            ', '.join(r.overlay for r in repairs), self.name)
        return result

    def _switch(self, old_xml, new_xml, repairs):
        """Define the domain on its own images, then delete the merged overlays."""
        with signals_deferred():
            if self._running():
                raise LibvirtFailure('domain %s was started during the repair; its definition '
                                     'was left on the overlays' % self.name)
            run_libvirt(lambda: self.conn.defineXML(new_xml),
                        'cannot define %s on its own images' % self.name)
            if self._running():
                # It started between the check and the define: it runs on the overlays, so
                # the definition must keep pointing at them.
                run_libvirt(lambda: self.conn.defineXML(old_xml),
                            'cannot put back the definition of %s' % self.name)
                raise LibvirtFailure('domain %s was started during the repair; its definition '
                                     'was put back on the overlays' % self.name)
            for repair in repairs:
                os.unlink(repair.overlay)
                remove_committed_mark(repair.overlay)
