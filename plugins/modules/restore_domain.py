#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: restore_domain
short_description: Define a domain from a backup - new name, UUID, MACs, image paths, NVRAM and TPM state
version_added: 0.2.0
description:
  - Rewrites the C(domain.xml) of a backup for its restore and defines it. The restored disks
    point at their images in O(image_dir) (or at their original paths with O(in_place=true)) as
    standalone files in O(format); their backing chains are dropped.
  - Under another O(name), the domain gets a new UUID and new MAC addresses, derived from the
    original UUID and the new name (so a repeated restore defines the same domain), and the
    writable disks that are not in the backup are left out, so the copy shares no writable disk
    with the original. Under the original name, UUID and MACs stay.
  - Puts the backed-up UEFI NVRAM file and swtpm state back at the restored domain's paths
    (C(<nvram dir>/<name>_VARS.fd), C(/var/lib/libvirt/swtpm/<uuid>/)), each through a
    temporary name, fsync and rename.
  - Refusals change nothing - a running domain of that name (never touched), a defined one
    unless O(force=true), state files that exist and differ unless O(force=true), and a UUID
    that belongs to another domain.
  - The definition carries a marker (C(<virtops:restore backup=... digest=...>) in its
    metadata). A domain with the same marker is up to date - C(changed=false), also when it runs.
  - A failure after the definition (for example the start) brings the previous definition
    back, or undefines the new domain, and removes the state files it created.
author:
  - virtops.libvirt developers (@virtops)
extends_documentation_fragment:
  - virtops.libvirt.connection
attributes:
  check_mode:
    description: Makes every check and reports what would be defined, written and started.
    support: full
  diff_mode:
    description: No diff; the definition is returned as RV(xml).
    support: none
  platform:
    description: The hypervisor.
    support: full
    platforms: posix
options:
  backup:
    description: The backup directory (RV(virtops.libvirt.backup_info#module:path)).
    type: path
    required: true
  name:
    description: Name of the restored domain; default the backed-up one.
    type: str
  image_dir:
    description:
      - Directory of the restored images, C(<image_dir>/<target>.<format>), as
        M(virtops.libvirt.restore_images) writes them. Required unless O(in_place=true).
    type: path
  in_place:
    description: The images are at their original paths (C(source) in the manifest).
    type: bool
    default: false
  format:
    description: Format of the restored images.
    type: str
    choices: [qcow2, raw]
    default: qcow2
  force:
    description: Replace the definition of a shut-off domain of that name and differing state files.
    type: bool
    default: false
  start:
    description: Start the domain after defining it (no-op when it runs).
    type: bool
    default: false
notes:
  - MAC addresses derived for a new name start with QEMU's 52:54:00; they are not checked
    against other hosts of the network.
seealso:
  - module: virtops.libvirt.backup_info
  - module: virtops.libvirt.restore_images
'''

EXAMPLES = r'''
- name: Define web01-copy from a backup and start it
  virtops.libvirt.restore_domain:
    backup: /srv/backups/web01/20261127T010000Z
    name: web01-copy
    image_dir: /var/lib/libvirt/images/web01-copy
    start: true
'''

RETURN = r'''
name:
  description: The restored domain.
  returned: success
  type: str
uuid:
  description: Its UUID.
  returned: success
  type: str
macs:
  description: Its MAC addresses.
  returned: success
  type: list
  elements: str
action:
  description: V(define), V(redefine) or V(none).
  returned: success
  type: str
up_to_date:
  description: The domain was already restored from this backup with this definition.
  returned: success
  type: bool
running:
  description: Whether the domain runs at the end.
  returned: success
  type: bool
state_files:
  description: State files written (or that would be).
  returned: success
  type: list
  elements: str
dropped_disks:
  description: Writable disks of the original left out of a copy under another name.
  returned: success
  type: list
  elements: str
nvram:
  description: NVRAM path of the restored domain, or null.
  returned: success
  type: str
tpm_dir:
  description: swtpm state directory of the restored domain, or null.
  returned: success
  type: str
xml:
  description: The definition.
  returned: success
  type: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtops.libvirt.plugins.module_utils._backup_check import (
    BackupError,
    read_domain_xml,
    read_manifest,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._libvirt import (
    CONNECTION_ARGUMENT_SPEC,
    LibvirtClient,
    LibvirtFailure,
    ensure_libvirt,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._restore_domain import (
    DomainRestore,
    plan_definition,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._restore_images import (
    RefusedError,
    destinations,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._restore_xml import (
    RewriteError,
    domain_identity,
)


def main():
    argument_spec = dict(CONNECTION_ARGUMENT_SPEC)
    argument_spec.update(
        backup=dict(type='path', required=True),
        name=dict(type='str'),
        image_dir=dict(type='path'),
        in_place=dict(type='bool', default=False),
        format=dict(type='str', choices=['qcow2', 'raw'], default='qcow2'),
        force=dict(type='bool', default=False),
        start=dict(type='bool', default=False),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True,
                           required_if=[('in_place', False, ('image_dir',))])
    ensure_libvirt(module)
    p = module.params
    backup = p['backup'].rstrip('/')
    try:
        manifest = read_manifest(backup)
        xml = read_domain_xml(backup)
        original = domain_identity(xml)
        original['uuid'] = original['uuid'] or manifest.get('uuid')
        entries = [dict(e, path='%s/%s' % (backup, e['file'])) for e in manifest.get('state_files') or []]
        image_dir = None if p['in_place'] else p['image_dir'].rstrip('/')
        images = destinations(manifest['disks'], p['format'], image_dir, p['in_place'])
        plan = plan_definition(xml, original, p['name'] or original['name'], images,
                               p['format'], backup, entries)
        with LibvirtClient(p['uri']) as client:
            result = DomainRestore(client, plan, p['force'], p['start']).run(
                p['name'] or original['name'], module.check_mode)
    except (BackupError, RewriteError, RefusedError) as exc:
        module.fail_json(msg='cannot restore from %s: %s' % (backup, exc))
    except LibvirtFailure as exc:
        module.fail_json(msg=exc.msg, **exc.details)
    except OSError as exc:
        module.fail_json(msg='restore of the domain failed, nothing was kept: %s' % exc)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
