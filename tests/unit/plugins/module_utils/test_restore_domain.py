# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import os

import pytest

from ansible_collections.virtops.libvirt.plugins.module_utils import _restore_xml as rxml
from ansible_collections.virtops.libvirt.plugins.module_utils._restore_domain import plan_definition

FIXTURE = os.path.join(os.path.dirname(__file__), 'fixtures', 'uefi_domain.xml')
UUID = '2b0a5c7e-6f55-4c5e-9a53-2b0cb2f3d1c1'
ORIGINAL = dict(name='web01', uuid=UUID)
STATE = [dict(kind='nvram', file='nvram/web01_VARS.fd', path='/b/nvram/web01_VARS.fd'),
         dict(kind='tpm', file='tpm/tpm2/tpm2-00.permall', relative='tpm2/tpm2-00.permall',
              path='/b/tpm/tpm2/tpm2-00.permall')]


@pytest.fixture
def xml():
    with open(FIXTURE) as handle:
        return handle.read()


def test_a_copy_gets_its_own_nvram_and_tpm_paths(xml):
    plan = plan_definition(xml, ORIGINAL, 'web01-copy', {'vda': '/r/vda.qcow2'}, 'qcow2', '/b', STATE)
    new_uuid = rxml.derived_uuid(UUID, 'web01-copy')
    assert plan['uuid'] == new_uuid and plan['new_identity']
    assert plan['nvram'] == '/var/lib/libvirt/qemu/nvram/web01-copy_VARS.fd'
    assert [s['dest'] for s in plan['state']] == [
        '/var/lib/libvirt/qemu/nvram/web01-copy_VARS.fd',
        '/var/lib/libvirt/swtpm/%s/tpm2/tpm2-00.permall' % new_uuid]
    assert rxml.nvram_path(plan['xml']) == plan['nvram']
    assert plan['dropped'] == ['vdb', 'vdc']
    assert rxml.marker_of(plan['xml']) == dict(backup='/b', digest=plan['digest'])


def test_the_original_name_keeps_its_paths(xml):
    plan = plan_definition(xml, ORIGINAL, 'web01', {'vda': '/images/web01/vda.1.qcow2'}, 'qcow2', '/b', STATE)
    assert plan['uuid'] == UUID and not plan['new_identity']
    assert [s['dest'] for s in plan['state']] == [
        '/var/lib/libvirt/qemu/nvram/web01_VARS.fd',
        '/var/lib/libvirt/swtpm/%s/tpm2/tpm2-00.permall' % UUID]


def test_without_backed_up_state_nothing_is_placed(xml):
    plan = plan_definition(xml, ORIGINAL, 'web01-copy', {'vda': '/r/vda.qcow2'}, 'qcow2', '/b', [])
    assert plan['state'] == [] and plan['tpm_dir'] is None
    # libvirt then makes a fresh NVRAM from the template for the copy, never the original's.
    assert rxml.nvram_path(plan['xml']) == plan['nvram'] == '/var/lib/libvirt/qemu/nvram/web01-copy_VARS.fd'


def test_a_copy_may_not_share_a_tpm_state_directory_named_in_the_definition():
    text = ("<domain><name>web01</name><uuid>%s</uuid><devices><tpm><backend type='emulator'>"
            "<source type='dir' path='/srv/tpm/web01'/></backend></tpm></devices></domain>" % UUID)
    with pytest.raises(rxml.RewriteError, match='would share it'):
        plan_definition(text, ORIGINAL, 'web01-copy', {}, 'qcow2', '/b', STATE[1:])
