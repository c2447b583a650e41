# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Snapshot planning (pure) and the quiesce fallback (against a fake domain).

Real snapshots are exercised by the disk_snapshot integration target; the
error codes faked here are the ones libvirt 9.0 gave for real domains.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET

import pytest

from ansible_collections.virtops.libvirt.plugins.module_utils._chain import parse_disks
from ansible_collections.virtops.libvirt.plugins.module_utils._libvirt import LibvirtFailure
from ansible_collections.virtops.libvirt.plugins.module_utils._snapshot import (
    ALREADY,
    SKIPPED,
    SNAPSHOT,
    DiskPlan,
    SnapshotError,
    SnapshotRun,
    committed_mark,
    is_overlay,
    overlay_path,
    plan_snapshot,
    remove_committed_mark,
    snapshot_xml,
    take_snapshot,
    verify_snapshot,
    write_committed_mark,
)

# One disk of every kind, shaped like libvirt 9.0 live XML.
LIVE_XML = """
<domain type='kvm' id='3'>
  <name>web01</name>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/img/web01.1.qcow2' index='2'/>
      <backingStore type='file' index='1'>
        <format type='qcow2'/><source file='/img/web01.qcow2'/><backingStore/>
      </backingStore>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='block' device='disk'>
      <driver name='qemu' type='raw'/>
      <source dev='/dev/vg/data' index='3'/><backingStore/>
      <target dev='vdb' bus='virtio'/>
    </disk>
    <disk type='file' device='cdrom'>
      <driver name='qemu'/>
      <target dev='sda' bus='sata'/>
      <readonly/>
    </disk>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='/img/ro.raw' index='4'/><backingStore/>
      <target dev='vdc' bus='virtio'/>
      <readonly/>
    </disk>
    <disk type='network' device='disk'>
      <driver name='qemu' type='raw'/>
      <source protocol='rbd' name='pool/image' index='5'/>
      <target dev='vdd' bus='virtio'/>
    </disk>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='/img/shared.raw' index='6'/><backingStore/>
      <target dev='vde' bus='virtio'/>
      <shareable/>
    </disk>
    <disk type='file' device='floppy'>
      <driver name='qemu' type='raw'/>
      <source file='/img/floppy.img' index='7'/>
      <target dev='fda' bus='fdc'/>
    </disk>
  </devices>
</domain>
"""

ON_OVERLAY = """
<domain><devices>
  <disk type='file' device='disk'>
    <driver name='qemu' type='qcow2'/>
    <source file='/img/a.qcow2.virtops-backup.qcow2' index='3'/>
    <backingStore type='file' index='2'>
      <format type='qcow2'/><source file='/img/a.qcow2'/><backingStore/>
    </backingStore>
    <target dev='vda' bus='virtio'/>
  </disk>
  <disk type='file' device='disk'>
    <driver name='qemu' type='raw'/>
    <source file='/img/b.raw' index='1'/><backingStore/>
    <target dev='vdb' bus='virtio'/>
  </disk>
</devices></domain>
"""

WITH_JOB = """
<domain><devices><disk type='file' device='disk'>
  <driver name='qemu' type='qcow2'/><source file='/img/a.qcow2' index='1'/><backingStore/>
  <mirror type='file' job='copy' ready='no'><format type='qcow2'/><source file='/img/c.qcow2'/></mirror>
  <target dev='vda' bus='virtio'/>
</disk></devices></domain>
"""


def nothing_exists(path):
    return False


def plan(xml=LIVE_XML, exists=nothing_exists, **kwargs):
    kwargs.setdefault('block_overlay_dir', '/var/lib/overlays')
    kwargs.setdefault('domain_name', 'web01')
    return plan_snapshot(parse_disks(xml), exists=exists, **kwargs)


def by_target(plans):
    return dict((p.target, p) for p in plans)


