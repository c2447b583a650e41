# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Run backup_domains with the controller's identity, as backup_lock does.

With ``async``, the module starts its job itself instead of running under Ansible's async
wrapper: it checks the settings, forks the job and returns at once, with the same result
(``ansible_job_id``) and status file, so ``poll``, ``async_status`` and ``async_progress`` work
as for any async task. The job begins while the task returns, and at its time limit it stops
its copies and brings its VMs back instead of being killed.
"""

from __future__ import annotations

from ansible.plugins.action import ActionBase
from ansible.plugins.action.normal import ActionModule as NormalAction
from ansible.utils.vars import merge_hash

from ansible_collections.virtops.libvirt.plugins.action.backup_lock import controller_identity


class ActionModule(NormalAction):

    def run(self, tmp=None, task_vars=None):
        # The module records this controller in each lock it takes: a later run on this machine
        # takes over at once when it is gone.
        self._task.args = dict(self._task.args, controller=controller_identity())
        if not self._task.async_val:
            return super(ActionModule, self).run(tmp, task_vars)
        result = ActionBase.run(self, tmp, task_vars)
        async_dir = self._remote_expand_user(self.get_shell_option('async_dir', default='~/.ansible_async'))
        args = dict(self._task.args, job=dict(limit=self._task.async_val, async_dir=async_dir))
        try:
            result = merge_hash(result, self._execute_module(module_args=args, task_vars=task_vars,
                                                             wrap_async=False))
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result
