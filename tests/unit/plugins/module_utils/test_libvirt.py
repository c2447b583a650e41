# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest

from ansible_collections.virtops.libvirt.plugins.module_utils import _libvirt


class FailJson(Exception):
    pass


class FakeModule(object):
    def __init__(self):
        self.failed = None

    def fail_json(self, **kwargs):
        self.failed = kwargs
        raise FailJson()


def test_missing_libvirt_python_gives_the_standard_message(monkeypatch):
    monkeypatch.setattr(_libvirt, 'libvirt', None)
    monkeypatch.setattr(_libvirt, 'LIBVIRT_IMPORT_ERROR', 'Traceback: No module named libvirt')
    module = FakeModule()
    with pytest.raises(FailJson):
        _libvirt.ensure_libvirt(module)
    assert module.failed['msg'].startswith(
        'Failed to import the required Python library (libvirt-python)')
    assert 'Traceback' not in module.failed['msg']
    assert module.failed['exception'] == 'Traceback: No module named libvirt'


def test_libvirt_present_passes():
    pytest.importorskip('libvirt')
    module = FakeModule()
    _libvirt.ensure_libvirt(module)
    assert module.failed is None


def test_error_code():
    class Coded(Exception):
        def get_error_code(self):
            return 42
    assert _libvirt.error_code(Coded()) == 42
    assert _libvirt.error_code(ValueError()) is None
