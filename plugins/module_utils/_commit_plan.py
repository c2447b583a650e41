# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Pure planning of a block commit: what to commit, or why there is nothing to do.

The plan is computed from the disk's live chain and any block job on it,
before anything is changed, so check mode and the real run share it.
"""

from __future__ import annotations

import os

from ansible_collections.virtops.libvirt.plugins.module_utils._chain import (
    ChainError,
    resolve_image,
)


class CommitPlan(object):
    """What one blockcommit run will do.

    ``action`` is ``noop`` (``reason`` says why), ``commit`` (start a job) or
    ``adopt`` (a job of the same kind is already on the disk: finish it).
    """

    def __init__(self, disk, action, reason=None, top_pos=None, base_pos=None, active=False):
        self.disk = disk
        self.action = action
        self.reason = reason
        self.top_pos = top_pos
        self.base_pos = base_pos
        self.active = active

    @property
    def changes(self):
        return self.action != 'noop'

    @property
    def top(self):
        return None if self.top_pos is None else self.disk.chain[self.top_pos]

    @property
    def base(self):
        return None if self.base_pos is None else self.disk.chain[self.base_pos]

    def removed(self, finish):
        """Images that leave the chain when the plan succeeds."""
        if self.action == 'noop' or (self.active and finish == 'cancel'):
            return []
        if self.action == 'adopt' and not self.active:
            return []  # an adopted intermediate job: its range is unknown until it ends
        return self.disk.chain[self.top_pos:self.base_pos]

    def chain_after(self, finish):
        removed = self.removed(finish)
        return [image for image in self.disk.chain if image not in removed]


# Longest backing chain walked from a top that left the chain; real chains are far shorter.
MAX_WALK = 64


def _committed_before(top_spec, disk, base_pos, delete, backing_of):
    """True when a top that left the chain was committed by an earlier run.

    Either the task deletes committed images and the file is gone, or the
    file is still there and its backing chain, read from the image files,
    enters the current chain at base or an image below it (with no base: at
    any image). A commit over several layers (top s3, base base on
    base <- s1 <- s2 <- s3 <- s4) drops s3 and s2, so the walk goes through
    images that also left the chain. It stops at the first image of the
    current chain: top's data went there, so when that image sits above base
    the data is not in base, even if the walk would reach base further down.
    """
    if not os.path.isabs(top_spec):
        return False
    if not os.path.exists(top_spec):
        return bool(delete)
    current = os.path.normpath(top_spec)
    seen = {current}
    for dummy in range(MAX_WALK):
        backing = backing_of(current)
        if not backing:
            return False
        if not os.path.isabs(backing):
            # qemu resolves a relative backing name against the directory of the image naming it.
            backing = os.path.join(os.path.dirname(current), backing)
        backing = os.path.normpath(backing)
        if backing in seen:
            return False  # a cycle: these files never were one chain
        position = disk.position(backing)
        if position is not None:
            return base_pos is None or position >= base_pos
        seen.add(backing)
        current = backing
    return False


def _plan_with_job(disk, job_type, top_pos, base_pos, active):
    """A job is already on the disk: adopt it when it is of the same kind."""
    wanted = 'active_commit' if active else 'commit'
    if job_type != wanted:
        raise ChainError(
            'disk %s is busy with a block job (%s); this task asks for %s. The job was '
            'left untouched: finish or cancel it first' % (
                disk.target, job_type.replace('_', ' '), 'an active commit' if active
                else 'an intermediate commit'))
    if not active:
        return CommitPlan(disk, 'adopt', reason='an intermediate commit job is already running')
    mirror = disk.mirror
    job_base = disk.position(mirror.path) if mirror is not None and mirror.path else None
    if job_base is None:
        raise ChainError('disk %s has an active commit job whose base is unknown; '
                         'the job was left untouched' % disk.target)
    if top_pos not in (None, 0):
        raise ChainError('disk %s has an active commit job; top %s is not the active layer' % (
            disk.target, disk.chain[top_pos].path))
    if base_pos is not None and base_pos != job_base:
        raise ChainError(
            'disk %s has an active commit job into %s, not into base %s; the job was '
            'left untouched' % (disk.target, mirror.path, disk.chain[base_pos].path))
    return CommitPlan(disk, 'adopt', reason='an active commit job is already on the disk',
                      top_pos=0, base_pos=job_base, active=True)


def plan_commit(disk, top=None, base=None, active=False, delete=False,
                job_type=None, backing_of=None):
    """Decide what a commit of ``disk`` does.

    ``job_type`` is the block job already on the disk (``commit``,
    ``active_commit``, ``copy``, ...) or None. ``backing_of(path)`` returns the
    backing image path of an image file (relative names are taken relative to
    that file's directory), or None; it is only called, image after image, for
    a top that is no longer in the chain. Raises ChainError for invalid requests.
    """
    chain = disk.chain
    top_pos = resolve_image(disk, top, 'top') if top else 0
    base_pos = resolve_image(disk, base, 'base') if base else None

    if job_type is not None:
        if top and top_pos is None:
            raise ChainError('top %s is not in the chain of %s, which has a %s job' % (
                top, disk.target, job_type))
        if base and base_pos is None:
            raise ChainError('base %s is not in the chain of %s, which has a %s job' % (
                base, disk.target, job_type))
        return _plan_with_job(disk, job_type, top_pos if top else None, base_pos, active)

    if top and top_pos is None:
        if base and base_pos is None:
            raise ChainError('base %s is not in the chain of %s' % (base, disk.target))
        if _committed_before(top, disk, base_pos, delete, backing_of):
            return CommitPlan(disk, 'noop', reason='top %s is no longer in the chain: '
                              'it was committed before' % top)
        raise ChainError('top %s is not in the chain of %s: %s' % (
            top, disk.target, ' -> '.join(i.path or '?' for i in chain)))
    if base and base_pos is None:
        raise ChainError('base %s is not in the chain of %s: %s' % (
            base, disk.target, ' -> '.join(i.path or '?' for i in chain)))
    if base_pos == 0 and not top:
        return CommitPlan(disk, 'noop', reason='the active layer of %s already is base %s'
                          % (disk.target, chain[0].path))
    if len(chain) < 2:
        return CommitPlan(disk, 'noop', reason='disk %s has a single image: nothing to commit'
                          % disk.target)
    if base_pos is None:
        if top_pos + 1 >= len(chain):
            return CommitPlan(disk, 'noop', reason='top %s has no backing image: nothing to '
                              'commit' % chain[top_pos].path)
        base_pos = top_pos + 1
    if base_pos == top_pos:
        raise ChainError('base %s is the same image as top' % chain[base_pos].path)
    if base_pos < top_pos:
        raise ChainError('base %s is not below top %s in the chain of %s' % (
            chain[base_pos].path, chain[top_pos].path, disk.target))
    if top_pos == 0 and not active:
        raise ChainError(
            'top %s is the active layer of %s: committing it is a two-phase job that ends '
            'with a pivot or a cancel. Set active: true and finish: pivot or cancel' % (
                chain[0].path, disk.target))
    if top_pos != 0 and active:
        raise ChainError('active: true, but top %s is not the active layer of %s (%s is)' % (
            chain[top_pos].path, disk.target, chain[0].path))
    for image in chain[top_pos:base_pos + 1]:
        if image.kind not in ('file', 'block'):
            raise ChainError('image %s of %s is a %s image; only file and block images can '
                             'be committed' % (image.path, disk.target, image.kind))
    return CommitPlan(disk, 'commit', top_pos=top_pos, base_pos=base_pos, active=active)
