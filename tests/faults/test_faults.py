# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Faults other than signals: libvirtd dies, the destination fills up, the VM is destroyed or
shut down mid-backup, two runs on one domain, a commit that cannot reach READY.

WARNING: the libvirtd cases SIGKILL the host's libvirtd and start it again at once with
`libvirtd -d` (then wait until it answers). Every VM on the host survives (QEMU keeps
running), but other users of libvirtd see their connections drop for a few seconds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

import faultlib as F
from conftest import REPS_OTHER

REPS = range(REPS_OTHER)


def _libvirtd_pids():
    return [pid for pid, (dummy, argv, dummy_env) in F.processes().items()
            if argv and os.path.basename(argv[0]) == 'libvirtd']


def _restart_libvirtd():
    """SIGKILL libvirtd, start it again at once, wait (bounded) until it answers."""
    pids = _libvirtd_pids()
    if not pids:
        raise F.CaseFailure('no libvirtd process to kill')
    F.kill(pids, signal.SIGKILL)
    F.wait_for('libvirtd to die', lambda: not any(F.alive(p) for p in pids), 10)
    subprocess.run(['libvirtd', '-d'], check=True, timeout=30)

    def answers():
        return subprocess.run(['virsh', '-c', F.URI, 'version'], capture_output=True,
                              timeout=10, check=False).returncode == 0
    F.wait_for('libvirtd to answer again', answers, 60, interval=0.5)
    return pids


@pytest.mark.parametrize('point', ['phase1', 'before_pivot'])
@pytest.mark.parametrize('rep', REPS)
def test_libvirtd_killed(make_case, point, rep):
    """libvirtd SIGKILLed and restarted in phase 1, or while READY is held by the
    before_pivot failpoint (released after the restart): the run survives, or the rerun
    recovers."""
    case = make_case('libvirtd-%s' % point.replace('_', ''), rep)
    case.start_writer()
    extravars = F.point_extravars(case, point)
    with F.Recorder(case, case='libvirtd killed %s' % point, signal='SIGKILL', target='libvirtd') as row:
        run = F.start_at_point(case, point, extravars)
        row['killed'] = _restart_libvirtd()
        case.release()
        row['first_status'] = F.end_run(run, 300, 'after the libvirtd restart')
        if row['first_status'] != 'successful':
            row['first_failures'] = run.failures()[:5]
            F.rerun(case, row, extravars)


@pytest.mark.quick
@pytest.mark.parametrize('rep', REPS)
def test_destination_full(make_case, rep):
    """live_backup_dest is a 48 MiB tmpfs (the data is 144 MiB): the run must fail with the VM
    back on its images; after the space is grown, the rerun must succeed and leave no
    .partial."""
    case = make_case('destfull', rep)
    case.start_writer()
    case.dest.rmdir()
    case.mount_tmpfs(case.dest, '48m')
    extravars = case.extravars()
    with F.Recorder(case, case='destination full', signal='-', target='dest') as row:
        run = case.run(extravars, 'full')
        row['first_status'] = F.end_run(run, 300, 'destination full')
        row['first_failures'] = run.failures()[:3]
        if row['first_status'] == 'successful':
            row['failures'].append('the run succeeded on a destination smaller than the data')
        if case.on_overlay() or case.block_jobs():
            row['failures'].append('after the failed run the VM is on an overlay or has a block job')
        subprocess.run(['mount', '-o', 'remount,size=1g', str(case.dest)], check=True, timeout=30)
        F.rerun(case, row, extravars)


def _vm_gone_case(make_case, rep, name, point, how):
    case = make_case(name, rep)
    case.start_writer()
    case.expect_running = False
    extravars = F.point_extravars(case, point)
    with F.Recorder(case, case='VM %s %s' % (how, point), signal=how, target='vm') as row:
        run = F.start_at_point(case, point, extravars)
        if how == 'destroyed':
            case.dom().destroy()
        else:
            F.vmtool('quit', case.name)
        F.wait_for('the VM to stop', lambda: not case.running(), 30)
        case.release()
        row['first_status'] = F.end_run(run, 300, 'after the VM stopped')
        row['first_failures'] = run.failures()[:3]
        F.rerun(case, row, extravars)
        if row.get('rerun_status') == 'successful':
            manifests = list((case.dest / case.name).glob('*/manifest.json'))
            offline = [m for m in manifests if '"offline"' in m.read_text()]
            if not offline:
                row['failures'].append('no offline backup after the rerun (manifests: %d)' % len(manifests))


