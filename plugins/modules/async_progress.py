#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: async_progress
short_description: Wait for an async task and print its progress while it runs
version_added: 0.1.0
description:
  - Waits for an async task (started with C(async) and C(poll=0)) until it ends, and every
    O(interval) seconds prints a line with its progress, so long copies and commits are not
    silent.
  - Each round trip to the host waits there for up to O(interval) seconds (at most 10) and
    looks at the job every 0.1 s, so a finished job is noticed at once however long the
    interval, with one module call per interval.
  - Progress comes from the progress file of M(virtops.libvirt.image_copy) or
    M(virtops.libvirt.blockcommit) (O(progress_file)). That file names the job's process, so a
    job whose process is gone without a result (killed) fails the task within seconds, with a
    message saying so, instead of being waited for until its async limit.
  - With O(lock), every round trip renews the run's lease on that lock (the wait is what keeps
    a live run's lock during a long copy or commit), and fails when the lock was taken over.
    O(renew_locks) are renewed too, for the other domains whose jobs run meanwhile.
  - For M(virtops.libvirt.backup_domains), whose progress file lists the locks of the domains in
    progress, give O(lock_owner) without O(lock). Each round trip renews those locks and tells
    the job that its run still waits for it. One line is printed per running copy and commit.
  - The wait stops when C(ansible-playbook) itself is gone, so no orphaned worker keeps
    polling a job for a dead run.
  - Returns the async task's own result, and fails when it failed. Removes the job's status file.
  - This is an action plugin that runs on the controller; it runs this module on the host for
    each round trip.
author:
  - virtops.libvirt developers (@virtops)
extends_documentation_fragment:
  - virtops.libvirt.lock
attributes:
  check_mode:
    description: Waits the same in check mode.
    support: full
  diff_mode:
    description: No diff.
    support: none
  platform:
    description: Any host that runs async tasks.
    support: full
    platforms: posix
  action:
    description: Runs on the controller.
    support: full
options:
  jid:
    description: The C(ansible_job_id) of the async task.
    type: str
    required: true
  label:
    description: What the progress lines name, for example V(web01 copy of vda).
    type: str
    default: job
  interval:
    description: Seconds between progress lines.
    type: int
    default: 10
  progress_file:
    description:
      - The progress file of an M(virtops.libvirt.image_copy), M(virtops.libvirt.blockcommit) or
        M(virtops.libvirt.backup_domains) task.
      - Without it no progress is shown and a killed job is only noticed through its result.
    type: path
  renew_locks:
    description:
      - Other locks of the same run (O(lock_owner)) to renew at every round trip, such as the
        locks of domains whose copies run while this job is waited for.
      - A lock among them that this run lost is left alone here; the wait for that domain's own
        job fails on it.
    type: list
    elements: path
  async_dir:
    description:
      - The directory of the async jobs' status files on the host.
      - Filled in by the action plugin from the C(async_dir) shell setting; do not set it.
    type: path
    default: ~/.ansible_async
seealso:
  - module: virtops.libvirt.image_copy
  - module: virtops.libvirt.blockcommit
  - module: virtops.libvirt.backup_lock
  - module: virtops.libvirt.backup_domains
"""

EXAMPLES = r"""
- name: Start a long copy
  virtops.libvirt.image_copy:
    src: /var/lib/libvirt/images/web01.qcow2
    dest: /srv/backups/web01.qcow2
    progress_file: /srv/backups/.web01.progress
  async: 86400
  poll: 0
  register: copy_job

- name: Wait for it, printing a line like web01 copy - 42.0% (8.4 GiB of 20.0 GiB) every 10 s
  virtops.libvirt.async_progress:
    jid: "{{ copy_job.ansible_job_id }}"
    label: web01 copy
    progress_file: /srv/backups/.web01.progress
  register: copy_result
"""

RETURN = r"""
finished:
  description: Always true on return.
  returned: always
  type: bool
ansible_job_id:
  description: The job's id.
  returned: always
  type: str
"""

import contextlib
import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtops.libvirt.plugins.module_utils._async_job import poll, read_json
from ansible_collections.virtops.libvirt.plugins.module_utils._lock import LockLost, renew
from ansible_collections.virtops.libvirt.plugins.module_utils._worker import (
    LOCK_ARGUMENT_SPEC,
    lost_message,
)

MAX_WAIT = 10


def main():
    spec = dict(
        jid=dict(type='str', required=True),
        label=dict(type='str', default='job'),
        interval=dict(type='int', default=10),
        progress_file=dict(type='path'),
        renew_locks=dict(type='list', elements='path'),
        # filled in by the action plugin, as async_status gets it
        async_dir=dict(type='path', default='~/.ansible_async'),
    )
    spec.update(LOCK_ARGUMENT_SPEC)
    module = AnsibleModule(argument_spec=spec,
                           required_by=dict(lock='lock_owner', renew_locks='lock_owner'),
                           supports_check_mode=True)
    params = module.params
    jid = params['jid']
    job_file = os.path.join(params['async_dir'], jid)
    if params['lock'] and not module.check_mode:
        try:
            renew(params['lock'], params['lock_owner'])
        except LockLost as exc:
            module.fail_json(msg=lost_message(params['lock'], exc.holder), ansible_job_id=jid)
        except OSError as exc:
            module.fail_json(msg='cannot renew the lock %s: %s' % (params['lock'], exc))
    others = list(params['renew_locks'] or [])
    if params['progress_file'] and params['lock_owner'] and not module.check_mode:
        # A backup_domains job: its locks are listed in its progress file, and it starts no
        # further domain once nobody waits for it.
        progress = read_json(params['progress_file'])
        if progress is not None:  # the job runs (it removes both files when it ends)
            others += progress.get('locks') or []
            with contextlib.suppress(OSError):
                with open(params['progress_file'] + '.waiter', 'w'):
                    pass
    for other in [] if module.check_mode else others:
        with contextlib.suppress(LockLost, OSError):
            renew(other, params['lock_owner'])
    if not os.path.exists(job_file):
        module.fail_json(msg='async job %s not found: no %s' % (jid, job_file), ansible_job_id=jid)
    result, progress, dead = poll(job_file, params['progress_file'],
                                  max(0.5, min(params['interval'], MAX_WAIT)))
    if dead:
        module.fail_json(msg='async job %s died without a result: %s' % (jid, dead),
                         ansible_job_id=jid)
    if result is not None:
        os.unlink(job_file)
    module.exit_json(changed=False, finished=result is not None, result=result or {},
                     progress=progress, ansible_job_id=jid)


if __name__ == '__main__':
    main()
