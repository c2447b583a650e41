#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: blockcommit
short_description: Commit images of a running domain's disk into their backing image
version_added: 0.1.0
description:
  - Merges the data of one or more images of a disk's backing chain (from O(top) down to just
    above O(base)) into O(base), while the domain runs, with a libvirt block commit job.
  - B(Intermediate commit) (O(top) below the active layer) is a single-phase job. When it
    ends, the committed images are out of the chain.
  - B(Active commit) (O(top) is the active layer, the image the guest writes to) is a
    B(two-phase) job. It copies data, then reaches READY and keeps mirroring every new guest
    write into O(base) until it is told how to end. O(finish=pivot) switches the disk to O(base)
    (the overlay leaves the chain); O(finish=cancel) stops mirroring, the overlay stays the
    active layer and O(base) holds every write up to the cancel. You must acknowledge this with
    O(active=true) and choose O(finish).
  - READY is taken from libvirt's block-job event or the C(ready='yes') mark in the live XML,
    never from the job's progress counters, so a pivot is never refused as not ready.
  - With neither O(top) nor O(base), each run commits the active layer into its immediate
    backing image, like C(virsh blockcommit --active --shallow). Repeating such a task
    commits one more layer each time until a single image is left; name O(top) or O(base)
    when the task must be a no-op when repeated.
  - A block job of the same kind already on the disk (for example one left READY by an
    interrupted run) is adopted and finished instead of failing. A job of another kind makes
    the module fail and is left untouched.
author:
  - virtops.libvirt developers (@virtops)
extends_documentation_fragment:
  - virtops.libvirt.connection
  - virtops.libvirt.lock
attributes:
  check_mode:
    description: Plans the commit from the live chain and reports what would change.
    support: full
  diff_mode:
    description: Shows the backing chain before and after.
    support: full
  platform:
    description: Runs on the hypervisor, against a local or remote libvirt URI.
    support: full
    platforms: posix
