#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: backup_domains
short_description: Back up running and shut-off libvirt domains live, several at a time
version_added: 0.3.0
description:
  - The whole live backup of each domain in O(domains), the workflow of the
    P(virtops.libvirt.live_backup#role) role, which runs this module.
  - 'For each domain, in a process of its own: take its lock (taking over from a dead run, see
    M(virtops.libvirt.backup_lock)); decide and start C(<dest>/<domain>/<UTC timestamp>.partial)
    (M(virtops.libvirt.backup_prepare)), first bringing back a VM that an earlier run left on
    overlays of ours; freeze the disks of a running domain with one atomic external snapshot
    (M(virtops.libvirt.disk_snapshot)); copy every disk at the same time
    (M(virtops.libvirt.image_copy)); commit every overlay back and pivot, also after a failed
    copy, again unthrottled when the commit could not reach READY within O(bandwidth), offline
    when the VM stopped meanwhile (M(virtops.libvirt.blockcommit),
    M(virtops.libvirt.offline_repair)); complete the backup, manifest last, and apply the
    retention (M(virtops.libvirt.backup_finalize)); release the lock.'
  - Up to O(parallel) domains are backed up at the same time. A failing domain does not stop
    the others; its VM is brought back onto its own images. When a domain's process dies, a
    new one brings the VM back.
  - Run it with C(async) and C(poll=0) and wait with M(virtops.libvirt.async_progress) given the
    same O(progress_file) and O(lock_owner). The wait prints one line per running copy and commit
    and renews the locks of the domains in progress. Once the run is gone - its controller, on
    this machine, has exited, or the wait stopped for O(lease) seconds - no further domain is
    started; the domains in progress are completed or brought back.
  - With C(async), the module starts the job itself, not through Ansible's async wrapper. It
    checks the settings (a refused setting fails this task), forks the job and returns at once
    with the usual C(ansible_job_id), so the job begins while the task returns.
    C(ansible.builtin.async_status) and C(poll) work as for any async task. When the C(async)
    time limit is reached, the job starts no further domain and stops the domains in progress,
    which bring their VMs back (the wrapper would kill the job, leaving VMs on overlays).
  - First every setting is checked and the domains are selected, as
    M(virtops.libvirt.backup_plan) does; settings that cannot work fail the module before any
    domain is touched. A named domain that does not exist fails alone.
  - The module does not fail when a domain fails; each domain has its result in RV(domains).
author:
  - virtops.libvirt developers (@virtops)
extends_documentation_fragment:
  - virtops.libvirt.connection
  - virtops.libvirt.backup_settings
attributes:
  check_mode:
    description:
      - Changes nothing and takes no lock. Each domain's result has status V(planned) (or
        V(skipped), or V(failed) for a domain a run would refuse), a one-line summary and the
        plan of M(virtops.libvirt.backup_prepare)'s preview; with O(recover_only), what the
        recovery would do.
    support: full
  diff_mode:
    description: No diff.
    support: none
  platform:
    description: Runs on the hypervisor.
    support: full
    platforms: posix
options:
  lock_owner:
    description: This run's name in the per-domain locks, unique per run.
    type: str
    required: true
  offline:
    description: Shut-off domains have their images copied (V(copy)) or are skipped (V(skip)).
    type: str
    choices: [copy, skip]
    default: copy
  quiesce:
    description: As M(virtops.libvirt.disk_snapshot)'s O(virtops.libvirt.disk_snapshot#module:quiesce).
    type: str
    choices: [auto, always, never]
    default: auto
  compress:
    description: Compression of the copies.
    type: str
    choices: [none, zstd, zlib]
    default: none
  verify:
    description: Compare each copy with its frozen image before the commit.
    type: bool
    default: false
  checksum:
    description: Record a sha256 of each copy in the manifest.
    type: bool
    default: false
  progress_file:
    description:
      - The job's progress file, read by M(virtops.libvirt.async_progress). Its directory must
        exist (the default O(lock_dir) is created).
    type: path
  recover_only:
    description:
      - Back up nothing; only take each lock, bring a VM on overlays of ours back onto its own
        images and remove incomplete backups.
    type: bool
    default: false
  controller:
    description:
      - The controller that runs the play, recorded with each lock as
        M(virtops.libvirt.backup_lock) records it.
      - Filled in by the action plugin of this module; do not set it.
    type: dict
    default: {}
  job:
    description:
      - With C(async), the job the module starts itself.
      - Filled in by the action plugin of this module; do not set it.
    type: dict
    suboptions:
      limit:
        description: The task's C(async) time limit, in seconds.
        type: int
        required: true
      async_dir:
        description: Where its status file goes (the C(async_dir) shell setting).
        type: path
        required: true
notes:
  - The action plugin records the controller (C(ansible-playbook)) in each lock, as for
    M(virtops.libvirt.backup_lock).
seealso:
  - module: virtops.libvirt.async_progress
  - module: virtops.libvirt.backup_plan
'''

EXAMPLES = r'''
- name: Back up web01 and every db* domain, two at a time
  virtops.libvirt.backup_domains:
    domains: [web01, 'db*']
    dest: /srv/backup
    keep: 7
    lock_owner: "{{ inventory_hostname }}-nightly-{{ tower_job_id | default('manual') }}"
    progress_file: /run/lock/virtops-libvirt/nightly.progress
  async: 86400
  poll: 0
  register: job

- name: Wait, printing the progress of each copy and commit and renewing the locks
  virtops.libvirt.async_progress:
    jid: "{{ job.ansible_job_id }}"
    progress_file: /run/lock/virtops-libvirt/nightly.progress
    lock_owner: "{{ inventory_hostname }}-nightly-{{ tower_job_id | default('manual') }}"
  register: backup

