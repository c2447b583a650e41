#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: backup_lock
short_description: Hold an exclusive lock across tasks, one backup per domain at a time
version_added: 0.1.0
description:
  - Takes an exclusive C(flock) on a lock file and hands it to a small detached process that
    holds it until O(state=absent) releases it or the O(lease) runs out.
  - The kernel drops the lock when that process exits, so a run that crashes can never leave it
    held for longer than the lease, and a reboot always frees it.
  - The lock file records the holder (owner, pid, since, lease); a busy lock makes the module
    fail and names the holder.
author:
  - virtops.libvirt developers (@virtops)
attributes:
  check_mode:
    description: Reports whether the lock is free or held by the owner; takes or releases nothing.
    support: full
  diff_mode:
    description: No diff.
    support: none
  platform:
    description: Linux hosts (flock), such as the hypervisor.
    support: full
    platforms: posix
options:
  path:
    description: The lock file. Its directory must exist.
    type: path
    required: true
  state:
    description: V(present) takes the lock, V(absent) releases it.
    type: str
    choices: [present, absent]
    default: present
  owner:
    description:
      - Who holds the lock, for example a run identifier. Required.
      - O(state=absent) only releases a lock held by the same owner; O(state=present) by the same
        owner is a no-op.
    type: str
    required: true
  lease:
    description: Seconds after which the lock is dropped even if never released.
    type: int
    default: 86400
  wait:
    description: Seconds to wait for a busy lock before failing.
    type: int
    default: 0
'''

EXAMPLES = r'''
- name: One backup of web01 at a time
  virtops.libvirt.backup_lock:
    path: /srv/backups/web01/.lock
    owner: "{{ inventory_hostname }}-{{ awx_job_id | default('manual') }}"
    lease: 21600

- name: Release it
  virtops.libvirt.backup_lock:
    path: /srv/backups/web01/.lock
    owner: "{{ inventory_hostname }}-{{ awx_job_id | default('manual') }}"
    state: absent
'''

RETURN = r'''
holder:
  description: The holder recorded in the lock file (empty when released).
  returned: always
  type: dict
  sample: {owner: hv01-4711, pid: 12345, since: "2026-11-27T01:00:00Z", lease: 86400}
'''

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtops.libvirt.plugins.module_utils._lock import (
    LockBusy,
    acquire,
    is_locked,
    read_holder,
    release,
)


def busy_message(path, holder):
    return 'lock %s is held by %s (pid %s, since %s)' % (
        path, holder.get('owner', 'an unknown owner'), holder.get('pid', '?'),
        holder.get('since', '?'))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type='path', required=True),
            state=dict(type='str', choices=['present', 'absent'], default='present'),
            owner=dict(type='str', required=True),
            lease=dict(type='int', default=86400),
            wait=dict(type='int', default=0),
        ),
        supports_check_mode=True,
    )
    path, owner = module.params['path'], module.params['owner']
    if not os.path.isdir(os.path.dirname(path) or '.'):
        module.fail_json(msg='the directory of %s does not exist' % path)
    if module.params['lease'] <= 0 or module.params['wait'] < 0:
        module.fail_json(msg='lease must be positive and wait 0 or more')
    locked = is_locked(path)
    holder = read_holder(path) if locked else {}
    mine = locked and holder.get('owner') == owner

    if module.params['state'] == 'absent':
        if not mine:
            if locked:
                module.fail_json(msg='not released: ' + busy_message(path, holder), holder=holder)
            module.exit_json(changed=False, holder={})
        if not module.check_mode:
            try:
                release(path, owner)
            except (OSError, LockBusy) as exc:
                module.fail_json(msg='cannot release %s: %s' % (path, exc), holder=holder)
        module.exit_json(changed=True, holder={})

    if mine:
        module.exit_json(changed=False, holder=holder)
    if module.check_mode:
        if locked and not module.params['wait']:
            module.fail_json(msg=busy_message(path, holder), holder=holder)
        module.exit_json(changed=True, holder={})
    try:
        holder = acquire(path, owner, module.params['lease'], module.params['wait'])
    except LockBusy as exc:
        module.fail_json(msg=busy_message(path, exc.holder), holder=exc.holder)
    except OSError as exc:
        module.fail_json(msg='cannot lock %s: %s' % (path, exc))
    module.exit_json(changed=True, holder=holder)


if __name__ == '__main__':
    main()
