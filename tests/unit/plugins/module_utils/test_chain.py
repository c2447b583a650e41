# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest

from ansible_collections.virtops.libvirt.plugins.module_utils._chain import (
    ChainError,
    find_disk,
    parse_disks,
    resolve_image,
)

# Shapes taken from libvirt 9.0 live XML on a running domain.
LIVE_XML = """
<domain type='kvm' id='1'>
  <name>web01</name>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/img/web01.2.qcow2' index='3'/>
      <backingStore type='file' index='2'>
        <format type='qcow2'/>
        <source file='/img/web01.1.qcow2'/>
        <backingStore type='file' index='1'>
          <format type='raw'/>
          <source file='/img/web01.raw'/>
          <backingStore/>
        </backingStore>
      </backingStore>
      <mirror type='file' job='active-commit' ready='yes'>
        <format type='qcow2'/>
        <source file='/img/web01.1.qcow2' index='2'/>
      </mirror>
      <target dev='vda' bus='virtio'/>
      <alias name='ua-vda'/>
    </disk>
    <disk type='block' device='disk'>
      <driver name='qemu' type='raw'/>
      <source dev='/dev/vg/data' index='4'/>
      <backingStore/>
      <target dev='vdb' bus='virtio'/>
      <shareable/>
    </disk>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <target dev='sda' bus='sata'/>
      <readonly/>
    </disk>
    <disk type='network' device='disk'>
      <driver name='qemu' type='raw'/>
      <source protocol='rbd' name='pool/image' index='5'/>
      <target dev='vdc' bus='virtio'/>
    </disk>
  </devices>
</domain>
"""


@pytest.fixture
def disks():
    return parse_disks(LIVE_XML)


def test_parse_chain_active_first(disks):
    vda = disks[0]
    assert vda.target == 'vda'
    assert [(i.path, i.format, i.index) for i in vda.chain] == [
        ('/img/web01.2.qcow2', 'qcow2', 3),
        ('/img/web01.1.qcow2', 'qcow2', 2),
        ('/img/web01.raw', 'raw', 1),
    ]
    assert vda.source == '/img/web01.2.qcow2'
    assert vda.format == 'qcow2'
    assert vda.alias == 'ua-vda'


def test_parse_mirror(disks):
    mirror = disks[0].mirror
    assert mirror.job == 'active_commit'
    assert mirror.path == '/img/web01.1.qcow2'
    assert mirror.ready is True
    assert disks[1].mirror is None


def test_parse_flags_and_kinds(disks):
    vdb, sda, vdc = disks[1:]
    assert (vdb.kind, vdb.source, vdb.shareable, vdb.readonly) == ('block', '/dev/vg/data', True, False)
    assert (sda.device, sda.chain, sda.source, sda.readonly) == ('cdrom', [], None, True)
    assert vdc.kind == 'network' and vdc.source == 'rbd:pool/image'


def test_find_disk_by_target_or_path(disks):
    assert find_disk(disks, 'vdb').target == 'vdb'
    assert find_disk(disks, '/img/web01.2.qcow2').target == 'vda'
    assert find_disk(disks, '/img/../img/web01.2.qcow2').target == 'vda'


def test_find_disk_unknown_names_the_disks(disks):
    with pytest.raises(ChainError, match='disk vdz not found: the domain has vda, vdb, sda, vdc'):
        find_disk(disks, 'vdz')


def test_find_disk_does_not_match_backing_images(disks):
    with pytest.raises(ChainError):
        find_disk(disks, '/img/web01.1.qcow2')


@pytest.mark.parametrize('spec, position', [
    ('vda[3]', 0),
    ('vda[1]', 2),
    ('/img/web01.1.qcow2', 1),
    ('/img/./web01.raw', 2),
    ('/img/other.qcow2', None),
])
def test_resolve_image(disks, spec, position):
    assert resolve_image(disks[0], spec, 'top') == position


def test_resolve_image_index_errors(disks):
    with pytest.raises(ChainError, match=r'names disk vdb, not vda'):
        resolve_image(disks[0], 'vdb[4]', 'top')
    with pytest.raises(ChainError, match=r'indexes: vda\[3\], vda\[2\], vda\[1\]'):
        resolve_image(disks[0], 'vda[9]', 'base')


def test_inactive_xml_without_indexes():
    xml = """<domain><devices><disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/><source file='/img/a.qcow2'/>
      <target dev='vda' bus='virtio'/></disk></devices></domain>"""
    (disk,) = parse_disks(xml)
    assert [(i.path, i.index) for i in disk.chain] == [('/img/a.qcow2', None)]
