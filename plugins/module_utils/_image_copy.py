# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Copy a disk image into a backup with ``qemu-img convert``.

The pure parts (option checks, argv, progress parsing, result shaping) are
unit-tested; :class:`ImageCopy` does the file work: ``<dest>.partial`` (mode
0600 from the start, flock'ed against a concurrent run), fsync, rename, fsync
of the directory, and removal of the partial file on any failure.

This is a private module_utils: its API may change without notice.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import re
import selectors
import signal
import subprocess
import threading
import time

from ansible_collections.virtops.libvirt.plugins.module_utils._async_job import write_progress
from ansible_collections.virtops.libvirt.plugins.module_utils._backup_store import fsync_dir
from ansible_collections.virtops.libvirt.plugins.module_utils._file_args import file_arg_errors
from ansible_collections.virtops.libvirt.plugins.module_utils._forked import parent_death_signal
from ansible_collections.virtops.libvirt.plugins.module_utils._libvirt import LibvirtFailure
from ansible_collections.virtops.libvirt.plugins.module_utils._qemu_img import backing_file

FORMATS = ('qcow2', 'raw')
COMPRESSIONS = ('none', 'zstd', 'zlib')
SPARSE_SIZE = '4k'
PARTIAL_SUFFIX = '.partial'
PROGRESS_INTERVAL = 1.0
_CHUNK = 1024 * 1024
_PROGRESS_RE = re.compile(r'\((\d+(?:\.\d+)?)/100%\)')


def option_errors(params):
    """Messages for option combinations that are refused (empty when all is fine)."""
    errors = []
    if params['compress'] != 'none' and params['format'] != 'qcow2':
        errors.append('compress: %s needs format: qcow2 (a raw image cannot be compressed)'
                      % params['compress'])
    if not params['backing_chain'] and params['format'] != 'qcow2':
        errors.append('backing_chain: false needs format: qcow2 (a raw image has no backing file)')
    if (params.get('bandwidth') or 0) < 0:
        errors.append('bandwidth must be 0 (unlimited) or more MiB/s, got %s' % params['bandwidth'])
    return errors + file_arg_errors(params)


def convert_argv(binary, src, src_format, dest, fmt, compress='none', backing=None,
                 force_share=True, bandwidth=0):
    """argv of ``qemu-img convert`` for a sparse copy with progress.

    ``backing`` is ``(path, format)`` for a shallow copy: only the data of the
    top image is copied and the copy gets that backing file. Without
    ``force_share`` qemu-img takes the image lock, so a VM cannot start on the
    image while it is copied (and a running one makes the copy fail).
    ``bandwidth`` (MiB/s, 0 unlimited) limits the reads, so production I/O is not starved.
    """
    argv = [binary, 'convert'] + (['-U'] if force_share else []) + [
        '-p', '-f', src_format, '-O', fmt, '-S', SPARSE_SIZE]
    if bandwidth:
        argv += ['-r', '%dM' % bandwidth]
    if compress != 'none':
        argv.append('-c')
        if compress == 'zstd':
            argv += ['-o', 'compression_type=zstd']
    if backing:
        argv += ['-B', backing[0], '-F', backing[1]]
    return argv + [src, dest]


def compare_args(src, src_format, dest, fmt):
    """Arguments of ``qemu-img compare`` (both images opened with force-share)."""
    return ['compare', '-U', '-f', src_format, '-F', fmt, src, dest]


class ProgressParser(object):
    """Reads the ``    (12.34/100%)\\r`` stream of ``qemu-img convert -p`` in any chunking."""

    def __init__(self):
        self.percent = None
        self._tail = ''

    def feed(self, text):
        data = self._tail + text
        end = 0
        for match in _PROGRESS_RE.finditer(data):
            self.percent = min(100.0, float(match.group(1)))
            end = match.end()
        self._tail = data[end:][-64:]
        return self.percent


def progress_record(percent, virtual_size, elapsed):
    """The JSON document of the progress file."""
    percent = float(percent or 0.0)
    return dict(percent=round(percent, 2), bytes_total=virtual_size,
                bytes_done=int(virtual_size * percent / 100), elapsed=round(elapsed, 1))


def file_facts(stat):
    """``size`` (bytes allocated on disk) and ``apparent_size`` of a stat result."""
    if stat is None:
        return dict(size=None, apparent_size=None)
    return dict(size=stat.st_blocks * 512, apparent_size=stat.st_size)


def copy_result(changed, params, src_format, virtual_size, stat=None, sha256=None,
                verified=False, duration=0.0, msg=''):
    result = dict(changed=changed, src=params['src'], dest=params['dest'], src_format=src_format,
                  format=params['format'], compress=params['compress'],
                  virtual_size=virtual_size, sha256=sha256, verified=verified,
                  duration=round(duration, 3), msg=msg)
    result.update(file_facts(stat))
    return result


def describe(params, src_format):
    what = '%s (%s) to %s (%s' % (params['src'], src_format, params['dest'], params['format'])
    if params['compress'] != 'none':
        what += ', %s-compressed' % params['compress']
    if not params['backing_chain']:
        what += ', top image only'
    return what + ')'


def die_with_parent():
    """In the child: the kernel kills qemu-img when the module is killed (SIGKILL included)."""
    parent_death_signal(signal.SIGKILL)


def run_convert(argv, on_tick=None, interval=PROGRESS_INTERVAL, pass_fds=(), on_start=None):
    """Run ``qemu-img convert -p`` from an argv list; call ``on_tick(percent)`` about every
    ``interval`` seconds. Returns ``(rc, stderr)``. The child is killed if we are interrupted."""
    parser = ProgressParser()
    errors = []
    # umask: whatever qemu-img creates is private (the partial file already is).
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, umask=0o077, pass_fds=pass_fds,
                            preexec_fn=die_with_parent)
    try:
        if on_start:
            on_start(proc.pid)
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ)
            selector.register(proc.stderr, selectors.EVENT_READ)
            while selector.get_map():
                for key, dummy in selector.select(interval):
                    data = os.read(key.fd, 65536)
                    if not data:
                        selector.unregister(key.fileobj)
                    elif key.fileobj is proc.stdout:
                        parser.feed(data.decode('ascii', 'replace'))
                    else:
                        errors.append(data)
                if on_tick:
                    on_tick(parser.percent)
        rc = proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        proc.stdout.close()
        proc.stderr.close()
    return rc, b''.join(errors).decode('utf-8', 'replace').strip()


