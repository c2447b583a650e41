#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: image_copy
short_description: Copy a disk image into a backup with qemu-img, sparse and atomically
version_added: 0.1.0
description:
  - Copies a disk image with C(qemu-img convert) into O(dest), for example the frozen backing
    image of a running domain while the domain writes to an external snapshot overlay.
  - By default the source is opened with C(-U) (force share, see O(force_share)); it is never
    modified. Copying an image that a running domain writes to gives an inconsistent copy;
    freeze it first (M(virtops.libvirt.disk_snapshot)).
  - By default the copy is B(flattened) (see O(backing_chain)), and it is B(sparse) in either
    format. Runs of at least 4 KiB of zeroes (C(-S 4k)) and unallocated areas of the source
    are not written, so they take no disk space.
  - The copy is written to C(<dest>.partial) with mode 0600 from the start, given O(mode),
    O(owner), O(group) and the SELinux context (Ansible's common file options), flushed to disk,
    renamed to O(dest), given O(attributes), and the directory is flushed. On any failure the
    partial file is removed and the task fails with the output of C(qemu-img). A partial file
    left by a killed run is replaced by the next run; two runs on the same O(dest) at once are
    refused (the partial file is locked).
  - An existing O(dest) is kept unless O(force=true); the task then reports the facts of the
    existing file and C(changed=false), so a repeated task is a no-op. The file options given
    (O(mode), O(owner), and so on) are applied to a kept O(dest) too, as to any file Ansible
    manages; the task reports C(changed=true) when that changed something.
  - O(mode), O(owner) and O(group) are checked before the copy starts, so a mistake fails at
    once, not after a long copy.
author:
  - virtops.libvirt developers (@virtops)
extends_documentation_fragment:
  - virtops.libvirt.lock
  - ansible.builtin.files
attributes:
  check_mode:
    description: Copies nothing; reports what would happen, with the source's virtual size.
    support: full
  diff_mode:
    description: No diff of image contents.
    support: none
  platform:
    description: Runs on the host that has the images (the hypervisor), with C(qemu-img).
    support: full
    platforms: posix
options:
  src:
    description: The image to copy; a file or block device. It may have a backing chain.
    type: path
    required: true
  dest:
    description:
      - Path of the copy. Its directory must exist; the module does not create directories.
    type: path
    required: true
  src_format:
    description:
      - Format of O(src), for example V(qcow2) or V(raw).
      - Detected with C(qemu-img info -U) when omitted. Give it for raw images whose content
        could be mistaken for another format.
    type: str
  format:
    description: Format of the copy.
    type: str
    choices: [qcow2, raw]
    default: qcow2
  compress:
    description:
      - Compression of the copy's clusters; only with O(format=qcow2), refused otherwise.
      - V(zstd) uses C(-c -o compression_type=zstd) (the C(compression type) in
        C(qemu-img info) of the copy is V(zstd)); V(zlib) uses C(-c), readable by older QEMU.
    type: str
    choices: [none, zstd, zlib]
    default: none
  backing_chain:
    description:
      - V(true) flattens, which is what C(qemu-img convert) does by default. The data of the
        whole backing chain of O(src) is read through, and the copy is a standalone image without
        a backing file.
      - V(false) copies only the data of O(src) itself. The copy gets the backing file of O(src)
        (absolute path, C(qemu-img convert -B)). Only with O(format=qcow2). A source without a
        backing file is copied whole either way.
    type: bool
    default: true
  checksum:
    description:
      - Return the SHA-256 of the copy file (the file, not the guest data), computed by
        streaming it.
      - On a kept O(dest), the checksum of the existing file.
    type: bool
    default: false
  verify:
    description:
      - After the copy, compare the guest data of O(src) and the copy with
        C(qemu-img compare -U). A mismatch fails the task and leaves no O(dest).
      - Not done on a kept O(dest) (the source may have changed since).
    type: bool
    default: false
  mode:
    description:
      - Permissions of the copy, as an octal string (quote it, V('0640'), or an unquoted YAML
        number may be read as decimal) or a symbolic mode (V(g+r), relative to 0600 for a new copy).
      - The copy is created with mode 0600, whatever the C(umask), and gets this mode just
        before the rename, so it never is more open than asked.
      - When not given, a new copy stays 0600 (a backup is private) and a kept O(dest) keeps
        its mode.
    type: raw
  unsafe_writes:
    description:
      - Accepted for compatibility with Ansible's common file options, and ignored. The copy is
        always written to C(<dest>.partial) and renamed.
  force:
    description:
      - Replace an existing O(dest). The old file stays in place until the new copy is
        complete, then the rename replaces it.
    type: bool
    default: false
  force_share:
    description:
      - Read O(src) without taking QEMU's image lock (C(qemu-img -U)), as needed for an image
        that another process holds for writing.
      - V(false) takes the lock for the copy, so a shut-off VM cannot start on the image while
        it is copied, and an image in use makes the copy fail instead of being read torn. The
        frozen backing image of a running VM (after M(virtops.libvirt.disk_snapshot)) can be
        copied with the lock, since the VM holds it read-only. The C(virtops.libvirt.live_backup)
        role copies it so.
    type: bool
    default: true
  bandwidth:
    description:
      - Read at most this many MiB/s from O(src) (C(qemu-img convert -r)), so that a backup
        does not starve the production I/O of the host; V(0) is unlimited.
    type: int
    default: 0
  progress_file:
    description:
      - While copying, rewrite this JSON file about once a second with C(percent),
        C(bytes_total) (the virtual size), C(bytes_done) (an estimate from the percentage),
        C(elapsed) (seconds), read from the output of C(qemu-img convert -p), and C(pid) and
        C(start), which name the module's process (M(virtops.libvirt.async_progress) uses them to
        tell a killed copy from a running one).
      - Run the task with C(async) and C(poll=0) and read the file from another task to show
        progress. The file is removed when the module ends, on success or failure.
      - Its directory must exist.
    type: path
