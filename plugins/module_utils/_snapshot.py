# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""External, disk-only snapshot of a running domain's disks, in one atomic call.

The plan (which disk gets an overlay, which is skipped and why, the snapshot
XML, the check of the result) is pure and unit-tested; ``SnapshotRun`` is the
thin part that talks to libvirt.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET

from ansible_collections.virtops.libvirt.plugins.module_utils._chain import parse_disks, same_path
from ansible_collections.virtops.libvirt.plugins.module_utils._libvirt import (
    LibvirtFailure,
    error_code,
    libvirt,
    live_xml,
    run_libvirt,
)

QUIESCE_MODES = ('auto', 'always', 'never')
DEFAULT_SUFFIX = 'virtops-backup'

# Plan statuses; SNAPSHOT is reported as ``snapshotted`` or, in check mode, ``planned``.
SNAPSHOT = 'snapshot'
ALREADY = 'already'
SKIPPED = 'skipped'

SNAPSHOTTABLE_KINDS = ('file', 'block')


class SnapshotError(Exception):
    """A user-facing problem with the requested snapshot; nothing was changed."""


def overlay_path(active, suffix):
    """``/img/vm.qcow2`` -> ``/img/vm.qcow2.<suffix>.qcow2``."""
    return '%s.%s.qcow2' % (active, suffix)


def is_overlay(path, suffix):
    return path is not None and path.endswith('.%s.qcow2' % suffix)


def committed_mark(image):
    """The file that says all of ``image``'s data is in its backing image.

    A commit writes it once the job is READY, just before the pivot that drops ``image``, and
    removes it with ``image``. A run killed between the pivot and that removal leaves both: an
    overlay of ours that is in no disk's chain and has its mark is removed by the next snapshot.
    """
    return image + '.committed'


def write_committed_mark(image, base):
    fd = os.open(committed_mark(image), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, ('committed into %s\n' % base).encode('utf-8'))
    finally:
        os.close(fd)


def remove_committed_mark(image):
    try:
        os.unlink(committed_mark(image))
    except FileNotFoundError:
        pass


def delete_committed(image):
    """Delete a committed image, then its mark; False when the image was gone already.

    A run killed between the two leaves a mark alone, which the next snapshot at that path
    removes; never an image without the mark it had.
    """
    try:
        os.unlink(image)
        deleted = True
    except FileNotFoundError:
        deleted = False
    remove_committed_mark(image)
    return deleted


def ineligible_reason(disk):
    """Why a disk can never be snapshotted, or None."""
    if disk.device != 'disk':
        return 'device %s' % disk.device
    if disk.readonly:
        return 'read-only'
    if disk.source is None:
        return 'empty (no source)'
    if disk.kind not in SNAPSHOTTABLE_KINDS:
        return '%s disk (only file and block disks are snapshotted)' % disk.kind
    if disk.shareable:
        return 'shareable'
    return None


class DiskPlan(object):
    """What happens to one disk of the domain."""

    def __init__(self, target, status, reason=None, frozen=None, overlay=None, fmt=None):
        self.target = target
        self.status = status
        self.reason = reason
        self.frozen = frozen
        self.overlay = overlay
        self.format = fmt
        self.stale = False  # overlay is a committed leftover, removed before the snapshot

    def result(self, snapshot_status):
        """The disk's entry in the module result; ``snapshot_status`` names SNAPSHOT."""
        return dict(target=self.target,
                    status=snapshot_status if self.status == SNAPSHOT else self.status,
                    reason=self.reason, frozen=self.frozen, overlay=self.overlay,
                    format=self.format)


def _check_targets(disks, names, option):
    known = [disk.target for disk in disks]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise SnapshotError('unknown disk target%s in %s: %s; the domain has %s' % (
            's' if len(unknown) > 1 else '', option, ', '.join(unknown),
            ', '.join(t for t in known if t) or 'no disks'))


def _overlay_for(disk, suffix, block_overlay_dir, domain_name):
    """Next to a file image; for a block device, in ``block_overlay_dir`` (never in /dev)."""
    if disk.kind != 'block':
        return overlay_path(disk.source, suffix)
    if not block_overlay_dir:
        raise SnapshotError(
            'disk %s is the block device %s: its overlay cannot go next to the device node '
            '(that is /dev, in memory); set block_overlay_dir to a directory on real storage, '
            'or exclude the disk' % (disk.target, disk.source))
    return os.path.join(block_overlay_dir, '%s.%s.%s.qcow2' % (domain_name, disk.target, suffix))


