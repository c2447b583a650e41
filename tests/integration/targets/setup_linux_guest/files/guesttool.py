#!/usr/bin/env python
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Test-only helper: a real Linux guest (built by build-guest.sh) and its guest agent.

The guest runs under TCG (``type='qemu'``): the test hosts' /dev/kvm cannot boot a full
kernel. Its disk is a qcow2 overlay on the cached root file system, which is never written.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
import time

import libvirt
import libvirt_qemu


def _ignore(dummy_ctx, dummy_err):
    pass


libvirt.registerErrorHandler(_ignore, None)


def conn():
    return libvirt.open('qemu:///system')


def domain_xml(name, disk, guest_dir, console_log):
    return """<domain type='qemu'>
  <name>%(name)s</name>
  <memory unit='MiB'>384</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>%(dir)s/vmlinuz</kernel>
    <initrd>%(dir)s/initrd.img</initrd>
    <cmdline>root=/dev/vda rw console=ttyS0 quiet loglevel=3 systemd.show_status=false</cmdline>
  </os>
  <features><acpi/></features>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='%(disk)s'/>
      <target dev='vda' bus='virtio'/>
      <alias name='ua-vda'/>
    </disk>
    <channel type='unix'>
      <target type='virtio' name='org.qemu.guest_agent.0'/>
    </channel>
    <serial type='file'><source path='%(log)s'/></serial>
  </devices>
</domain>""" % dict(name=name, disk=disk, dir=guest_dir, log=console_log)


def cmd_create(args):
    os.makedirs(args.dir, exist_ok=True)
    os.chmod(args.dir, 0o755)
    disk = os.path.join(args.dir, 'vda.qcow2')
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b',
                    os.path.join(args.guest, 'rootfs.qcow2'), disk], check=True)
    # The serial console goes to a file, to read when the agent stays silent; a quiet boot,
    # as every character is an emulated port write under TCG.
    dom = conn().defineXML(domain_xml(args.name, disk, args.guest, os.path.join(args.dir, 'console.log')))
    dom.create()
    print(json.dumps(dict(name=args.name, disk=disk)))


def agent(dom, command, timeout=10):
    return json.loads(libvirt_qemu.qemuAgentCommand(dom, json.dumps(command), timeout, 0))


def cmd_wait_agent(args):
    dom = conn().lookupByName(args.name)
    started = time.monotonic()
    while True:
        try:
            agent(dom, {'execute': 'guest-ping'}, 2)
            break
        except libvirt.libvirtError as exc:
            if time.monotonic() - started > args.timeout:
                raise SystemExit('no answer from the guest agent of %s in %ds: %s'
                                 % (args.name, args.timeout, exc))
            time.sleep(1)
    print(json.dumps(dict(seconds=round(time.monotonic() - started, 1))))


def cmd_exec(args):
    """Run argv in the guest; with --wait, wait for it and print its rc and output."""
    dom = conn().lookupByName(args.name)
    reply = agent(dom, {'execute': 'guest-exec', 'arguments': {
        'path': args.argv[0], 'arg': args.argv[1:], 'capture-output': args.wait}})
    pid = reply['return']['pid']
    if not args.wait:
        print(json.dumps(dict(pid=pid)))
        return
    deadline = time.monotonic() + args.timeout
    while True:
        status = agent(dom, {'execute': 'guest-exec-status', 'arguments': {'pid': pid}})['return']
        if status.get('exited'):
            break
        if time.monotonic() > deadline:
            raise SystemExit('%s did not finish in %ds' % (args.argv, args.timeout))
        time.sleep(0.5)
    out = base64.b64decode(status.get('out-data', '')).decode('utf-8', 'replace')
    err = base64.b64decode(status.get('err-data', '')).decode('utf-8', 'replace')
    print(json.dumps(dict(rc=status.get('exitcode'), stdout=out, stderr=err)))
    if status.get('exitcode') != 0:
        sys.exit(1)


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest='command', required=True)
    p = sub.add_parser('create')
    p.add_argument('name')
    p.add_argument('--dir', required=True)
    p.add_argument('--guest', required=True, help='the directory build-guest.sh printed')
    p.set_defaults(func=cmd_create)
    p = sub.add_parser('wait-agent')
    p.add_argument('name')
    p.add_argument('--timeout', type=int, default=120)
    p.set_defaults(func=cmd_wait_agent)
    p = sub.add_parser('exec')
    p.add_argument('name')
    p.add_argument('--wait', action='store_true')
    p.add_argument('--timeout', type=int, default=60)
    p.add_argument('argv', nargs='+')
    p.set_defaults(func=cmd_exec)
    args = parser.parse_args()
    args.func(args)


if __name__ == '__main__':
    main()
