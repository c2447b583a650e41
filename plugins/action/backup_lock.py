# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Run backup_lock with the identity of the controller that runs the play.

The worker that runs this action is a child of ``ansible-playbook``, so its
parent is the run's controller process. A later run on the same machine can
then tell at once that a lock's run is dead; elsewhere the lease decides.
"""

from __future__ import annotations

import os
import socket

from ansible.plugins.action import ActionBase

from ansible_collections.virtops.libvirt.plugins.module_utils._lock import boot_id, process_start


def controller_identity():
    """The ansible-playbook process that runs the play (the parent of this worker)."""
    controller = os.getppid()
    return dict(host=socket.gethostname(), boot_id=boot_id(), pid=controller,
                start=process_start(controller))


class ActionModule(ActionBase):

    TRANSFERS_FILES = False
    _requires_connection = True

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        args = dict(self._task.args, controller=controller_identity())
        result.update(self._execute_module(module_name='virtops.libvirt.backup_lock',
                                           module_args=args, task_vars=task_vars))
        return result
