# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Run backup_domains with the controller's identity, as backup_lock does, async or not."""

from __future__ import annotations

from ansible.plugins.action.normal import ActionModule as NormalAction

from ansible_collections.virtops.libvirt.plugins.action.backup_lock import controller_identity


class ActionModule(NormalAction):

    def run(self, tmp=None, task_vars=None):
        # The module records this controller in each lock it takes: a later run on this machine
        # takes over at once when it is gone.
        self._task.args = dict(self._task.args, controller=controller_identity())
        return super(ActionModule, self).run(tmp, task_vars)
