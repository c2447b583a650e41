# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Wait for an async task on the controller and print its progress while it runs.

A loop of tasks cannot print between polls without recursive includes, and
those hit Python's recursion limit after a few hundred polls (a long copy
would crash the play and skip every ``always`` section). This is one task.
"""

from __future__ import annotations

import base64
import json
import time

from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

display = Display()


def _size(num):
    for unit in ('B', 'KiB', 'MiB', 'GiB'):
        if abs(num) < 1024:
            return '%.1f %s' % (num, unit)
        num /= 1024.0
    return '%.1f TiB' % num


def progress_line(label, done, total, ready=False):
    if not total:
        return '%s: running' % label
    return '%s: %.1f%% (%s of %s)%s' % (label, 100.0 * done / total, _size(done), _size(total),
                                        ', READY' if ready else '')


class ActionModule(ActionBase):

    TRANSFERS_FILES = False
    _requires_connection = True

    def _run_module(self, name, args, task_vars):
        return self._execute_module(module_name=name, module_args=args, task_vars=task_vars)

    def _copy_progress(self, path, task_vars):
        result = self._run_module('ansible.legacy.slurp', dict(src=path), task_vars)
        if result.get('failed') or 'content' not in result:
            return 0, 0, False
        try:
            data = json.loads(base64.b64decode(result['content']).decode('utf-8'))
        except ValueError:
            return 0, 0, False
        return int(data.get('bytes_done') or 0), int(data.get('bytes_total') or 0), False

    def _commit_progress(self, args, task_vars):
        result = self._run_module('virtops.libvirt.domain_disk_info',
                                  dict(uri=args['uri'], domain=args['domain']), task_vars)
        for disk in result.get('disks') or []:
            if disk.get('target') == args['disk'] and disk.get('job'):
                job = disk['job']
                return int(job.get('cur') or 0), int(job.get('end') or 0), bool(job.get('ready'))
        return 0, 0, False

    def run(self, tmp=None, task_vars=None):
        super(ActionModule, self).run(tmp, task_vars)
        dummy, args = self.validate_argument_spec(argument_spec=dict(
            jid=dict(type='str', required=True),
            label=dict(type='str', default='job'),
            interval=dict(type='int', default=10),
            progress_file=dict(type='path'),
            uri=dict(type='str', default='qemu:///system'),
            domain=dict(type='str'),
            disk=dict(type='str'),
        ))
        async_dir = self._remote_expand_user(
            self.get_shell_option('async_dir', default='~/.ansible_async'))
        status_args = dict(jid=args['jid'], mode='status', _async_dir=async_dir)
        interval = max(1, args['interval'])
        while True:
            status = self._run_module('ansible.legacy.async_status', status_args, task_vars)
            if status.get('finished') or status.get('failed'):
                break
            time.sleep(interval)
            if args['progress_file']:
                done, total, ready = self._copy_progress(args['progress_file'], task_vars)
            elif args['domain'] and args['disk']:
                done, total, ready = self._commit_progress(args, task_vars)
            else:
                done, total, ready = 0, 0, False
            display.display(progress_line(args['label'], done, total, ready))
        if status.get('finished'):
            self._run_module('ansible.legacy.async_status',
                             dict(status_args, mode='cleanup'), task_vars)
        status['finished'] = bool(status.get('finished'))
        status['started'] = bool(status.get('started', True))
        return status
