#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: backup_info
short_description: Find a backup made by the live_backup role and prove it restorable
version_added: 0.2.0
description:
  - Names a backup directory C(<dest>/<domain>/<UTC timestamp>/) by its O(path), or by O(dest)
    and O(domain) (the newest complete backup, or the one named by O(point)).
  - Fails, changing nothing, when the backup is incomplete (C(.partial)) or cannot be verified - no
    or an unreadable C(manifest.json), no C(domain.xml), an image or state file missing, a size
    that is not the recorded one, an image that C(qemu-img info) does not read as the recorded
    format and virtual size, or (with O(checksum=true)) a sha256 that is not the recorded one.
  - Read-only.
author:
  - virtops.libvirt developers (@virtops)
attributes:
  check_mode:
    description: Read-only; runs the same in check mode.
    support: full
  diff_mode:
    description: Nothing changes, so there is no diff.
    support: none
  platform:
    description: The host holding the backups, with C(qemu-img).
    support: full
    platforms: posix
options:
  path:
    description: A backup directory. Mutually exclusive with O(dest).
    type: path
  dest:
    description: The directory backups were written to (C(live_backup_dest)). Needs O(domain).
    type: path
  domain:
    description: The name of the backed-up domain, the directory below O(dest).
    aliases: [name]
    type: str
  point:
    description: Timestamp directory name (C(20261127T010000Z)) of the backup; default the newest.
    type: str
  checksum:
    description:
      - Also stream every image and compare it with the sha256 the manifest records (when it
        records one; state files are always checked).
    type: bool
    default: true
notes:
  - Requires C(qemu-img). Does not use libvirt.
seealso:
  - module: virtops.libvirt.restore_images
  - module: virtops.libvirt.restore_domain
  - module: virtops.libvirt.backup_finalize
'''

EXAMPLES = r'''
- name: Check the newest backup of web01
  virtops.libvirt.backup_info:
    dest: /srv/backups
    domain: web01
  register: backup

- name: Check one backup by path, without reading the images twice
  virtops.libvirt.backup_info:
    path: /srv/backups/web01/20261127T010000Z
    checksum: false
'''

RETURN = r'''
path:
  description: The backup directory.
  returned: success
  type: str
  sample: /srv/backups/web01/20261127T010000Z
point:
  description: Its timestamp.
  returned: success
  type: str
  sample: 20261127T010000Z
manifest:
  description: The manifest as written by the backup.
  returned: success
  type: dict
domain_xml:
  description: The backed-up domain definition.
  returned: success
  type: str
disks:
  description: The disks of the manifest, each with its absolute C(path) and C(sha256_checked).
  returned: success
  type: list
  elements: dict
state_files:
  description: NVRAM and TPM state files of the backup (C(kind), C(file), C(path), C(size), C(sha256)).
  returned: success
  type: list
  elements: dict
bytes:
  description: Bytes the backup images take on disk.
  returned: success
  type: int
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtops.libvirt.plugins.module_utils._backup_check import (
    BackupError,
    inspect,
    locate,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._libvirt import LibvirtFailure
from ansible_collections.virtops.libvirt.plugins.module_utils._qemu_img import QemuImg


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type='path'),
            dest=dict(type='path'),
            domain=dict(type='str', aliases=['name']),
            point=dict(type='str'),
            checksum=dict(type='bool', default=True),
        ),
        mutually_exclusive=[('path', 'dest'), ('path', 'domain'), ('path', 'point')],
        required_one_of=[('path', 'dest')],
        required_together=[('dest', 'domain')],
        supports_check_mode=True,
    )
    p = module.params
    try:
        directory = locate(p['path'], p['dest'], p['domain'], p['point'])
        result = inspect(QemuImg(module), directory, p['checksum'])
    except BackupError as exc:
        module.fail_json(msg='cannot restore from this backup: %s' % exc)
    except LibvirtFailure as exc:
        module.fail_json(msg=exc.msg, **exc.details)
    module.exit_json(changed=False, **result)


if __name__ == '__main__':
    main()
