# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fault-injection helpers: test VMs, backup runs through ansible-runner, kill points,
process discovery, and the one end-of-case check every case ends with.

Only VMs named ``vt-ft-*`` are touched. Every wait here is bounded.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import ansible_runner
import libvirt

ROOT = Path(__file__).resolve().parents[2]
VMTOOL = ROOT / 'tests/integration/targets/setup_libvirt_vm/files/vmtool.py'
PYTHON = os.environ.get('FAULTS_PYTHON', sys.executable)
COLLECTIONS = os.environ.get('ANSIBLE_COLLECTIONS_PATH', str(ROOT / '.build'))
WORK = Path(os.environ.get('FAULTS_WORKDIR', '/var/tmp/virtops-faults'))
RESULTS = Path(os.environ.get('FAULTS_RESULTS', str(ROOT / 'tests/output/faults.jsonl')))
EVIDENCE = RESULTS.parent / 'faults-evidence'
OVERLAY_SUFFIX = '.virtops-backup.qcow2'
URI = 'qemu:///system'
MiB = 1024 * 1024

# The venv's tools (ansible-playbook, qemu-img) must be found by ansible-runner.
os.environ['PATH'] = os.path.dirname(PYTHON) + os.pathsep + os.environ.get('PATH', '')


def _ignore(dummy_ctx, dummy_err):
    pass


libvirt.registerErrorHandler(_ignore, None)


class CaseFailure(AssertionError):
    pass


