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

    def info(self, path, backing_chain=False):
        """``qemu-img info`` as a dict (a list of dicts with ``backing_chain``)."""
        args = ['info', '-U', '--output=json']
        if backing_chain:
            args.append('--backing-chain')
        out = self.run(args + [path], 'qemu-img info %s' % path)
        return json.loads(out)

    def backing_of(self, path):
        """Absolute path of an image's backing file, or None."""
        try:
            info = self.info(path)
        except (LibvirtFailure, ValueError):
            return None
        backing = info.get('full-backing-filename') or info.get('backing-filename')
        if not backing:
            return None
        if not os.path.isabs(backing):
            backing = os.path.join(os.path.dirname(os.path.abspath(path)), backing)
        return os.path.normpath(backing)
