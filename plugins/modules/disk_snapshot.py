#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: disk_snapshot
short_description: Freeze disks of a running domain under external overlays, atomically
version_added: 0.1.0
description:
  - Takes an external, disk-only libvirt snapshot of a set of disks of a running domain, in
    one atomic call. Each selected disk gets a new qcow2 overlay that the guest writes to from
    then on; the image it ran on before (the B(frozen) image) becomes its read-only backing
    image and can be copied safely while the domain runs.
  - The overlay of a file disk is C(<active image path>.<suffix>.qcow2), next to the image, for
    example C(/img/vm.qcow2.virtops-backup.qcow2) for C(/img/vm.qcow2). The overlay of a block
    device disk is C(<block_overlay_dir>/<domain>.<target>.<suffix>.qcow2).
  - Either every selected disk gets its overlay or none does. No snapshot metadata is kept
    (C(VIR_DOMAIN_SNAPSHOT_CREATE_NO_METADATA)); the overlays are undone with
    M(virtops.libvirt.blockcommit) (O(virtops.libvirt.blockcommit#module:active=true),
    O(virtops.libvirt.blockcommit#module:finish=pivot)).
  - A disk whose active image already is such an overlay (its path ends with
    C(.<suffix>.qcow2)) is reported as V(already) and gets no second overlay. When every
    selected disk is already on its overlay, nothing changes.
  - An overlay file that exists while the disk does not run on it (a leftover of an earlier
    run) makes the module fail before anything changes; it is never overwritten. The one
    exception is an overlay that M(virtops.libvirt.blockcommit) (with
    O(virtops.libvirt.blockcommit#module:delete=true)) or M(virtops.libvirt.offline_repair)
    committed and dropped, but was killed before it deleted it. Its mark file
    C(<overlay>.committed), written once the data was all in the backing image, says so. Such
    an overlay, in no disk's backing chain, is removed first and listed in RV(stale_overlays).
  - Skipped, with a reason, are cdrom and floppy devices, read-only, empty and shareable
    disks, disks whose source is not a file or a block device (network, volume, dir), and
    disks left out by O(disks) or O(exclude). Every disk is listed in the snapshot request,
    the skipped ones with C(snapshot='no'), because libvirt gives unlisted disks an overlay
    of their own.
author:
  - virtops.libvirt developers (@virtops)
extends_documentation_fragment:
  - virtops.libvirt.connection
  - virtops.libvirt.lock
attributes:
  check_mode:
    description: Plans the snapshot from the live definition and reports V(planned) disks.
    support: full
  diff_mode:
    description: The result lists every disk with its frozen image and overlay instead.
    support: none
  platform:
    description: Runs on the hypervisor, which must see the image files to detect leftover overlays.
    support: full
    platforms: posix
options:
  domain:
    description: Name or UUID of a running domain.
    aliases: [name]
    type: str
    required: true
  disks:
    description:
      - Targets (V(vda)) of the disks to snapshot.
      - Omitted or empty means every disk that can be snapshotted.
      - Naming a disk that cannot be snapshotted (a cdrom, a read-only disk, and so on) is an
        error, as is naming a target the domain does not have.
    type: list
    elements: str
  exclude:
    description:
      - Targets of disks to leave alone; they are reported as skipped. Wins over O(disks).
      - Naming a target the domain does not have is an error.
    type: list
    elements: str
    default: []
  quiesce:
    description:
      - Whether to freeze the guest's file systems through the QEMU guest agent first.
      - V(always) fails when the guest cannot be quiesced, and snapshots nothing.
      - V(never) takes a crash-consistent snapshot.
      - V(auto) tries to quiesce and falls back to a crash-consistent snapshot only when no
        guest agent can answer (no agent channel, agent not connected or not responding, guest
        paused). An agent that answers but fails to freeze is a failure. The result tells which
        one happened in RV(consistency) and why in RV(quiesce_error).
    type: str
    choices: [auto, always, never]
    default: auto
  block_overlay_dir:
    description:
      - Directory, on real storage, for the overlays of block device disks (an LVM volume, a
        partition). Required when such a disk is snapshotted; without it the module fails
        before changing anything rather than put guest writes in C(/dev), which is in memory.
    type: path
  suffix:
    description:
      - Marks the overlays this module creates; the overlay of C(IMAGE) is
        C(IMAGE.<suffix>.qcow2).
      - Must not contain C(/).
    type: str
    default: virtops-backup
notes:
  - The domain must be running. A shut-off domain makes the module fail; its images can be
    copied directly.
  - Libvirt creates the overlay files (owned and labelled for QEMU).
  - Undo the snapshot with M(virtops.libvirt.blockcommit), one disk at a time.
seealso:
  - module: virtops.libvirt.blockcommit
  - module: virtops.libvirt.domain_disk_info
  - name: libvirt virDomainSnapshotCreateXML
    description: The libvirt API this module calls.
    link: https://libvirt.org/html/libvirt-libvirt-domain-snapshot.html#virDomainSnapshotCreateXML
  - name: libvirt snapshot XML format
    description: The C(<domainsnapshot>) document the module builds.
    link: https://libvirt.org/formatsnapshot.html
'''

EXAMPLES = r'''
- name: Freeze every disk of web01, quiesced when its guest agent answers
  virtops.libvirt.disk_snapshot:
    domain: web01
  register: frozen

- name: Copy the frozen images while web01 keeps writing to its overlays
  ansible.builtin.command:
    argv: [qemu-img, convert, -U, -O, qcow2, "{{ item.frozen }}", "/backup/web01/{{ item.target }}.qcow2"]
  loop: "{{ frozen.disks | selectattr('status', 'in', ['snapshotted', 'already']) }}"
  loop_control:
    label: "{{ item.target }}"
  changed_when: true

- name: Merge each overlay back and delete it
  virtops.libvirt.blockcommit:
    domain: web01
    disk: "{{ item.target }}"
    top: "{{ item.overlay }}"
    active: true
    finish: pivot
    delete: true
  loop: "{{ frozen.disks | selectattr('overlay') }}"
  loop_control:
    label: "{{ item.target }}"

- name: Snapshot everything but the scratch disk, and insist on a quiesced guest
  virtops.libvirt.disk_snapshot:
    domain: db01
    exclude: [vdc]
    quiesce: always
'''

RETURN = r'''
consistency:
  description:
    - V(quiesced) when the guest's file systems were frozen for the snapshot, V(crash) for a
      crash-consistent snapshot, V(none) when nothing was snapshotted (also in check mode).
  returned: always
  type: str
  sample: crash
quiesce_error:
  description: With O(quiesce=auto), the error of the quiesce attempt that made the module fall back to a crash-consistent snapshot; otherwise null.
  returned: always
  type: str
  sample: "argument unsupported: QEMU guest agent is not configured"
disks:
  description: Every disk of the domain, in definition order.
  returned: success
  type: list
  elements: dict
  contains:
    target:
      description: The disk's target name.
      type: str
      sample: vda
    status:
      description:
        - V(snapshotted) (it got its overlay now), V(planned) (it would, in check mode),
          V(already) (it already runs on its overlay) or V(skipped).
      type: str
      sample: snapshotted
    reason:
      description: Why the disk was skipped (for example V(device cdrom), V(excluded)); null unless skipped.
      type: str
    frozen:
      description:
        - The image that is now the read-only backing image of the overlay (the former active
          image); for V(already), the overlay's backing image. Null when skipped.
      type: str
      sample: /var/lib/libvirt/images/web01.qcow2
    overlay:
      description: The overlay the disk runs on (or would, in check mode); null when skipped.
      type: str
      sample: /var/lib/libvirt/images/web01.qcow2.virtops-backup.qcow2
    format:
      description: The format of the frozen image; null when skipped.
      type: str
      sample: qcow2
  sample:
    - {target: vda, status: snapshotted, reason: null, frozen: /img/vm.qcow2,
       overlay: /img/vm.qcow2.virtops-backup.qcow2, format: qcow2}
    - {target: sda, status: skipped, reason: device cdrom, frozen: null, overlay: null,
       format: null}
stale_overlays:
  description:
    - Overlays committed and pivoted away from by an earlier run that was killed before it
      deleted them (each has its C(.committed) mark and is in no backing chain). They are
      removed before the snapshot (in check mode, they would be).
  returned: always
  type: list
  elements: str
  sample: [/var/lib/libvirt/images/web01.qcow2.virtops-backup.qcow2]
msg:
  description: What happened, or why nothing had to be done.
  returned: always
  type: str
  sample: "snapshotted vda, vdb (crash-consistent): the guest agent is unavailable"
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtops.libvirt.plugins.module_utils._libvirt import (
    CONNECTION_ARGUMENT_SPEC,
    LibvirtClient,
    LibvirtFailure,
    ensure_libvirt,
    libvirt,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._failpoint import failpoint
from ansible_collections.virtops.libvirt.plugins.module_utils._worker import (
    LOCK_ARGUMENT_SPEC,
    LOCK_REQUIRED_TOGETHER,
    Worker,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._snapshot import (
    DEFAULT_SUFFIX,
    QUIESCE_MODES,
    SnapshotError,
    SnapshotRun,
)


def argument_spec():
    spec = dict(
        domain=dict(type='str', required=True, aliases=['name']),
        disks=dict(type='list', elements='str'),
        exclude=dict(type='list', elements='str', default=[]),
        quiesce=dict(type='str', choices=list(QUIESCE_MODES), default='auto'),
        suffix=dict(type='str', default=DEFAULT_SUFFIX),
        block_overlay_dir=dict(type='path'),
    )
    spec.update(CONNECTION_ARGUMENT_SPEC)
    spec.update(LOCK_ARGUMENT_SPEC)
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), required_together=LOCK_REQUIRED_TOGETHER,
                           supports_check_mode=True)
    ensure_libvirt(module)
    suffix = module.params['suffix']
    if not suffix or '/' in suffix:
        module.fail_json(msg='suffix must be a non-empty file name part without /, got %r' % suffix)
    # Failures before the snapshot call change nothing; report that in a stable shape.
    failed = dict(changed=False, consistency='none', quiesce_error=None)
    try:
        # A quiesced snapshot can wait on the guest agent: the lease is renewed meanwhile.
        with Worker(module.params, 'snapshot of %s' % module.params['domain'], renew_lease=True,
                    check_mode=module.check_mode):
            with LibvirtClient(module.params['uri']) as client:
                result = SnapshotRun(client, module.params).run(module.check_mode)
            if result['changed'] and not module.check_mode:
                failpoint('after_snapshot')
    except LibvirtFailure as exc:
        failed.update(exc.details)
        module.fail_json(msg=exc.msg, **failed)
    except SnapshotError as exc:
        module.fail_json(msg=str(exc), **failed)
    except libvirt.libvirtError as exc:
        module.fail_json(msg='libvirt error: %s' % exc, libvirt_code=exc.get_error_code(), **failed)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