def _plan_disk(disk, wanted, exclude, suffix, block_overlay_dir=None, domain_name=None):
    if disk.target in exclude:
        return DiskPlan(disk.target, SKIPPED, 'excluded')
    if wanted and disk.target not in wanted:
        return DiskPlan(disk.target, SKIPPED, 'not in disks')
    reason = ineligible_reason(disk)
    if reason is not None:
        if wanted:
            raise SnapshotError('disk %s cannot be snapshotted: %s' % (disk.target, reason))
        return DiskPlan(disk.target, SKIPPED, reason)
    if is_overlay(disk.source, suffix):
        backing = disk.chain[1] if len(disk.chain) > 1 else None
        return DiskPlan(disk.target, ALREADY, frozen=backing.path if backing else None,
                        overlay=disk.source, fmt=backing.format if backing else None)
    if disk.mirror is not None:
        raise SnapshotError('disk %s has a block job (%s) running; finish or abort it '
                            'first' % (disk.target, disk.mirror.job))
    return DiskPlan(disk.target, SNAPSHOT, frozen=disk.source,
                    overlay=_overlay_for(disk, suffix, block_overlay_dir, domain_name),
                    fmt=disk.format)


def plan_snapshot(disks, wanted=None, exclude=None, suffix=DEFAULT_SUFFIX,
                  exists=os.path.lexists, block_overlay_dir=None, domain_name=None):
    """One DiskPlan per disk, in definition order.

    ``wanted`` empty or None means every eligible disk; a disk named in it
    that cannot be snapshotted is an error, not a silent skip. ``exists`` is
    the file test for leftover overlays (injected for the unit tests).
    """
    wanted = list(wanted or [])
    exclude = list(exclude or [])
    _check_targets(disks, wanted, 'disks')
    _check_targets(disks, exclude, 'exclude')
    plans = [_plan_disk(disk, wanted, exclude, suffix, block_overlay_dir, domain_name)
             for disk in disks]
    # An overlay file that exists but is not in use is a leftover of an earlier run. One that
    # was committed and pivoted away from (its mark says so, and no chain holds it) has nothing
    # the VM lacks and is removed; any other may hold guest data, so it is never overwritten.
    in_use = [image.path for disk in disks for image in disk.chain if image.path]
    leftovers = []
    for plan in plans:
        if plan.status != SNAPSHOT or not exists(plan.overlay):
            continue
        if exists(committed_mark(plan.overlay)) and not any(
                same_path(plan.overlay, path) for path in in_use):
            plan.stale = True
        else:
            leftovers.append(plan)
    if leftovers:
        raise SnapshotError(
            '%s already exist%s but %s not the active image of %s: a leftover of an earlier '
            'run that may hold guest data; inspect and remove it first (nothing was '
            'changed)' % (
                ', '.join(p.overlay for p in leftovers), 's' if len(leftovers) == 1 else '',
                'is' if len(leftovers) == 1 else 'are',
                ', '.join(p.target for p in leftovers)))
    return plans


def snapshot_xml(plans):
    """The <domainsnapshot> document; every disk is listed, or libvirt snapshots it too."""
    root = ET.Element('domainsnapshot')
    disks_el = ET.SubElement(root, 'disks')
    for plan in plans:
        if plan.status != SNAPSHOT:
            ET.SubElement(disks_el, 'disk', name=plan.target, snapshot='no')
            continue
        # type='file' also for block disks: the overlay is always a qcow2 file.
        disk_el = ET.SubElement(disks_el, 'disk', name=plan.target, snapshot='external',
                                type='file')
        ET.SubElement(disk_el, 'driver', type='qcow2')
        ET.SubElement(disk_el, 'source', file=plan.overlay)
    return ET.tostring(root, encoding='unicode')


def verify_snapshot(plans, disks_after):
    """Problems with the live disks after the snapshot; an empty list when all is right."""
    by_target = dict((disk.target, disk) for disk in disks_after)
    problems = []
    for plan in plans:
        if plan.status != SNAPSHOT:
            continue
        disk = by_target.get(plan.target)
        if disk is None:
            problems.append('%s is gone from the domain' % plan.target)
        elif disk.source is None or not same_path(disk.source, plan.overlay):
            problems.append('%s runs on %s, not on %s' % (plan.target, disk.source, plan.overlay))
        elif len(disk.chain) < 2 or not same_path(disk.chain[1].path or '', plan.frozen):
            problems.append('the backing image of %s is %s, not %s' % (
                plan.overlay, disk.chain[1].path if len(disk.chain) > 1 else 'missing',
                plan.frozen))
    return problems


def snapshot_flags(quiesce):
    flags = (libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY
             | libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_NO_METADATA
             | libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_ATOMIC)
    if quiesce:
        flags |= libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_QUIESCE
    return flags


