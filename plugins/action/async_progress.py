# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Wait for an async task on the controller and print its progress while it runs.

A loop of tasks cannot print between polls without recursive includes, and
those hit Python's recursion limit after a few hundred polls (a long copy
would crash the play and skip every ``always`` section). This is one task;
each round trip runs the module of the same name, which waits on the host.
"""

from __future__ import annotations

import os
import time

from ansible.errors import AnsibleError
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.virtops.libvirt.plugins.module_utils._async_job import progress_line

display = Display()


def killed_module_result(result, jid):
    """Ansible's async wrapper reports a module killed mid-run as a JSON parse traceback."""
    if result.get('failed') and 'cmd' in result and 'data' in result and not result.get('data'):
        return dict(failed=True, finished=True, ansible_job_id=jid,
                    msg='the module of async job %s ended without a result (killed?)%s' % (
                        jid, ': ' + result['stderr'].strip()[-500:] if result.get('stderr') else ''))
    return result


class ActionModule(ActionBase):

    TRANSFERS_FILES = False
    _requires_connection = True

    def run(self, tmp=None, task_vars=None):
        super(ActionModule, self).run(tmp, task_vars)
        dummy, args = self.validate_argument_spec(argument_spec=dict(
            jid=dict(type='str', required=True),
            label=dict(type='str', default='job'),
            interval=dict(type='int', default=10),
            progress_file=dict(type='path'),
            lock=dict(type='path'),
            lock_owner=dict(type='str'),
            renew_locks=dict(type='list', elements='path'),
        ), required_by=dict(lock='lock_owner', renew_locks='lock_owner'))
        module_args = dict(args, interval=max(1, args['interval']),
                           async_dir=self._remote_expand_user(
                               self.get_shell_option('async_dir', default='~/.ansible_async')))
        parent = os.getppid()
        last_line = time.monotonic()
        while True:
            if os.getppid() != parent:
                raise AnsibleError('ansible-playbook is gone: stopped waiting for async job %s'
                                   % args['jid'])
            status = self._execute_module(module_name='virtops.libvirt.async_progress',
                                          module_args=module_args, task_vars=task_vars)
            if status.get('failed') or status.get('finished'):
                break
            if time.monotonic() - last_line >= args['interval']:
                last_line = time.monotonic()
                progress = status.get('progress') or {}
                if 'lines' in progress:
                    # backup_domains: one line per running copy and commit
                    for line in progress['lines'] or ['%s: %s of %s domains done' % (
                            args['label'], progress.get('finished'), progress.get('domains'))]:
                        display.display(line)
                else:
                    display.display(progress_line(
                        args['label'], int(progress.get('bytes_done') or 0),
                        int(progress.get('bytes_total') or 0), bool(progress.get('ready'))))
        if status.get('failed'):
            return dict(failed=True, finished=True, msg=status.get('msg'),
                        ansible_job_id=args['jid'])
        result = killed_module_result(dict(status['result']), args['jid'])
        result.update(finished=True, started=True, ansible_job_id=args['jid'])
        return result
