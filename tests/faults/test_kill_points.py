# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Kill points x signals: a backup run is interrupted at a kill point, then the same playbook
is run again at once and must succeed, leaving the VM on its own images with every guest
write, and every complete backup a point-in-time copy.

Kill points: after_snapshot (failpoint), mid_copy (qemu-img running, 0 < percent < 100),
phase1 (commit job, not READY; live_backup_bandwidth 1 and 8 MiB written into the overlay),
before_pivot (failpoint, job READY), after_pivot (failpoint, the VM pivoted, its overlay not
yet deleted; only SIGKILL ends the process there, other signals wait for the deletion).
"""

from __future__ import annotations

import threading

import pytest

import faultlib as F
from conftest import REPS, REPS_OTHER

POINTS = ['after_snapshot', 'mid_copy', 'phase1', 'before_pivot', 'after_pivot']
QUICK_PLAYBOOK = {('after_snapshot', 'SIGKILL'), ('phase1', 'SIGTERM')}
QUICK_MODULE = {('mid_copy', 'SIGKILL'), ('after_pivot', 'SIGKILL')}


def _params(combos, quick, reps):
    params = []
    for point, sig in combos:
        for rep in range(reps):
            marks = [pytest.mark.quick] if (point, sig) in quick and rep == 0 else []
            params.append(pytest.param(point, sig, rep, marks=marks, id='%s-%s-r%d' % (point, sig, rep)))
    return params


@pytest.mark.parametrize('point,signame,rep', _params(
    [(p, s) for p in POINTS for s in ('SIGINT', 'SIGTERM', 'SIGKILL')], QUICK_PLAYBOOK, REPS))
def test_playbook_signal(make_case, point, signame, rep):
    """ansible-playbook gets the signal at the kill point; the immediate rerun must succeed."""
    case = make_case('pb-%s-%s' % (point.replace('_', ''), signame[3:].lower()), rep)
    case.start_writer()
    extravars = F.point_extravars(case, point)
    with F.Recorder(case, case='kill %s' % point, signal=signame, target='playbook') as row:
        run = F.start_at_point(case, point, extravars)
        F.kill_playbook(run, F.SIGNALS[signame])
        row['first_status'] = F.end_run(run, 90, 'after %s to ansible-playbook' % signame)
        F.rerun(case, row, extravars)


@pytest.mark.parametrize('point,signame,rep', _params(
    [(p, s) for p in POINTS for s in ('SIGTERM', 'SIGKILL')], QUICK_MODULE, REPS_OTHER))
def test_module_signal(make_case, point, signame, rep):
    """The module process at the kill point (AnsiballZ_*, and the copy's qemu-img) gets the
    signal; the playbook goes on as it can; then the immediate rerun must succeed."""
    case = make_case('mod-%s-%s' % (point.replace('_', ''), signame[3:].lower()), rep)
    case.start_writer()
    extravars = F.point_extravars(case, point)
    with F.Recorder(case, case='kill %s' % point, signal=signame, target='module') as row:
        run = F.start_at_point(case, point, extravars)
        row['killed'] = F.kill_modules(case, point, F.SIGNALS[signame])
        case.release()  # a module that survived the signal must not stay parked
        row['first_status'] = F.end_run(run, 300, 'after %s to the module' % signame)
        F.rerun(case, row, extravars)


@pytest.mark.parametrize('rep', range(REPS_OTHER))
def test_runner_cancel(make_case, rep):
    """ansible-runner's own cancel (cancel_callback, as AWX cancels a job) in phase 1."""
    case = make_case('cancel', rep)
    case.start_writer()
    extravars = F.point_extravars(case, 'phase1')
    cancel = threading.Event()
    with F.Recorder(case, case='kill phase1', signal='runner-cancel', target='playbook') as row:
        run = F.start_at_point(case, 'phase1', extravars, cancel_callback=cancel.is_set)
        cancel.set()
        row['first_status'] = F.end_run(run, 90, 'after the runner cancel')
        if row['first_status'] != 'canceled':
            row['failures'].append('runner status %s, expected canceled' % row['first_status'])
        F.rerun(case, row, extravars)