def agent_unavailable(exc, domain):
    """Whether a failed quiesced snapshot failed only because no guest agent could answer.

    libvirt 9.0 (checked with real domains) reports VIR_ERR_ARGUMENT_UNSUPPORTED
    when the domain has no agent channel, VIR_ERR_AGENT_UNRESPONSIVE when the
    channel exists but no agent is connected (or it timed out), and
    VIR_ERR_OPERATION_INVALID when the guest is paused, so no agent can answer.
    An agent that answers but fails the freeze is a real failure.
    """
    code = error_code(exc)
    if code in (libvirt.VIR_ERR_ARGUMENT_UNSUPPORTED, libvirt.VIR_ERR_AGENT_UNRESPONSIVE):
        return True
    if code == libvirt.VIR_ERR_OPERATION_INVALID:
        # 55 has many other causes; it only means "no agent" for a paused guest.
        try:
            return domain.state(0)[0] == libvirt.VIR_DOMAIN_PAUSED
        except libvirt.libvirtError:
            return False
    return False


def take_snapshot(domain, xml, quiesce):
    """Create the snapshot; return ``(consistency, quiesce_error)``.

    Every call is atomic: a failed one leaves no overlay and no chain change.
    """
    quiesce_error = None
    if quiesce != 'never':
        try:
            domain.snapshotCreateXML(xml, snapshot_flags(True))
            return 'quiesced', None
        except libvirt.libvirtError as exc:
            if quiesce == 'always' or not agent_unavailable(exc, domain):
                raise LibvirtFailure(
                    'the quiesced snapshot failed, nothing was snapshotted: %s' % exc,
                    libvirt_code=error_code(exc))
            quiesce_error = str(exc)
    try:
        domain.snapshotCreateXML(xml, snapshot_flags(False))
    except libvirt.libvirtError as exc:
        raise LibvirtFailure('the snapshot failed, nothing was snapshotted: %s' % exc,
                             libvirt_code=error_code(exc), quiesce_error=quiesce_error)
    return 'crash', quiesce_error


class SnapshotRun(object):
    """One disk_snapshot task against a running domain."""

    def __init__(self, client, params, exists=os.path.lexists):
        self.params = params
        self.exists = exists
        self.domain = client.domain(params['domain'])
        self.name = self.domain.name()

    def _disks(self):
        return parse_disks(run_libvirt(lambda: live_xml(self.domain),
                                       'cannot read the XML of %s' % self.name))

    def run(self, check_mode):
        if not run_libvirt(self.domain.isActive, 'cannot read the state of %s' % self.name):
            raise LibvirtFailure(
                'domain %s is shut off: disk_snapshot only snapshots running domains (the '
                'live backup copies a shut-off domain\'s images directly)' % self.name)
        plans = plan_snapshot(self._disks(), self.params['disks'], self.params['exclude'],
                              self.params['suffix'], self.exists,
                              self.params.get('block_overlay_dir'), self.name)
        to_snapshot = [plan.target for plan in plans if plan.status == SNAPSHOT]
        stale = [plan.overlay for plan in plans if plan.stale]
        result = dict(changed=bool(to_snapshot), consistency='none', quiesce_error=None,
                      stale_overlays=stale)
        if not to_snapshot or check_mode:
            result.update(disks=[plan.result('planned') for plan in plans],
                          msg=self._describe(plans, to_snapshot) + self._stale(stale, check_mode))
            return result
        for plan in plans:
            if plan.status == SNAPSHOT:
                self._clear(plan)
        consistency, quiesce_error = take_snapshot(self.domain, snapshot_xml(plans),
                                                   self.params['quiesce'])
        result.update(consistency=consistency, quiesce_error=quiesce_error,
                      disks=[plan.result('snapshotted') for plan in plans])
        problems = verify_snapshot(plans, self._disks())
        if problems:
            raise LibvirtFailure(
                'libvirt reported the snapshot of %s as done, but the live XML does not '
                'confirm it: %s' % (', '.join(to_snapshot), '; '.join(problems)), **result)
        result['msg'] = 'snapshotted %s (%s)%s' % (
            ', '.join(to_snapshot),
            'quiesced' if consistency == 'quiesced' else 'crash-consistent',
            ': the guest agent is unavailable' if quiesce_error else '') + self._stale(stale)
        return result

    @staticmethod
    def _clear(plan):
        """Remove a committed leftover, and any mark, where the new overlay goes: a mark left
        by a run killed between deleting an overlay and its mark must not pass to the next."""
        try:
            if plan.stale:
                delete_committed(plan.overlay)
            else:
                remove_committed_mark(plan.overlay)
        except OSError as exc:
            raise LibvirtFailure('cannot remove %s, a committed leftover of an earlier run (or its '
                                 'mark): %s; nothing was snapshotted' % (plan.overlay, exc))

    @staticmethod
    def _stale(stale, check_mode=False):
        if not stale:
            return ''
        return '; %s %s, left by a run killed after its pivot (committed, in no chain)' % (
            'would first remove' if check_mode else 'first removed', ', '.join(stale))

    @staticmethod
    def _describe(plans, to_snapshot):
        if to_snapshot:
            return 'would snapshot %s' % ', '.join(to_snapshot)
        already = [plan.target for plan in plans if plan.status == ALREADY]
        if already:
            return 'already on the overlay: %s' % ', '.join(already)
        return 'no disk to snapshot'
