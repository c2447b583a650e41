# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Bad inputs: role variables of the backup playbook and options of the modules (one-task
playbooks), each against a running test VM. Every row must fail, say why, and change
nothing: VM not on an overlay, no block job, no new backup directory, no lock held.
Rows go to FAULTS_BAD_RESULTS (tests/output/bad_inputs.json) for report.py.
"""

from __future__ import annotations

import json
import os
import shutil
import signal

import pytest

import faultlib as F

RESULTS = F.Path(os.environ.get('FAULTS_BAD_RESULTS', str(F.ROOT / 'tests/output/bad_inputs.json')))
ROWS = []

# (id, role variables); '{images}' is the VM's image directory.
ROLE_ROWS = [
    ('bandwidth-negative', {'live_backup_bandwidth': -1}),
    ('bandwidth-garbage', {'live_backup_bandwidth': 'fast'}),
    ('timeout-negative', {'live_backup_timeout': -5}),
    ('keep-fraction', {'live_backup_keep': 2.5}),
    ('timeout-garbage', {'live_backup_timeout': 'soon'}),
    ('keep-negative', {'live_backup_keep': -1}),
    ('keep-garbage', {'live_backup_keep': 'all'}),
    ('lease-zero', {'live_backup_lock_lease': 0}),
    ('lease-negative', {'live_backup_lock_lease': -10}),
    ('lease-garbage', {'live_backup_lock_lease': 'long'}),
    ('copy-bandwidth-negative', {'live_backup_copy_bandwidth': -16}),
    ('copy-bandwidth-garbage', {'live_backup_copy_bandwidth': 'x'}),
    ('progress-zero', {'live_backup_progress_interval': 0}),
    ('progress-negative', {'live_backup_progress_interval': -1}),
    ('progress-garbage', {'live_backup_progress_interval': 'often'}),
    ('copy-timeout-negative', {'live_backup_copy_timeout': -1}),
    ('dest-relative', {'live_backup_dest': 'relative/backups'}),
    ('dest-image-dir', {'live_backup_dest': '{images}'}),
    ('dest-empty', {'live_backup_dest': ''}),
    ('lock-dir-relative', {'live_backup_lock_dir': 'relative/locks'}),
    ('quiesce-unknown', {'live_backup_quiesce': 'sometimes'}),
    ('compress-unknown', {'live_backup_compress': 'lz4x'}),
    ('offline-unknown', {'live_backup_offline': 'maybe'}),
    ('verify-garbage', {'live_backup_verify': 'perhaps'}),
    ('domains-dict', {'live_backup_domains': {'name': '{vm}'}}),
    ('domains-number', {'live_backup_domains': 42}),
    ('domains-unknown', {'live_backup_domains': ['vt-ft-does-not-exist']}),
    ('exclude-every-disk', {'live_backup_exclude_disks': ['vda', 'vdb']}),
    ('uri-unreachable', {'live_backup_uri': 'qemu:///nonexistent'}),
    ('block-overlay-dir-relative', {'live_backup_block_overlay_dir': 'relative/overlays'}),
    ('parallel-zero', {'live_backup_parallel': 0}),
    ('keep-daily-negative', {'live_backup_keep_daily': -1}),
    ('keep-monthly-garbage', {'live_backup_keep_monthly': 'many'}),
    ('tag-two-words', {'live_backup_tag': 'nightly weekly'}),
    ('exclude-domains-string-empty', {'live_backup_exclude_domains': ['']}),
]

# (id, module, options).
MODULE_ROWS = [
    ('blockcommit-bandwidth-negative', 'blockcommit',
     {'domain': '{vm}', 'disk': 'vda', 'active': True, 'finish': 'pivot', 'bandwidth': -1}),
    ('blockcommit-disk-unknown', 'blockcommit', {'domain': '{vm}', 'disk': 'vdz', 'active': True, 'finish': 'pivot'}),
    ('blockcommit-finish-unknown', 'blockcommit',
     {'domain': '{vm}', 'disk': 'vda', 'active': True, 'finish': 'explode'}),
    ('blockcommit-timeout-negative', 'blockcommit',
     {'domain': '{vm}', 'disk': 'vda', 'active': True, 'finish': 'pivot', 'timeout': -1}),
    ('disk_snapshot-quiesce-unknown', 'disk_snapshot', {'domain': '{vm}', 'quiesce': 'sometimes'}),
    ('disk_snapshot-domain-unknown', 'disk_snapshot', {'domain': 'vt-ft-does-not-exist'}),
    ('disk_snapshot-disk-unknown', 'disk_snapshot', {'domain': '{vm}', 'disks': ['vdz']}),
    ('image_copy-src-missing', 'image_copy', {'src': '{dir}/missing.qcow2', 'dest': '{dir}/out/x.qcow2'}),
    ('image_copy-dest-relative', 'image_copy', {'src': '{vdb}', 'dest': 'relative/x.qcow2'}),
    ('image_copy-format-unknown', 'image_copy', {'src': '{vdb}', 'dest': '{dir}/out/x.img', 'format': 'vmdkx'}),
    ('image_copy-compress-unknown', 'image_copy',
     {'src': '{vdb}', 'dest': '{dir}/out/x.qcow2', 'compress': 'lz4x'}),
    ('backup_lock-lease-zero', 'backup_lock', {'path': '{lock}', 'owner': 'vt-ft', 'lease': 0}),
    ('backup_lock-lease-negative', 'backup_lock', {'path': '{lock}', 'owner': 'vt-ft', 'lease': -5}),
    ('backup_lock-state-unknown', 'backup_lock', {'path': '{lock}', 'owner': 'vt-ft', 'state': 'maybe'}),
    ('backup_finalize-keep-negative', 'backup_finalize',
     {'path': '{dest}/{vm}/20260101T000000Z.partial', 'keep': -1, 'manifest': {'domain': '{vm}'}}),
    ('backup_finalize-path-missing', 'backup_finalize',
     {'path': '{dir}/nowhere/20260101T000000Z.partial', 'manifest': {'domain': '{vm}'}}),
    ('backup_finalize-manifest-garbage', 'backup_finalize',
     {'path': '{dest}/{vm}/20260101T000000Z.partial', 'manifest': 'not a manifest'}),
]


def _fill(value, case):
    names = dict(vm=case.name, images=str(case.images), dir=str(case.dir), dest=str(case.dest),
                 vdb=case.sources.get('vdb', ''), lock=str(case.lock))
    if isinstance(value, str):
        return value.format(**names)
    if isinstance(value, list):
        return [_fill(v, case) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, case) for k, v in value.items()}
    return value


def _tree(case, extra_paths):
    """Backup directories that exist now: under the destination and the other paths."""
    found = set()
    for base in [case.dest] + extra_paths:
        if F.Path(base).is_dir():
            found.add(str(base))
        for path in F.Path(base).glob('**/*'):
            if path.is_dir():
                found.add(str(path))
    return found


@pytest.fixture(scope='module')
def badvm():
    case = F.Case('bad', 0)
    case.create()
    yield case
    signal.alarm(120)
    try:
        case.teardown()
    finally:
        signal.alarm(0)


def _record(row):
    ROWS.append(row)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(ROWS, indent=1))


def _run_row(case, kind, row_id, shown, playbook, extravars, extra_paths, cleanup=()):
    if case.sources and (case.on_overlay() or not case.running()):
        case.create()  # an earlier accepted row changed the VM: start from a clean one
    before = _tree(case, extra_paths + list(cleanup))
    sources_before = dict(case.sources)
    run = case.run(extravars, row_id, playbook=playbook)
    status = F.end_run(run, 240, row_id)
    message = '; '.join(run.failures()) or run.stdout_tail(400)
    changes = []
    if case.on_overlay():
        changes.append('VM on an overlay')
    if case.block_jobs():
        changes.append('block job %s' % case.block_jobs())
    live = case.live_xml()
    for target, source in sources_before.items():
        if "file='%s'" % source not in live:
            changes.append('%s not on %s' % (target, source))
    new = sorted(_tree(case, extra_paths) - before)
    if new:
        changes.append('new directories %s' % new[:4])
    lock = F.lock_state(case)
    if lock != 'free':
        changes.append('lock %s' % lock)
    row = dict(time=F.time.strftime('%Y-%m-%dT%H:%M:%SZ', F.time.gmtime()),
               kind=kind, id=row_id, input=shown, status=status, message=message[:600],
               nothing_changed=not changes, changes=changes)
    _record(row)
    problems = []
    if status == 'successful':
        problems.append('accepted: the run succeeded')
    if not message.strip():
        problems.append('no failure message')
    problems.extend(changes)
    # Leave the VM clean for the next row, whatever this one did; relative paths it created go.
    for root in cleanup:
        if os.path.isdir(root) and root not in before:
            shutil.rmtree(root, ignore_errors=True)
    for job_target in case.block_jobs():
        case.dom().blockJobAbort(job_target, 0)
    if case.on_overlay() or any("file='%s'" % s not in case.live_xml() for s in sources_before.values()):
        case.create()
    assert not problems, '%s %s: %s (message: %s)' % (kind, row_id, problems, message[:300])


@pytest.mark.parametrize('row_id,variables', ROLE_ROWS, ids=[r[0] for r in ROLE_ROWS])
def test_bad_role_variable(badvm, row_id, variables):
    case = badvm
    bad = _fill(variables, case)
    extra_paths, cleanup = [], []
    for key in ('live_backup_dest', 'live_backup_lock_dir', 'live_backup_block_overlay_dir'):
        if key in bad and isinstance(bad[key], str) and bad[key]:
            if os.path.isabs(bad[key]):
                extra_paths.append(bad[key])
            else:  # a relative path lands next to the playbook, in the run's dir, or in our cwd
                bases = (
                    F.Path(F.COLLECTIONS.split(':')[0]) / 'ansible_collections/virtops/libvirt/playbooks',
                    case.dir / 'runs' / ('%02d-%s' % (case.next_seq(), row_id)) / 'project', os.getcwd())
                extra_paths += [str(F.Path(base) / bad[key]) for base in bases]
                cleanup += [str(F.Path(base) / bad[key].split('/')[0]) for base in bases[::2]]
    extravars = case.extravars(**bad)
    _run_row(case, 'role', row_id, json.dumps(variables), None, extravars, extra_paths, cleanup)


@pytest.mark.parametrize('row_id,module,options', MODULE_ROWS, ids=[r[0] for r in MODULE_ROWS])
def test_bad_module_option(badvm, row_id, module, options):
    case = badvm
    (case.dir / 'out').mkdir(exist_ok=True)
    args = _fill(options, case)
    playbook = json.dumps([dict(name='bad ' + row_id, hosts='hypervisors', gather_facts=False,
                                tasks=[{'name': row_id, 'virtops.libvirt.' + module: args}])])
    _run_row(case, 'module ' + module, row_id, json.dumps(options), playbook, {}, [str(case.dir / 'out')])
