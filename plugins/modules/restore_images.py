#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: restore_images
short_description: Write the disk images of a backup back as standalone images, all or nothing
version_added: 0.2.0
description:
  - Restores every disk image of a backup (checked first with M(virtops.libvirt.backup_info))
    as a standalone image (no backing chain) in O(format), named C(<target>.<format>) in
    O(image_dir), or at the original paths with O(in_place=true).
  - Everything is planned before anything is written. An existing image that already holds
    the backup's data (C(qemu-img compare)) in O(format) is kept; one that differs is refused
    unless O(force=true). A missing parent of O(image_dir) is refused; O(image_dir) itself is
    created (mode 0755) when missing.
  - Each image is written to C(<dest>.partial) (mode 0600, locked), compared with the backup
    image when O(verify=true), given O(mode), O(owner), O(group) and the SELinux context
    (Ansible's common file options), fsynced; only when every image is ready are they renamed
    into place, given O(attributes), and the directories fsynced. A failure removes every
    partial file and a directory this task created, so it leaves no half-written image.
  - The file options apply to every image, also to one that is kept (the task then reports
    C(changed=true) when that changed something); not to O(image_dir). They are checked before
    anything is written.
author:
  - virtops.libvirt developers (@virtops)
extends_documentation_fragment:
  - ansible.builtin.files
attributes:
  check_mode:
    description: Plans and reports each image's action (V(create), V(keep), V(replace)); writes nothing.
    support: full
  diff_mode:
    description: No diff of image contents.
    support: none
  platform:
    description: The hypervisor, with C(qemu-img) and the backup.
    support: full
    platforms: posix
options:
  disks:
    description:
      - The C(disks) returned by M(virtops.libvirt.backup_info) (C(target), C(path),
        C(virtual_size), and C(source) for O(in_place)).
    type: list
    elements: dict
    required: true
  image_dir:
    description: Directory of the restored images. Required unless O(in_place=true).
    type: path
  in_place:
    description: Write each image at its original path (C(source) in the manifest) instead.
    type: bool
    default: false
  format:
    description: Format of the restored images.
    type: str
    choices: [qcow2, raw]
    default: qcow2
  force:
    description: Replace existing images that differ from the backup.
    type: bool
    default: false
  verify:
    description: Compare each restored image with the backup image before it is renamed into place.
    type: bool
    default: true
  mode:
    description:
      - Permissions of the restored images, as an octal string (quote it, V('0640')) or a
        symbolic mode (V(g+r), relative to 0600 for a new image).
      - When not given, new images are mode 0600, whatever the C(umask), and kept ones keep
        their mode.
    type: raw
  unsafe_writes:
    description:
      - Accepted for compatibility with Ansible's common file options, and ignored. Images are
        always written to C(<dest>.partial) and renamed.
notes:
  - Requires C(qemu-img). Does not use libvirt; make sure no running domain uses the images
    (M(virtops.libvirt.restore_domain) refuses a running domain).
  - Without O(mode), O(owner) and O(group), images are mode 0600 owned by the user the module
    runs as (root); libvirt gives them to QEMU when the domain starts (C(dynamic_ownership) in
    C(qemu.conf)). Set them where libvirt does not, for example O(owner=libvirt-qemu).
  - O(attributes) (C(chattr)) are set after the renames, because an immutable or append-only
    file cannot be renamed.
seealso:
  - module: virtops.libvirt.backup_info
  - module: virtops.libvirt.restore_domain
'''

EXAMPLES = r'''
- name: Check the newest backup of web01
  virtops.libvirt.backup_info:
    dest: /srv/backups
    domain: web01
  register: backup

- name: Restore its images as raw files
  virtops.libvirt.restore_images:
    disks: "{{ backup.disks }}"
    image_dir: /var/lib/libvirt/images/web01-copy
    format: raw

- name: Restore them for a libvirt without dynamic_ownership, which does not chown images itself
  virtops.libvirt.restore_images:
    disks: "{{ backup.disks }}"
    image_dir: /var/lib/libvirt/images/web01-copy
    owner: libvirt-qemu
    group: kvm
    mode: '0660'
'''

RETURN = r'''
images:
  description: One entry per disk.
  returned: success
  type: list
  elements: dict
  contains:
    target:
      description: Disk target.
      type: str
    src:
      description: The backup image.
      type: str
    dest:
      description: The restored image.
      type: str
    action:
      description: V(create), V(replace) or V(keep) (already identical).
      type: str
    size:
      description: Bytes the restored image takes on disk (not in check mode for new images).
      type: int
    verified:
      description: Compared with the backup image after the copy.
      type: bool
  sample:
    - target: vda
      src: /srv/backups/web01/20261127T010000Z/vda.qcow2
      dest: /var/lib/libvirt/images/web01-copy/vda.qcow2
      action: create
      size: 1310720
      verified: true
created_dir:
  description: Whether O(image_dir) was created.
  returned: success
  type: bool
bytes:
  description: Bytes written (on disk) by this task.
  returned: success
  type: int
seconds:
  description: Duration.
  returned: success
  type: float
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtops.libvirt.plugins.module_utils._file_args import (
    FileAttributes,
    file_arg_errors,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._libvirt import LibvirtFailure
from ansible_collections.virtops.libvirt.plugins.module_utils._qemu_img import QemuImg
from ansible_collections.virtops.libvirt.plugins.module_utils._restore_images import (
    FORMATS,
    ImageRestore,
    RefusedError,
    destinations,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            disks=dict(type='list', elements='dict', required=True),
            image_dir=dict(type='path'),
            in_place=dict(type='bool', default=False),
            format=dict(type='str', choices=list(FORMATS), default='qcow2'),
            force=dict(type='bool', default=False),
            verify=dict(type='bool', default=True),
        ),
        required_if=[('in_place', False, ('image_dir',))],
        add_file_common_args=True,
        supports_check_mode=True,
    )
    p = module.params
    errors = file_arg_errors(p)
    if errors:
        module.fail_json(msg='restore refused, nothing changed: %s' % '; '.join(errors), refused=True)
    image_dir = None if p['in_place'] else p['image_dir'].rstrip('/')
    try:
        dests = destinations(p['disks'], p['format'], image_dir, p['in_place'])
        restore = ImageRestore(QemuImg(module), p['disks'], dests, p['format'], p['force'],
                               p['verify'], image_dir, FileAttributes(module))
        result = restore.run(module.check_mode)
    except RefusedError as exc:
        module.fail_json(msg='restore refused, nothing changed: %s' % exc, refused=True)
    except LibvirtFailure as exc:
        module.fail_json(msg=exc.msg, **exc.details)
    except OSError as exc:
        module.fail_json(msg='restore of the images failed, nothing was kept: %s' % exc)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
