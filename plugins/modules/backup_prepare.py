#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: backup_prepare
short_description: Decide what a live backup does with a domain and start its backup directory
version_added: 0.2.0
description:
  - Reads the domain once and decides, with the rules of the P(virtops.libvirt.live_backup#role) role,
    what happens to it, returned as RV(action).
  - V(recover) means the domain runs on overlays of ours that an earlier run left behind. Nothing
    is created; bring the domain back onto its images (M(virtops.libvirt.blockcommit), or
    M(virtops.libvirt.offline_repair) when it is shut off) and run this module again.
  - V(skip) means the domain is shut off and O(offline=skip).
  - V(backup) means the directory C(<dest>/<domain>/<UTC timestamp>.partial) now exists, holding
    C(domain.xml) (the persistent definition) and the UEFI NVRAM and vTPM state (as
    M(virtops.libvirt.backup_state_files) saves them). Incomplete backups of earlier runs of the
    domain (C(*.partial)) are removed first.
  - Fails, creating nothing, when no disk of the domain can be backed up.
  - Pass RV(path) to M(virtops.libvirt.image_copy) and M(virtops.libvirt.backup_finalize), and the
    whole result to M(virtops.libvirt.backup_finalize) as O(virtops.libvirt.backup_finalize#module:prepared).
author:
  - virtops.libvirt developers (@virtops)
extends_documentation_fragment:
  - virtops.libvirt.connection
  - virtops.libvirt.lock
attributes:
  check_mode:
    description:
      - Changes nothing. Returns the decision, and for a domain that would be backed up (or
        recovered first) a RV(preview) of the run and a one-line RV(summary).
    support: full
  diff_mode:
    description: No diff.
    support: none
  platform:
    description: Runs on the hypervisor.
    support: full
    platforms: posix
options:
  domain:
    description: Name or UUID of the domain.
    aliases: [name]
    type: str
    required: true
  dest:
    description: The backup root; the backup goes to C(<dest>/<domain name>/).
    type: path
    required: true
  exclude_disks:
    description:
      - Disk targets not backed up, as V(vdb) (any domain) or V(web01:vdb) (one domain), as in the
        role's C(live_backup_exclude_disks).
    type: list
    elements: str
    default: []
  offline:
    description: What to do when the domain is shut off.
    type: str
    choices: [copy, skip]
    default: copy
  suffix:
    description: The suffix of backup overlays, as given to M(virtops.libvirt.disk_snapshot).
    type: str
    default: virtops-backup
  keep:
    description: The retention of M(virtops.libvirt.backup_finalize), for the check-mode preview.
    type: int
    default: 0
  keep_daily:
    description: The retention of M(virtops.libvirt.backup_finalize), for the check-mode preview.
    type: int
    default: 0
  keep_weekly:
    description: The retention of M(virtops.libvirt.backup_finalize), for the check-mode preview.
    type: int
    default: 0
  keep_monthly:
    description: The retention of M(virtops.libvirt.backup_finalize), for the check-mode preview.
    type: int
    default: 0
seealso:
  - module: virtops.libvirt.disk_snapshot
  - module: virtops.libvirt.backup_finalize
'''

EXAMPLES = r'''
- name: Start the backup of web01, leaving its scratch disk out
  virtops.libvirt.backup_prepare:
    domain: web01
    dest: /srv/backups
    exclude_disks: [web01:vdb]
  register: web01_backup

- name: Snapshot the disks the backup takes
  virtops.libvirt.disk_snapshot:
    domain: web01
    exclude: "{{ web01_backup.exclude }}"
  when: web01_backup.action == 'backup' and web01_backup.domain.running
'''

RETURN = r'''
action:
  description: V(backup), V(recover) or V(skip), see the description.
  returned: success
  type: str
  sample: backup
domain:
  description: C(name), C(uuid), C(state), C(running) and C(persistent) of the domain.
  returned: success
  type: dict
  sample: {name: web01, uuid: 2b0a5c7e-6f55-4c5e-9a53-2b0cb2f3d1c1, state: running, running: true, persistent: true}
path:
  description: The backup directory, C(<dest>/<domain>/<UTC timestamp>.partial).
  returned: action is backup
  type: str
  sample: /srv/backups/web01/20261127T010000Z.partial
started:
  description: When the backup started, UTC.
  returned: action is backup
  type: str
  sample: "2026-11-27T01:00:00Z"
exclude:
  description: The excluded targets that the domain has; pass them to the snapshot.
  returned: success
  type: list
  elements: str
disks:
  description: For a shut-off domain, the disks to copy, each with C(target) and C(source).
  returned: success
  type: list
  elements: dict
skipped:
  description: Disks left out, each with C(target) and C(reason) (V(excluded) or why it cannot be).
  returned: success
  type: list
  elements: dict
consistency:
  description: V(offline) for a shut-off domain; null for a running one (the snapshot tells).
  returned: success
  type: str
overlays:
  description: Targets whose active image is an overlay of ours (action V(recover)).
  returned: success
  type: list
  elements: str
removed:
  description: Incomplete backups of earlier runs that were (or, in check mode, would be) removed.
  returned: action is backup
  type: list
  elements: str
state_files:
  description: The NVRAM and TPM state files saved, as the manifest lists them.
  returned: action is backup
  type: list
  elements: dict
summary:
  description: Why the domain is skipped; in check mode, what a backup run would do.
  returned: action is skip, or check mode
  type: str
  sample: >-
    would back up vda (/images/web01.qcow2): about 1.2 GiB into /srv/backups/web01 (51.3 GiB free);
    skip sdb (device cdrom); lock free; would prune 20261120T010000Z
preview:
  description:
    - In check mode, what a run would do - C(disks) (each with C(target), C(chain) from the
      active image down and C(bytes) allocated in it, an upper bound of its copy), C(bytes) in
      all, C(dest_free) (bytes free where the backup would go), C(lock) (C(state) V(free),
      V(expired), V(dead) or V(held), and its C(owner)), C(partials) (incomplete backups that would
      be removed) and C(prune) (backups the retention would remove after a successful run).
  returned: check mode, action is backup or recover
  type: dict
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtops.libvirt.plugins.module_utils._backup_prepare import (
    BACKUP,
    SKIP,
    PrepareError,
    preview,
    read_domain,
    start,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._retention import policy
from ansible_collections.virtops.libvirt.plugins.module_utils._libvirt import (
    CONNECTION_ARGUMENT_SPEC,
    LibvirtFailure,
    ensure_libvirt,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._qemu_img import QemuImg
from ansible_collections.virtops.libvirt.plugins.module_utils._restore_xml import RewriteError
from ansible_collections.virtops.libvirt.plugins.module_utils._worker import (
    LOCK_ARGUMENT_SPEC,
    LOCK_REQUIRED_TOGETHER,
    Worker,
)


def main():
    argument_spec = dict(
        domain=dict(type='str', required=True, aliases=['name']),
        dest=dict(type='path', required=True),
        exclude_disks=dict(type='list', elements='str', default=[]),
        offline=dict(type='str', choices=['copy', 'skip'], default='copy'),
        suffix=dict(type='str', default='virtops-backup'),
        keep=dict(type='int', default=0),
        keep_daily=dict(type='int', default=0),
        keep_weekly=dict(type='int', default=0),
        keep_monthly=dict(type='int', default=0),
    )
    argument_spec.update(CONNECTION_ARGUMENT_SPEC)
    argument_spec.update(LOCK_ARGUMENT_SPEC)
    module = AnsibleModule(argument_spec=argument_spec, required_together=LOCK_REQUIRED_TOGETHER,
                           supports_check_mode=True)
    ensure_libvirt(module)
    params = module.params
    try:
        plan, disks, xml = read_domain(params['uri'], params['domain'], QemuImg(module),
                                       params['exclude_disks'], params['offline'], params['suffix'])
        if module.check_mode and plan['action'] != SKIP:
            retention = policy(last=params['keep'], daily=params['keep_daily'],
                               weekly=params['keep_weekly'], monthly=params['keep_monthly'])
            plan['preview'], plan['summary'] = preview(plan, disks, params['dest'], retention,
                                                       params['lock'])
        if plan['action'] != BACKUP:
            module.exit_json(changed=False, **plan)
        # Only the run holding the lock removes .partial directories: they may be a live run's.
        with Worker(params, 'start of the backup of %s' % plan['domain']['name'],
                    check_mode=module.check_mode):
            plan = start(plan, params['dest'], xml, module.check_mode)
    except PrepareError as exc:
        module.fail_json(msg=str(exc))
    except LibvirtFailure as exc:
        module.fail_json(msg=exc.msg, **exc.details)
    except (OSError, RewriteError) as exc:
        module.fail_json(msg='cannot start the backup of %s in %s: %s' % (
            params['domain'], params['dest'], exc))
    module.exit_json(changed=True, **plan)


if __name__ == '__main__':
    main()
