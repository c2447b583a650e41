#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: backup_plan
short_description: Check the settings of a live backup and list the domains it covers
version_added: 0.2.0
description:
  - The first step of the P(virtops.libvirt.live_backup#role) role, before any domain is touched. A
    setting refused later (after a snapshot) could leave a VM on its overlay, so every setting
    is checked here, against the domains it applies to, and the module fails naming every
    problem at once.
  - Checks ranges (bandwidths, timeouts, lease, keep), that paths are absolute, that O(dest) is
    not inside the image directory of a disk to back up, and the form of O(exclude_disks).
    Entries of O(exclude_disks) that match no disk are reported as warnings.
  - Returns the domains to back up - O(domains) (names, UUIDs, glob patterns such as V(web*), or
    V(all)), without O(exclude_domains), and with O(tag) only the domains that carry that tag in
    libvirt - in the order asked. A named domain that does not exist is listed too (the role
    fails that domain alone); a pattern, exclusion or tag that matches nothing is a warning.
  - A domain carries a tag through a C(<metadata>) element in the namespace
    C(https://github.com/virtops/libvirt), C(<virtops:backup tags="nightly weekly"/>) (set it with
    C(virsh metadata DOMAIN --uri https://github.com/virtops/libvirt --key virtops --set
    '<backup tags="nightly"/>')), or through a C(#nightly) hashtag in its title or description.
author:
  - virtops.libvirt developers (@virtops)
extends_documentation_fragment:
  - virtops.libvirt.connection
attributes:
  check_mode:
    description: Read-only; runs the same in check mode.
    support: full
  diff_mode:
    description: No diff.
    support: none
  platform:
    description: Runs on the hypervisor.
    support: full
    platforms: posix
options:
  domains:
    description: Names, UUIDs or glob patterns (V(web*)) of domains, or V(all).
    type: raw
    default: all
  exclude_domains:
    description: Names, UUIDs or glob patterns of domains never backed up.
    type: list
    elements: str
    default: []
    version_added: 0.2.0
  tag:
    description:
      - Only the domains carrying this backup tag (see the description); empty for no tag rule.
    type: str
    default: ''
    version_added: 0.2.0
  dest:
    description: The backup destination.
    type: str
    required: true
  exclude_disks:
    description: Disk targets to leave out, V(vdb) (any domain) or V(web01:vdb).
    type: list
    elements: str
    default: []
  bandwidth:
    description: MiB/s of the active commit; 0 or more.
    type: int
    default: 0
  copy_bandwidth:
    description: MiB/s of the copy; 0 or more.
    type: int
    default: 0
  timeout:
    description: Seconds an active commit may take to reach READY; 0 or more.
    type: int
    default: 3600
  copy_timeout:
    description: Longest copy in seconds; 1 or more.
    type: int
    default: 86400
  keep:
    description: Backups kept per domain; 0 or more.
    type: int
    default: 7
  keep_daily:
    description: Days whose newest backup is kept; 0 or more.
    type: int
    default: 0
    version_added: 0.2.0
  keep_weekly:
    description: ISO weeks whose newest backup is kept; 0 or more.
    type: int
    default: 0
    version_added: 0.2.0
  keep_monthly:
    description: Months whose newest backup is kept; 0 or more.
    type: int
    default: 0
    version_added: 0.2.0
  lease:
    description: Lock lease in seconds; 10 or more, and at least twice O(progress_interval).
    type: int
    default: 120
  progress_interval:
    description: Seconds between progress lines; 1 or more.
    type: int
    default: 10
  parallel:
    description: Domains backed up at the same time; 1 or more.
    type: int
    default: 2
  lock_dir:
    description: Directory of the per-domain locks; absolute.
    type: str
    default: /run/lock/virtops-libvirt
  block_overlay_dir:
    description: Directory of block-device overlays; absolute.
    type: str
    default: /var/lib/libvirt/images
seealso:
  - module: virtops.libvirt.domain_disk_info
"""

EXAMPLES = r"""
- name: Check the settings and list the domains before touching any
  virtops.libvirt.backup_plan:
    domains: all
    dest: /srv/backups
    exclude_disks: [vdb, "db01:vdc"]
    bandwidth: 200
  register: plan
"""

RETURN = r"""
domains:
  description:
    - The domains to back up, in order, each with C(name) (as given, or the domain's name for
      V(all)) and C(uuid) (null for a domain that does not exist).
  returned: success
  type: list
  elements: dict
  sample: [{name: db01, uuid: 6f7c1f7e-2b1e-4a53-9d5e-0d1c3f2e8a11}, {name: web01, uuid: 2b0a5c7e-6f55-4c5e-9a53-2b0cb2f3d1c1}]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtops.libvirt.plugins.module_utils._backup_plan import PlanError, plan
from ansible_collections.virtops.libvirt.plugins.module_utils._libvirt import (
    CONNECTION_ARGUMENT_SPEC,
    LibvirtFailure,
    ensure_libvirt,
)


def main():
    spec = dict(
        domains=dict(type='raw', default='all'),
        exclude_domains=dict(type='list', elements='str', default=[]),
        tag=dict(type='str', default=''),
        dest=dict(type='str', required=True),
        exclude_disks=dict(type='list', elements='str', default=[]),
        bandwidth=dict(type='int', default=0),
        copy_bandwidth=dict(type='int', default=0),
        timeout=dict(type='int', default=3600),
        copy_timeout=dict(type='int', default=86400),
        keep=dict(type='int', default=7),
        keep_daily=dict(type='int', default=0),
        keep_weekly=dict(type='int', default=0),
        keep_monthly=dict(type='int', default=0),
        lease=dict(type='int', default=120),
        progress_interval=dict(type='int', default=10),
        parallel=dict(type='int', default=2),
        lock_dir=dict(type='str', default='/run/lock/virtops-libvirt'),
        block_overlay_dir=dict(type='str', default='/var/lib/libvirt/images'),
    )
    spec.update(CONNECTION_ARGUMENT_SPEC)
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    ensure_libvirt(module)
    params = dict(module.params)
    if isinstance(params['domains'], str) and params['domains'] != 'all':
        params['domains'] = [params['domains']]
    try:
        selected, warnings = plan(params)
    except PlanError as exc:
        module.fail_json(msg=str(exc), errors=exc.errors)
    except LibvirtFailure as exc:
        module.fail_json(msg=exc.msg, **exc.details)
    for warning in warnings:
        module.warn(warning)
    module.exit_json(changed=False, domains=selected)


if __name__ == '__main__':
    main()
