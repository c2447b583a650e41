#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: offline_repair
short_description: Put a shut-off domain that stopped during its backup back on its own images
version_added: 0.2.0
description:
  - A domain that stops while it runs on backup overlays (destroyed, or shut down by its guest,
    during a live backup) stays defined on the overlays, because libvirt writes an external
    snapshot into the persistent definition, and libvirt cannot commit the disks of a shut-off
    domain.
  - For every disk of the shut-off domain O(domain) whose persistent definition names a backup
    overlay of M(virtops.libvirt.disk_snapshot) (C(<image>.<suffix>.qcow2)), this module merges
    the overlay into its backing image with C(qemu-img commit), defines the domain with the
    disk's original source, type and format (every other part of the definition is kept as it
    is, secrets included), and then deletes the overlay.
  - The overlay is deleted only after the new definition is in place; the definition is changed
    only after every commit succeeded. C(qemu-img) locks the images, so the domain cannot start
    on them during a commit; if it was started anyway before the new definition is in place, the
    old definition is put back and the module fails.
  - After its commit each overlay gets a mark, C(<overlay>.committed), deleted with it. A module
    killed after the new definition is in place but before the deletion leaves both, and
    M(virtops.libvirt.disk_snapshot) removes such an overlay before the next snapshot.
  - A domain with no disk on an overlay is left alone (C(changed=false)).
author:
  - virtops.libvirt developers (@virtops)
extends_documentation_fragment:
  - virtops.libvirt.connection
  - virtops.libvirt.lock
attributes:
  check_mode:
    description: Reports the overlays that would be merged.
    support: full
  diff_mode:
    description: No diff.
    support: none
  platform:
    description: Runs on the hypervisor, with C(qemu-img).
    support: full
    platforms: posix
options:
  domain:
    description: Name or UUID of a shut-off domain. A running domain makes the module fail.
    aliases: [name]
    type: str
    required: true
  suffix:
    description: The suffix of the backup overlays, as given to M(virtops.libvirt.disk_snapshot).
    type: str
    default: virtops-backup
notes:
  - The lease of O(lock) is renewed while the module runs, for as long as the task's connection lives.
seealso:
  - module: virtops.libvirt.blockcommit
  - module: virtops.libvirt.disk_snapshot
"""

EXAMPLES = r"""
- name: Merge the leftover backup overlays of the shut-off web01 and define it on its images
  virtops.libvirt.offline_repair:
    domain: web01
  register: web01_repair

- name: Show what was merged
  ansible.builtin.debug:
    msg: "{{ web01_repair.repaired | map(attribute='overlay') }}"
"""

RETURN = r"""
repaired:
  description: The disks put back on their images (in check mode, those that would be).
  returned: success
  type: list
  elements: dict
  contains:
    target:
      description: Disk target.
      type: str
    overlay:
      description: The overlay that was merged and deleted.
      type: str
    base:
      description: The image the disk is defined on again.
      type: str
    format:
      description: Format of that image.
      type: str
  sample: [{target: vda, overlay: /img/web01.qcow2.virtops-backup.qcow2, base: /img/web01.qcow2, format: qcow2}]
msg:
  description: What was done.
  returned: success
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtops.libvirt.plugins.module_utils._libvirt import (
    CONNECTION_ARGUMENT_SPEC,
    LibvirtClient,
    LibvirtFailure,
    ensure_libvirt,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._offline_repair import OfflineRepair
from ansible_collections.virtops.libvirt.plugins.module_utils._qemu_img import QemuImg
from ansible_collections.virtops.libvirt.plugins.module_utils._worker import (
    LOCK_ARGUMENT_SPEC,
    LOCK_REQUIRED_TOGETHER,
    Worker,
)


def main():
    spec = dict(domain=dict(type='str', required=True, aliases=['name']),
                suffix=dict(type='str', default='virtops-backup'))
    spec.update(CONNECTION_ARGUMENT_SPEC)
    spec.update(LOCK_ARGUMENT_SPEC)
    module = AnsibleModule(argument_spec=spec, required_together=LOCK_REQUIRED_TOGETHER,
                           supports_check_mode=True)
    ensure_libvirt(module)
    try:
        with Worker(module.params, 'offline repair of %s' % module.params['domain'],
                    renew_lease=True, check_mode=module.check_mode):
            with LibvirtClient(module.params['uri']) as client:
                result = OfflineRepair(client, QemuImg(module), module.params).run(
                    module.check_mode)
    except LibvirtFailure as exc:
        module.fail_json(msg=exc.msg, **exc.details)
    except OSError as exc:
        module.fail_json(msg='offline repair of %s failed: %s' % (module.params['domain'], exc))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