def test_overlay_naming():
    assert overlay_path('/img/vm.qcow2', 'virtops-backup') == '/img/vm.qcow2.virtops-backup.qcow2'
    assert is_overlay('/img/vm.qcow2.virtops-backup.qcow2', 'virtops-backup')
    assert not is_overlay('/img/vm.qcow2', 'virtops-backup')
    assert not is_overlay('/img/vm.qcow2.other.qcow2', 'virtops-backup')
    assert not is_overlay(None, 'virtops-backup')


def test_default_selects_every_eligible_disk_with_reasons_for_the_rest():
    plans = plan()
    assert [p.target for p in plans] == ['vda', 'vdb', 'sda', 'vdc', 'vdd', 'vde', 'fda']
    result = by_target(plans)
    assert result['vda'].result('snapshotted') == dict(
        target='vda', status='snapshotted', reason=None, frozen='/img/web01.1.qcow2',
        overlay='/img/web01.1.qcow2.virtops-backup.qcow2', format='qcow2')
    assert (result['vdb'].status, result['vdb'].frozen, result['vdb'].overlay, result['vdb'].format) \
        == (SNAPSHOT, '/dev/vg/data', '/var/lib/overlays/web01.vdb.virtops-backup.qcow2', 'raw')
    reasons = dict((p.target, p.reason) for p in plans if p.status == SKIPPED)
    assert reasons == {
        'sda': 'device cdrom',
        'vdc': 'read-only',
        'vdd': 'network disk (only file and block disks are snapshotted)',
        'vde': 'shareable',
        'fda': 'device floppy',
    }
    skipped = result['sda'].result('snapshotted')
    assert (skipped['status'], skipped['frozen'], skipped['overlay'], skipped['format']) \
        == ('skipped', None, None, None)


def test_empty_disk_is_skipped():
    xml = ("<domain><devices><disk type='file' device='disk'><driver name='qemu' type='raw'/>"
           "<target dev='vdz' bus='virtio'/></disk></devices></domain>")
    assert [(p.status, p.reason) for p in plan(xml)] == [(SKIPPED, 'empty (no source)')]


def test_exclude_and_disks_select():
    result = by_target(plan(exclude=['vdb']))
    assert (result['vdb'].status, result['vdb'].reason) == (SKIPPED, 'excluded')
    assert result['vda'].status == SNAPSHOT
    result = by_target(plan(wanted=['vdb']))
    assert (result['vda'].status, result['vda'].reason) == (SKIPPED, 'not in disks')
    assert (result['sda'].status, result['sda'].reason) == (SKIPPED, 'not in disks')
    assert result['vdb'].status == SNAPSHOT
    # exclude wins over disks
    result = by_target(plan(wanted=['vda', 'vdb'], exclude=['vda']))
    assert (result['vda'].reason, result['vdb'].status) == ('excluded', SNAPSHOT)


def test_empty_disks_list_means_every_eligible_disk():
    assert [p.status for p in plan(wanted=[])] == [p.status for p in plan()]


@pytest.mark.parametrize('option', ['wanted', 'exclude'])
def test_unknown_target_fails(option):
    with pytest.raises(SnapshotError, match=r'unknown disk target in (disks|exclude): vdz; '
                                            r'the domain has vda, vdb, sda'):
        plan(**{option: ['vda', 'vdz']})


def test_naming_an_ineligible_disk_fails():
    with pytest.raises(SnapshotError, match='disk sda cannot be snapshotted: device cdrom'):
        plan(wanted=['vda', 'sda'])


def test_disk_already_on_its_overlay():
    result = by_target(plan(ON_OVERLAY))
    assert result['vda'].result('snapshotted') == dict(
        target='vda', status='already', reason=None, frozen='/img/a.qcow2',
        overlay='/img/a.qcow2.virtops-backup.qcow2', format='qcow2')
    # mixed case: only the other disk gets a snapshot
    assert result['vdb'].status == SNAPSHOT
    assert [p.status for p in plan(ON_OVERLAY, wanted=['vda'])] == [ALREADY, SKIPPED]