def wait_for(what, predicate, timeout, interval=0.1):
    """Poll ``predicate`` until it returns something truthy; CaseFailure after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise CaseFailure('timed out after %ss waiting for %s' % (timeout, what))
        time.sleep(interval)


def vmtool(*args, check=True, timeout=120):
    result = subprocess.run([PYTHON, str(VMTOOL)] + [str(a) for a in args], capture_output=True,
                            text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise CaseFailure('vmtool %s failed: %s %s' % (args[0], result.stdout[-2000:], result.stderr[-2000:]))
    return result


_CONN = []


def connect():
    """One cached connection, opened again when libvirtd went away (libvirtd cases)."""
    if _CONN:
        try:
            # isAlive() still says yes for a connection to a killed libvirtd: ask it something.
            if _CONN[0].isAlive() and _CONN[0].getLibVersion():
                return _CONN[0]
        except libvirt.libvirtError:
            pass
        _CONN.pop()
    _CONN.append(libvirt.open(URI))
    return _CONN[0]


# --- processes -----------------------------------------------------------------------------

def processes():
    """pid -> (ppid, argv, environ) of every live process."""
    found = {}
    for name in os.listdir('/proc'):
        if not name.isdigit():
            continue
        try:
            with open('/proc/%s/cmdline' % name, 'rb') as handle:
                argv = [a.decode(errors='replace') for a in handle.read().split(b'\0') if a]
            with open('/proc/%s/stat' % name) as handle:
                stat = handle.read()
            fields = stat[stat.rfind(')') + 2:].split()
            if fields[0] == 'Z':
                continue
            try:
                with open('/proc/%s/environ' % name, 'rb') as handle:
                    env = handle.read().split(b'\0')
            except OSError:
                env = []
        except (OSError, IndexError):
            continue
        found[int(name)] = (int(fields[1]), argv, env)
    return found


def alive(pid):
    try:
        with open('/proc/%d/stat' % pid) as handle:
            stat = handle.read()
    except OSError:
        return False
    return stat[stat.rfind(')') + 2:].split()[0] != 'Z'


def kill(pids, sig):
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def is_module(argv, module=None):
    """A module process (not the async_wrapper around it): runs AnsiballZ_<module>.py."""
    if any('async_wrapper' in a for a in argv):
        return False
    names = [os.path.basename(a) for a in argv[:3]]
    if module:
        return 'AnsiballZ_%s.py' % module in names
    return any(n.startswith('AnsiballZ_') for n in names)


# --- one case ------------------------------------------------------------------------------

class Case:
    """One VM, its writer, its runs and its directories. ``vt-ft-<name>``."""

    # vda: qcow2 on a backing image, 128 MiB of data; vdb: raw, 16 MiB. The writer cycles
    # through vda MiB 160..175, the commit filler goes to vda MiB 192..
    DISKS = ['vda:qcow2:256M:2', 'vdb:raw:64M:1']
    FILL = ['vda:0:0x5a:0:96', 'vda:1:0x6b:96:32', 'vdb:0:0x3c:0:16']
    WRITER_FIRST, WRITER_SPAN = 160, 16

    def __init__(self, name, rep=0):
        self.name = 'vt-ft-' + name
        self.case = name
        self.rep = rep
        self.dir = WORK / ('%s-%d' % (name, rep))
        self.images = self.dir / 'img'
        self.dest = self.dir / 'dest'
        self.fpdir = self.dir / 'fp'
        self.lockdir = self.dir / 'locks'
        self.marker = 'vt-ft-%s-%d-%d' % (name, rep, os.getpid())
        self.sources = {}
        self.uuid = None
        self.writer = None
        self.writer_log = self.dir / 'writes.jsonl'
        # Destinations other than self.dest where a run of the case may put its backup.
        self.other_dests = []
        self.stop_file = self.dir / 'stop-writer'
        self.extra = []  # (target, pattern, offset MiB, length MiB) written outside the writer
        self.mounts = []
        self.runs = []
        self.expect_running = True
        self._seq = 0

    @property
    def lock(self):
        """The lock file of the case's domain."""
        return self.lockdir / ('%s.lock' % self.uuid)

    # lifecycle
    def create(self):
        vmtool('destroy', self.name, check=False)
        self.cleanup_dirs()
        for path in (self.images, self.dest, self.fpdir, self.lockdir):
            path.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o755)
        args = ['create', self.name, '--dir', self.images, '--persistent']
        for disk in self.DISKS:
            args += ['--disk', disk]
        for fill in self.FILL:
            args += ['--fill', fill]
        out = json.loads(vmtool(*args).stdout)
        self.sources = {d['target']: d['chain'][0] for d in out['disks']}
        self.uuid = connect().lookupByName(self.name).UUIDString()

    def start_writer(self, interval=0.2, size=64, target='vda'):
        self.writer = subprocess.Popen(
            [PYTHON, str(VMTOOL), 'hammer-log', self.name, target, str(self.writer_log),
             '--stop-file', str(self.stop_file), '--first', str(self.WRITER_FIRST),
             '--span', str(self.WRITER_SPAN), '--size', str(size), '--interval', str(interval),
             '--limit', '900'],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # Some acknowledged writes before anything else happens.
        wait_for('the guest writer', lambda: self.acked_writes() >= 3, 30)

    def acked_writes(self):
        try:
            return self.writer_log.read_text().count('"ack"')
        except OSError:
            return 0

    def stop_writer(self):
        if self.writer is None:
            return
        self.stop_file.touch()
        try:
            self.writer.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.writer.kill()
            self.writer.communicate(timeout=10)

    def teardown(self):
        """Everything goes, even after a failure: runs, writer, VM, mounts, files."""
        for run in self.runs:
            run.abandon()
        self.stop_writer()
        vmtool('destroy', self.name, check=False)
        for pid, (dummy, argv, env) in processes().items():
            if self.ours(argv, env):
                kill([pid], signal.SIGKILL)
        for mount in reversed(self.mounts):
            subprocess.run(['umount', '-l', str(mount)], capture_output=True, check=False, timeout=30)
        self.cleanup_dirs()

    def cleanup_dirs(self):
        if self.dir.exists():
            shutil.rmtree(self.dir, ignore_errors=True)

    def ours(self, argv, env):
        """A process of this case's runs: marked environment, or a qemu-img on our files."""
        if ('VIRTOPS_FT_CASE=%s' % self.marker).encode() in env:
            return True
        return bool(argv) and os.path.basename(argv[0]) == 'qemu-img' and any(str(self.dir) in a for a in argv)

    # domain state
    def dom(self):
        return connect().lookupByName(self.name)

    def running(self):
        return self.dom().isActive() == 1

    def live_xml(self):
        return self.dom().XMLDesc(0)

    def on_overlay(self):
        return OVERLAY_SUFFIX in self.live_xml()

    def block_jobs(self):
        dom = self.dom()
        if not dom.isActive():
            return {}
        jobs = {}
        for target in self.sources:
            try:
                info = dom.blockJobInfo(target, 0)
            except libvirt.libvirtError:
                info = None
            if info:
                jobs[target] = info
        return jobs

    def mirror_state(self):
        """None, 'copy' (phase 1) or 'ready'."""
        xml = self.live_xml()
        if '<mirror' not in xml:
            return None
        return 'ready' if "ready='yes'" in xml else 'copy'

    # failpoints
    def arm(self, name):
        (self.fpdir / name).touch()

    def release(self, name=None):
        for path in self.fpdir.glob(name or '*'):
            if not path.name.endswith('.reached'):
                path.unlink(missing_ok=True)

    def reached(self, name):
        path = self.fpdir / (name + '.reached')
        return path.exists() and path.read_text().strip()

    # runs
    def extravars(self, **extra):
        base = dict(live_backup_domains=[self.name], live_backup_dest=str(self.dest),
                    live_backup_lock_dir=str(self.lockdir), live_backup_progress_interval=1,
                    live_backup_keep=0)
        base.update(extra)
        return base

    def next_seq(self):
        return self._seq + 1

    def run(self, extravars, label, cancel_callback=None, envvars=None, playbook=None):
        self._seq += 1
        run = Run(self, '%02d-%s' % (self._seq, label), extravars, cancel_callback, envvars, playbook)
        self.runs.append(run)
        return run

    def write_extra(self, target, pattern, offset, length):
        """A guest write outside the writer (to give a commit data), checked at the end."""
        vmtool('write', self.name, target, pattern, offset, length)
        self.extra.append((target, pattern, offset, length))

    def keep_evidence(self):
        """A failed case keeps what explains it (the teardown removes the case directory):
        the writer log, every run's output and the tail of the QEMU log. Returns the path."""
        where = EVIDENCE / ('%s-%d-%s' % (self.case, self.rep, time.strftime('%Y%m%dT%H%M%S')))
        where.mkdir(parents=True, exist_ok=True)
        if self.writer_log.exists():
            shutil.copy(self.writer_log, where / 'writes.jsonl')
        for run in self.runs:
            (where / ('run-%s.txt' % run.label)).write_text(run.stdout_tail(200000), encoding='utf-8',
                                                            errors='replace')
        for suffix in ('', '.0'):  # and the one before, in case it was just rotated
            qemu_log = Path('/var/log/libvirt/qemu/%s.log%s' % (self.name, suffix))
            if qemu_log.exists():
                with open(qemu_log, 'rb') as handle:
                    handle.seek(max(0, qemu_log.stat().st_size - 65536))
                    (where / ('qemu.log%s.tail' % suffix)).write_bytes(handle.read())
        return where

    def mount_tmpfs(self, path, size):
        path.mkdir(parents=True, exist_ok=True)
        subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=%s' % size, 'vt-ft-tmpfs', str(path)],
                       check=True, capture_output=True, timeout=30)
        self.mounts.append(path)