class ProgressFile(object):
    """Rewrites a small JSON file (atomically) about once a second."""

    def __init__(self, path, virtual_size, started):
        self.path = path
        self.virtual_size = virtual_size
        self.started = started
        self.last = None

    def update(self, percent):
        now = time.monotonic()
        if self.last is not None and now - self.last < PROGRESS_INTERVAL:
            return
        self.last = now
        write_progress(self.path, progress_record(percent, self.virtual_size, now - self.started))

    def remove(self):
        for path in (self.path + '.tmp', self.path):
            _unlink(path)


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, 'rb') as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b''):
            digest.update(chunk)
    return digest.hexdigest()


class Background(object):
    """``function(*args)`` in a thread while the caller does other work; ``result()`` waits.

    The copy is written once and then only read: its fsync (disk), its sha256 (hashlib
    releases the GIL on large updates) and ``qemu-img compare`` (reading the freshly written,
    cached data on another core) run at the same time.
    """

    def __init__(self, function, *args):
        self._value = None
        self._error = None
        self._thread = threading.Thread(target=self._run, args=(function,) + args)
        self._thread.daemon = True
        self._thread.start()

    def _run(self, function, *args):
        try:
            self._value = function(*args)
        except OSError as exc:
            self._error = exc

    def result(self):
        try:
            self._thread.join()
        except BaseException:
            # interrupted: the caller must not close what the thread still uses (the fsync's fd)
            self._thread.join()
            raise
        if self._error is not None:
            raise self._error
        return self._value


