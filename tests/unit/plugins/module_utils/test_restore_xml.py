# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import os
import xml.etree.ElementTree as ET

import pytest

from ansible_collections.virtops.libvirt.plugins.module_utils import _restore_xml as rxml

FIXTURE = os.path.join(os.path.dirname(__file__), 'fixtures', 'uefi_domain.xml')
UUID = '2b0a5c7e-6f55-4c5e-9a53-2b0cb2f3d1c1'


@pytest.fixture
def xml():
    with open(FIXTURE) as handle:
        return handle.read()


def disks_of(text):
    root = ET.fromstring(text)
    return dict((d.find('target').get('dev'), d) for d in root.findall('devices/disk'))


def test_facts_of_the_backed_up_definition(xml):
    assert rxml.domain_identity(xml) == dict(name='web01', uuid=UUID)
    assert rxml.nvram_path(xml) == '/var/lib/libvirt/qemu/nvram/web01_VARS.fd'
    assert rxml.tpm_state_dir(xml) == '/var/lib/libvirt/swtpm/' + UUID
    assert rxml.macs(xml) == ['52:54:00:11:22:33', '52:54:00:11:22:34']


def test_tpm_with_its_own_state_directory():
    text = ("<domain><uuid>%s</uuid><devices><tpm><backend type='emulator'>"
            "<source type='dir' path='/srv/tpm/web01'/></backend></tpm></devices></domain>" % UUID)
    assert rxml.tpm_state_dir(text) == '/srv/tpm/web01'
    assert rxml.tpm_state_dir("<domain><devices><tpm><backend type='passthrough'/></tpm></devices></domain>") is None


def test_new_name_gets_new_identity_standalone_disks_and_drops_unrestored_writable_disks(xml):
    images = {'vda': ('/restore/vda.raw', 'raw'), 'vdb': ('/restore/vdb.raw', 'raw')}
    text, dropped = rxml.rewrite(xml, 'web01-copy', images, True,
                                 nvram='/var/lib/libvirt/qemu/nvram/web01-copy_VARS.fd')
    root = ET.fromstring(text)
    assert root.findtext('name') == 'web01-copy'
    assert root.findtext('uuid') == rxml.derived_uuid(UUID, 'web01-copy') != UUID
    macs = rxml.macs(text)
    assert len(set(macs)) == 2 and not set(macs) & {'52:54:00:11:22:33', '52:54:00:11:22:34'}
    assert all(mac.startswith('52:54:00:') for mac in macs)
    disks = disks_of(text)
    assert dropped == ['vdc']
    assert sorted(disks) == ['sda', 'vda', 'vdb']   # the read-only cdrom stays
    for target in ('vda', 'vdb'):
        disk = disks[target]
        assert disk.get('type') == 'file'
        assert disk.find('source').attrib == {'file': '/restore/%s.raw' % target}
        assert disk.find('driver').get('type') == 'raw'
        assert disk.find('backingStore') is None
    assert root.findtext('os/nvram') == '/var/lib/libvirt/qemu/nvram/web01-copy_VARS.fd'
    assert root.find('os/nvram').get('template') == '/usr/share/OVMF/OVMF_VARS_4M.fd'


def test_same_name_keeps_uuid_macs_and_other_disks(xml):
    text, dropped = rxml.rewrite(xml, 'web01', {'vda': ('/images/web01/vda.1.qcow2', 'qcow2')}, False)
    assert dropped == []
    assert rxml.domain_identity(text) == dict(name='web01', uuid=UUID)
    assert rxml.macs(text) == ['52:54:00:11:22:33', '52:54:00:11:22:34']
    disks = disks_of(text)
    assert disks['vdb'].find('source').get('dev') == '/dev/vg0/web01-data'
    assert disks['vdc'].find('source').get('file') == '/images/web01/scratch.raw'


def test_rewrite_is_deterministic_and_marked(xml):
    images = {'vda': ('/r/vda.qcow2', 'qcow2')}
    first, dummy = rxml.rewrite(xml, 'copy', images, True, backup='/b/web01/20261127T010000Z')
    second, dummy = rxml.rewrite(xml, 'copy', images, True, backup='/b/web01/20261127T010000Z')
    assert first == second
    marker = rxml.marker_of(first)
    assert marker['backup'] == '/b/web01/20261127T010000Z'
    other, dummy = rxml.rewrite(xml, 'copy2', images, True, backup='/b/web01/20261127T010000Z')
    assert rxml.marker_of(other)['digest'] != marker['digest']
    assert rxml.marker_of(xml) is None


def test_restoring_a_restored_definition_replaces_the_marker(xml):
    images = {'vda': ('/r/vda.qcow2', 'qcow2')}
    once, dummy = rxml.rewrite(xml, 'copy', images, True, backup='/b/1')
    twice, dummy = rxml.rewrite(once, 'copy', images, False, backup='/b/2')
    assert rxml.marker_of(twice)['backup'] == '/b/2'
    assert twice.count('restore backup=') == 1


def test_derived_identity_differs_per_name():
    assert rxml.derived_uuid(UUID, 'a') != rxml.derived_uuid(UUID, 'b')
    assert rxml.derived_mac(UUID, 'a', 0) != rxml.derived_mac(UUID, 'a', 1)


@pytest.mark.parametrize('images, message', [
    ({'vdz': ('/r/vdz.qcow2', 'qcow2')}, 'has no disk vdz'),
])
def test_refusals(xml, images, message):
    with pytest.raises(rxml.RewriteError, match=message):
        rxml.rewrite(xml, 'copy', images, True)


def test_nvram_without_an_nvram_element():
    with pytest.raises(rxml.RewriteError, match='no <os><nvram>'):
        rxml.rewrite("<domain><name>a</name><uuid>%s</uuid><os/></domain>" % UUID, 'b', {}, True,
                     nvram='/x')
    with pytest.raises(rxml.RewriteError, match='cannot be parsed'):
        rxml.parse('<domain>')