class Run:
    """One ansible-runner run of the backup playbook (like an AWX job)."""

    def __init__(self, case, label, extravars, cancel_callback=None, envvars=None, playbook=None):
        self.case = case
        self.label = label
        self.dir = case.dir / 'runs' / label
        (self.dir / 'project').mkdir(parents=True)
        (self.dir / 'inventory').mkdir()
        (self.dir / 'project' / 'main.yml').write_text(playbook or (
            '- name: The collection backup playbook\n  import_playbook: virtops.libvirt.backup\n'))
        (self.dir / 'inventory' / 'hosts').write_text(
            '[hypervisors]\nlocalhost ansible_connection=local ansible_python_interpreter=%s\n' % PYTHON)
        env = dict(ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, VIRTOPS_FAILPOINT_DIR=str(case.fpdir),
                   VIRTOPS_FT_CASE=case.marker, ANSIBLE_FORCE_COLOR='0', ANSIBLE_NOCOLOR='1',
                   ANSIBLE_HOST_KEY_CHECKING='0', ANSIBLE_PIPELINING='1', ANSIBLE_LOCAL_TEMP=str(self.dir / 'tmp'),
                   ANSIBLE_REMOTE_TMP=str(self.dir / 'rtmp'), ANSIBLE_ASYNC_DIR=str(self.dir / 'async'))
        env.update(envvars or {})
        self.started = time.monotonic()
        self.ended = None
        self.thread, self.runner = ansible_runner.run_async(
            private_data_dir=str(self.dir), playbook='main.yml', extravars=extravars, envvars=env,
            quiet=True, cancel_callback=cancel_callback, timeout=600,
            finished_callback=self._finished)

    def _finished(self, dummy_runner):
        self.ended = time.monotonic()  # when the run really ended, not when we looked

    def playbook_pid(self):
        """The ansible-playbook process of this run (the runner's child, in our process)."""
        for pid, (ppid, argv, dummy) in processes().items():
            if ppid == os.getpid() and any('ansible-playbook' in a for a in argv[:2]) and \
                    any(str(self.dir) in a for a in argv):
                return pid
        return None

    def done(self):
        return not self.thread.is_alive()

    def wait(self, timeout=300):
        self.thread.join(timeout)
        if self.thread.is_alive():
            raise CaseFailure('run %s still running after %ss' % (self.label, timeout))
        if self.ended is None:
            self.ended = time.monotonic()
        return self.runner.status

    def seconds(self):
        return round((self.ended or time.monotonic()) - self.started, 1)

    def abandon(self):
        if self.thread.is_alive():
            pid = self.playbook_pid()
            if pid:
                kill([pid], signal.SIGKILL)
            self.thread.join(30)

    def failures(self):
        """Messages of the failed tasks (and the run's own error)."""
        messages = []
        try:
            for event in self.runner.events:
                if event.get('event') in ('runner_on_failed', 'runner_on_unreachable'):
                    res = event.get('event_data', {}).get('res', {})
                    if event.get('event_data', {}).get('ignore_errors'):
                        continue
                    msg = res.get('msg') or res.get('stderr') or json.dumps(res)[:500]
                    messages.append('%s: %s' % (event['event_data'].get('task', '?'), msg))
        except Exception as exc:  # pylint: disable=broad-except
            messages.append('events unreadable: %s' % exc)
        return messages

    def stdout_tail(self, chars=3000):
        try:
            return self.runner.stdout.read()[-chars:]
        except Exception:  # pylint: disable=broad-except
            return ''