def test_suffix_decides_what_counts_as_an_overlay():
    result = by_target(plan(ON_OVERLAY, suffix='nightly'))
    assert result['vda'].status == SNAPSHOT
    assert result['vda'].overlay == '/img/a.qcow2.virtops-backup.qcow2.nightly.qcow2'


def test_leftover_overlay_fails_and_names_it():
    leftover = '/img/web01.1.qcow2.virtops-backup.qcow2'
    with pytest.raises(SnapshotError) as err:
        plan(exists=lambda path: path == leftover)
    assert '%s already exists but is not the active image of vda' % leftover in str(err.value)
    # not a leftover when that disk is not snapshotted
    assert by_target(plan(exists=lambda path: path == leftover, exclude=['vda']))['vdb'].status \
        == SNAPSHOT


def test_a_committed_leftover_in_no_chain_is_stale_not_an_error():
    """A run killed between its pivot and the deletion of the overlay left it with its mark."""
    leftover = '/img/web01.1.qcow2.virtops-backup.qcow2'
    on_disk = {leftover, committed_mark(leftover)}
    result = by_target(plan(exists=on_disk.__contains__))
    assert result['vda'].status == SNAPSHOT and result['vda'].stale
    assert result['vda'].overlay == leftover
    assert not result['vdb'].stale
    # the mark without its overlay is no leftover at all
    assert not by_target(plan(exists={committed_mark(leftover)}.__contains__))['vda'].stale


def test_a_committed_leftover_still_in_a_chain_is_refused():
    """A mark does not make an image that a disk still uses removable."""
    xml = LIVE_XML.replace("<source file='/img/web01.qcow2'/>",
                           "<source file='/img/web01.1.qcow2.virtops-backup.qcow2'/>")
    leftover = '/img/web01.1.qcow2.virtops-backup.qcow2'
    with pytest.raises(SnapshotError, match='a leftover of an earlier run that may hold guest data'):
        plan(xml, exists={leftover, committed_mark(leftover)}.__contains__)


def test_committed_marks_are_written_and_removed(tmp_path):
    image = str(tmp_path / 'a.qcow2.virtops-backup.qcow2')
    write_committed_mark(image, '/img/a.qcow2')
    with open(committed_mark(image)) as handle:
        assert handle.read() == 'committed into /img/a.qcow2\n'
    remove_committed_mark(image)
    remove_committed_mark(image)  # gone already: fine
    assert not (tmp_path / 'a.qcow2.virtops-backup.qcow2.committed').exists()


def test_before_the_snapshot_a_stale_overlay_and_any_mark_where_an_overlay_goes_are_removed(tmp_path):
    stale = str(tmp_path / 'vda.qcow2.virtops-backup.qcow2')
    fresh = str(tmp_path / 'vdb.raw.virtops-backup.qcow2')
    for path in (stale, committed_mark(stale), committed_mark(fresh)):
        open(path, 'w').close()
    plans = [DiskPlan('vda', SNAPSHOT, overlay=stale), DiskPlan('vdb', SNAPSHOT, overlay=fresh)]
    plans[0].stale = True
    for one in plans:
        SnapshotRun._clear(one)
    # a mark without its overlay (a run killed between deleting the two) must not pass to the
    # overlay the snapshot creates there
    assert sorted(os.listdir(str(tmp_path))) == []


def test_a_stale_overlay_that_cannot_be_removed_fails_cleanly(tmp_path):
    stale = tmp_path / 'vda.qcow2.virtops-backup.qcow2'
    stale.mkdir()  # unlink fails (EISDIR)
    plan = DiskPlan('vda', SNAPSHOT, overlay=str(stale))
    plan.stale = True
    with pytest.raises(LibvirtFailure, match='cannot remove .*vda.qcow2.virtops-backup.qcow2, a '
                                             'committed leftover'):
        SnapshotRun._clear(plan)


