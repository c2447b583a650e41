#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: backup_lock
short_description: One run per domain at a time, with a lease that a dead run loses quickly
version_added: 0.1.0
description:
  - Takes the lock file O(path) for O(owner) (one run), or releases it.
  - The lock is a short lease, not a process. The run that holds it renews it while it works
    (M(virtops.libvirt.async_progress) renews it while it waits for a copy or a commit, and so
    does this module when called again by the same owner), so a run that died (cancelled,
    killed, its controller or SSH connection lost) stops renewing and loses the lock after at
    most O(lease) seconds.
  - The lock records the controller that runs the play (this module's action plugin fills it
    in). When that controller ran on the hypervisor itself and its C(ansible-playbook) process
    is gone, the lock is free at once.
  - A lock whose holder's controller runs elsewhere is waited for up to O(wait) seconds. If
    its holder renews it meanwhile, it is alive, and the module fails at once. A live holder
    whose controller is on this machine fails the module at once too. The failure names the
    holder.
  - When it takes over a lock from a dead or expired run, it first stops the processes that
    run recorded in it on this host (async copy and commit modules, C(qemu-img); SIGTERM, then
    SIGKILL after 30 seconds), and reports them in RV(previous). Then nothing that run left
    running can drive a disk any more.
  - The record is changed under a short C(flock) of the file; nothing stays running to hold
    the lock, so no process outlives a dead run. A lock file under C(/run) is gone after a
    reboot; elsewhere its lease runs out.
author:
  - virtops.libvirt developers (@virtops)
attributes:
  check_mode:
    description: Reports whether the lock is free, held by the owner or taken over; changes nothing.
    support: full
  diff_mode:
    description: No diff.
    support: none
  platform:
    description: Linux hosts (C(/proc), C(flock)), such as the hypervisor.
    support: full
    platforms: posix
options:
  path:
    description:
      - The lock file. Its directory is created (mode 0700, with its parents) when the lock is
        taken and it does not exist.
    type: path
    required: true
  state:
    description: V(present) takes (or renews) the lock, V(absent) releases it.
    type: str
    choices: [present, absent]
    default: present
  owner:
    description:
      - Who holds the lock, for example a run identifier. Required.
      - O(state=absent) only releases a lock held by the same owner; O(state=present) by the same
        owner renews the lease.
    type: str
    required: true
  lease:
    description:
      - Seconds after the last renewal when a lock that is not renewed any more is free.
      - Keep it above the longest step of a run that does not renew it (a snapshot, for
        instance) and above C(interval) of M(virtops.libvirt.async_progress).
    type: int
    default: 120
  wait:
    description:
      - Seconds to wait for a lock held from another machine, in case its holder is dead and
        its lease runs out. A renewal seen meanwhile fails the module at once.
    type: int
    default: 0
  controller:
    description:
      - The controller that runs the play (C(host), C(boot_id), C(pid) and C(start) of
        C(ansible-playbook)), recorded with the lock.
      - Filled in by the action plugin of this module; do not set it.
    type: dict
    default: {}
"""

EXAMPLES = r"""
- name: One backup of web01 at a time
  virtops.libvirt.backup_lock:
    path: /run/lock/virtops-libvirt/web01.lock
    owner: "{{ inventory_hostname }}-{{ awx_job_id | default('manual') }}"
    lease: 120
    wait: 130
  register: web01_lock

- name: Say what a dead run left behind
  ansible.builtin.debug:
    msg: "took over from {{ web01_lock.previous.owner }}, stopped {{ web01_lock.previous.stopped | length }} processes"
  when: web01_lock.previous

- name: Release it
  virtops.libvirt.backup_lock:
    path: /run/lock/virtops-libvirt/web01.lock
    owner: "{{ inventory_hostname }}-{{ awx_job_id | default('manual') }}"
    state: absent
"""

RETURN = r"""
holder:
  description: The lock record (empty when released).
  returned: always
  type: dict
  sample: {owner: hv01-4711, since: "2026-11-27T01:00:00Z", expires: 1795914120.5, lease: 120,
           controller: {host: awx-ee-1, pid: 2001}, workers: []}
previous:
  description:
    - The record of a dead or expired run whose lock was taken over, with C(state) (V(expired)
      or V(dead)) and C(stopped), the processes of that run that were stopped; null otherwise.
  returned: always
  type: dict
  sample: {owner: hv01-4710, state: dead, stopped: [{pid: 3120, what: "copy of /img/web01.qcow2"}]}
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtops.libvirt.plugins.module_utils._lock import (
    LockBusy,
    acquire,
    busy_message,
    holder_state,
    read_record,
    release,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type='path', required=True),
            state=dict(type='str', choices=['present', 'absent'], default='present'),
            owner=dict(type='str', required=True),
            lease=dict(type='int', default=120),
            wait=dict(type='int', default=0),
            # filled in by the action plugin: the controller that runs the play
            controller=dict(type='dict', default={}),
        ),
        supports_check_mode=True,
    )
    params = module.params
    path, owner = params['path'], params['owner']
    if params['lease'] <= 0 or params['wait'] < 0:
        module.fail_json(msg='lease must be positive and wait 0 or more, got lease %s and wait %s'
                         % (params['lease'], params['wait']))
    directory = os.path.dirname(path) or '.'
    if params['state'] == 'present' and not module.check_mode and not os.path.isdir(directory):
        try:
            os.makedirs(directory, 0o700)
        except OSError as exc:
            module.fail_json(msg='cannot create the lock directory %s: %s' % (directory, exc))
    record = read_record(path)
    state = holder_state(record)
    mine = state == 'held' and record.get('owner') == owner

    if params['state'] == 'absent':
        if module.check_mode or state != 'held':
            module.exit_json(changed=mine, holder={} if mine else record, previous=None)
        try:
            changed = release(path, owner)
        except LockBusy as exc:
            module.fail_json(msg='not released: ' + busy_message(path, exc.holder),
                             holder=exc.holder, previous=None)
        except OSError as exc:
            module.fail_json(msg='cannot release %s: %s' % (path, exc), holder=record)
        module.exit_json(changed=changed, holder={}, previous=None)

    if module.check_mode:
        if state == 'held' and not mine:
            module.fail_json(msg=busy_message(path, record), holder=record, previous=None)
        previous = dict(record, state=state) if state in ('expired', 'dead') else None
        module.exit_json(changed=not mine, holder=record if mine else {}, previous=previous)
    try:
        holder, previous = acquire(path, owner, params['lease'], params['controller'],
                                   params['wait'])
    except LockBusy as exc:
        module.fail_json(msg=busy_message(path, exc.holder, exc.why), holder=exc.holder,
                         previous=None)
    except OSError as exc:
        module.fail_json(msg='cannot lock %s: %s' % (path, exc))
    module.exit_json(changed=not mine, holder=holder, previous=previous)


if __name__ == '__main__':
    main()