# --- kill points ---------------------------------------------------------------------------

def progress_percent(case):
    """Highest percent of a progress file of a running copy of this case, or None."""
    best = None
    for path in glob.glob(str(case.dest / '*' / '*.partial' / '.*.progress')):
        try:
            with open(path) as handle:
                percent = float(json.load(handle).get('percent', 0))
        except (OSError, ValueError, TypeError):
            continue
        best = percent if best is None else max(best, percent)
    return best


def qemu_img_pids(case):
    return [pid for pid, (dummy, argv, dummy_env) in processes().items()
            if argv and os.path.basename(argv[0]) == 'qemu-img' and 'convert' in argv
            and any(str(case.dir) in a for a in argv)]


def module_pids(case, module):
    return [pid for pid, (dummy, argv, env) in processes().items()
            if is_module(argv, module) and ('VIRTOPS_FT_CASE=%s' % case.marker).encode() in env]


def wait_kill_point(case, run, point, timeout=120):
    """Block until the run is at ``point``; CaseFailure if the run ends first or it never comes.

    Points: after_snapshot, before_pivot and after_pivot (failpoints, armed by the caller),
    mid_copy (the copy's qemu-img runs and its progress file is between 0 and 100 %), phase1
    (a commit job on a disk, not READY).
    """
    def check():
        if point in FAILPOINTS:
            if case.reached(point):
                return True
        elif point == 'mid_copy':
            percent = progress_percent(case)
            if percent is not None and 0 < percent < 100 and qemu_img_pids(case):
                return True
        elif point == 'phase1':
            if case.block_jobs() and case.mirror_state() == 'copy':
                return True
        if run.done():
            raise CaseFailure('kill point %s never reached: the run ended (%s) first; %s' % (
                point, run.runner.status, '; '.join(run.failures())[:800] or 'no task failed'))
        return False
    wait_for('kill point %s' % point, check, timeout, interval=0.05)
    if point == 'before_pivot' and case.mirror_state() != 'ready':
        raise CaseFailure('failpoint before_pivot reached but the mirror is %s, not READY' % case.mirror_state())
    if point == 'after_pivot':
        # The disks are committed one after the other: the first one is back on its image.
        live = case.live_xml()
        if not any(_source_of(live, target) == source for target, source in case.sources.items()):
            raise CaseFailure('failpoint after_pivot reached but no disk is back on its image')


