#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: domain_info
short_description: List the domains of a libvirt connection
version_added: 0.1.0
description:
  - Returns every defined or running domain with its state, sorted by name. Changes nothing.
  - Called C(virtops.libvirt.domain_list) before version 0.2.0. That name still works as a
    redirect to this module; it is deprecated and will be removed in version 1.0.0.
author:
  - virtops.libvirt developers (@virtops)
extends_documentation_fragment:
  - virtops.libvirt.connection
attributes:
  check_mode:
    description: Read-only; runs the same in check mode.
    support: full
  diff_mode:
    description: Nothing changes, so there is no diff.
    support: none
  platform:
    description: Runs on the hypervisor.
    support: full
    platforms: posix
options: {}
seealso:
  - module: virtops.libvirt.domain_disk_info
    description: The disks, backing chains and block jobs of one domain.
'''

EXAMPLES = r'''
- name: List the domains of the hypervisor
  virtops.libvirt.domain_info:
  register: hv

- name: Show the running ones
  ansible.builtin.debug:
    msg: "{{ hv.domains | selectattr('running') | map(attribute='name') }}"
'''

RETURN = r'''
domains:
  description: Every domain, sorted by name.
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: Name.
      type: str
    uuid:
      description: UUID.
      type: str
    state:
      description: V(running), V(paused), V(shutoff), and so on.
      type: str
    running:
      description: Whether the domain is active.
      type: bool
    persistent:
      description: Whether the domain has a persistent definition.
      type: bool
  sample: [{name: web01, uuid: 2b0a5c7e-6f55-4c5e-9a53-2b0cb2f3d1c1, state: running, running: true, persistent: true}]
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtops.libvirt.plugins.module_utils._disk_info import domain_summary
from ansible_collections.virtops.libvirt.plugins.module_utils._libvirt import (
    CONNECTION_ARGUMENT_SPEC,
    LibvirtClient,
    LibvirtFailure,
    ensure_libvirt,
    run_libvirt,
    undefined_meanwhile,
)


def _summary(dom):
    """The domain's summary, or None for one undefined since it was listed."""
    try:
        return domain_summary(dom)
    except LibvirtFailure as exc:
        if undefined_meanwhile(exc):
            return None
        raise


def main():
    module = AnsibleModule(argument_spec=dict(CONNECTION_ARGUMENT_SPEC), supports_check_mode=True)
    ensure_libvirt(module)
    try:
        with LibvirtClient(module.params['uri']) as client:
            domains = run_libvirt(lambda: client.conn.listAllDomains(0), 'cannot list domains')
            result = sorted((summary for summary in map(_summary, domains) if summary),
                            key=lambda d: d['name'])
    except LibvirtFailure as exc:
        module.fail_json(msg=exc.msg, **exc.details)
    module.exit_json(changed=False, domains=result)


if __name__ == '__main__':
    main()
