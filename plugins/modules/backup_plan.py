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
  - virtops.libvirt.backup_settings
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

from ansible_collections.virtops.libvirt.plugins.module_utils._backup_plan import (
    SETTINGS_ARGUMENT_SPEC,
    PlanError,
    plan,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._libvirt import (
    CONNECTION_ARGUMENT_SPEC,
    LibvirtFailure,
    ensure_libvirt,
)


def main():
    spec = dict(SETTINGS_ARGUMENT_SPEC)
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