def feed_commit(case, run, timeout=120, length=8):
    """Once the VM is on its overlay, write ``length`` MiB so phase 1 has data to commit.

    Bounded: fails when the run ends before the snapshot.
    """
    def on_overlay():
        if run.done():
            raise CaseFailure('the run ended (%s) before the VM went on its overlay: %s' % (
                run.runner.status, '; '.join(run.failures())[:800]))
        return case.on_overlay()
    wait_for('the snapshot', on_overlay, timeout, interval=0.05)
    case.write_extra('vda', '0x7c', 192, length)


# --- the end-of-case check -----------------------------------------------------------------

def _source_of(xml, target):
    import xml.etree.ElementTree as ET  # pylint: disable=import-outside-toplevel
    root = ET.fromstring(xml)
    for disk in root.findall('./devices/disk'):
        tgt = disk.find('target')
        if tgt is not None and tgt.get('dev') == target:
            src = disk.find('source')
            return None if src is None else (src.get('file') or src.get('dev'))
    return None


def lock_record(text):
    """The record at the start of a lock file, as the collection reads it (_lock.parse_record):
    a run killed while it rewrote the record leaves the tail of the old one after it."""
    return json.JSONDecoder().raw_decode(text.lstrip())[0]


def lock_state(case):
    """'free' or a description of the holder of the case's domain lock."""
    path = case.lock
    try:
        text = path.read_text().strip()
    except OSError:
        return 'free'
    if not text:
        return 'free'
    try:
        record = lock_record(text)
    except ValueError:
        return 'unreadable lock record %r' % text[:200]
    if not record.get('owner'):
        return 'free'
    if 'expires' in record:  # lease record: free once expired or its controller is gone
        controller = record.get('controller') or {}
        if time.time() >= float(record.get('expires') or 0):
            return 'free'
        if controller.get('pid') and not alive(int(controller['pid'])):
            return 'free'
        return 'held by %s' % record.get('owner')
    if record.get('pid') and alive(int(record['pid'])):  # holder-process record
        return 'held by %s (holder pid %s alive)' % (record.get('owner'), record['pid'])
    return 'free'


def leftover_processes(case, grace=10):
    """Processes of the case's runs still alive after ``grace`` seconds."""
    def left():
        return {pid: ' '.join(argv)[:200] for pid, (dummy, argv, env) in processes().items()
                if case.ours(argv, env) and pid != os.getpid()}
    deadline = time.monotonic() + grace
    found = left()
    while found and time.monotonic() < deadline:
        time.sleep(0.5)
        found = left()
    return found


