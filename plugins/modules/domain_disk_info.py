#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: domain_disk_info
short_description: Report a domain's disks, backing chains and block jobs
version_added: 0.1.0
description:
  - Reads the live definition of a domain and returns, per disk, its device, type, format,
    active image, the full backing chain with libvirt's image indexes, its read-only and
    shareable flags, and any block job on it.
  - For a shut-off domain, whose definition has no backing chain, the chain is read from the
    image files with C(qemu-img info --backing-chain); indexes are then null.
  - Changes nothing.
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
options:
  domain:
    description: Name or UUID of the domain.
    aliases: [name]
    type: str
    required: true
  suffix:
    description: The suffix of backup overlays, as given to M(virtops.libvirt.disk_snapshot).
    type: str
    default: virtops-backup
seealso:
  - module: virtops.libvirt.blockcommit
'''

EXAMPLES = r'''
- name: Read the disks of web01
  virtops.libvirt.domain_disk_info:
    domain: web01
  register: web01_disks

- name: Fail when a disk of web01 still has a block job
  ansible.builtin.assert:
    that: web01_disks.disks | selectattr('job') | list | length == 0
    fail_msg: "A block job is running on {{ web01_disks.disks | selectattr('job') | map(attribute='target') | join(', ') }}"

- name: Show the backing chain of vda, active layer first
  ansible.builtin.debug:
    msg: "{{ (web01_disks.disks | selectattr('target', 'equalto', 'vda') | first).chain | map(attribute='path') }}"
'''

RETURN = r'''
domain:
  description: The domain.
  returned: success
  type: dict
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
      description: Whether the domain is active (running or paused).
      type: bool
    persistent:
      description: Whether the domain has a persistent definition.
      type: bool
    xml:
      description:
        - The domain's definition to keep with a backup - the persistent (inactive) definition,
          or the live one for a transient domain. Secrets are not included.
      type: str
    backup_overlays:
      description: Targets of the disks whose active image is a backup overlay (RV(disks[].backup_overlay)).
      type: list
      elements: str
  sample: {name: web01, uuid: 2b0a5c7e-6f55-4c5e-9a53-2b0cb2f3d1c1, state: running, running: true, persistent: true, xml: "<domain type='kvm'>...</domain>"}
disks:
  description: Every disk of the domain, in definition order.
  returned: success
  type: list
  elements: dict
  contains:
    target:
      description: Target name.
      type: str
      sample: vda
    device:
      description: V(disk), V(cdrom), V(floppy) or V(lun).
      type: str
    type:
      description: Source type (V(file), V(block), V(network), V(volume), V(dir)).
      type: str
    bus:
      description: Bus of the target.
      type: str
    format:
      description: Format of the active image, or null.
      type: str
    source:
      description: The active image, or null for an empty drive.
      type: str
    chain:
      description: Backing chain, active layer first.
      type: list
      elements: dict
      contains:
        path:
          description: Image path.
          type: str
        format:
          description: Image format.
          type: str
        index:
          description: libvirt's image index; use V(vda[N]) to name the image in other modules.
          type: int
    readonly:
      description: Whether the disk is read-only.
      type: bool
    shareable:
      description: Whether the disk is shareable between domains.
      type: bool
    job:
      description: The block job on the disk, or an empty dict.
      type: dict
      contains:
        type:
          description: V(pull), V(copy), V(commit), V(active_commit) or V(backup).
          type: str
        cur:
          description: Bytes processed.
          type: int
        end:
          description: Bytes to process.
          type: int
        ready:
          description: Whether a two-phase job is READY (from the live XML, not from cur and end).
          type: bool
    skip_reason:
      description:
        - Why the disk can never be backed up (a cdrom, read-only, empty, shareable, or not a file
          or block disk), or null when it can.
      type: str
    backup_overlay:
      description:
        - Whether the active image is a backup overlay made by M(virtops.libvirt.disk_snapshot)
          (its path ends with C(.<suffix>.qcow2)), that is a run that did not finish left the disk on it.
      type: bool
  sample:
    - target: vda
      device: disk
      type: file
      bus: virtio
      format: qcow2
      source: /images/web01.overlay.qcow2
      chain:
        - {path: /images/web01.overlay.qcow2, format: qcow2, index: 2}
        - {path: /images/web01.qcow2, format: qcow2, index: 1}
      readonly: false
      shareable: false
      job: {}
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtops.libvirt.plugins.module_utils._disk_info import domain_facts
from ansible_collections.virtops.libvirt.plugins.module_utils._libvirt import (
    CONNECTION_ARGUMENT_SPEC,
    LibvirtClient,
    LibvirtFailure,
    ensure_libvirt,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._qemu_img import QemuImg


def main():
    argument_spec = dict(domain=dict(type='str', required=True, aliases=['name']),
                         suffix=dict(type='str', default='virtops-backup'))
    argument_spec.update(CONNECTION_ARGUMENT_SPEC)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    ensure_libvirt(module)
    try:
        with LibvirtClient(module.params['uri']) as client:
            domain, disks = domain_facts(client.domain(module.params['domain']), QemuImg(module),
                                         module.params['suffix'])
    except LibvirtFailure as exc:
        module.fail_json(msg=exc.msg, **exc.details)
    module.exit_json(changed=False, domain=domain, disks=disks)


if __name__ == '__main__':
    main()