options:
  domain:
    description: Name or UUID of a running domain.
    aliases: [name]
    type: str
    required: true
  disk:
    description: The disk, by target name (V(vda)) or by the path of its active image.
    type: str
    required: true
  top:
    description:
      - The highest image to commit, as a path or as V(vda[N]) (libvirt's image index, as
        shown by M(virtops.libvirt.domain_disk_info)).
      - Defaults to the active layer.
      - A path that has left the chain is reported as C(changed=false) when an earlier run
        committed it (O(delete=true) and the file is gone, or the file remains and its backing
        chain, read from the image files, first meets the current chain at O(base) or an image
        below it, or at any image when O(base) is not given, also after a commit of several
        layers at once); otherwise it is an error. Index specs change
        meaning when the chain changes, so use paths in tasks that are repeated.
    type: str
  base:
    description:
      - The image to commit into, as a path or as V(vda[N]).
      - Defaults to the immediate backing image of O(top), so a shared template deeper in the
        chain is never written by surprise.
    type: str
  active:
    description:
      - Must be V(true) when O(top) is the active layer; the task then fails with nothing
        changed otherwise.
      - V(true) with an O(top) that is not the active layer is an error.
    type: bool
    default: false
  finish:
    description:
      - How an active commit ends once READY. Required with O(active=true), refused without.
      - V(pivot) switches the disk to O(base); the overlay leaves the chain (and is deleted with
        O(delete=true), only after the live XML confirms the pivot).
      - V(cancel) keeps the overlay as the active layer; O(base) holds all data written up to
        the cancel.
    type: str
    choices: [pivot, cancel]
  delete:
    description:
      - Delete the committed image files after success; for an active commit, after the pivot
        is confirmed. Files still used by any disk of the domain are never deleted.
      - For an active commit, the active image that the pivot drops first gets a mark,
        C(<file>.committed), written at READY just before the pivot and deleted with the file
        (or at once, when the pivot fails). A module killed between the pivot and the deletion
        leaves both. M(virtops.libvirt.disk_snapshot) then removes such an overlay of the
        backup, which no disk uses any more, instead of refusing it as a leftover that may hold
        guest data.
      - Refused with O(finish=cancel), where nothing leaves the chain.
    type: bool
    default: false
  keep_relative:
    description: Keep relative backing file names in the image above O(top).
    type: bool
    default: false
  bandwidth:
    description: Bandwidth limit of the job in MiB/s; V(0) means unlimited.
    type: int
    default: 0
  timeout:
    description:
      - Seconds to wait for READY (active commit) or for the end of the job (intermediate
        commit). V(0) waits forever.
      - On expiry the job is cancelled, never pivoted, the module fails, and the domain keeps
        running on its current active layer with all its data.
    type: int
    default: 3600
  progress_file:
    description:
      - While the job runs, rewrite this JSON file about once a second with C(phase)
        (V(copy) or V(ready)), C(ready), C(bytes_done) and C(bytes_total) (the job's counters)
        and C(pid) and C(start), which name the module's process. Removed when the module ends.
      - For M(virtops.libvirt.async_progress), when the task runs with C(async).
    type: path
notes:
  - The domain must be running; libvirt cannot commit the disks of a shut-off domain.
  - Progress cannot be streamed by an Ansible module; use C(async) and C(poll=0) with
    O(progress_file) and M(virtops.libvirt.async_progress) for long commits.
  - When libvirtd restarts while the module waits, the module reconnects (for up to 90 seconds)
    and adopts the job, which QEMU kept running.
  - A pivot is done with SIGTERM and SIGINT held, so the module is never stopped between the
    pivot and the check of the live XML and the deletion of the committed images.
  - When the job vanishes because another process pivoted the disk to O(base) (for example a
    run that was presumed dead), the module reports success after reading the live XML.
seealso:
  - module: virtops.libvirt.domain_disk_info
  - name: libvirt virDomainBlockCommit
    description: The libvirt API this module drives.
    link: https://libvirt.org/html/libvirt-libvirt-domain.html#virDomainBlockCommit
'''

EXAMPLES = r'''
- name: Commit the backup overlay of vda back into its base and pivot to it
  virtops.libvirt.blockcommit:
    domain: web01
    disk: vda
    top: /var/lib/libvirt/images/web01.qcow2.virtops-backup.qcow2
    active: true
    finish: pivot
    delete: true

- name: Copy the overlay's data into its base but keep the VM running on the overlay
  virtops.libvirt.blockcommit:
    domain: web01
    disk: vda
    active: true
    finish: cancel

- name: Merge an intermediate snapshot into the image below it (no pivot involved)
  virtops.libvirt.blockcommit:
    domain: web01
    disk: vda
    top: /var/lib/libvirt/images/web01.snap1.qcow2
    delete: true
    bandwidth: 200
    timeout: 7200

- name: Set the connection once for every module of the collection
  module_defaults:
    group/virtops.libvirt.libvirt:
      uri: qemu+ssh://root@hv01/system
  block:
    - name: Commit and pivot every layer above the template image
      virtops.libvirt.blockcommit:
        domain: web01
        disk: vda
        base: /var/lib/libvirt/images/template.qcow2
        active: true
        finish: pivot
'''

RETURN = r'''
chain_before:
  description: The backing chain before the run, active layer first.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: Image path.
      type: str
    format:
      description: Image format.
      type: str
  sample: [{path: /images/vm.overlay.qcow2, format: qcow2}, {path: /images/vm.qcow2, format: qcow2}]
chain_after:
  description: The backing chain after the run (predicted in check mode).
  returned: always
  type: list
  elements: dict
  sample: [{path: /images/vm.qcow2, format: qcow2}]
job:
  description: The block job as last seen (at READY for an active commit); empty when none ran.
  returned: always
  type: dict
  contains:
    type:
      description: V(commit) or V(active_commit).
      type: str
    cur:
      description: Bytes processed.
      type: int
    end:
      description: Bytes to process.
      type: int
  sample: {type: active_commit, cur: 1048576, end: 1048576}
committed_bytes:
  description: Bytes the job processed; 0 when nothing ran.
  returned: always
  type: int
  sample: 1048576
adopted:
  description: Whether a job already on the disk was finished instead of a new one started.
  returned: always
  type: bool
deleted:
  description: Image files deleted (with O(delete=true)).
  returned: always
  type: list
  elements: str
elapsed:
  description: Seconds the module spent.
  returned: always
  type: float
  sample: 1.25
msg:
  description: What happened, or why nothing had to be done.
  returned: always
  type: str
  sample: "committed /images/vm.overlay.qcow2 into /images/vm.qcow2 and pivoted: /images/vm.qcow2 is the active layer"
'''

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtops.libvirt.plugins.module_utils._chain import ChainError
from ansible_collections.virtops.libvirt.plugins.module_utils._commit import CommitRun, chain_diff
from ansible_collections.virtops.libvirt.plugins.module_utils._libvirt import (
    CONNECTION_ARGUMENT_SPEC,
    LibvirtClient,
    LibvirtFailure,
    ensure_libvirt,
    libvirt,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._qemu_img import QemuImg
from ansible_collections.virtops.libvirt.plugins.module_utils._worker import (
    LOCK_ARGUMENT_SPEC,
    LOCK_REQUIRED_TOGETHER,
    Worker,
)


def argument_spec():
    spec = dict(
        domain=dict(type='str', required=True, aliases=['name']),
        disk=dict(type='str', required=True),
        top=dict(type='str'),
        base=dict(type='str'),
        active=dict(type='bool', default=False),
        finish=dict(type='str', choices=['pivot', 'cancel']),
        delete=dict(type='bool', default=False),
        keep_relative=dict(type='bool', default=False),
        bandwidth=dict(type='int', default=0),
        timeout=dict(type='int', default=3600),
        progress_file=dict(type='path'),
    )
    spec.update(CONNECTION_ARGUMENT_SPEC)
    spec.update(LOCK_ARGUMENT_SPEC)
    return spec


def check_options(module):
    params = module.params
    if params['active'] and not params['finish']:
        module.fail_json(msg='active: true needs finish: pivot or cancel, to say how the '
                             'two-phase active commit ends')
    if params['finish'] and not params['active']:
        module.fail_json(msg='finish is only valid with active: true (an intermediate commit '
                             'ends by itself)')
    if params['delete'] and params['finish'] == 'cancel':
        module.fail_json(msg='delete: true with finish: cancel would delete the active layer; '
                             'nothing leaves the chain on a cancel')
    for name in ('bandwidth', 'timeout'):
        if params[name] < 0:
            module.fail_json(msg='%s must be 0 or more, got %s' % (name, params[name]))


def main():
    module = AnsibleModule(argument_spec=argument_spec(), required_together=LOCK_REQUIRED_TOGETHER,
                           supports_check_mode=True)
    ensure_libvirt(module)
    check_options(module)
    progress_file = module.params['progress_file']
    try:
        with Worker(module.params, 'commit of %s' % module.params['disk'],
                    check_mode=module.check_mode):
            with LibvirtClient(module.params['uri'], events=True) as client:
                run = CommitRun(client, module.params, QemuImg(module).backing_of)
                try:
                    result = run.run(module.check_mode)
                finally:
                    run.client.close()
    except LibvirtFailure as exc:
        module.fail_json(msg=exc.msg, **exc.details)
    except ChainError as exc:
        module.fail_json(msg=str(exc))
    except libvirt.libvirtError as exc:
        module.fail_json(msg='libvirt error: %s' % exc, libvirt_code=exc.get_error_code())
    finally:
        if progress_file and not module.check_mode:
            for path in (progress_file, progress_file + '.tmp'):
                if os.path.exists(path):
                    os.unlink(path)
    if module._diff:
        result['diff'] = chain_diff(result['chain_before'], result['chain_after'])
    module.exit_json(**result)


if __name__ == '__main__':
    main()
