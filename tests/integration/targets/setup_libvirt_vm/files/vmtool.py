#!/usr/bin/env python
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Test-only helper: OS-less test VMs, guest writes and reads through HMP qemu-io.

A test VM boots only its firmware; guest I/O is simulated with QEMU's
``qemu-io`` HMP command on the disk's virtio backend, so it goes through
whatever image is the active layer, in every phase of a block job. qemu-io
prints to the domain log, where read checks are verified.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import libvirt
import libvirt_qemu

LOG_DIR = '/var/log/libvirt/qemu'
MiB = 1024 * 1024


def _ignore(dummy_ctx, dummy_err):
    pass


libvirt.registerErrorHandler(_ignore, None)


def conn():
    return libvirt.open('qemu:///system')


def image_path(directory, target, layer, fmt):
    if layer == 0:
        return os.path.join(directory, '%s.base.%s' % (target, fmt))
    return os.path.join(directory, '%s.%d.qcow2' % (target, layer))


def make_images(directory, target, fmt, size, layers):
    """A base image and ``layers - 1`` qcow2 overlays; returns the chain, active first."""
    chain = [image_path(directory, target, 0, fmt)]
    subprocess.run(['qemu-img', 'create', '-q', '-f', fmt, chain[0], size], check=True)
    for layer in range(1, layers):
        path = image_path(directory, target, layer, 'qcow2')
        # Relative backing names, as many real chains have (and keep_relative needs).
        subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-b', os.path.basename(chain[-1]),
                        '-F', 'qcow2' if layer > 1 else fmt, path], check=True)
        chain.append(path)
    return list(reversed(chain))


def domain_xml(name, disks, nic=False, uefi=False, tpm=False):
    # OVMF stops with an emulation failure on the paravirtual /dev/kvm of the test hosts: TCG.
    kind = 'kvm' if os.path.exists('/dev/kvm') and not uefi else 'qemu'
    # UEFI: OVMF (Debian `ovmf`) with a per-domain NVRAM file libvirt copies from the template.
    firmware = (
        "<loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.fd</loader>"
        "<nvram template='/usr/share/OVMF/OVMF_VARS_4M.fd'/>" if uefi else '')
    extra = ''
    if nic:
        extra += "<interface type='user'><model type='virtio'/></interface>"
    if tpm:
        extra += "<tpm model='tpm-crb'><backend type='emulator' version='2.0'/></tpm>"
    disk_xml = ''
    for disk in disks:
        fmt = 'qcow2' if len(disk['chain']) > 1 else disk['format']
        disk_xml += (
            "<disk type='file' device='disk'><driver name='qemu' type='%s'/>"
            "<source file='%s'/><target dev='%s' bus='virtio'/><alias name='ua-%s'/></disk>"
            % (fmt, disk['chain'][0], disk['target'], disk['target']))
    return (
        "<domain type='%s'><name>%s</name><memory unit='MiB'>64</memory>"
        "<os><type arch='x86_64' machine='%s'>hvm</type>%s</os>%s"
        "<devices>%s%s<serial type='pty'/></devices></domain>"
        % (kind, name, 'q35' if uefi else 'pc', firmware,
           '<features><acpi/></features>' if uefi else '', disk_xml, extra))


def cmd_create(args):
    os.makedirs(args.dir, exist_ok=True)
    os.chmod(args.dir, 0o755)
    disks = []
    for spec in args.disk:
        target, fmt, size, layers = spec.split(':')
        chain = make_images(args.dir, target, fmt, size, int(layers))
        disks.append(dict(target=target, format=fmt, chain=chain))
    for spec in args.fill or []:
        # Data written offline into one layer, before the VM starts.
        target, layer, pattern, offset, length = spec.split(':')
        fmt = [d['format'] for d in disks if d['target'] == target][0]
        path = image_path(args.dir, target, int(layer), fmt)
        subprocess.run(['qemu-io', '-f', fmt if layer == '0' else 'qcow2', '-c',
                        'write -P %s %d %d' % (pattern, int(offset) * MiB, int(length) * MiB),
                        path], check=True, capture_output=True)
    xml = domain_xml(args.name, disks, args.nic, args.uefi, args.tpm)
    c = conn()
    if args.persistent:
        dom = c.defineXML(xml)
        if not args.no_start:
            dom.create()
    else:
        dom = c.createXML(xml, 0)
    print(json.dumps(dict(name=args.name, dir=args.dir, disks=disks)))