@pytest.mark.parametrize('point', ['mid_copy', 'phase1'])
@pytest.mark.parametrize('rep', REPS)
def test_vm_destroyed(make_case, point, rep):
    """virDomain.destroy mid-copy or mid-commit: the VM stays shut off; the rerun must repair
    its definition (no overlay in the persistent XML) and back it up offline."""
    _vm_gone_case(make_case, rep, 'destroy-%s' % point.replace('_', ''), point, 'destroyed')


@pytest.mark.parametrize('rep', REPS)
def test_guest_shutdown(make_case, rep):
    """The guest shuts down mid-copy. OS-less test VMs cannot power themselves off, so QEMU
    quits through HMP `quit`, which libvirt records as a shutdown (not a crash or destroy).
    The VM stays shut off; the rerun must repair its definition and back it up offline."""
    _vm_gone_case(make_case, rep, 'guestoff', 'mid_copy', 'shut down by the guest')


@pytest.mark.parametrize('other_dest', [False, True], ids=['same-dest', 'other-dest'])
@pytest.mark.parametrize('rep', REPS)
def test_two_runs(make_case, other_dest, rep):
    """Two runs start at once on one domain (same or different destinations): one must fail
    fast on the lock, the other must succeed."""
    case = make_case('two-%s' % ('other' if other_dest else 'same'), rep)
    case.start_writer()
    # A throttled copy keeps the first run's lock for seconds: the runs overlap however fast
    # the rest of a run is (an unthrottled one holds the lock for about a second).
    first = case.extravars(live_backup_bandwidth=2, live_backup_copy_bandwidth=16)
    second = case.extravars(live_backup_bandwidth=2, live_backup_copy_bandwidth=16,
                            live_backup_dest=str(case.dir / 'dest2') if other_dest else str(case.dest))
    (case.dir / 'dest2').mkdir()
    if other_dest:
        # Either run may win the lock: the complete backup is in the winner's destination.
        case.other_dests = [case.dir / 'dest2']
    with F.Recorder(case, case='two runs %s' % ('other dest' if other_dest else 'same dest'),
                    signal='-', target='concurrency') as row:
        runs = [case.run(first, 'a'), case.run(second, 'b')]
        status = [F.end_run(r, 300, 'concurrent run') for r in runs]
        row['statuses'] = status
        winners = [r for r, s in zip(runs, status) if s == 'successful']
        losers = [r for r, s in zip(runs, status) if s != 'successful']
        if len(winners) != 1:
            row['failures'].append('%d runs succeeded, expected exactly 1: %s' % (
                len(winners), ['; '.join(r.failures())[:400] for r in losers]))
        for loser in losers:
            text = '; '.join(loser.failures())
            row['loser_message'] = text[:500]
            if 'lock' not in text.lower():
                row['failures'].append('the losing run did not fail on the lock: %s' % text[:500])
            if loser.seconds() > 60:
                row['failures'].append('the losing run took %ss, not a fast failure' % loser.seconds())


@pytest.mark.quick
@pytest.mark.parametrize('rep', REPS)
def test_commit_never_ready(make_case, rep):
    """The guest writes faster (1 MiB writes, no pause) than live_backup_bandwidth 1 lets the
    commit catch up; live_backup_timeout 10. The run must end with the VM on its own images
    (cancel, then commit unthrottled); if it failed, the rerun must succeed."""
    case = make_case('neverready', rep)
    case.start_writer(interval=0, size=1024)
    extravars = case.extravars(live_backup_bandwidth=1, live_backup_timeout=10)
    with F.Recorder(case, case='commit never READY', signal='-', target='commit') as row:
        started = time.monotonic()
        run = case.run(extravars, 'timeout')
        row['first_status'] = F.end_run(run, 300, 'commit timeout')
        row['first_seconds'] = round(time.monotonic() - started, 1)
        row['first_failures'] = run.failures()[:3]
        if case.on_overlay() or case.block_jobs():
            row['failures'].append('after the run the VM is on an overlay or has a block job: %s' %
                                   case.block_jobs())
        case.stop_writer()
        if row['first_status'] != 'successful':
            F.rerun(case, row, extravars)
