# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Define (and start) a domain from a backup, with its NVRAM and TPM state.

Every refusal is decided before anything is written. A domain restored earlier from the same
backup carries a marker in its metadata (backup path and digest of the definition): finding it
makes a repeated restore a no-op. A failure after the definition undoes it: the previous
definition comes back, or the new domain is undefined, and state files this run created go.

This is a private module_utils: its API may change without notice.
"""

from __future__ import annotations

import os

from ansible_collections.virtops.libvirt.plugins.module_utils._libvirt import (
    LibvirtFailure,
    error_code,
    libvirt,
    run_libvirt,
)
from ansible_collections.virtops.libvirt.plugins.module_utils import _restore_xml as rxml
from ansible_collections.virtops.libvirt.plugins.module_utils import _state_files as state


def _undefine_flags():
    # Our own state files are handled by us, never deleted by libvirt behind our back.
    return libvirt.VIR_DOMAIN_UNDEFINE_KEEP_NVRAM | getattr(libvirt, 'VIR_DOMAIN_UNDEFINE_KEEP_TPM', 0)


def plan_definition(backup_xml, original, name, images, fmt, backup_path, state_entries):
    """Pure: the XML to define and where the state files go.

    ``original`` is ``{name, uuid}`` of the backed-up domain; ``images`` maps a target to its
    restored path. Returns a dict with ``xml``, ``uuid``, ``new_identity``, ``dropped``,
    ``state`` (entries with ``dest``) and ``digest``.
    """
    new_identity = name != original['name']
    uuid = rxml.derived_uuid(original['uuid'], name) if new_identity else original['uuid']
    old_nvram = rxml.nvram_path(backup_xml)
    # A copy never shares the original's NVRAM file, even when the backup has none (libvirt
    # then makes a fresh one from the firmware's template).
    nvram_dest = os.path.join(os.path.dirname(old_nvram), '%s_VARS.fd' % name) \
        if old_nvram and new_identity else old_nvram
    tpm_dest = None
    old_tpm = rxml.tpm_state_dir(backup_xml)
    if old_tpm and any(e['kind'] == 'tpm' for e in state_entries):
        if old_tpm != state.default_tpm_dir(original['uuid']) and new_identity:
            raise rxml.RewriteError('the TPM state lives in %s, named in the definition; a copy '
                                    'under another name would share it' % old_tpm)
        tpm_dest = state.default_tpm_dir(uuid) if new_identity else old_tpm
    xml, dropped = rxml.rewrite(backup_xml, name, dict((t, (p, fmt)) for t, p in images.items()),
                                new_identity, nvram=nvram_dest, backup=backup_path)
    return dict(xml=xml, uuid=uuid, new_identity=new_identity, dropped=dropped,
                digest=rxml.marker_of(xml)['digest'], nvram=nvram_dest, tpm_dir=tpm_dest,
                state=state.targets(state_entries, nvram_dest if old_nvram else None, tpm_dest))


class DomainRestore(object):

    def __init__(self, client, plan, force=False, start=False):
        self.client = client
        self.conn = client.conn
        self.plan = plan
        self.force = force
        self.start = start

    def _lookup(self, how, key):
        try:
            return how(key)
        except libvirt.libvirtError as exc:
            if error_code(exc) == libvirt.VIR_ERR_NO_DOMAIN:
                return None
            raise LibvirtFailure('cannot look up domain %s: %s' % (key, exc))

    def run(self, name, check_mode=False):
        plan = self.plan
        existing = self._lookup(self.conn.lookupByName, name)
        same_uuid = self._lookup(self.conn.lookupByUUIDString, plan['uuid'])
        if same_uuid is not None and same_uuid.name() != name:
            raise LibvirtFailure('the UUID %s of the restored domain belongs to the domain %s; '
                                 'undefine it or restore under its name' % (plan['uuid'], same_uuid.name()),
                                 refused=True)
        up_to_date = False
        running = False
        if existing is not None:
            running = bool(run_libvirt(existing.isActive, 'cannot read the state of %s' % name))
            marker = rxml.marker_of(run_libvirt(
                lambda: existing.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE),
                'cannot read the definition of %s' % name))
            up_to_date = bool(marker) and marker['digest'] == plan['digest']
            if running and not up_to_date:
                raise LibvirtFailure('domain %s is running; a running domain is never replaced '
                                     '(shut it down first, or restore under another name)' % name,
                                     refused=True)
            if not up_to_date and not self.force:
                raise LibvirtFailure('domain %s is already defined; set restore_force to replace '
                                     'its definition (it is shut off)' % name, refused=True)
        result = dict(name=name, uuid=plan['uuid'], xml=plan['xml'], dropped_disks=plan['dropped'],
                      up_to_date=up_to_date, running=running, macs=rxml.macs(plan['xml']),
                      nvram=plan['nvram'], tpm_dir=plan['tpm_dir'])
        if running:
            # Restored from this very backup and running: its disks and state are in use.
            result.update(changed=False, action='none', state_files=[],
                          msg='%s was restored from this backup and is running; left alone' % name)
            return result
        state_todo = [item for item in plan['state'] if state.differs(item)]
        if state_todo and existing is not None and not self.force:
            raise LibvirtFailure('the state files %s of %s differ from the backup; set '
                                 'restore_force to replace them'
                                 % (', '.join(i['dest'] for i in state_todo), name), refused=True)
        foreign = [item['dest'] for item in state_todo if os.path.exists(item['dest'])
                   and existing is None and not self.force]
        if foreign:
            raise LibvirtFailure('%s exist(s) and differ(s) from the backup; set restore_force to '
                                 'replace them' % ', '.join(foreign), refused=True)
        action = 'none' if up_to_date else ('redefine' if existing is not None else 'define')
        result['state_files'] = [item['dest'] for item in state_todo]
        result['action'] = action
        will_start = self.start
        changed = action != 'none' or bool(state_todo) or will_start
        result['changed'] = changed
        if check_mode:
            result['msg'] = self._describe(name, action, state_todo, will_start)
            return result
        self._apply(name, existing, action, state_todo)
        if will_start:
            self._start(name, existing, action)
        result['running'] = will_start
        result['msg'] = self._describe(name, action, state_todo, will_start, done=True)
        return result

    def _apply(self, name, existing, action, state_todo):
        plan = self.plan
        tops = []
        if plan['tpm_dir']:
            # Missing directories of the TPM state are created below the swtpm root.
            tops.append((plan['tpm_dir'], os.path.dirname(plan['tpm_dir'])))
        self.new_files, self.new_dirs = state.put_back(state_todo, tops)
        self.previous = None
        try:
            if existing is not None and action == 'redefine':
                self.previous = run_libvirt(lambda: existing.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE),
                                            'cannot read the definition of %s' % name)
                if existing.UUIDString() != plan['uuid']:
                    run_libvirt(lambda: existing.undefineFlags(_undefine_flags()),
                                'cannot undefine %s to replace it' % name)
            if action != 'none':
                run_libvirt(lambda: self.conn.defineXML(plan['xml']), 'cannot define %s' % name)
        except BaseException:
            self._undo(name, action)
            raise

    def _start(self, name, existing, action):
        try:
            domain = self.conn.lookupByName(name)
            if not domain.isActive():
                run_libvirt(domain.create, 'cannot start %s' % name)
        except BaseException:
            self._undo(name, action)
            raise

    def _undo(self, name, action):
        try:
            if self.previous is not None:
                self.conn.defineXML(self.previous)
            elif action == 'define':
                domain = self._lookup(self.conn.lookupByName, name)
                if domain is not None:
                    if domain.isActive():
                        domain.destroy()
                    domain.undefineFlags(_undefine_flags())
        except libvirt.libvirtError:
            pass
        state.remove(self.new_files, self.new_dirs)

    @staticmethod
    def _describe(name, action, state_todo, start, done=False):
        verbs = dict(define=('would define', 'defined'), redefine=('would replace the definition of',
                                                                   'replaced the definition of'))
        parts = []
        if action in verbs:
            parts.append('%s %s' % (verbs[action][done], name))
        if state_todo:
            parts.append('%s %d state file(s)' % ('wrote' if done else 'would write', len(state_todo)))
        if start:
            parts.append('%s it' % ('started' if done else 'would start'))
        return '; '.join(parts) or '%s already matches the backup' % name