def cmd_destroy(args):
    c = conn()
    for name in args.name:
        try:
            dom = c.lookupByName(name)
        except libvirt.libvirtError:
            continue
        if dom.isActive():
            dom.destroy()
        try:
            # NVRAM and TPM state go with the domain (a domain with NVRAM refuses flags 0).
            dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM | libvirt.VIR_DOMAIN_UNDEFINE_TPM)
        except libvirt.libvirtError:
            pass
    print(json.dumps(dict(destroyed=args.name)))


def hmp(dom, command):
    return libvirt_qemu.qemuMonitorCommand(
        dom, command, libvirt_qemu.VIR_DOMAIN_QEMU_MONITOR_COMMAND_HMP)


def qemu_io(dom, target, command):
    """Run one qemu-io command on the live disk; return what it printed to the log.

    virtlogd rotates the log at 2 MiB (renames it to ``.log.0`` and starts a new one), even
    in the middle of the command's output: read on from the file as it was before the
    command, then the new file from its start, or a read that straddles a rotation looks
    like a failed read (a lost write to the checks)."""
    log = os.path.join(LOG_DIR, '%s.log' % dom.name())
    with _open_log(log) as before:
        before.seek(0, os.SEEK_END)
        out = hmp(dom, 'qemu-io -d /machine/peripheral/ua-%s/virtio-backend "%s"' % (target, command))
        text = out
        rotated = ''
        for dummy in range(50):
            # Rotated first, then read the old file: once rotated it no longer grows, so no
            # piece of the output between the two files is missed.
            try:
                was_rotated = os.stat(log).st_ino != os.fstat(before.fileno()).st_ino
            except FileNotFoundError:
                was_rotated = True  # between the rename and the new file
            text += before.read()
            if was_rotated:
                try:
                    with open(log, errors='replace') as after:
                        rotated = after.read()
                except FileNotFoundError:
                    rotated = ''
            if _qemu_io_done(text + rotated):
                break
            time.sleep(0.1)
        return text + rotated


def _open_log(log):
    """The domain's log, opened; a moment after a rotation it may not exist yet."""
    for dummy in range(20):
        try:
            return open(log, errors='replace')
        except FileNotFoundError:
            time.sleep(0.05)
    return open(log, errors='replace')


def _qemu_io_done(text):
    return 'bytes at offset' in text or 'failed' in text.lower() or 'error' in text.lower()


def write(dom, target, pattern, offset, length):
    text = qemu_io(dom, target, 'write -P %s %d %d' % (pattern, offset, length))
    if 'wrote %d/%d bytes' % (length, length) not in text:
        raise SystemExit('write failed: %s' % text)


def read_ok(dom, target, pattern, offset, length):
    text = qemu_io(dom, target, 'read -P %s %d %d' % (pattern, offset, length))
    return 'Pattern verification failed' not in text and 'read %d/%d bytes' % (length, length) in text


def cmd_write(args):
    dom = conn().lookupByName(args.name)
    write(dom, args.target, args.pattern, args.offset * MiB, args.length * MiB)
    print(json.dumps(dict(written=True)))


def cmd_read(args):
    dom = conn().lookupByName(args.name)
    ok = read_ok(dom, args.target, args.pattern, args.offset * MiB, args.length * MiB)
    print(json.dumps(dict(match=ok)))
    if not ok and not args.no_fail:
        sys.exit(1)


def cmd_image_read(args):
    """Check a pattern in an image file (with its backing chain), offline."""
    result = subprocess.run(
        ['qemu-io', '-r', '-U', '-f', args.format, '-c',
         'read -P %s %d %d' % (args.pattern, args.offset * MiB, args.length * MiB), args.path],
        capture_output=True, text=True, check=False)
    ok = result.returncode == 0 and 'Pattern verification failed' not in result.stdout
    print(json.dumps(dict(match=ok, output=result.stdout + result.stderr)))
    if not ok and not args.no_fail:
        sys.exit(1)


def job_info(dom, target):
    return dom.blockJobInfo(target, 0) or {}


def mirror_ready(dom):
    return "ready='yes'" in dom.XMLDesc(0)