- name: Fail when a domain failed
  ansible.builtin.assert:
    that: backup.domains | selectattr('status', 'equalto', 'failed') | list | length == 0
'''

RETURN = r'''
domains:
  description: One result per domain, in the order of O(domains).
  returned: always
  type: list
  elements: dict
  contains:
    domain:
      description: Its name.
      type: str
    status:
      description: V(ok), V(skipped) or V(failed).
      type: str
    summary:
      description: One line on what happened.
      type: str
    error:
      description: Why it failed.
      type: str
      returned: when it failed
    vm:
      description:
        - Where a failed domain's VM was when the run checked after the failure, also at the
          end of RV(domains[].summary) - V(on its own images), or V(brought back onto its own images)
          followed by the disks it brought back. Absent when that could not be done (then
          RV(domains[].error) says why) or the domain's process died (then RV(domains[].error) says
          what its recovery did).
      type: str
      returned: when it failed and its VM was checked afterwards
    bytes:
      description: Bytes of the backup on disk.
      type: int
    seconds:
      description: Seconds from the start of its backup to its completion.
      type: int
    consistency:
      description: V(quiesced), V(crash-consistent) or V(offline).
      type: str
    path:
      description: The completed backup.
      type: str
    pruned:
      description: Backups removed by the retention.
      type: list
      elements: str
      returned: for a completed backup
    quiesce_error:
      description:
        - Why the snapshot of a running domain was not quiesced (O(quiesce=auto) and no guest
          agent answered), as libvirt said it; V(null) when it was quiesced or not tried.
      type: str
      returned: for a completed backup
    notes:
      description: What went differently, for example a commit done again unthrottled.
      type: list
      elements: str
    plan:
      description: In check mode, the preview of M(virtops.libvirt.backup_prepare).
      type: dict
      returned: in check mode
    timeline:
      description:
        - The steps of the domain as C([start, end]) epoch seconds (V(prepare), V(snapshot),
          V(copy), V(commit), V(finalize)), for performance analysis.
      type: dict
changed:
  description: True when a domain was backed up or recovered.
  returned: always
  type: bool
'''

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtops.libvirt.plugins.module_utils._async_job import start_job
from ansible_collections.virtops.libvirt.plugins.module_utils._backup_plan import (
    SETTINGS_ARGUMENT_SPEC,
    PlanError,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._backup_run import (
    ChildQemuImg,
    Supervisor,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._image_copy import COMPRESSIONS
from ansible_collections.virtops.libvirt.plugins.module_utils._libvirt import (
    CONNECTION_ARGUMENT_SPEC,
    LibvirtFailure,
    ensure_libvirt,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._snapshot import QUIESCE_MODES


def argument_spec():
    spec = dict(
        SETTINGS_ARGUMENT_SPEC,
        lock_owner=dict(type='str', required=True),
        offline=dict(type='str', choices=['copy', 'skip'], default='copy'),
        quiesce=dict(type='str', choices=list(QUIESCE_MODES), default='auto'),
        compress=dict(type='str', choices=list(COMPRESSIONS), default='none'),
        verify=dict(type='bool', default=False),
        checksum=dict(type='bool', default=False),
        progress_file=dict(type='path'),
        recover_only=dict(type='bool', default=False),
        # filled in by the action plugin: the controller that runs the play; with async, the job
        controller=dict(type='dict', default={}),
        job=dict(type='dict', options=dict(limit=dict(type='int', required=True),
                                           async_dir=dict(type='path', required=True))),
    )
    spec.update(CONNECTION_ARGUMENT_SPEC)
    return spec


def outcome(params, results):
    if params['recover_only']:
        changed = any(r.get('overlays') or r.get('partials') or r.get('took_over') for r in results)
    else:
        changed = any(r['status'] in ('ok', 'planned') for r in results)
    return dict(changed=changed, domains=results)


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    ensure_libvirt(module)
    params = dict(module.params)
    if isinstance(params['domains'], str) and params['domains'] != 'all':
        params['domains'] = [params['domains']]
    waiter = params['progress_file'] + '.waiter' if params['progress_file'] else None
    supervisor = Supervisor(params, ChildQemuImg(module), waiter)
    job = params['job']
    started = None
    try:
        try:
            supervisor.select()
        except PlanError as exc:
            module.fail_json(msg=str(exc), errors=exc.errors)
        except LibvirtFailure as exc:
            module.fail_json(msg=exc.msg, **exc.details)
        for warning in supervisor.warnings:
            module.warn(warning)
        if not module.check_mode:
            try:
                os.makedirs(params['lock_dir'], 0o700, exist_ok=True)
            except OSError as exc:
                module.fail_json(msg='cannot create the lock directory %s: %s' % (
                    params['lock_dir'], exc))
        if params['progress_file'] and not module.check_mode and \
                not os.path.isdir(os.path.dirname(params['progress_file'])):
            module.fail_json(msg='the directory of progress_file %s does not exist'
                             % params['progress_file'])
        if not job:
            results = supervisor.preview() if module.check_mode else supervisor.run()
            module.exit_json(**outcome(params, results))
        try:
            if module.check_mode:
                # a quick preview: its result is in the status file before the task returns
                started = start_job(job['async_dir'], lambda: outcome(params, supervisor.preview()),
                                    background=False)
            else:
                started = start_job(job['async_dir'], lambda: background_run(params, supervisor))
        except OSError as exc:
            module.fail_json(msg='cannot start the job in %s: %s' % (job['async_dir'], exc))
    finally:
        if started is None or module.check_mode:
            supervisor.close()
    module.exit_json(changed=True, **started)


def background_run(params, supervisor):
    """The job, in its own process."""
    try:
        return outcome(params, supervisor.run())
    finally:
        supervisor.close()


if __name__ == '__main__':
    main()
