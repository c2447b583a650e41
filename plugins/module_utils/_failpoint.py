# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Fault-injection hooks for the test suite (tests/faults), off unless asked for.

With ``VIRTOPS_FAILPOINT_DIR`` set and the file ``<dir>/<name>`` present, a
module that reaches failpoint ``name`` writes ``<dir>/<name>.reached`` (its
pid) and waits while ``<dir>/<name>`` exists, so a test can kill a run at an
exact point (READY before the pivot, for instance). Without the variable
this is one environment lookup.
"""

from __future__ import annotations

import os
import time

MAX_WAIT = 600


def failpoint(name):
    directory = os.environ.get('VIRTOPS_FAILPOINT_DIR')
    if not directory:
        return
    gate = os.path.join(directory, name)
    if not os.path.exists(gate):
        return
    with open(gate + '.reached', 'w') as handle:
        handle.write(str(os.getpid()))
    deadline = time.monotonic() + MAX_WAIT
    while os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.05)
