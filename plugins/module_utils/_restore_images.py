# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Write the disk images of a backup back as standalone images, all or nothing.

Every image is planned first (create, keep an identical one, replace, or refuse) so a refusal
changes nothing. Then each is converted into ``<dest>.partial`` (mode 0600, locked), compared
with the backup image, given the module's file arguments (mode, owner, group, SELinux context),
fsynced; only when all are ready are they renamed into place (and given their chattr attributes).
On any failure every partial file is removed, and so is an image directory this run created.

This is a private module_utils: its API may change without notice.
"""

from __future__ import annotations

import os
import time

from ansible_collections.virtops.libvirt.plugins.module_utils._backup_store import fsync_dir
from ansible_collections.virtops.libvirt.plugins.module_utils._image_copy import (
    PARTIAL_SUFFIX,
    convert_argv,
    open_partial,
    run_convert,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._libvirt import LibvirtFailure

FORMATS = ('qcow2', 'raw')
IMAGE_DIR_MODE = 0o755


class RefusedError(Exception):
    pass


def image_name(target, fmt):
    return '%s.%s' % (target, fmt)


def destinations(disks, fmt, image_dir=None, in_place=False):
    """``{target: dest path}``: ``<image_dir>/<target>.<format>``, or the original paths."""
    dests = {}
    for disk in disks:
        if in_place:
            source = disk.get('source')
            if not source or not os.path.isabs(source):
                raise RefusedError('disk %s has no original path in the manifest' % disk['target'])
            if source.startswith('/dev/'):
                raise RefusedError('disk %s was the block device %s: restore_in_place writes files '
                                   'only; restore into an image directory and copy it to the '
                                   'device yourself' % (disk['target'], source))
            dests[disk['target']] = source
        else:
            dests[disk['target']] = os.path.join(image_dir, image_name(disk['target'], fmt))
    if len(set(dests.values())) != len(dests):
        raise RefusedError('two disks would be restored to the same path: %s' % sorted(dests.values()))
    return dests


def compare_argv(src, dest, fmt):
    # No -U: an image some VM has open is reported, not compared torn.
    return ['compare', '-f', 'qcow2', '-F', fmt, src, dest]


class ImageRestore(object):
    """``qemu`` is a ``QemuImg``; ``disks`` come from the backup check (``path``, ``target``);
    ``attributes`` a ``FileAttributes`` for the images (without it they stay mode 0600)."""

    def __init__(self, qemu, disks, dests, fmt, force=False, verify=True, image_dir=None,
                 attributes=None):
        self.qemu = qemu
        self.attributes = attributes
        self.disks = disks
        self.dests = dests
        self.fmt = fmt
        self.force = force
        self.verify = verify
        self.image_dir = image_dir

    def identical(self, disk, dest):
        """True when ``dest`` is a standalone image in our format with the backup's data."""
        try:
            info = self.qemu.info(dest)
        except LibvirtFailure:
            return False
        if info.get('format') != self.fmt or info.get('backing-filename') \
                or info.get('virtual-size') != disk['virtual_size']:
            return False
        rc, dummy, err = self.qemu.module.run_command(
            [self.qemu.binary] + compare_argv(disk['path'], dest, self.fmt))
        if rc >= 2:
            raise RefusedError('cannot compare %s with the backup (is a VM using it?): %s'
                               % (dest, (err or '').strip()))
        return rc == 0

    def plan(self):
        """One item per disk with its ``action``; raises RefusedError before anything changes."""
        if self.image_dir is not None:
            parent = os.path.dirname(self.image_dir.rstrip('/'))
            if not os.path.isdir(parent):
                raise RefusedError('cannot restore into %s: its parent directory %s does not exist'
                                   % (self.image_dir, parent))
            if os.path.exists(self.image_dir) and not os.path.isdir(self.image_dir):
                raise RefusedError('%s exists and is not a directory' % self.image_dir)
        items = []
        for disk in self.disks:
            dest = self.dests[disk['target']]
            item = dict(target=disk['target'], src=disk['path'], dest=dest, format=self.fmt)
            if self.image_dir is None and not os.path.isdir(os.path.dirname(dest)):
                raise RefusedError('cannot restore %s: the directory %s does not exist'
                                   % (dest, os.path.dirname(dest)))
            if os.path.isdir(dest):
                raise RefusedError('%s is a directory' % dest)
            if not os.path.exists(dest):
                item['action'] = 'create'
            elif self.identical(disk, dest):
                item['action'] = 'keep'
            elif self.force:
                item['action'] = 'replace'
            else:
                raise RefusedError('%s exists and differs from the backup; set restore_force to '
                                   'replace it' % dest)
            items.append(item)
        return items

    def run(self, check_mode=False):
        started = time.monotonic()
        items = self.plan()
        todo = [item for item in items if item['action'] != 'keep']
        created_dir = False
        if todo and not check_mode:
            created_dir = self._make_image_dir()
            try:
                self._write(todo)
            except BaseException:
                if created_dir:
                    _rmdir(self.image_dir)
                raise
        # The file arguments given are the state of a kept image too, as for any Ansible file.
        kept_changed = False
        if self.attributes is not None:
            for item in items:
                if item['action'] == 'keep' and self.attributes.apply(item['dest']):
                    kept_changed = True
        for item in items:
            if not check_mode or item['action'] == 'keep':
                item.update(_sizes(item['dest']))
        return dict(changed=bool(todo) or kept_changed, images=items, created_dir=created_dir,
                    seconds=round(time.monotonic() - started, 3),
                    bytes=sum(item.get('size') or 0 for item in items if item['action'] != 'keep'))

    def _make_image_dir(self):
        if self.image_dir is None or os.path.isdir(self.image_dir):
            return False
        os.mkdir(self.image_dir, IMAGE_DIR_MODE)
        os.chmod(self.image_dir, IMAGE_DIR_MODE)
        fsync_dir(os.path.dirname(self.image_dir.rstrip('/')))
        return True

    def _write(self, todo):
        fds = []
        try:
            for item in todo:
                partial = item['dest'] + PARTIAL_SUFFIX
                fd = open_partial(partial)
                fds.append((fd, partial))
                self._convert(item, partial, fd)
            for (fd, partial), item in zip(fds, todo):
                os.rename(partial, item['dest'])
            if self.attributes is not None:
                # chattr attributes after the renames: an immutable file cannot be renamed
                for item in todo:
                    self.attributes.apply(item['dest'], True)
            for directory in sorted(set(os.path.dirname(item['dest']) for item in todo)):
                fsync_dir(directory)
        except BaseException:
            for dummy, partial in fds:
                _unlink(partial)
            raise
        finally:
            for fd, dummy in fds:
                os.close(fd)

    def _convert(self, item, partial, fd):
        argv = convert_argv(self.qemu.binary, item['src'], 'qcow2', partial, self.fmt,
                            force_share=False)
        started = time.monotonic()
        rc, stderr = run_convert(argv, pass_fds=(fd,))
        if rc != 0:
            raise LibvirtFailure('qemu-img convert of %s failed (rc=%d): %s' % (item['src'], rc, stderr),
                                 rc=rc, cmd=argv)
        if self.verify:
            rc, dummy, err = self.qemu.module.run_command(
                [self.qemu.binary] + compare_argv(item['src'], partial, self.fmt))
            if rc != 0:
                raise LibvirtFailure('verification failed: the restored %s differs from the backup '
                                     'image %s (%s); nothing was restored'
                                     % (item['target'], item['src'], (err or '').strip()), rc=rc)
            item['verified'] = True
        os.fchmod(fd, 0o600)
        if self.attributes is not None:
            # before any rename, so a failure leaves nothing and each image appears complete
            self.attributes.prepare(partial, item['dest'])
        os.fsync(fd)
        item['seconds'] = round(time.monotonic() - started, 3)


def _sizes(path):
    try:
        stat = os.stat(path)
    except OSError:
        return dict(size=None)
    return dict(size=stat.st_blocks * 512, apparent_size=stat.st_size)


def _unlink(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _rmdir(path):
    try:
        os.rmdir(path)
    except OSError:
        pass