def _unlink(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def open_partial(path):
    """Create (or take over a stale) partial file, mode 0600, locked against a concurrent run."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            raise LibvirtFailure('%s is locked: another copy to this destination is running' % path)
        raise
    os.fchmod(fd, 0o600)
    os.ftruncate(fd, 0)
    return fd


def _terminated(signum, dummy_frame):
    raise LibvirtFailure('interrupted by signal %d' % signum)


class ImageCopy(object):
    """One copy. ``qemu`` is a ``QemuImg`` (its ``binary`` and ``run`` are used); ``attributes``
    a ``FileAttributes`` that applies the module's mode, owner, group, SELinux context and chattr
    attributes (without it the copy stays mode 0600, owned by the module's user)."""

    def __init__(self, qemu, params, worker=None, attributes=None):
        self.qemu = qemu
        self.worker = worker
        self.attributes = attributes
        self.params = dict(params)
        self.params['src'] = os.path.abspath(params['src'])
        self.params['dest'] = os.path.abspath(params['dest'])

    def run(self, check_mode=False):
        p = self.params
        src, dest = p['src'], p['dest']
        dest_dir = os.path.dirname(dest)
        if not os.path.isdir(dest_dir):
            raise LibvirtFailure('the directory of dest, %s, does not exist; create it first '
                                 '(this module does not create directories)' % dest_dir)
        if os.path.isdir(dest):
            raise LibvirtFailure('dest %s is a directory; give the path of the copy' % dest)
        if os.path.realpath(src) == os.path.realpath(dest) or (
                os.path.exists(src) and os.path.exists(dest) and os.path.samefile(src, dest)):
            raise LibvirtFailure('src and dest are the same file: %s' % src)
        if p['progress_file'] and not os.path.isdir(os.path.dirname(os.path.abspath(p['progress_file']))):
            raise LibvirtFailure('the directory of progress_file %s does not exist' % p['progress_file'])
        if os.path.exists(dest) and not p['force']:
            return self.kept(check_mode)
        if not os.path.exists(src):
            raise LibvirtFailure('source image %s does not exist' % src)
        info = self.qemu.info(src, fmt=p['src_format'])
        src_format = p['src_format'] or info['format']
        virtual_size = info['virtual-size']
        if check_mode:
            verb = 'would replace' if os.path.exists(dest) else 'would copy'
            return copy_result(True, p, src_format, virtual_size,
                               msg='%s %s' % (verb, describe(p, src_format)))
        return self.copy(info, src_format, virtual_size)

    def kept(self, check_mode=False):
        p = self.params
        try:
            info = self.qemu.info(p['dest'], fmt=p['format'])
        except LibvirtFailure as exc:
            raise LibvirtFailure('dest %s exists but is not a readable %s image (%s); use force: '
                                 'true to replace it' % (p['dest'], p['format'], exc.msg))
        src_format = p['src_format']
        if not src_format and os.path.exists(p['src']):
            try:
                src_format = self.qemu.info(p['src'])['format']
            except (LibvirtFailure, KeyError):
                src_format = None
        result = copy_result(False, p, src_format, info.get('virtual-size'),
                             stat=os.stat(p['dest']),
                             sha256=sha256_file(p['dest']) if p['checksum'] else None,
                             msg='%s exists and was kept (force: false); nothing was copied' % p['dest'])
        # The file arguments given are the state of the kept copy too, as for any Ansible file.
        if self.attributes is not None and self.attributes.apply(p['dest']):
            result['changed'] = True
            result['msg'] += '; its mode, ownership or attributes were %s' % (
                'not as asked and would be set' if check_mode else 'set')
        return result

    def copy(self, info, src_format, virtual_size):
        p = self.params
        src, dest = p['src'], p['dest']
        partial = dest + PARTIAL_SUFFIX
        backing = None
        if not p['backing_chain']:
            backing = backing_file(info, src)
            if backing and not backing[1]:
                backing = (backing[0], self.qemu.info(backing[0])['format'])
        argv = convert_argv(self.qemu.binary, src, src_format, partial, p['format'],
                            p['compress'], backing, p.get('force_share', True),
                            p.get('bandwidth') or 0)
        started = time.monotonic()
        progress = ProgressFile(p['progress_file'], virtual_size, started) if p['progress_file'] else None
        fd = open_partial(partial)
        # In a thread of a domain's process (backup_domains), that process handles SIGTERM.
        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, _terminated) if main else None
        try:
            if progress:
                progress.update(0.0)
            # qemu-img inherits the locked fd: if we are killed, the partial file stays locked
            # for as long as an orphaned qemu-img still writes to it.
            rc, stderr = run_convert(argv, progress.update if progress else None, pass_fds=(fd,),
                                     on_start=self._started)
            if rc != 0:
                raise LibvirtFailure('qemu-img convert of %s failed (rc=%d): %s' % (src, rc, stderr),
                                     rc=rc, cmd=argv)
            # The copy is not written again: its fsync, its hash and the comparison overlap.
            syncing = Background(os.fsync, fd)
            hashing = Background(sha256_file, partial) if p['checksum'] else None
            try:
                if p['verify']:
                    self.verify(src, src_format, partial)
                if self.attributes is not None:
                    # before the rename, so the copy appears with its mode and owner at once
                    self.attributes.prepare(partial, dest)
            finally:
                # the fd is closed below: never while the fsync still uses it
                syncing.result()
            sha256 = hashing.result() if hashing else None
            stat = os.fstat(fd)
            os.rename(partial, dest)
            if self.attributes is not None:
                # chattr attributes after it: an immutable or append-only file cannot be renamed
                self.attributes.apply(dest, True)
            fsync_dir(os.path.dirname(dest))
        except BaseException:
            _unlink(partial)
            raise
        finally:
            os.close(fd)
            if progress:
                progress.remove()
            if main:
                signal.signal(signal.SIGTERM, previous)
        duration = time.monotonic() - started
        return copy_result(True, p, src_format, virtual_size, stat=stat, sha256=sha256,
                           verified=p['verify'], duration=duration,
                           msg='copied %s in %.1fs' % (describe(p, src_format), duration))

    def _started(self, pid):
        if self.worker is not None:
            self.worker.add(pid, 'qemu-img convert to %s' % self.params['dest'])

    def verify(self, src, src_format, partial):
        try:
            self.qemu.run(compare_args(src, src_format, partial, self.params['format']),
                          'qemu-img compare')
        except LibvirtFailure as exc:
            if exc.details.get('rc') == 1:
                raise LibvirtFailure('verification failed, the copy differs from %s: %s; no copy '
                                     'was kept' % (src, exc.msg), rc=1)
            raise