def cmd_start_commit(args):
    """Start an active commit like another process would, and leave it running."""
    dom = conn().lookupByName(args.name)
    dom.blockCommit(args.target, None, None, args.bandwidth,
                    libvirt.VIR_DOMAIN_BLOCK_COMMIT_ACTIVE)
    deadline = time.monotonic() + 60
    while args.wait_ready and not mirror_ready(dom):
        if time.monotonic() > deadline:
            raise SystemExit('job not READY after 60s')
        time.sleep(0.2)
    print(json.dumps(dict(job=job_info(dom, args.target), ready=mirror_ready(dom))))


def cmd_start_copy(args):
    """A block job of another kind (copy) that stays on the disk until aborted."""
    dom = conn().lookupByName(args.name)
    xml = "<disk type='file'><source file='%s'/><driver type='qcow2'/></disk>" % args.dest
    dom.blockCopy(args.target, xml, None, 0)
    print(json.dumps(dict(job=job_info(dom, args.target))))


def cmd_abort(args):
    dom = conn().lookupByName(args.name)
    if job_info(dom, args.target):
        dom.blockJobAbort(args.target, 0)
    print(json.dumps(dict(aborted=True)))


def cmd_hammer(args):
    """Write a new pattern to a new MiB, over and over, and record every acknowledged write.

    Stops ``--after`` writes after the disk has had a block job and that job is gone, or,
    with ``--stop-file``, after that file appears (a job may be too short to be seen);
    ``--limit`` bounds it in any case.
    """
    dom = conn().lookupByName(args.name)
    writes = []
    seen_job = False
    phases = set()
    deadline = time.monotonic() + args.limit
    index = 0
    after = args.after
    while time.monotonic() < deadline:
        info = job_info(dom, args.target)
        if info:
            seen_job = True
            phases.add('ready' if mirror_ready(dom) else 'copy')
        if (os.path.exists(args.stop_file) if args.stop_file else seen_job and not info):
            after -= 1
            if after < 0:
                break
        offset = args.first + (index % args.span)
        pattern = '0x%02x' % (0x10 + index % 0xe0)
        write(dom, args.target, pattern, offset * MiB, args.size * 1024)
        writes.append(dict(offset=offset, pattern=pattern))
        index += 1
        time.sleep(args.interval)
    with open(args.log, 'w') as handle:
        json.dump(dict(writes=writes, seen_job=seen_job, phases=sorted(phases),
                       size=args.size), handle)
    print(json.dumps(dict(count=len(writes), seen_job=seen_job, phases=sorted(phases))))


def cmd_check_hammer(args):
    """Every last write to each offset must read back from the live disk."""
    dom = conn().lookupByName(args.name)
    with open(args.log) as handle:
        data = json.load(handle)
    last = {}
    for item in data['writes']:
        last[item['offset']] = item['pattern']
    bad = [dict(offset=o, pattern=p) for o, p in sorted(last.items())
           if not read_ok(dom, args.target, p, o * MiB, data['size'] * 1024)]
    print(json.dumps(dict(checked=len(last), bad=bad, phases=data['phases'])))
    if bad:
        sys.exit(1)


def image_pattern_ok(path, fmt, pattern, offset, length):
    result = subprocess.run(
        ['qemu-io', '-r', '-U', '-f', fmt, '-c', 'read -P %s %d %d' % (pattern, offset, length), path],
        capture_output=True, text=True, check=False)
    return result.returncode == 0 and 'Pattern verification failed' not in result.stdout


def cmd_check_backup(args):
    """A backup image taken while the writer ran holds, at each offset, exactly one of the
    patterns written there (or the zeroes from before): a point-in-time state, nothing torn."""
    with open(args.log) as handle:
        data = json.load(handle)
    size = data['size'] * 1024
    candidates = {}
    for item in data['writes']:
        candidates.setdefault(item['offset'], []).append(item['pattern'])
    torn = []
    seen = 0
    for offset, patterns in sorted(candidates.items()):
        found = [p for p in ['0x00'] + list(dict.fromkeys(patterns))
                 if image_pattern_ok(args.image, args.format, p, offset * MiB, size)]
        if not found:
            torn.append(offset)
        elif found[0] != '0x00':
            seen += 1
    print(json.dumps(dict(offsets=len(candidates), with_writes=seen, torn=torn)))
    if torn:
        sys.exit(1)


