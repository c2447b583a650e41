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
  - Then keeps the O(keep) newest complete backups of the domain and deletes older ones. Only
    directories named by a timestamp and holding a manifest count; the newest is never deleted.
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
    type: dict
    required: true
  keep:
    description: Complete backups kept for the domain; V(0) keeps all.
    type: int
    default: 0
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
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtops.libvirt.plugins.module_utils._backup_store import (
    StoreError,
    finalize,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._libvirt import LibvirtFailure
from ansible_collections.virtops.libvirt.plugins.module_utils._worker import (
    LOCK_ARGUMENT_SPEC,
    LOCK_REQUIRED_TOGETHER,
    Worker,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type='path', required=True),
            manifest=dict(type='dict', required=True),
            keep=dict(type='int', default=0),
            **LOCK_ARGUMENT_SPEC
        ),
        required_together=LOCK_REQUIRED_TOGETHER,
        supports_check_mode=True,
    )
    if module.params['keep'] < 0:
        module.fail_json(msg='keep must be 0 (keep all) or more')
    try:
        # Only a run that still holds the lock completes a backup: a taker removes .partial dirs.
        with Worker(module.params, 'completion of %s' % module.params['path'], renew_lease=True,
                    check_mode=module.check_mode):
            result = finalize(module.params['path'].rstrip('/'), module.params['manifest'],
                              module.params['keep'], module.check_mode)
    except LibvirtFailure as exc:
        module.fail_json(msg=exc.msg)
    except (StoreError, OSError) as exc:
        module.fail_json(msg='cannot complete %s: %s' % (module.params['path'], exc))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
