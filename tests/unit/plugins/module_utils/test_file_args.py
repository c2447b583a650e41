# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The checks of Ansible's common file arguments made before a long write."""

from __future__ import annotations

import pytest

from ansible_collections.virtops.libvirt.plugins.module_utils._file_args import (
    file_arg_errors,
    mode_error,
)


@pytest.mark.parametrize('value', [None, '0600', '640', ' 0755 ', 0o600, '01777', 'u=rw,g=r',
                                   'g+r', 'a=rX', 'u=rw-x+X,g=r-x+X,o=r-x+X'])
def test_mode_error_accepts_what_ansible_sets(value):
    assert mode_error(value) is None


@pytest.mark.parametrize('value', ['rw', '0800', True, -1, 0o17777, '06000000', 'u=rwz', 'q+r',
                                   1.5, ['0600']])
def test_mode_error_refuses(value):
    assert 'mode' in mode_error(value)


def test_file_arg_errors():
    assert file_arg_errors({}) == []
    assert file_arg_errors(dict(mode='0640', owner='root', group='root')) == []
    assert file_arg_errors(dict(owner='0', group='12345')) == []  # numbers are ids
    errors = file_arg_errors(dict(mode='rw', owner='no-such-user-virtops', group='no-such-group-virtops'))
    assert len(errors) == 3
    assert 'owner no-such-user-virtops does not exist' in errors[1]
    assert 'group no-such-group-virtops does not exist' in errors[2]