def cmd_snapshots(args):
    """Snapshot metadata libvirt keeps for a domain (a NO_METADATA snapshot leaves none)."""
    dom = conn().lookupByName(args.name)
    print(json.dumps(dict(snapshots=[s.getName() for s in dom.listAllSnapshots(0)])))


def _log_line(handle, **record):
    handle.write(json.dumps(record) + '\n')
    handle.flush()
    os.fsync(handle.fileno())


def cmd_hammer_log(args):
    """Like ``hammer``, but logs every write as it happens (JSON lines), so a log survives
    whatever kills the writer, and keeps writing through libvirtd restarts.

    Each write is logged ``try`` before it is sent and ``ack`` once qemu-io confirmed it: a
    write without ``ack`` may or may not have reached the disk. The writer stops on the stop
    file, at ``--limit``, or when the domain is shut off (nothing left to write to).
    """
    deadline = time.monotonic() + args.limit
    index = 0
    dom = None
    with open(args.log, 'a') as handle:
        while time.monotonic() < deadline and not os.path.exists(args.stop_file):
            try:
                if dom is None:
                    dom = conn().lookupByName(args.name)
                if not dom.isActive():
                    _log_line(handle, event='shutoff')
                    break
            except libvirt.libvirtError:
                dom = None  # libvirtd restarting: connect again
                time.sleep(0.3)
                continue
            offset = args.first + (index % args.span)
            pattern = '0x%02x' % (0x10 + index % 0xe0)
            _log_line(handle, i=index, offset=offset, pattern=pattern, size=args.size, state='try')
            try:
                text = qemu_io(dom, args.target, 'write -P %s %d %d' % (pattern, offset * MiB,
                                                                        args.size * 1024))
            except (libvirt.libvirtError, OSError):
                text = ''
                dom = None
            if 'wrote %d/%d bytes' % (args.size * 1024, args.size * 1024) in text:
                _log_line(handle, i=index, state='ack')
            index += 1
            time.sleep(args.interval)
    print(json.dumps(dict(count=index)))


def read_write_log(path):
    """(writes in order, set of acknowledged indices) of a ``hammer-log`` log."""
    writes, acked = [], set()
    with open(path) as handle:
        for line in handle:
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a line torn by a killed writer
            if record.get('state') == 'try':
                writes.append(record)
            elif record.get('state') == 'ack':
                acked.add(record['i'])
    return writes, acked


def allowed_patterns(writes, acked, offset, cut):
    """Patterns the disk may hold at ``offset`` after the first ``cut`` writes: the last
    acknowledged one (zeroes if none), or any later unacknowledged one."""
    allowed = {'0x00'}
    for record in writes[:cut]:
        if record['offset'] != offset:
            continue
        if record['i'] in acked:
            allowed = {record['pattern']}
        else:
            allowed.add(record['pattern'])
    return allowed


def region_bytes(path, fmt, first, span):
    """The MiBs [first, first + span) of an image (with its backing chain), read offline."""
    # A sparse raw copy of the whole image (qemu-img dd cannot skip here), then a slice of it.
    with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(path))) as tmp:
        out = os.path.join(tmp, 'region.raw')
        subprocess.run(['qemu-img', 'convert', '-U', '-f', fmt, '-O', 'raw', path, out],
                       check=True, capture_output=True)
        with open(out, 'rb') as handle:
            handle.seek(first * MiB)
            return handle.read(span * MiB)


def uniform_pattern(data):
    """'0xNN' when every byte of ``data`` is NN, else None (a torn or foreign block)."""
    if data and data.count(data[:1]) == len(data):
        return '0x%02x' % data[0]
    return None


