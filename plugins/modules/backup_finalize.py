#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: backup_finalize
short_description: Mark a backup complete - write its manifest last, rename it, apply retention
version_added: 0.1.0
description:
  - A backup is the directory C(<dest>/<domain>/<UTC timestamp>/). It is built as
    C(<timestamp>.partial) and this module completes it, so nothing incomplete ever looks complete.
  - Checks that every image the manifest names is in the directory with the recorded size, writes
    C(manifest.json) (mode 0600) through a temporary name with fsync, renames the directory to its
    final name and fsyncs the parent.
  - Then applies retention to the domain's complete backups - the O(keep) newest, and with
    O(keep_daily), O(keep_weekly) and O(keep_monthly) the newest backup of each of that many
    days, ISO weeks and months (UTC), as Proxmox's C(prune-backups) does - and deletes the others.
    Only directories named by a timestamp and holding a manifest count; the newest is never
    deleted; with every C(keep*) option V(0) all are kept.
  - The manifest is given whole with O(manifest), or built from the results of the steps with
    O(prepared), O(snapshot) and O(copies), as the P(virtops.libvirt.live_backup#role) role does; the
    module then also returns the role's per-domain result as RV(record).
  - Running it again on a completed backup changes nothing (but still applies retention). When
    the completed directory exists and the C(.partial) one too (two backups with one timestamp),
    it fails and leaves both alone.
author:
  - virtops.libvirt developers (@virtops)
extends_documentation_fragment:
  - virtops.libvirt.lock
attributes:
  check_mode:
    description: Reports what would be written and pruned.
    support: full
  diff_mode:
    description: No diff.
    support: none
  platform:
    description: The host holding the backups.
    support: full
    platforms: posix
options:
  path:
    description: The backup directory being built, C(<dest>/<domain>/<timestamp>.partial).
    type: path
    required: true
  manifest:
    description:
      - The manifest to write. Each entry of C(disks) names its image with C(file), relative to
        the backup directory, and its C(size) in bytes on disk.
      - C(finished) is set to the current UTC time when missing.
      - Exactly one of O(manifest) and O(prepared) is required.
    type: dict
  prepared:
    description:
      - The result of M(virtops.libvirt.backup_prepare) that started this backup; with
        O(snapshot) and O(copies) the module builds the manifest.
    type: dict
  snapshot:
    description:
      - The result of M(virtops.libvirt.disk_snapshot) for a running domain; omit it for a shut-off
        one. Every disk it snapshotted must have a copy in O(copies).
    type: dict
  copies:
    description:
      - The results of M(virtops.libvirt.image_copy) (directly or through
        M(virtops.libvirt.async_progress)), one per disk, matched to the disks by C(src).
    type: list
    elements: dict
    default: []
  release_lock:
    description:
      - With O(lock), release the run's lock once the backup is complete (saves the run a task).
        When the backup cannot be completed, the lock is kept.
    type: bool
    default: false
    version_added: 0.2.0
  notes:
    description: Remarks added to the RV(record), such as a commit done a second time unthrottled.
    type: list
    elements: str
    default: []
  keep:
    description:
      - The newest complete backups kept for the domain (keep-last).
      - With every C(keep*) option V(0), all backups are kept.
    type: int
    default: 0
  keep_daily:
    description:
      - Also keep the newest backup of each of the last this many days that have a backup and
        are not already covered by a kept one (UTC days).
    type: int
    default: 0
    version_added: 0.2.0
  keep_weekly:
    description: The same for ISO weeks, after O(keep_daily).
    type: int
    default: 0
    version_added: 0.2.0
  keep_monthly:
    description: The same for months, after O(keep_weekly).
    type: int
    default: 0
    version_added: 0.2.0
'''

EXAMPLES = r'''
- name: Complete the backup of web01 and keep the 7 newest
  virtops.libvirt.backup_finalize:
    path: /srv/backups/web01/20261127T010000Z.partial
    manifest:
      domain: web01
      uuid: 2b0a5c7e-6f55-4c5e-9a53-2b0cb2f3d1c1
      started: "2026-11-27T01:00:00Z"
      consistency: crash
      disks:
        - {target: vda, source: /images/web01.qcow2, format: qcow2, file: vda.qcow2, virtual_size: 10737418240, size: 1310720}
    keep: 7

- name: Complete it from the results of the steps, as the live_backup role does
  virtops.libvirt.backup_finalize:
    path: "{{ prepared.path }}"
    prepared: "{{ prepared }}"
    snapshot: "{{ snapshot }}"
    copies: "{{ copies.results }}"
    keep: 3
    keep_daily: 7
    keep_weekly: 4
    keep_monthly: 6
  register: finalized
'''

RETURN = r'''
path:
  description: The completed backup directory.
  returned: success
  type: str
  sample: /srv/backups/web01/20261127T010000Z
pruned:
  description: Backups deleted by retention.
  returned: success
  type: list
  elements: str
kept:
  description: Complete backups left, oldest first.
  returned: success
  type: list
  elements: str
lock_released:
  description: Whether O(release_lock) released the lock.
  returned: success
  type: bool
record:
  description:
    - The role's per-domain result - C(domain), C(status) (V(ok)), C(summary), C(bytes) (on disk),
      C(seconds) since the start, C(consistency), C(path), C(pruned) and C(notes).
  returned: with O(prepared)
  type: dict
  sample: {domain: web01, status: ok, summary: "1 disk(s), 1.5 GiB, crash, /srv/backups/web01/20261127T010000Z",
           bytes: 1610612736, seconds: 42, consistency: crash, path: /srv/backups/web01/20261127T010000Z,
           pruned: [], notes: []}
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtops.libvirt.plugins.module_utils._backup_record import (
    RecordError,
    manifest,
    ok_record,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._backup_store import (
    StoreError,
    finalize,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._libvirt import LibvirtFailure
from ansible_collections.virtops.libvirt.plugins.module_utils._lock import LockBusy, release
from ansible_collections.virtops.libvirt.plugins.module_utils._retention import policy
from ansible_collections.virtops.libvirt.plugins.module_utils._worker import (
    LOCK_ARGUMENT_SPEC,
    LOCK_REQUIRED_TOGETHER,
    Worker,
)

RETENTION_OPTIONS = ('keep', 'keep_daily', 'keep_weekly', 'keep_monthly')


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type='path', required=True),
            manifest=dict(type='dict'),
            prepared=dict(type='dict'),
            snapshot=dict(type='dict'),
            copies=dict(type='list', elements='dict', default=[]),
            notes=dict(type='list', elements='str', default=[]),
            release_lock=dict(type='bool', default=False),
            keep=dict(type='int', default=0),
            keep_daily=dict(type='int', default=0),
            keep_weekly=dict(type='int', default=0),
            keep_monthly=dict(type='int', default=0),
            **LOCK_ARGUMENT_SPEC
        ),
        required_together=LOCK_REQUIRED_TOGETHER,
        required_one_of=[('manifest', 'prepared')],
        mutually_exclusive=[('manifest', 'prepared'), ('manifest', 'snapshot'),
                            ('manifest', 'copies')],
        supports_check_mode=True,
    )
    params = module.params
    negative = [name for name in RETENTION_OPTIONS if params[name] < 0]
    if negative:
        module.fail_json(msg='%s must be 0 or more' % ', '.join(negative))
    retention = policy(last=params['keep'], daily=params['keep_daily'],
                       weekly=params['keep_weekly'], monthly=params['keep_monthly'])
    path = params['path'].rstrip('/')
    try:
        the_manifest = params['manifest']
        if params['prepared']:
            if params['prepared'].get('path', '').rstrip('/') != path:
                raise RecordError('path %s is not the prepared backup %s' % (
                    path, params['prepared'].get('path')))
            the_manifest = manifest(params['prepared'], params['snapshot'], params['copies'])
        # Only a run that still holds the lock completes a backup: a taker removes .partial dirs.
        with Worker(params, 'completion of %s' % path, renew_lease=True,
                    check_mode=module.check_mode):
            result = finalize(path, the_manifest, retention, module.check_mode)
    except LibvirtFailure as exc:
        module.fail_json(msg=exc.msg)
    except (RecordError, StoreError, OSError) as exc:
        module.fail_json(msg='cannot complete %s: %s' % (path, exc))
    if params['prepared']:
        result['record'] = ok_record(the_manifest, result, params['notes'])
    result['lock_released'] = False
    if params['release_lock'] and params['lock'] and not module.check_mode:
        try:
            result['lock_released'] = release(params['lock'], params['lock_owner'])
        except (LockBusy, OSError) as exc:
            module.warn('the backup is complete, but the lock %s was not released: %s'
                        % (params['lock'], exc))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
