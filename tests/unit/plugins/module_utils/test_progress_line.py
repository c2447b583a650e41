# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from ansible_collections.virtops.libvirt.plugins.module_utils._async_job import progress_line


def test_progress_line():
    assert progress_line('web01 copy of vda', 0, 0) == 'web01 copy of vda: running'
    assert progress_line('c', 512 * 1024 ** 2, 2 * 1024 ** 3) == 'c: 25.0% (512.0 MiB of 2.0 GiB)'
    assert progress_line('c', 10, 10, ready=True) == 'c: 100.0% (10 Bytes of 10 Bytes), READY'