def cmd_check_writes(args):
    """Every acknowledged write of a ``hammer-log`` log reads back: the last acknowledged
    pattern of each offset (or a later unacknowledged one). Live through HMP qemu-io, or
    with ``--image`` offline from the image file (a shut-off VM)."""
    writes, acked = read_write_log(args.log)
    offsets = sorted({w['offset'] for w in writes})
    bad = []
    dom = None if args.image else conn().lookupByName(args.name)
    region = region_bytes(args.image, args.format, offsets[0], offsets[-1] - offsets[0] + 1) \
        if args.image and offsets else b''
    for offset in offsets:
        allowed = allowed_patterns(writes, acked, offset, len(writes))
        size = [w['size'] for w in writes if w['offset'] == offset][0] * 1024
        if args.image:
            start = (offset - offsets[0]) * MiB
            found = uniform_pattern(region[start:start + size])
            ok = found in allowed
        else:
            found = None
            ok = any(read_ok(dom, args.target, p, offset * MiB, size) for p in sorted(allowed))
        if not ok:
            bad.append(dict(offset=offset, allowed=sorted(allowed), found=found))
            if not args.image:  # what the guest sees there: a foreign pattern, or no answer
                bad[-1]['first_bytes'] = qemu_io(dom, args.target, 'read -v %d 16' % (offset * MiB))[-300:]
    print(json.dumps(dict(checked=len(offsets), writes=len(writes), acked=len(acked), bad=bad)))
    if bad:
        sys.exit(1)


def cmd_check_backup_log(args):
    """A backup image is one point in time of the writer: some cut ``k`` such that every
    offset holds what the first ``k`` writes left there (``hammer-log`` log, offline)."""
    writes, acked = read_write_log(args.log)
    if not writes:
        print(json.dumps(dict(writes=0, cut=None)))
        return
    first = min(w['offset'] for w in writes)
    span = max(w['offset'] for w in writes) - first + 1
    data = region_bytes(args.image, args.format, first, span)
    size = writes[0]['size'] * 1024
    found = {}
    for offset in sorted({w['offset'] for w in writes}):
        start = (offset - first) * MiB
        found[offset] = uniform_pattern(data[start:start + size])
    torn = sorted(o for o, p in found.items() if p is None)
    # Sweep the cut over the log, keeping each offset's allowed patterns up to date.
    allowed = {o: {'0x00'} for o in found}
    cuts = []
    for cut in range(len(writes) + 1):
        if cut:
            record = writes[cut - 1]
            if record['i'] in acked:
                allowed[record['offset']] = {record['pattern']}
            else:
                allowed[record['offset']].add(record['pattern'])
        if not torn and all(p in allowed[o] for o, p in found.items()):
            cuts.append(cut)
    print(json.dumps(dict(writes=len(writes), offsets=len(found), torn=torn,
                          cut=(cuts[0] if cuts else None),
                          found={str(o): p for o, p in found.items()})))
    if torn or not cuts:
        sys.exit(1)


def cmd_quit(args):
    """QEMU quits through its monitor: libvirt records a shutdown, as when the guest powers off."""
    dom = conn().lookupByName(args.name)
    try:
        hmp(dom, 'quit')
    except libvirt.libvirtError:
        pass  # the monitor closes while the command returns
    print(json.dumps(dict(quit=True)))


def cmd_start(args):
    """Start a defined, shut-off VM."""
    dom = conn().lookupByName(args.name)
    if not dom.isActive():
        dom.create()
    print(json.dumps(dict(started=True)))


