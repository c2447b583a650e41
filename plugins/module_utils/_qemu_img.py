# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""qemu-img, always as an argv list, with ``-U`` for images a running VM holds."""

from __future__ import annotations

import json
import os

from ansible_collections.virtops.libvirt.plugins.module_utils._libvirt import LibvirtFailure


class QemuImg(object):
    def __init__(self, module):
        self.module = module
        self.binary = module.get_bin_path('qemu-img', required=True)

    def run(self, args, what):
        rc, out, err = self.module.run_command([self.binary] + list(args))
        if rc != 0:
            raise LibvirtFailure('%s failed: %s' % (what, (err or out).strip()), rc=rc)
        return out

    def info(self, path, backing_chain=False, fmt=None):
        """``qemu-img info`` as a dict (a list of dicts with ``backing_chain``)."""
        args = ['info', '-U', '--output=json']
        if backing_chain:
            args.append('--backing-chain')
        if fmt:
            args += ['-f', fmt]
        out = self.run(args + [path], 'qemu-img info %s' % path)
        try:
            return json.loads(out)
        except ValueError:
            raise LibvirtFailure('qemu-img info %s printed no JSON: %s' % (path, out[:200]))

    def backing_of(self, path):
        """Absolute path of an image's backing file, or None."""
        try:
            backing = backing_file(self.info(path), path)
        except LibvirtFailure:
            return None
        return backing[0] if backing else None


def backing_file(info, path):
    """``(absolute path, format or None)`` of the backing file in ``qemu-img info``, or None."""
    backing = info.get('full-backing-filename') or info.get('backing-filename')
    if not backing:
        return None
    if not os.path.isabs(backing):
        backing = os.path.join(os.path.dirname(os.path.abspath(path)), backing)
    return os.path.normpath(backing), info.get('backing-filename-format')
