# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fault-injection suite: repetitions, a hard per-case timeout, and the case fixture.

FAULT_REPS (default 3) repeats the kill-point matrix of ansible-playbook signals; the other
cases run FAULT_REPS_OTHER times (default 1) so that `make faults` fits in about 45 minutes
on a 2-core machine. FAULT_CASE_TIMEOUT (default 420 s) bounds every case.
"""

from __future__ import annotations

import os
import signal

import pytest

import faultlib

REPS = int(os.environ.get('FAULT_REPS', '3'))
REPS_OTHER = int(os.environ.get('FAULT_REPS_OTHER', '1'))
CASE_TIMEOUT = int(os.environ.get('FAULT_CASE_TIMEOUT', '420'))


class CaseTimeout(Exception):
    pass


def _alarm(signum, frame):
    raise CaseTimeout('case exceeded FAULT_CASE_TIMEOUT=%ss' % CASE_TIMEOUT)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    # No case can hang: SIGALRM interrupts the test body; the fixture teardown still runs.
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(CASE_TIMEOUT)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def make_case():
    """Cases created through this are torn down whatever happens (VM, mounts, files)."""
    cases = []

    def factory(name, rep=0):
        case = faultlib.Case(name, rep)
        cases.append(case)
        case.create()
        return case
    yield factory
    for case in cases:
        signal.alarm(120)  # teardown is bounded too
        try:
            case.teardown()
        finally:
            signal.alarm(0)