def test_disk_with_a_block_job_fails():
    with pytest.raises(SnapshotError, match=r'vda has a block job \(copy\) running'):
        plan(WITH_JOB)


def test_snapshot_xml_lists_every_disk():
    root = ET.fromstring(snapshot_xml(plan(exclude=['vdb'])))
    assert root.tag == 'domainsnapshot'
    disks = root.findall('./disks/disk')
    assert [(d.get('name'), d.get('snapshot')) for d in disks] == [
        ('vda', 'external'), ('vdb', 'no'), ('sda', 'no'), ('vdc', 'no'), ('vdd', 'no'),
        ('vde', 'no'), ('fda', 'no')]
    vda = disks[0]
    assert vda.get('type') == 'file'
    assert vda.find('driver').get('type') == 'qcow2'
    assert vda.find('source').get('file') == '/img/web01.1.qcow2.virtops-backup.qcow2'
    assert list(disks[1]) == []


def test_snapshot_xml_escapes_paths():
    xml = ON_OVERLAY.replace('/img/b.raw', '/img/it&apos;s &amp; &lt;odd&gt;.raw')
    root = ET.fromstring(snapshot_xml(plan(xml)))
    assert root.find('./disks/disk[@name="vdb"]/source').get('file') \
        == "/img/it's & <odd>.raw.virtops-backup.qcow2"


AFTER = """
<domain><devices><disk type='file' device='disk'>
  <driver name='qemu' type='qcow2'/>
  <source file='%s' index='3'/>
  <backingStore type='file' index='2'>
    <format type='qcow2'/><source file='%s'/><backingStore/>
  </backingStore>
  <target dev='vda' bus='virtio'/>
</disk></devices></domain>
"""
BEFORE = """
<domain><devices><disk type='file' device='disk'>
  <driver name='qemu' type='qcow2'/><source file='%s' index='2'/><backingStore/>
  <target dev='vda' bus='virtio'/>
</disk></devices></domain>
"""


def test_verify_accepts_overlay_on_frozen_image():
    plans = plan(BEFORE % '/img/a.qcow2')
    after = parse_disks(AFTER % ('/img/a.qcow2.virtops-backup.qcow2', '/img/a.qcow2'))
    assert verify_snapshot(plans, after) == []


def test_verify_reports_wrong_source_or_backing():
    plans = plan(BEFORE % '/img/a.qcow2')
    not_switched = parse_disks(AFTER % ('/img/a.qcow2', '/img/base.qcow2'))
    assert verify_snapshot(plans, not_switched) == [
        'vda runs on /img/a.qcow2, not on /img/a.qcow2.virtops-backup.qcow2']
    wrong_backing = parse_disks(AFTER % ('/img/a.qcow2.virtops-backup.qcow2', '/img/x.qcow2'))
    assert verify_snapshot(plans, wrong_backing) == [
        'the backing image of /img/a.qcow2.virtops-backup.qcow2 is /img/x.qcow2, not /img/a.qcow2']
    assert verify_snapshot(plans, []) == ['vda is gone from the domain']


# --- quiesce fallback, against a fake domain -------------------------------------------

@pytest.fixture
def libvirt():
    return pytest.importorskip('libvirt')


def libvirt_error(libvirt, code, msg):
    class FakeError(libvirt.libvirtError):
        def get_error_code(self):
            return code
    return FakeError(msg)


class FakeDomain(object):
    """Fails calls with QUIESCE with ``quiesce_error``; other calls with ``error``."""

    def __init__(self, libvirt, quiesce_error=None, error=None, state=1):
        self.libvirt = libvirt
        self.quiesce_error = quiesce_error
        self.error = error
        self.calls = []
        self.current_state = state

    def snapshotCreateXML(self, xml, flags):
        quiesce = bool(flags & self.libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_QUIESCE)
        self.calls.append((xml, flags))
        if quiesce and self.quiesce_error is not None:
            raise self.quiesce_error
        if self.error is not None:
            raise self.error
        return object()

    def state(self, flags):
        return [self.current_state, 0]


