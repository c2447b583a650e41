# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The lock is real (flock and a real holder process), only short-lived."""

from __future__ import annotations

import os
import time

import pytest

from ansible_collections.virtops.libvirt.plugins.module_utils._lock import (
    LockBusy,
    acquire,
    is_locked,
    release,
)


@pytest.fixture
def lock_path(tmp_path):
    path = str(tmp_path / '.lock')
    yield path
    if is_locked(path):
        release(path)


def test_acquire_and_release(lock_path):
    holder = acquire(lock_path, 'run-1', lease=60)
    assert holder['owner'] == 'run-1' and holder['pid'] != os.getpid()
    assert is_locked(lock_path)
    with pytest.raises(LockBusy) as busy:
        acquire(lock_path, 'run-2', lease=60)
    assert busy.value.holder['owner'] == 'run-1'
    assert release(lock_path, 'run-1')
    assert not is_locked(lock_path)
    assert not release(lock_path, 'run-1')


def test_another_owner_cannot_release(lock_path):
    acquire(lock_path, 'run-1', lease=60)
    with pytest.raises(LockBusy):
        release(lock_path, 'run-2')
    assert is_locked(lock_path)


def test_lease_expiry_frees_a_forgotten_lock(lock_path):
    acquire(lock_path, 'crashed-run', lease=1)
    deadline = time.monotonic() + 10
    while is_locked(lock_path) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not is_locked(lock_path)
    assert acquire(lock_path, 'next-run', lease=60)['owner'] == 'next-run'


def test_killed_holder_frees_the_lock(lock_path):
    holder = acquire(lock_path, 'run-1', lease=60)
    os.kill(holder['pid'], 9)
    deadline = time.monotonic() + 10
    while is_locked(lock_path) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not is_locked(lock_path)


def test_wait_for_a_busy_lock(lock_path):
    acquire(lock_path, 'run-1', lease=1)
    assert acquire(lock_path, 'run-2', lease=60, wait=10)['owner'] == 'run-2'
