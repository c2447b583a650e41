#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: backup_state_files
short_description: Copy a domain's UEFI NVRAM and vTPM (swtpm) state into a backup
version_added: 0.2.0
description:
  - A VM needs more than its disks to boot again. A UEFI domain keeps its boot entries and
    Secure Boot keys in its NVRAM file (C(<os><nvram>)), and an emulated TPM keeps its state
    (where BitLocker or LUKS keys are sealed) in the swtpm directory
    (C(/var/lib/libvirt/swtpm/<uuid>/)).
  - Copies the NVRAM file to C(<backup>/nvram/<file name>) and every state file of the TPM to
    C(<backup>/tpm/<relative path>), each through a temporary name with fsync and rename, mode
    0600, and returns their manifest entries (C(kind), C(source), C(file), C(size), C(sha256)).
  - The copy of a running domain is what the firmware and swtpm last wrote to disk; the
    firmware writes its NVRAM when variables change, so it is the state of the last change.
  - A domain with neither returns an empty list and changes nothing.
author:
  - virtops.libvirt developers (@virtops)
attributes:
  check_mode:
    description: Reports the files that would be copied.
    support: full
  diff_mode:
    description: No diff.
    support: none
  platform:
    description: The hypervisor.
    support: full
    platforms: posix
options:
  domain_xml:
    description: The definition of the domain (C(domain.xml) of the backup).
    type: str
    required: true
  dest:
    description: The backup directory being built; it must exist.
    type: path
    required: true
seealso:
  - module: virtops.libvirt.backup_finalize
  - module: virtops.libvirt.restore_domain
'''

EXAMPLES = r'''
- name: Save the NVRAM and TPM state of web01 into its backup
  virtops.libvirt.backup_state_files:
    domain_xml: "{{ info.domain.xml }}"
    dest: /srv/backups/web01/20261127T010000Z.partial
  register: state
'''

RETURN = r'''
files:
  description: Manifest entries of the copied state files.
  returned: success
  type: list
  elements: dict
  sample: [{kind: nvram, source: /var/lib/libvirt/qemu/nvram/web01_VARS.fd, file: nvram/web01_VARS.fd, size: 540672, sha256: "9f86d0..."}]
'''

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtops.libvirt.plugins.module_utils._restore_xml import RewriteError
from ansible_collections.virtops.libvirt.plugins.module_utils._state_files import save


def main():
    module = AnsibleModule(
        argument_spec=dict(
            domain_xml=dict(type='str', required=True),
            dest=dict(type='path', required=True),
        ),
        supports_check_mode=True,
    )
    dest = module.params['dest']
    if not module.check_mode and not os.path.isdir(dest):
        module.fail_json(msg='the backup directory %s does not exist' % dest)
    try:
        files = save(dest, module.params['domain_xml'], module.check_mode)
    except (RewriteError, OSError) as exc:
        module.fail_json(msg='cannot save the state files into %s: %s' % (dest, exc))
    module.exit_json(changed=bool(files), files=files)


if __name__ == '__main__':
    main()
