# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Run a function in a forked child process and collect its JSON result.

Each domain of a backup run works in a process of its own: its signal
handlers, its libvirt event loop and its ``qemu-img`` children (which die with
it) are its own, and a domain that is killed cannot take the others with it.
Fork before opening any libvirt connection in the parent.

This is a private module_utils: its API may change without notice.
"""

from __future__ import annotations

import json
import os
import select
import signal
import time
import traceback

from ansible_collections.virtops.libvirt.plugins.module_utils._async_job import read_json


try:
    import ctypes
    _PRCTL = ctypes.CDLL(None).prctl  # looked up before any fork
except (ImportError, OSError, AttributeError):  # pragma: no cover - not Linux
    _PRCTL = None


def parent_death_signal(signum):
    """In a child: the kernel sends ``signum`` when the parent dies (PR_SET_PDEATHSIG)."""
    if _PRCTL is not None:
        _PRCTL(1, signum)


class Child(object):
    """A forked child running ``function()``; its return value is written to ``result_file``."""

    def __init__(self, function, result_file):
        self.result_file = result_file
        self.status = None
        for path in (result_file, result_file + '.tmp', result_file + '.error'):
            if os.path.exists(path):
                os.unlink(path)
        parent = os.getpid()
        # Only the child holds the write end: it reads as closed the moment the child ends, so
        # the parent notices at once instead of at its next poll. The ends are close-on-exec:
        # the child's qemu-img does not keep it open.
        self.watch, write_end = os.pipe()
        try:
            self.pid = os.fork()
        except BaseException:
            os.close(self.watch)
            os.close(write_end)
            raise
        if self.pid == 0:  # pragma: no cover - runs in the child
            os.close(self.watch)
            self._child(function, parent)
        os.close(write_end)

    def _child(self, function, parent):
        code = 0
        try:
            # The parent's handlers (Ansible's, for instance) are not this child's.
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                signal.signal(signum, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            # a domain's process winds down (and brings its VM back) when the job dies
            parent_death_signal(signal.SIGTERM)
            if os.getppid() != parent:  # the parent died before the line above
                os.kill(os.getpid(), signal.SIGTERM)
            result = function()
            tmp = self.result_file + '.tmp'
            with open(tmp, 'w') as handle:
                json.dump(result, handle)
            os.replace(tmp, self.result_file)
        except BaseException:  # pylint: disable=broad-except
            code = 1
            try:
                with open(self.result_file + '.error', 'w') as handle:
                    handle.write(traceback.format_exc()[-4000:])
            except OSError:
                pass
        finally:
            # No atexit handlers, no cleanup of the parent's temporary directory.
            os._exit(code)  # pylint: disable=protected-access

    def poll(self):
        """True once the child has ended (``status`` is then its wait status)."""
        if self.status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid == self.pid:
                self.status = status
                self.close()
        return self.status is not None

    def result(self):
        """The function's result, or None when the child ended without one."""
        return read_json(self.result_file)

    def how_it_ended(self):
        """Why a child ended without a result, in words."""
        if self.status is None:
            return 'still running'
        if os.WIFSIGNALED(self.status):
            return 'killed by signal %d' % os.WTERMSIG(self.status)
        error = None
        if os.path.exists(self.result_file + '.error'):
            with open(self.result_file + '.error') as handle:
                error = handle.read().strip().splitlines()[-1:]
        detail = ': %s' % error[0] if error else ''
        return 'exited with status %d%s' % (os.WEXITSTATUS(self.status), detail)

    def close(self):
        """Forget the pipe (the child may still run)."""
        if self.watch is not None:
            os.close(self.watch)
            self.watch = None

    def signal(self, signum):
        if self.status is None:
            try:
                os.kill(self.pid, signum)
            except ProcessLookupError:
                pass


def wait_any(children, timeout):
    """Sleep until one of ``children`` ends, at most ``timeout`` seconds; return the ended ones.

    An ended child is reaped: its exit closes the pipe a moment before it can be waited for.
    """
    watched = {child.watch: child for child in children if child.watch is not None}
    if not watched:
        time.sleep(timeout)
        return []
    ended = []
    for fd in select.select(list(watched), [], [], timeout)[0]:
        child = watched[fd]
        for dummy in range(200):
            if child.poll():
                ended.append(child)
                break
            time.sleep(0.001)
        else:  # the pipe was closed by something else than the child's end
            child.close()
    return ended