notes:
  - Requires C(qemu-img) (package C(qemu-utils) on Debian) on the host that runs the module.
    Does not use libvirt.
  - O(attributes) (C(chattr)) are set after the rename, because an immutable or append-only
    file cannot be renamed. When that fails, the task fails and the complete copy stays at
    O(dest); the next run keeps it and sets them.
  - O(dest) and C(<dest>.partial) should be on the same file system, which they are unless
    O(dest) is a symbolic link.
  - The sizes returned are V(size), the bytes the copy takes on disk, and V(apparent_size),
    the file length; for a sparse copy the first is the smaller.
seealso:
  - module: virtops.libvirt.disk_snapshot
  - module: virtops.libvirt.blockcommit
  - name: qemu-img convert
    description: The command this module runs.
    link: https://www.qemu.org/docs/master/tools/qemu-img.html
'''

EXAMPLES = r'''
- name: Copy the frozen base image of web01 (the domain runs on a snapshot overlay)
  virtops.libvirt.image_copy:
    src: /var/lib/libvirt/images/web01.qcow2
    dest: /backup/web01/20240101T000000Z.partial/vda.qcow2
    compress: zstd
    checksum: true
    verify: true
  register: vda_copy

- name: Copy a raw LVM volume into a sparse raw file, readable by the backup group
  virtops.libvirt.image_copy:
    src: /dev/vg0/db01-disk1
    src_format: raw
    dest: /backup/db01/vdb.raw
    format: raw
    group: backup
    mode: '0640'

- name: Start a long copy in the background, writing its progress
  virtops.libvirt.image_copy:
    src: /var/lib/libvirt/images/big.qcow2
    dest: /backup/big.qcow2
    progress_file: /run/virtops-copy-big.json
  async: 7200
  poll: 0
  register: big_copy

- name: Show the progress until the copy ends
  ansible.builtin.command:
    argv: [cat, /run/virtops-copy-big.json]
  register: big_progress
  changed_when: false
  failed_when: false
  until: big_progress.rc != 0
  retries: 7200
  delay: 5

