# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Bench-only callback: wall-clock start and end of every task on every host.

Enabled by bench/bench.py with ANSIBLE_CALLBACK_PLUGINS=bench/callback_plugins and
ANSIBLE_CALLBACKS_ENABLED=bench_timing; writes one JSON list to $BENCH_TIMING_FILE when the
playbook ends. Each record: host, task name, action (module), start, end (time.time()),
status, and for a task that returns backup_domains' results each domain's ``timeline`` of
steps. Not part of the collection.
"""

from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = '''
name: bench_timing
type: aggregate
short_description: per-task wall times for make bench
description: Records the start and end of every task on every host into $BENCH_TIMING_FILE.
requirements: [enable in ansible.cfg or ANSIBLE_CALLBACKS_ENABLED]
'''


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'bench_timing'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self._open = {}
        self._records = []
        self._path = os.environ.get('BENCH_TIMING_FILE')
        self._play_start = time.time()

    def _key(self, host, task):
        return (host.get_name(), task._uuid)

    def v2_playbook_on_start(self, playbook):
        self._play_start = time.time()

    def v2_runner_on_start(self, host, task):
        self._open[self._key(host, task)] = time.time()

    def _end(self, result, status):
        key = self._key(result._host, result._task)
        start = self._open.pop(key, None)
        end = time.time()
        record = dict(host=key[0], task=result._task.get_name(), action=result._task.action,
                      start=start if start is not None else end, end=end, status=status)
        # backup_domains (waited for by async_progress) reports each domain's steps itself.
        domains = result._result.get('domains')
        if isinstance(domains, list):
            record['timelines'] = [d.get('timeline') or {} for d in domains if isinstance(d, dict)]
        self._records.append(record)

    def v2_runner_on_ok(self, result):
        self._end(result, 'ok')

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._end(result, 'ignored' if ignore_errors else 'failed')

    def v2_runner_on_skipped(self, result):
        self._end(result, 'skipped')

    def v2_runner_on_unreachable(self, result):
        self._end(result, 'unreachable')

    def v2_playbook_on_stats(self, stats):
        if not self._path:
            return
        with open(self._path, 'w') as handle:
            json.dump(dict(start=self._play_start, end=time.time(), tasks=self._records), handle)
