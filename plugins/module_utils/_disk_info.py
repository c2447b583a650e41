# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Facts about a domain's disks: chains, flags and block jobs."""

from __future__ import annotations

import os

from ansible_collections.virtops.libvirt.plugins.module_utils._chain import (
    Image,
    job_type_name,
    parse_disks,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._libvirt import (
    LibvirtFailure,
    libvirt,
    run_libvirt,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._snapshot import (
    DEFAULT_SUFFIX,
    ineligible_reason,
    is_overlay,
)

DOMAIN_STATES = {
    0: 'nostate',
    1: 'running',
    2: 'blocked',
    3: 'paused',
    4: 'shutdown',
    5: 'shutoff',
    6: 'crashed',
    7: 'pmsuspended',
}


def _chain_from_images(qemu_img, disk):
    """A shut-off domain's XML has no backing chain: read it from the images."""
    if disk.kind != 'file' or not disk.source or not os.path.exists(disk.source):
        return disk.chain
    try:
        infos = qemu_img.info(disk.source, backing_chain=True)
    except LibvirtFailure:
        return disk.chain
    return [Image(info.get('filename'), info.get('format'), None, 'file') for info in infos]


def _job_of(domain, disk):
    try:
        raw = domain.blockJobInfo(disk.target, 0)
    except libvirt.libvirtError:
        raw = {}
    if not raw:
        return {}
    return dict(type=job_type_name(raw.get('type')), cur=raw.get('cur', 0),
                end=raw.get('end', 0),
                ready=bool(disk.mirror is not None and disk.mirror.ready))


def domain_summary(domain):
    """Name, UUID, state and flags of one domain."""
    what = 'cannot read the state of %s' % domain.name()
    state = run_libvirt(lambda: domain.state(0)[0], what)
    return dict(
        name=domain.name(),
        uuid=domain.UUIDString(),
        state=DOMAIN_STATES.get(state, 'unknown'),
        running=bool(run_libvirt(domain.isActive, what)),
        persistent=bool(run_libvirt(domain.isPersistent, what)),
    )


def domain_facts(domain, qemu_img, suffix=DEFAULT_SUFFIX):
    """``(domain dict, [disk dict])`` for one domain."""
    info = domain_summary(domain)
    running = info['running']
    xml = run_libvirt(lambda: domain.XMLDesc(0), 'cannot read the XML of %s' % domain.name())
    disks = []
    for disk in parse_disks(xml):
        chain = disk.chain if running else _chain_from_images(qemu_img, disk)
        disks.append(dict(
            target=disk.target,
            device=disk.device,
            type=disk.kind,
            bus=disk.bus,
            format=disk.format,
            source=disk.source,
            chain=[image.as_dict() for image in chain],
            readonly=disk.readonly,
            shareable=disk.shareable,
            job=_job_of(domain, disk) if running else {},
            skip_reason=ineligible_reason(disk),
            backup_overlay=is_overlay(disk.source, suffix),
        ))
    # The XML kept with a backup is the persistent definition; only a running persistent
    # domain has one that differs from the XML just read.
    if running and info['persistent']:
        xml = run_libvirt(lambda: domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE),
                          'cannot read the XML of %s' % domain.name())
    info['xml'] = xml
    info['backup_overlays'] = [disk['target'] for disk in disks if disk['backup_overlay']]
    return info, disks
