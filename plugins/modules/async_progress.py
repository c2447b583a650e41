#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: async_progress
short_description: Wait for an async task and print its progress while it runs
version_added: 0.1.0
description:
  - Polls an async task (started with C(async) and C(poll=0)) until it ends, and every O(interval)
    seconds prints a line with its progress, so long copies and commits are not silent.
  - Progress comes from a progress file written by M(virtops.libvirt.image_copy)
    (O(progress_file)), or from the block job of a disk (O(domain) and O(disk)), as read by
    M(virtops.libvirt.domain_disk_info).
  - Returns the async task's own result, and fails when it failed. Cleans up the job's status file.
  - One task however long the job runs; a loop of included task files would hit Python's
    recursion limit after a few hundred polls.
  - This is an action plugin; it runs on the controller and calls modules on the host.
author:
  - virtops.libvirt developers (@virtops)
attributes:
  check_mode:
    description: Waits the same in check mode.
    support: full
  diff_mode:
    description: No diff.
    support: none
  platform:
    description: Any host that runs async tasks.
    support: full
    platforms: posix
  action:
    description: Runs on the controller.
    support: full
options:
  jid:
    description: The C(ansible_job_id) of the async task.
    type: str
    required: true
  label:
    description: What the progress lines name, for example V(web01 copy of vda).
    type: str
    default: job
  interval:
    description: Seconds between polls and progress lines.
    type: int
    default: 10
  progress_file:
    description: The progress file of an M(virtops.libvirt.image_copy) task.
    type: path
  uri:
    description: libvirt URI, with O(domain) and O(disk).
    type: str
    default: qemu:///system
  domain:
    description: Domain whose block job on O(disk) gives the progress.
    type: str
  disk:
    description: Disk target whose block job gives the progress.
    type: str
seealso:
  - module: virtops.libvirt.image_copy
  - module: virtops.libvirt.blockcommit
'''

EXAMPLES = r'''
- name: Start a long copy
  virtops.libvirt.image_copy:
    src: /var/lib/libvirt/images/web01.qcow2
    dest: /srv/backups/web01.qcow2
    progress_file: /srv/backups/.web01.progress
  async: 86400
  poll: 0
  register: copy_job

- name: Wait for it, printing a line like web01 copy - 42.0% (8.4 GiB of 20.0 GiB) every 10 s
  virtops.libvirt.async_progress:
    jid: "{{ copy_job.ansible_job_id }}"
    label: web01 copy
    progress_file: /srv/backups/.web01.progress
  register: copy_result
'''

RETURN = r'''
finished:
  description: Always true on return.
  returned: always
  type: bool
ansible_job_id:
  description: The job's id.
  returned: always
  type: str
'''