def base_flags(libvirt):
    return (libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY
            | libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_NO_METADATA
            | libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_ATOMIC)


def test_quiesced_snapshot(libvirt):
    domain = FakeDomain(libvirt)
    assert take_snapshot(domain, '<x/>', 'auto') == ('quiesced', None)
    assert domain.calls == [('<x/>', base_flags(libvirt)
                             | libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_QUIESCE)]


def test_never_quiesces(libvirt):
    domain = FakeDomain(libvirt)
    assert take_snapshot(domain, '<x/>', 'never') == ('crash', None)
    assert domain.calls == [('<x/>', base_flags(libvirt))]


@pytest.mark.parametrize('code, msg', [
    (74, 'argument unsupported: QEMU guest agent is not configured'),
    (86, 'Guest agent is not responding: QEMU guest agent is not connected'),
])
def test_auto_falls_back_when_no_agent_answers(libvirt, code, msg):
    domain = FakeDomain(libvirt, quiesce_error=libvirt_error(libvirt, code, msg))
    assert take_snapshot(domain, '<x/>', 'auto') == ('crash', msg)
    assert [flags for dummy, flags in domain.calls] == [
        base_flags(libvirt) | libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_QUIESCE, base_flags(libvirt)]


def test_auto_falls_back_for_a_paused_guest(libvirt):
    msg = 'Requested operation is not valid: domain is not running'
    domain = FakeDomain(libvirt, quiesce_error=libvirt_error(libvirt, 55, msg),
                        state=libvirt.VIR_DOMAIN_PAUSED)
    assert take_snapshot(domain, '<x/>', 'auto') == ('crash', msg)


@pytest.mark.parametrize('code, state', [
    (55, 1),  # operation invalid on a running guest: not an agent problem
    (1, 1),  # an agent that answers but fails the freeze (internal error)
    (67, 1),  # e.g. an overlay file that exists
])
def test_auto_does_not_fall_back_for_other_errors(libvirt, code, state):
    domain = FakeDomain(libvirt, quiesce_error=libvirt_error(libvirt, code, 'boom'), state=state)
    with pytest.raises(LibvirtFailure) as err:
        take_snapshot(domain, '<x/>', 'auto')
    assert err.value.details['libvirt_code'] == code
    assert 'nothing was snapshotted: boom' in err.value.msg
    assert len(domain.calls) == 1


def test_always_fails_without_agent(libvirt):
    domain = FakeDomain(libvirt, quiesce_error=libvirt_error(
        libvirt, 74, 'argument unsupported: QEMU guest agent is not configured'))
    with pytest.raises(LibvirtFailure) as err:
        take_snapshot(domain, '<x/>', 'always')
    assert 'the quiesced snapshot failed, nothing was snapshotted' in err.value.msg
    assert err.value.details['libvirt_code'] == 74
    assert len(domain.calls) == 1


def test_failed_fallback_reports_both_errors(libvirt):
    domain = FakeDomain(libvirt, quiesce_error=libvirt_error(libvirt, 74, 'no agent'),
                        error=libvirt_error(libvirt, 67, 'file exists'))
    with pytest.raises(LibvirtFailure) as err:
        take_snapshot(domain, '<x/>', 'auto')
    assert 'the snapshot failed, nothing was snapshotted: file exists' in err.value.msg
    assert err.value.details == dict(libvirt_code=67, quiesce_error='no agent')


def test_block_device_overlays_never_go_to_dev():
    with pytest.raises(SnapshotError, match='block_overlay_dir'):
        plan(block_overlay_dir=None)
    assert by_target(plan(exclude=['vdb'], block_overlay_dir=None))['vdb'].status == 'skipped'