def verify_backups(case):
    """Every complete backup of the case, in its destination and ``case.other_dests``:
    (problems, number of complete backups)."""
    problems = []
    complete = 0
    entries = []
    for dest in [case.dest] + case.other_dests:
        domain_dir = dest / case.name
        if domain_dir.is_dir():
            entries.extend(sorted(domain_dir.iterdir()))
    for entry in entries:
        if entry.name.endswith('.partial'):
            problems.append('incomplete backup left: %s' % entry)
            continue
        if not entry.is_dir():
            continue
        manifest_path = entry / 'manifest.json'
        if not manifest_path.exists():
            problems.append('backup directory without manifest: %s' % entry)
            continue
        try:
            manifest = json.loads(manifest_path.read_text())
        except ValueError as exc:
            problems.append('manifest unreadable %s: %s' % (manifest_path, exc))
            continue
        complete += 1
        if not manifest.get('disks'):
            problems.append('%s: manifest lists no disk' % entry.name)
        for disk in manifest.get('disks', []):
            image = entry / disk.get('file', '?')
            if OVERLAY_SUFFIX in str(disk.get('source')):
                problems.append('%s: manifest source is an overlay: %s' % (entry.name, disk.get('source')))
            if not image.exists():
                problems.append('%s: image missing: %s' % (entry.name, image))
                continue
            stat = image.stat()
            if disk.get('size') not in (stat.st_size, stat.st_blocks * 512):
                problems.append('%s: %s size %s, manifest says %s' % (
                    entry.name, image.name, stat.st_blocks * 512, disk.get('size')))
            check = subprocess.run(['qemu-img', 'check', '-f', disk.get('format', 'qcow2'), str(image)],
                                   capture_output=True, text=True, timeout=120, check=False)
            if check.returncode != 0:
                output = (check.stdout + check.stderr)[-300:]
                problems.append('%s: qemu-img check %s: %s' % (entry.name, image.name, output))
            if disk.get('target') == 'vda' and case.writer_log.exists():
                point = vmtool('check-backup-log', image, case.writer_log, '--format',
                               disk.get('format', 'qcow2'), check=False, timeout=300)
                if point.returncode != 0:
                    problems.append('%s: vda not a point-in-time state of the writer: %s' % (
                        entry.name, (point.stdout + point.stderr)[-400:]))
        fill = {'vdb': ('0x3c', 0, 16, 'raw'), 'vda': ('0x5a', 0, 96, 'qcow2')}
        for disk in manifest.get('disks', []):
            if disk.get('target') in fill:
                pattern, offset, length, dummy = fill[disk['target']]
                image = entry / disk.get('file', '?')
                if image.exists():
                    read = vmtool('image-read', image, pattern, offset, length, '--format',
                                  disk.get('format', 'qcow2'), '--no-fail', check=False)
                    if '"match": true' not in read.stdout:
                        problems.append('%s: %s lacks the data filled before the backup' % (entry.name, disk['target']))
    return problems, complete