def cmd_tag(args):
    """Tag a domain for backup as an operator does: the virtops metadata element, persistent."""
    dom = conn().lookupByName(args.name)
    flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG
    if dom.isActive():
        flags |= libvirt.VIR_DOMAIN_AFFECT_LIVE
    if args.tags:
        dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, '<backup tags="%s"/>' % ' '.join(args.tags),
                        'virtops', 'https://github.com/virtops/libvirt', flags)
    else:
        dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, None, None,
                        'https://github.com/virtops/libvirt', flags)
    print(json.dumps(dict(tags=args.tags)))


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest='command', required=True)
    p = sub.add_parser('create')
    p.add_argument('name')
    p.add_argument('--dir', required=True)
    p.add_argument('--disk', action='append', required=True, help='TARGET:FORMAT:SIZE:LAYERS')
    p.add_argument('--fill', action='append', help='TARGET:LAYER:PATTERN:OFFSET_MIB:LENGTH_MIB')
    p.add_argument('--persistent', action='store_true')
    p.add_argument('--no-start', action='store_true')
    p.add_argument('--nic', action='store_true', help='a user-mode network interface')
    p.add_argument('--uefi', action='store_true', help='OVMF firmware with an NVRAM file')
    p.add_argument('--tpm', action='store_true', help='an emulated TPM 2.0 (swtpm)')
    p.set_defaults(func=cmd_create)
    p = sub.add_parser('destroy')
    p.add_argument('name', nargs='+')
    p.set_defaults(func=cmd_destroy)
    for name, func in (('write', cmd_write), ('read', cmd_read)):
        p = sub.add_parser(name)
        p.add_argument('name')
        p.add_argument('target')
        p.add_argument('pattern')
        p.add_argument('offset', type=int, help='MiB')
        p.add_argument('length', type=int, help='MiB')
        p.add_argument('--no-fail', action='store_true')
        p.set_defaults(func=func)
    p = sub.add_parser('image-read')
    p.add_argument('path')
    p.add_argument('pattern')
    p.add_argument('offset', type=int, help='MiB')
    p.add_argument('length', type=int, help='MiB')
    p.add_argument('--format', default='qcow2')
    p.add_argument('--no-fail', action='store_true')
    p.set_defaults(func=cmd_image_read)
    p = sub.add_parser('start-commit')
    p.add_argument('name')
    p.add_argument('target')
    p.add_argument('--bandwidth', type=int, default=0)
    p.add_argument('--wait-ready', action='store_true')
    p.set_defaults(func=cmd_start_commit)
    p = sub.add_parser('start-copy')
    p.add_argument('name')
    p.add_argument('target')
    p.add_argument('dest')
    p.set_defaults(func=cmd_start_copy)
    p = sub.add_parser('abort')
    p.add_argument('name')
    p.add_argument('target')
    p.set_defaults(func=cmd_abort)
    p = sub.add_parser('hammer')
    p.add_argument('name')
    p.add_argument('target')
    p.add_argument('log')
    p.add_argument('--first', type=int, default=32, help='first MiB written')
    p.add_argument('--span', type=int, default=16, help='MiBs cycled through')
    p.add_argument('--size', type=int, default=64, help='KiB per write')
    p.add_argument('--interval', type=float, default=0.1)
    p.add_argument('--after', type=int, default=3, help='writes after the job is gone')
    p.add_argument('--limit', type=float, default=120)
    p.add_argument('--stop-file', help='stop once this file exists')
    p.set_defaults(func=cmd_hammer)
    p = sub.add_parser('check-hammer')
    p.add_argument('name')
    p.add_argument('target')
    p.add_argument('log')
    p.set_defaults(func=cmd_check_hammer)
    p = sub.add_parser('check-backup')
    p.add_argument('image')
    p.add_argument('log')
    p.add_argument('--format', default='qcow2')
    p.set_defaults(func=cmd_check_backup)
    p = sub.add_parser('snapshots')
    p.add_argument('name')
    p.set_defaults(func=cmd_snapshots)
    p = sub.add_parser('hammer-log')
    p.add_argument('name')
    p.add_argument('target')
    p.add_argument('log')
    p.add_argument('--stop-file', required=True)
    p.add_argument('--first', type=int, default=32, help='first MiB written')
    p.add_argument('--span', type=int, default=16, help='MiBs cycled through')
    p.add_argument('--size', type=int, default=64, help='KiB per write')
    p.add_argument('--interval', type=float, default=0.1)
    p.add_argument('--limit', type=float, default=600)
    p.set_defaults(func=cmd_hammer_log)
    p = sub.add_parser('check-writes')
    p.add_argument('name')
    p.add_argument('target')
    p.add_argument('log')
    p.add_argument('--image', help='read this image file offline instead of the live disk')
    p.add_argument('--format', default='qcow2')
    p.set_defaults(func=cmd_check_writes)
    p = sub.add_parser('check-backup-log')
    p.add_argument('image')
    p.add_argument('log')
    p.add_argument('--format', default='qcow2')
    p.set_defaults(func=cmd_check_backup_log)
    p = sub.add_parser('start')
    p.add_argument('name')
    p.set_defaults(func=cmd_start)
    p = sub.add_parser('quit')
    p.add_argument('name')
    p.set_defaults(func=cmd_quit)
    p = sub.add_parser('tag', help='set (or, without tags, remove) the backup tags of a domain')
    p.add_argument('name')
    p.add_argument('tags', nargs='*')
    p.set_defaults(func=cmd_tag)
    args = parser.parse_args()
    args.func(args)


if __name__ == '__main__':
    main()
