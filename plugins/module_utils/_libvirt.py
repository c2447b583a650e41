# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Connection to libvirt shared by every module.

This is a private module_utils: its API may change without notice.
"""

from __future__ import annotations

import threading
import traceback

from ansible.module_utils.basic import missing_required_lib

try:
    import libvirt
except ImportError:
    libvirt = None
    LIBVIRT_IMPORT_ERROR = traceback.format_exc()
else:
    LIBVIRT_IMPORT_ERROR = None


CONNECTION_ARGUMENT_SPEC = dict(
    uri=dict(type='str', default='qemu:///system'),
)

_EVENT_LOOP_LOCK = threading.Lock()
_EVENT_LOOP_STARTED = False


class LibvirtFailure(Exception):
    """A failure with a message meant for the user (no traceback)."""

    def __init__(self, msg, **details):
        super(LibvirtFailure, self).__init__(msg)
        self.msg = msg
        self.details = details


def error_code(exc):
    """The libvirt error code of an exception, or None."""
    get_code = getattr(exc, 'get_error_code', None)
    return get_code() if get_code else None


def undefined_meanwhile(exc):
    """True for a LibvirtFailure saying the domain is gone (undefined since it was listed)."""
    return libvirt is not None and exc.details.get('libvirt_code') == libvirt.VIR_ERR_NO_DOMAIN


def ensure_libvirt(module):
    """Fail with Ansible's standard message when libvirt-python is missing."""
    if libvirt is None:
        module.fail_json(msg=missing_required_lib('libvirt-python'), exception=LIBVIRT_IMPORT_ERROR)


def _ignore_libvirt_error(dummy_ctx, dummy_err):
    # libvirt prints every error to stderr by default; we report them ourselves.
    pass


def _start_event_loop():
    """Start libvirt's default event loop once per process.

    It must be registered before the first connection is opened, or that
    connection never delivers events (block-job READY, for instance).
    """
    global _EVENT_LOOP_STARTED
    with _EVENT_LOOP_LOCK:
        if _EVENT_LOOP_STARTED:
            return
        libvirt.virEventRegisterDefaultImpl()

        def run():
            while True:
                libvirt.virEventRunDefaultImpl()

        thread = threading.Thread(target=run, name='libvirt-events')
        thread.daemon = True
        thread.start()
        _EVENT_LOOP_STARTED = True


class LibvirtClient(object):
    """An open connection plus domain lookup with clean failures."""

    def __init__(self, uri, events=False):
        libvirt.registerErrorHandler(_ignore_libvirt_error, None)
        if events:
            _start_event_loop()
        self.uri = uri
        try:
            self.conn = libvirt.open(uri)
        except libvirt.libvirtError as exc:
            raise LibvirtFailure('cannot connect to libvirt at %s: %s' % (uri, exc))

    def close(self):
        if self.conn is not None:
            try:
                self.conn.close()
            except libvirt.libvirtError:
                pass
            self.conn = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def domain(self, name):
        """Find a domain by name, then by UUID."""
        try:
            return self.conn.lookupByName(name)
        except libvirt.libvirtError as exc:
            if error_code(exc) != libvirt.VIR_ERR_NO_DOMAIN:
                raise LibvirtFailure('cannot look up domain %s: %s' % (name, exc))
        try:
            return self.conn.lookupByUUIDString(name)
        except libvirt.libvirtError:
            raise LibvirtFailure('domain %s not found at %s' % (name, self.uri))


def live_xml(domain):
    """The running definition, with backing chains and block-job mirrors."""
    return domain.XMLDesc(0)


def run_libvirt(action, what):
    """Call action(); turn a libvirtError into a LibvirtFailure naming what failed."""
    try:
        return action()
    except libvirt.libvirtError as exc:
        raise LibvirtFailure('%s: %s' % (what, exc), libvirt_code=error_code(exc))