def check_case(case, expect_running=True, expect_backup=True):
    """The end-of-case checks, the same for every case. Returns {ok, failures, ...}."""
    failures = []
    case.stop_writer()
    try:
        dom = case.dom()
    except libvirt.libvirtError as exc:
        return dict(ok=False, failures=['domain gone: %s' % exc])
    state = 'running' if dom.isActive() else 'shut off'
    if expect_running and state != 'running':
        failures.append('VM %s, expected running' % state)
    if not expect_running and state == 'running':
        failures.append('VM running, expected shut off')
    live = dom.XMLDesc(0)
    inactive = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    for target, source in case.sources.items():
        now = _source_of(live, target)
        if now != source:
            failures.append('%s on %s, not its image %s' % (target, now, source))
        persistent = _source_of(inactive, target)
        if persistent != source:
            failures.append('persistent definition: %s on %s, not %s' % (target, persistent, source))
    if '<mirror' in live:
        failures.append('a <mirror> in the live XML')
    if OVERLAY_SUFFIX in inactive:
        failures.append('an overlay in the persistent XML')
    jobs = case.block_jobs()
    if jobs:
        failures.append('block jobs left: %s' % jobs)
    overlays = glob.glob(str(case.images / ('*' + OVERLAY_SUFFIX)))
    if overlays:
        failures.append('overlay files left: %s' % overlays)
    marks = glob.glob(str(case.images / ('*' + OVERLAY_SUFFIX + '.committed')))
    if marks:
        failures.append('committed marks left: %s' % marks)
    left = leftover_processes(case)
    if left:
        failures.append('processes left: %s' % left)
    lock = lock_state(case)
    if lock != 'free':
        failures.append('lock still %s' % lock)
    # Every acknowledged write reads back: live through the guest, or from the image.
    if case.writer_log.exists():
        if dom.isActive():
            check = vmtool('check-writes', case.name, 'vda', case.writer_log, check=False, timeout=300)
        else:
            check = vmtool('check-writes', case.name, 'vda', case.writer_log, '--image',
                           case.sources['vda'], check=False, timeout=300)
        if check.returncode != 0:
            failures.append('guest writes lost: %s' % (check.stdout + check.stderr)[-600:])
    for target, pattern, offset, length in case.extra:
        if dom.isActive():
            read = vmtool('read', case.name, target, pattern, offset, length, '--no-fail', check=False)
        else:
            read = vmtool('image-read', case.sources[target], pattern, offset, length, '--format',
                          'qcow2' if target == 'vda' else 'raw', '--no-fail', check=False)
        if '"match": true' not in read.stdout:
            failures.append('write of %s MiB at %s MiB on %s lost' % (length, offset, target))
    problems, complete = verify_backups(case)
    failures.extend(problems)
    if expect_backup and not complete:
        failures.append('no complete backup')
    return dict(ok=not failures, failures=failures, state=state, backups=complete)


# --- results -------------------------------------------------------------------------------

_RESULTS_LOCK = threading.Lock()


def record(**row):
    """One JSON line per run into FAULTS_RESULTS (tests/output/faults.jsonl)."""
    row.setdefault('time', time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()))
    with _RESULTS_LOCK:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        with open(RESULTS, 'a') as handle:
            handle.write(json.dumps(row) + '\n')


# --- scenario building blocks ----------------------------------------------------------------

FAILPOINTS = ('after_snapshot', 'before_pivot', 'after_pivot')
SIGNALS = {'SIGINT': signal.SIGINT, 'SIGTERM': signal.SIGTERM, 'SIGKILL': signal.SIGKILL}


def point_extravars(case, point, **extra):
    """Throttles that make a kill point last long enough to be hit."""
    if point == 'mid_copy':
        extra.setdefault('live_backup_copy_bandwidth', 16)
    if point == 'phase1':
        extra.setdefault('live_backup_bandwidth', 1)
        # The commit must find the 8 MiB that feed_commit writes once the VM is on its overlay:
        # unthrottled, the copies can end (and the commit begin) before they land.
        extra.setdefault('live_backup_copy_bandwidth', 32)
    return case.extravars(**extra)


def start_at_point(case, point, extravars, label='faulted', cancel_callback=None):
    """Start a backup run and return it once it is at ``point``."""
    if point in FAILPOINTS:
        case.arm(point)
    run = case.run(extravars, label, cancel_callback=cancel_callback)
    if point == 'phase1':
        feed_commit(case, run)
    wait_kill_point(case, run, point)
    return run


def end_run(run, timeout, why):
    """Wait for a run to end; a run that does not end in time is a failure (then killed)."""
    try:
        return run.wait(timeout)
    except CaseFailure:
        run.abandon()
        raise CaseFailure('%s: the run did not end within %ss' % (why, timeout))


def kill_playbook(run, sig):
    pid = run.playbook_pid()
    if not pid:
        raise CaseFailure('no ansible-playbook process found for run %s' % run.label)
    kill([pid], sig)
    return [pid]