- name: Collect the result of the copy
  ansible.builtin.async_status:
    jid: "{{ big_copy.ansible_job_id }}"
  register: big_result
  until: big_result.finished
  retries: 60
  delay: 2
'''

RETURN = r'''
src:
  description: The source image (absolute path).
  returned: always
  type: str
  sample: /var/lib/libvirt/images/web01.qcow2
dest:
  description: The copy (absolute path).
  returned: always
  type: str
  sample: /backup/web01/vda.qcow2
src_format:
  description: Format of the source, given or detected; null for a kept O(dest) whose source is gone.
  returned: always
  type: str
  sample: qcow2
format:
  description: Format of the copy.
  returned: always
  type: str
  sample: qcow2
compress:
  description: The compression asked for.
  returned: always
  type: str
  sample: zstd
virtual_size:
  description: Virtual size in bytes; of the source (check mode included), or of the kept O(dest).
  returned: always
  type: int
  sample: 10737418240
size:
  description: Bytes the copy takes on disk (allocated blocks x 512); null in check mode.
  returned: always
  type: int
  sample: 1353711616
apparent_size:
  description: Length of the copy file in bytes; null in check mode.
  returned: always
  type: int
  sample: 1353973760
sha256:
  description: SHA-256 of the copy file with O(checksum=true), else null.
  returned: always
  type: str
  sample: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
verified:
  description: Whether C(qemu-img compare) found the copy identical to the source (in this run).
  returned: always
  type: bool
  sample: true
duration:
  description: Seconds spent copying, verifying and checksumming; 0 when nothing was copied.
  returned: always
  type: float
  sample: 12.375
msg:
  description: What was done, or why nothing was.
  returned: always
  type: str
  sample: "copied /images/web01.qcow2 (qcow2) to /backup/web01/vda.qcow2 (qcow2, zstd-compressed) in 12.4s"
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtops.libvirt.plugins.module_utils._file_args import FileAttributes
from ansible_collections.virtops.libvirt.plugins.module_utils._image_copy import (
    COMPRESSIONS,
    FORMATS,
    ImageCopy,
    option_errors,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._libvirt import LibvirtFailure
from ansible_collections.virtops.libvirt.plugins.module_utils._qemu_img import QemuImg
from ansible_collections.virtops.libvirt.plugins.module_utils._worker import (
    LOCK_ARGUMENT_SPEC,
    LOCK_REQUIRED_TOGETHER,
    Worker,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            src=dict(type='path', required=True),
            dest=dict(type='path', required=True),
            src_format=dict(type='str'),
            format=dict(type='str', choices=list(FORMATS), default='qcow2'),
            compress=dict(type='str', choices=list(COMPRESSIONS), default='none'),
            backing_chain=dict(type='bool', default=True),
            checksum=dict(type='bool', default=False),
            verify=dict(type='bool', default=False),
            force=dict(type='bool', default=False),
            progress_file=dict(type='path'),
            force_share=dict(type='bool', default=True),
            bandwidth=dict(type='int', default=0),
            **LOCK_ARGUMENT_SPEC
        ),
        required_together=LOCK_REQUIRED_TOGETHER,
        add_file_common_args=True,
        supports_check_mode=True,
    )
    # exit_json would add the file attributes of `dest` and overwrite `size` (bytes on disk)
    # with the file length; the RETURN below is the whole result.
    module.add_path_info = lambda kwargs: kwargs
    errors = option_errors(module.params)
    if errors:
        module.fail_json(msg='; '.join(errors))
    try:
        with Worker(module.params, 'copy of %s' % module.params['src'],
                    check_mode=module.check_mode) as worker:
            result = ImageCopy(QemuImg(module), module.params, worker,
                               FileAttributes(module)).run(module.check_mode)
    except LibvirtFailure as exc:
        module.fail_json(msg=exc.msg, **exc.details)
    except OSError as exc:
        module.fail_json(msg='copy of %s to %s failed: %s' % (module.params['src'], module.params['dest'], exc))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
