# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import hashlib
import os
import stat

import pytest

from ansible_collections.virtops.libvirt.plugins.module_utils import _state_files as state


def domain_xml(tmp_path, nvram=True, tpm=True):
    os_xml = "<nvram>%s</nvram>" % (tmp_path / 'nvram' / 'web01_VARS.fd') if nvram else ''
    tpm_xml = ("<tpm><backend type='emulator'><source type='dir' path='%s'/></backend></tpm>"
               % (tmp_path / 'swtpm' / 'u1')) if tpm else ''
    return "<domain><name>web01</name><uuid>u1</uuid><os>%s</os><devices>%s</devices></domain>" % (os_xml, tpm_xml)


@pytest.fixture
def sources(tmp_path):
    (tmp_path / 'nvram').mkdir()
    (tmp_path / 'nvram' / 'web01_VARS.fd').write_bytes(b'uefi vars')
    tpm2 = tmp_path / 'swtpm' / 'u1' / 'tpm2'
    tpm2.mkdir(parents=True)
    (tpm2 / 'tpm2-00.permall').write_bytes(b'tpm state')
    (tpm2 / '.lock').write_bytes(b'')
    return tmp_path


def test_sources_name_nvram_and_tpm_files_but_not_the_lock(sources):
    found = state.sources(domain_xml(sources))
    assert [(f['kind'], f['file']) for f in found] == [
        ('nvram', 'nvram/web01_VARS.fd'), ('tpm', 'tpm/tpm2/tpm2-00.permall')]
    assert found[1]['relative'] == 'tpm2/tpm2-00.permall'


def test_missing_files_and_plain_domains_have_no_state(tmp_path):
    assert state.sources(domain_xml(tmp_path)) == []
    assert state.sources(domain_xml(tmp_path, nvram=False, tpm=False)) == []


def test_save_copies_privately_with_checksums(sources, tmp_path):
    backup = tmp_path / 'backup.partial'
    backup.mkdir()
    assert [e['file'] for e in state.save(str(backup), domain_xml(sources), check_mode=True)] \
        == ['nvram/web01_VARS.fd', 'tpm/tpm2/tpm2-00.permall']
    assert os.listdir(str(backup)) == []
    entries = state.save(str(backup), domain_xml(sources))
    for entry in entries:
        path = backup / entry['file']
        assert entry['sha256'] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert entry['size'] == len(path.read_bytes())
        assert stat.S_IMODE(os.stat(str(path)).st_mode) == 0o600
    assert not list(backup.rglob('*.partial'))


def test_targets_place_each_kind():
    entries = [dict(kind='nvram', file='nvram/a_VARS.fd'),
               dict(kind='tpm', file='tpm/tpm2/tpm2-00.permall', relative='tpm2/tpm2-00.permall')]
    placed = state.targets(entries, '/nv/b_VARS.fd', '/swtpm/u2')
    assert [p['dest'] for p in placed] == ['/nv/b_VARS.fd', '/swtpm/u2/tpm2/tpm2-00.permall']
    assert state.targets(entries, None, None) == []


def test_put_back_creates_missing_tpm_directories_and_undoes_on_failure(tmp_path):
    src = tmp_path / 'src'
    src.mkdir()
    (src / 'permall').write_bytes(b'tpm')
    root = tmp_path / 'swtpm'
    root.mkdir()
    item = dict(path=str(src / 'permall'), dest=str(root / 'u2' / 'tpm2' / 'tpm2-00.permall'),
                kind='tpm')
    assert state.differs(item)
    new_files, created = state.put_back([item], [(str(root / 'u2'), str(root))])
    assert (root / 'u2' / 'tpm2' / 'tpm2-00.permall').read_bytes() == b'tpm'
    owner = state.swtpm_owner()
    for path in [root / 'u2', root / 'u2' / 'tpm2', root / 'u2' / 'tpm2' / 'tpm2-00.permall']:
        assert (path.stat().st_uid, path.stat().st_gid) == owner  # what swtpm runs as
    assert created == [str(root / 'u2'), str(root / 'u2' / 'tpm2')]
    assert not state.differs(item)
    state.remove(new_files, created)
    assert os.listdir(str(root)) == []

    broken = dict(path=str(src / 'missing'), dest=str(root / 'u3' / 'tpm2' / 'x'))
    with pytest.raises(OSError):
        state.put_back([item, broken], [(str(root / 'u2'), str(root)), (str(root / 'u3'), str(root))])
    assert os.listdir(str(root)) == []


def test_swtpm_owner_follows_qemu_conf(tmp_path):
    conf = tmp_path / 'qemu.conf'
    conf.write_text('# swtpm_user = "nobody"\nswtpm_user = "root"\nswtpm_group = "root"\n')
    assert state.swtpm_owner(str(conf)) == (0, 0)
    conf.write_text('swtpm_user = "no-such-user-here"\n')
    assert state.swtpm_owner(str(conf)) == (0, 0)