def domain_process_pids(case):
    """The processes of backup_domains that work on a domain, not the job's process that
    supervises them: the children of a process that runs the AnsiballZ_ file (forked from it),
    and the Python processes the domain's lock records as its workers. The job runs from stdin
    when the start of backup_domains is pipelined (the harness sets ANSIBLE_PIPELINING): then
    only the lock names them, as it does for a run that takes the lock over."""
    module = set(module_pids(case, 'backup_domains'))
    procs = processes()
    found = {pid for pid in module if procs.get(pid, (None,))[0] in module}
    marker = ('VIRTOPS_FT_CASE=%s' % case.marker).encode()
    for pid in lock_workers(case):
        dummy, argv, env = procs.get(pid, (None, [], []))
        if argv and os.path.basename(argv[0]) != 'qemu-img' and marker in env:
            found.add(pid)
    return sorted(found)


def lock_workers(case):
    """The pids recorded as workers in the lock of the case's domain."""
    try:
        record = lock_record(case.lock.read_text())
    except (OSError, ValueError):
        return []
    return [int(w['pid']) for w in (record.get('workers') or []) if isinstance(w, dict) and w.get('pid')]


def kill_modules(case, point, sig):
    """The process working on the domain at ``point`` (and the copy's qemu-img)."""
    module = 'backup_domains'
    pids = domain_process_pids(case)
    if point in FAILPOINTS:
        # The parked module wrote its pid; with pipelining a non-async module has no
        # AnsiballZ_ file in its argv. Only a process of this case's run is taken.
        reached = case.reached(point)
        procs = processes()
        if reached and reached.isdigit() and int(reached) in procs and \
                ('VIRTOPS_FT_CASE=%s' % case.marker).encode() in procs[int(reached)][2]:
            pids = sorted(set(pids) | {int(reached)})
    if point == 'mid_copy':
        pids += qemu_img_pids(case)
    if not pids:
        raise CaseFailure('no %s module process found at %s' % (module, point))
    kill(pids, sig)
    return pids


def rerun(case, row, extravars, timeout=300):
    """The immediate rerun of the same playbook, which must succeed."""
    case.release()
    run = case.run(extravars, 'rerun')
    status = end_run(run, timeout, 'rerun')
    row['rerun_seconds'] = run.seconds()
    row['rerun_status'] = status
    if status != 'successful':
        row['failures'].append('rerun %s: %s' % (status, '; '.join(run.failures())[:1500]
                                                 or run.stdout_tail(800)))
    return run


class Recorder:
    """Collects one case's outcome and writes its JSON line, whatever happened."""

    def __init__(self, vmcase, **row):
        self.case = vmcase
        self.row = dict(case=row.pop('case', vmcase.case), rep=vmcase.rep, failures=[],
                        rerun_seconds=None, **row)
        self.started = time.monotonic()

    def __enter__(self):
        return self.row

    def __exit__(self, exc_type, exc, tb):
        if exc is not None:
            self.row['failures'].append(str(exc) if isinstance(exc, CaseFailure) else
                                        '%s: %s' % (exc_type.__name__, exc))
        expect_backup = self.row.pop('expect_backup', True)
        if exc is None or isinstance(exc, CaseFailure):
            try:
                outcome = check_case(self.case, expect_running=self.case.expect_running,
                                     expect_backup=expect_backup)
                self.row['failures'].extend(outcome['failures'])
                self.row['state'] = outcome.get('state')
                self.row['backups'] = outcome.get('backups')
            except Exception as check_exc:  # pylint: disable=broad-except
                self.row['failures'].append('end-of-case check: %s' % check_exc)
        self.row['outcome'] = 'fail' if self.row['failures'] else 'pass'
        if self.row['failures']:
            try:
                self.row['evidence'] = str(self.case.keep_evidence())
            except Exception as keep_exc:  # pylint: disable=broad-except
                self.row['evidence'] = 'not kept: %s' % keep_exc
        self.row['seconds'] = round(time.monotonic() - self.started, 1)
        record(**self.row)
        if self.row['failures'] and (exc is None or isinstance(exc, CaseFailure)):
            raise CaseFailure('\n'.join(self.row['failures'])) from exc
        return False
