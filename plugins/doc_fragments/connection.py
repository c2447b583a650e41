# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment(object):

    # Every module with a connection belongs to the action group, so the group is documented here.
    DOCUMENTATION = r'''
attributes:
  action_group:
    description: Use C(group/virtops.libvirt.libvirt) in C(module_defaults) to set O(uri) once.
    support: full
    membership:
      - virtops.libvirt.libvirt
options:
  uri:
    description:
      - The libvirt connection URI.
      - Set it once for every module of the collection with C(module_defaults) and the
        C(group/virtops.libvirt.libvirt) action group.
    type: str
    default: qemu:///system
requirements:
  - libvirt-python on the host that runs the module (the hypervisor)
'''
