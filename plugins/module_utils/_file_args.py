# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Ansible's common file arguments (``add_file_common_args``: mode, owner, group, SELinux
context, chattr attributes) for a file written through ``<dest>.partial`` and a rename.

The options are checked before the long write (:func:`file_arg_errors`), so a typo fails in
seconds instead of after an hour of copying. :meth:`FileAttributes.prepare` gives the partial
file all of them but the chattr attributes before the rename, so the file appears under its
final name complete, with its mode and owner; :meth:`FileAttributes.apply` then sets everything
on the final name (an immutable or append-only file cannot be renamed) and is what a kept file
gets. Without ``mode`` the partial file keeps its private 0600.

This is a private module_utils: its API may change without notice.
"""

from __future__ import annotations

import grp
import os
import pwd

from ansible.module_utils.basic import AnsibleModule

_PRIVATE_FILE = os.stat_result((0o100600, 0, 0, 1, 0, 0, 0, 0, 0, 0))
_BAD_MODE = 'mode must be an octal string such as \'0640\' or a symbolic mode such as \'u=rw,g=r\', got %r'


def mode_error(value):
    """Why ``value`` is not a mode that Ansible's ``set_mode_if_different`` can set, or None.

    Like Ansible: an int, an octal string (``'0640'``) or a symbolic mode (``u=rw,g=r``).
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        return _BAD_MODE % (value,)
    if isinstance(value, str):
        try:
            value = int(value, 8)
        except ValueError:
            try:
                AnsibleModule._symbolic_mode_to_octal(_PRIVATE_FILE, value)
            except (ValueError, IndexError, KeyError):
                return _BAD_MODE % (value,)
            return None
    if not 0 <= value <= 0o7777:
        return 'mode %r is out of range (at most 07777)' % (value,)
    return None


def file_arg_errors(params):
    """Messages for common file arguments that could not be applied (empty when all is fine)."""
    errors = []
    message = mode_error(params.get('mode'))
    if message:
        errors.append(message)
    for key, lookup in (('owner', pwd.getpwnam), ('group', grp.getgrnam)):
        value = params.get(key)
        if value is None:
            continue
        try:
            int(value)  # a number is an id, as for chown and Ansible
        except ValueError:
            try:
                lookup(value)
            except KeyError:
                errors.append('%s %s does not exist on this host' % (key, value))
    return errors


class FileAttributes(object):
    """The common file arguments of ``module`` (an AnsibleModule with ``add_file_common_args``)."""

    def __init__(self, module):
        self.module = module

    def _args(self, final, path):
        # SELinux `_default` values are those of the final name, not of the partial one.
        args = self.module.load_file_common_arguments(self.module.params, path=final)
        args['path'] = path
        return args

    def prepare(self, partial, final):
        """Mode, owner, group and SELinux context on the partial file, before its rename."""
        args = self._args(final, partial)
        args['attributes'] = None
        return self.module.set_fs_attributes_if_different(args, False)

    def apply(self, path, changed=False):
        """Everything on ``path`` (a renamed or a kept file); True when something changed."""
        return self.module.set_fs_attributes_if_different(self._args(path, path), changed)
