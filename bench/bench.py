# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""``make bench``: the live_backup role against its peers, on VMs of its own (issue 7).

A benchmark, not a test: it asserts nothing about timings and exits non-zero only when a
contender fails (or leaves a VM on an overlay). Run it with the dev venv's Python (libvirt,
ansible) after ``make collection``; bench/render.py (matplotlib, bench/.venv) draws the plot
and writes the markdown afterwards.

Contenders, alternated within each repetition, cold cache (``sync; echo 3 >
/proc/sys/vm/drop_caches``) before each measured run, free page reporting held back where the
kernel allows it (``hold_free_memory``, bench/README.md):

- ``limit``: ``qemu-img convert -U -O qcow2`` of each VM's image (the image the snapshot
  freezes; the OS-less VMs do not write to it) and one ``sync``;
- ``virsh``: bench/virsh-backup.sh (snapshot, ``cp --sparse=always``, active commit + pivot,
  ``rm``) over the VMs, one ``sync`` at the end;
- ``virtnbdbackup``: ``virtnbdbackup -l full`` of each VM (pull-mode backup job over NBD), one
  ``sync``; its checkpoint is deleted afterwards, untimed, so every contender sees the same VM;
- ``role``: playbooks/backup.yml through ansible-playbook, uncompressed; ``role+verify+sum``
  (live_backup_verify + live_backup_checksum); ``role+zstd``; and, when the role has
  ``live_backup_parallel``, ``role par=1`` next to ``role`` (its default).

Untimed by the contenders' clock, after them: the sha256 and the ``qemu-img compare`` of the
single VM's image from memory, the least that verify + checksum add to a copy.

Environment: BENCH_QUICK=1 (1 repetition, small cases), BENCH_REPS, BENCH_BUDGET (seconds
by which further repetitions and the scale points must end, default 720, quick 230),
BENCH_PAGE_REPORTING (any value but empty or 0: leave free page reporting as it is), BENCH_WARMUP
(default 1 in full mode, 0 in quick mode: an untimed run of the limit before each repetition of
each case, its times under ``warmups`` in results.json), BENCH_NBD_MULTI_REPS (in how many
repetitions virtnbdbackup backs up the multi VMs, default 1), BENCH_RUN_TIMEOUT (bound of one
measured run, default 600, quick 300), BENCH_WORKDIR (/var/lib/virtops-bench), BENCH_OUTPUT
(bench/output), BENCH_FLOOR (run bench/ansible_floor.py first: what Ansible itself costs per task on
the local and ssh connections, with and without pipelining; default 1 in full mode, 0 in quick
mode; its results go to results.json under ``floor``, its time does not count against
BENCH_BUDGET; FLOOR_* settings pass through). Only VMs named ``vt-bn-*`` are touched; they are destroyed at the end, also
after a failure or a signal.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import libvirt
import yaml

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / 'bench'
VMTOOL = ROOT / 'tests/integration/targets/setup_libvirt_vm/files/vmtool.py'
VIRSH_SCRIPT = BENCH / 'virsh-backup.sh'
SOURCE_COLLECTIONS = Path(os.environ.get('BENCH_COLLECTIONS', str(ROOT / '.build')))
WORK = Path(os.environ.get('BENCH_WORKDIR', '/var/lib/virtops-bench'))
# A private copy of the collection, taken at the start: `make collection` of another session
# rewrites .build at any time, and one run must measure one version of the role.
COLLECTIONS = WORK / 'collections'
COLLECTION = COLLECTIONS / 'ansible_collections/virtops/libvirt'
OUT = Path(os.environ.get('BENCH_OUTPUT') or str(BENCH / 'output'))
PY = sys.executable
BINDIR = Path(PY).parent
URI = 'qemu:///system'
PREFIX = 'vt-bn-'
MiB = 1024 * 1024

QUICK = os.environ.get('BENCH_QUICK', '0') not in ('', '0')
REPS = int(os.environ.get('BENCH_REPS', '1' if QUICK else '3'))
BUDGET = float(os.environ.get('BENCH_BUDGET', '230' if QUICK else '720'))
RUN_TIMEOUT = float(os.environ.get('BENCH_RUN_TIMEOUT', '300' if QUICK else '600'))
# bench/ansible_floor.py (what Ansible itself costs per task), before the VMs: full mode, or BENCH_FLOOR=1.
FLOOR = os.environ.get('BENCH_FLOOR', '0' if QUICK else '1') not in ('', '0')
# virtnbdbackup on the 12 VMs in this many repetitions (default 1).
NBD_MULTI_REPS = int(os.environ.get('BENCH_NBD_MULTI_REPS', '1'))
# An untimed warm-up run (the limit) before each repetition of each case: default 1 in full mode.
WARMUP = os.environ.get('BENCH_WARMUP', '0' if QUICK else '1') not in ('', '0')
FLOOR_TIMEOUT = float(os.environ.get('FLOOR_BUDGET', '170')) + 1200  # its first repetition always runs
FLOOR_S = 0.0  # time it took; BENCH_BUDGET counts it too, so the whole run stays under 15 minutes

if QUICK:
    SINGLE = dict(disk='2G', data_mib=512)
    MULTI = dict(count=3, disk='1G', data_mib=256)
    SCALE = [1]
else:
    SINGLE = dict(disk='8G', data_mib=2048)
    MULTI = dict(count=12, disk='2G', data_mib=1024)
    SCALE = [1, 4]
COMMIT = dict(disks=['1G', '64G'], write_mib=64)

os.environ['PATH'] = str(BINDIR) + os.pathsep + os.environ.get('PATH', '')


def _ignore(dummy_ctx, dummy_err):
    pass


libvirt.registerErrorHandler(_ignore, None)
libvirt.virEventRegisterDefaultImpl()


def log(msg):
    print('[bench %6.1fs] %s' % (time.monotonic() - T0, msg), flush=True)


T0 = time.monotonic()
CHILDREN = set()


class ContenderError(Exception):
    pass


# --- processes --------------------------------------------------------------------------------

def run(argv, timeout=120, check=True, env=None):
    """Untimed helper command (setup, cleanup)."""
    result = subprocess.run([str(a) for a in argv], capture_output=True, text=True,
                            timeout=timeout, check=False, env=env)
    if check and result.returncode != 0:
        raise ContenderError('%s failed (rc=%d): %s' % (
            ' '.join(str(a) for a in argv[:3]), result.returncode, (result.stdout + result.stderr)[-1500:]))
    return result


def timed(argv, timeout=None, env=None, cwd=None):
    """Run one measured command in its own session; killed (group) when it exceeds timeout."""
    timeout = timeout or RUN_TIMEOUT
    start = time.monotonic()
    proc = subprocess.Popen([str(a) for a in argv], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env, cwd=cwd, start_new_session=True)
    CHILDREN.add(proc)
    try:
        out, dummy = proc.communicate(timeout=timeout)
        rc = proc.returncode
    except subprocess.TimeoutExpired:
        stop_group(proc)
        out, dummy = proc.communicate(timeout=15)
        rc = 'timeout after %ds' % timeout
    finally:
        CHILDREN.discard(proc)
    return time.monotonic() - start, rc, out or ''


def stop_group(proc):
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=10)
            return
        except subprocess.TimeoutExpired:
            continue


def reap_strays():
    """Processes left by our runs (async module jobs, qemu-img) that still use our work dir."""
    mine = str(WORK)
    for name in os.listdir('/proc'):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open('/proc/%s/cmdline' % name, 'rb') as handle:
                argv = handle.read().decode(errors='replace')
        except OSError:
            continue
        if mine in argv and 'qemu-system' not in argv:
            try:
                os.kill(int(name), signal.SIGTERM)
            except OSError:
                pass


def why(out):
    """The error lines of a command's output, else its end."""
    lines = [line.strip() for line in out.splitlines()
             if re.search(r'\bERROR\b|error:|fatal:|FAILED!|Traceback', line)]
    return ' / '.join(lines)[-1500:] if lines else out[-1200:]


def drop_caches():
    os.sync()
    with open('/proc/sys/vm/drop_caches', 'w') as handle:
        handle.write('3\n')


# A VM that hands its free memory back to its host (free page reporting, virtio-balloon) makes
# page cache written ~1 s after drop_caches several times dearer: its pages are faulted in from
# the host again. The same 2 GiB convert took 0.7 s at once and 2.7 s after a 2 s pause (five
# times the kernel time), so a contender that starts its copy after a second of start-up paid
# for it and one that copies at once did not. The kernel of such a VM may let us hold the
# freed memory back for the bench, as a hypervisor's own memory is: then 0.72-0.79 s either way
# in that series; later series still show a smaller cost of a later start (bench/start_delay.py).
PAGE_REPORTING = Path('/sys/module/page_reporting/parameters')
HOLD_FREE_MEMORY = dict(min_free_ms='60000', max_waiting_mib='1048576')
# The values to put back, kept until they are: a run that was SIGKILLed leaves them for the next.
HELD_FILE = WORK / 'page-reporting.json'


def can_hold_free_memory():
    return all((PAGE_REPORTING / name).exists() for name in HOLD_FREE_MEMORY)


def hold_free_memory():
    """Defer free page reporting during the run (where this kernel has the two parameters); the
    earlier values, to put back with ``release_free_memory``, or {} when there is nothing to do."""
    if HELD_FILE.exists():
        log('putting back the page reporting parameters an earlier run left held')
        release_free_memory(json.loads(HELD_FILE.read_text()))
    if os.environ.get('BENCH_PAGE_REPORTING', '0') not in ('', '0') or not can_hold_free_memory():
        return {}
    saved = dict((name, (PAGE_REPORTING / name).read_text().strip()) for name in HOLD_FREE_MEMORY)
    HELD_FILE.write_text(json.dumps(saved))
    for name, value in HOLD_FREE_MEMORY.items():
        try:
            (PAGE_REPORTING / name).write_text(value)
        except OSError as exc:
            log('could not hold back page reporting (%s=%s): %s' % (name, value, exc))
            release_free_memory(saved)
            return {}
    return saved


def release_free_memory(saved):
    failed = False
    for name, value in saved.items():
        try:
            (PAGE_REPORTING / name).write_text(value)
        except OSError as exc:
            failed = True
            log('could not put back %s=%s: %s' % (PAGE_REPORTING / name, value, exc))
    if not failed:
        HELD_FILE.unlink(missing_ok=True)


# --- VMs ------------------------------------------------------------------------------------

class VM:
    def __init__(self, name, image):
        self.name = name
        self.image = image


def conn():
    if not hasattr(conn, 'c') or not conn.c.isAlive():
        conn.c = libvirt.open(URI)
    return conn.c


def vmtool(*args, timeout=300):
    return run([PY, VMTOOL] + list(args), timeout=timeout)


def our_domains():
    try:
        return [d.name() for d in conn().listAllDomains() if d.name().startswith(PREFIX)]
    except libvirt.libvirtError:
        return []


def make_data_file(mib):
    """Half random, half text, 1 MiB each: compressible like real disks, never all zero."""
    path = WORK / ('data-%d.bin' % mib)
    if path.exists() and path.stat().st_size == mib * MiB:
        return path
    text = (b'virtops bench: a line of ordinary, compressible text in a guest file system.\n' * 14000)[:MiB]
    with open(path, 'wb') as handle:
        for index in range(mib):
            handle.write(os.urandom(MiB) if index % 2 == 0 else text)
    return path


def make_vm(name, disk, data_mib):
    directory = WORK / name
    shutil.rmtree(directory, ignore_errors=True)
    out = vmtool('create', name, '--dir', directory, '--disk', 'vda:qcow2:%s:1' % disk,
                 '--persistent', '--no-start')
    image = json.loads(out.stdout)['disks'][0]['chain'][0]
    write_data(image, data_mib)
    conn().lookupByName(name).create()
    return VM(name, image)


def write_data(image, data_mib):
    """``data_mib`` MiB of the bench's data from the start of a qcow2 image (offline, qemu-io)."""
    if not data_mib:
        return
    chunk = min(data_mib, 1024)
    data = make_data_file(chunk)
    for offset in range(0, data_mib, chunk):
        run(['qemu-io', '-f', 'qcow2', '-c', 'write -q -s %s %dM %dM' % (
            data, offset, min(chunk, data_mib - offset)), image], timeout=300)


def active_source(dom, target='vda'):
    root = ET.fromstring(dom.XMLDesc(0))
    for disk in root.findall('./devices/disk'):
        tgt = disk.find('target')
        if tgt is not None and tgt.get('dev') == target:
            src = disk.find('source')
            mirror = disk.find('mirror')
            return (src.get('file') if src is not None else None,
                    mirror is not None and mirror.get('ready') == 'yes')
    return None, False


def restore(vm):
    """Put a VM back on its own image if a contender left it on an overlay; True if it had to."""
    dom = conn().lookupByName(vm.name)
    if not dom.isActive():
        dom.create()
        return True
    src, dummy = active_source(dom)
    if src == vm.image:
        return False
    if not dom.blockJobInfo('vda', 0):
        dom.blockCommit('vda', None, None, 0, libvirt.VIR_DOMAIN_BLOCK_COMMIT_ACTIVE)
    deadline = time.monotonic() + 120
    while not active_source(dom)[1]:
        if time.monotonic() > deadline:
            raise ContenderError('%s: cleanup commit not READY after 120s' % vm.name)
        time.sleep(0.1)
    dom.blockJobAbort('vda', libvirt.VIR_DOMAIN_BLOCK_JOB_ABORT_PIVOT)
    deadline = time.monotonic() + 30
    while active_source(dom)[0] != vm.image and time.monotonic() < deadline:
        time.sleep(0.1)
    if src and src != vm.image and os.path.exists(src):
        os.unlink(src)
    return True


def snapshot(vm, overlay):
    xml = ("<domainsnapshot><disks><disk name='vda' snapshot='external'><source file='%s'/>"
           "</disk></disks></domainsnapshot>" % overlay)
    flags = (libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY | libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_ATOMIC
             | libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_NO_METADATA)
    conn().lookupByName(vm.name).snapshotCreateXML(xml, flags)


def delete_checkpoints(vm):
    dom = conn().lookupByName(vm.name)
    for checkpoint in dom.listAllCheckpoints(0):
        checkpoint.delete(0)


# --- observation: block-job events and the overlay ------------------------------------------

class Monitor:
    """Block-job events (READY, COMPLETED) and a 50 ms poll of each VM's active image."""

    def __init__(self):
        self.events = []
        self.errors = []
        self.vms = []
        self.on = {}
        self.intervals = {}
        self.lock = threading.Lock()
        self.stop = False
        self.c = None
        self._connect()
        libvirt.virEventAddTimeout(100, lambda *a: None, None)
        threading.Thread(target=self._loop, daemon=True).start()
        threading.Thread(target=self._poll, daemon=True).start()

    def _connect(self):
        """(Re)open the monitor's connection: the fault suite of another session restarts
        libvirtd, which silently ends a connection and its event registration."""
        try:
            if self.c is not None and self.c.isAlive():
                return True
        except libvirt.libvirtError:
            pass
        try:
            self.c = libvirt.open(URI)
            self.c.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_BLOCK_JOB_2, self._event, None)
            return True
        except libvirt.libvirtError as exc:
            self.errors.append('connect: %s' % exc)
            return False

    def _loop(self):
        while not self.stop:
            libvirt.virEventRunDefaultImpl()

    def _event(self, dummy_conn, dom, disk, kind, status, dummy_opaque):
        with self.lock:
            self.events.append((time.monotonic(), dom.name(), kind, status))

    def _poll(self):
        while not self.stop:
            with self.lock:
                vms = list(self.vms)
            if vms and not self._connect():
                time.sleep(0.5)
                continue
            for vm in vms:
                try:
                    src, dummy = active_source(self.c.lookupByName(vm.name))
                except Exception as exc:  # pylint: disable=broad-exception-caught
                    # Keep polling whatever happens; say so in the results.
                    self.errors.append('%s: %s' % (vm.name, exc))
                    continue
                now = time.monotonic()
                with self.lock:
                    if src != vm.image and vm.name not in self.on:
                        self.on[vm.name] = now
                    elif src == vm.image and vm.name in self.on:
                        self.intervals.setdefault(vm.name, []).append(now - self.on.pop(vm.name))
            time.sleep(0.05)

    def begin(self, vms):
        with self.lock:
            self.vms = list(vms)
            self.events = []
            self.on = {}
            self.intervals = {}

    def end(self):
        time.sleep(0.15)  # one more poll and the last events
        with self.lock:
            vms, self.vms = self.vms, []
            events, intervals = list(self.events), dict(self.intervals)
        pivot = []
        # Only our VMs: other sessions' VMs on this host have block jobs too.
        for name in sorted({e[1] for e in events} & {vm.name for vm in vms}):
            ready = None
            for when, dom, kind, status in events:
                if dom != name or kind != libvirt.VIR_DOMAIN_BLOCK_JOB_TYPE_ACTIVE_COMMIT:
                    continue
                if status == libvirt.VIR_DOMAIN_BLOCK_JOB_READY:
                    ready = when
                elif status == libvirt.VIR_DOMAIN_BLOCK_JOB_COMPLETED and ready is not None:
                    pivot.append(when - ready)
                    ready = None
        overlay = [round(v, 3) for name in sorted(intervals) for v in intervals[name]]
        result = dict(overlay_s=overlay, pivot_delay_s=[round(v, 4) for v in pivot])
        with self.lock:
            if self.errors:
                result['monitor_errors'] = self.errors[-3:]
                self.errors = []
        return result


# --- contenders -------------------------------------------------------------------------------

def dest_dir(label):
    path = WORK / 'dest' / re.sub(r'[^A-Za-z0-9_.=+-]', '_', label)
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def c_limit(vms, dest, dummy_variant):
    start = time.monotonic()
    for vm in vms:
        seconds, rc, out = timed(['qemu-img', 'convert', '-U', '-f', 'qcow2', '-O', 'qcow2', vm.image,
                                  dest / ('%s.qcow2' % vm.name)])
        if rc != 0:
            raise ContenderError('qemu-img convert of %s: rc=%s %s' % (vm.name, rc, why(out)))
    os.sync()
    return dict(seconds=time.monotonic() - start)


def c_virsh(vms, dest, dummy_variant):
    seconds, rc, out = timed(['bash', VIRSH_SCRIPT, 'backup', dest] + ['%s=%s' % (vm.name, vm.image) for vm in vms])
    if rc != 0:
        raise ContenderError('virsh script: rc=%s %s' % (rc, why(out)))
    return dict(seconds=seconds)


def c_nbd(vms, dest, dummy_variant):
    start = time.monotonic()
    try:
        for vm in vms:
            # Its NBD socket and scratch files stay in /var/tmp (the default): QEMU, which binds
            # the socket, runs as libvirt-qemu and cannot write into our root-owned work dir.
            seconds, rc, out = timed(['virtnbdbackup', '-d', vm.name, '-l', 'full', '-o', dest / vm.name, '-n'])
            if rc != 0:
                raise ContenderError('virtnbdbackup %s: rc=%s %s' % (vm.name, rc, why(out)))
        os.sync()
        return dict(seconds=time.monotonic() - start)
    finally:
        for vm in vms:
            try:
                delete_checkpoints(vm)
            except libvirt.libvirtError:
                pass


def parse_timing(path, wall, n_vms, launched):
    """Phase split from the bench_timing callback: union of task intervals per phase."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    phases = dict(snapshot=[], copy=[], commit=[])
    for rec in data['tasks']:
        # backup_domains: the steps of each domain, as the job timed them
        for timeline in rec.get('timelines') or []:
            for phase in phases:
                if phase in timeline:
                    phases[phase].append(tuple(timeline[phase]))
        if 'timelines' in rec:
            continue
        action = rec['action'].split('.')[-1]
        name = rec['task'].lower()
        if action == 'disk_snapshot':
            phase = 'snapshot'
        elif action == 'image_copy' or (action in ('async_progress', 'async_status') and 'copy' in name):
            phase = 'copy'
        elif action == 'blockcommit' or (action in ('async_progress', 'async_status') and 'commit' in name):
            phase = 'commit'
        else:
            continue
        phases[phase].append((rec['start'], rec['end']))

    def union(intervals):
        total, last = 0.0, None
        for start, end in sorted(intervals):
            if last is None or start > last:
                total += end - start
                last = end
            elif end > last:
                total += end - last
                last = end
        return total

    split = {k: round(union(v), 3) for k, v in phases.items()}
    busy = union([i for v in phases.values() for i in v])
    split['other'] = round(max(wall - busy, 0.0), 3)
    split['tasks_per_vm'] = round(len(data['tasks']) / max(n_vms, 1), 1)
    # From the launch of ansible-playbook to the start of its first task.
    split['startup'] = round(min([r['start'] for r in data['tasks']] or [data['start']]) - launched, 3)
    return split


def role_run(label, vms, dest, variant):
    rundir = WORK / 'runs' / ('%s-%d' % (re.sub(r'[^A-Za-z0-9_.=+-]', '_', label), int(time.time() * 1000)))
    rundir.mkdir(parents=True)
    (rundir / 'inventory').write_text(
        '[hypervisors]\nlocalhost ansible_connection=local ansible_python_interpreter=%s\n' % PY)
    (rundir / 'main.yml').write_text(
        '- name: The collection backup playbook\n  import_playbook: virtops.libvirt.backup\n')
    extravars = dict(live_backup_domains=[vm.name for vm in vms], live_backup_dest=str(dest),
                     live_backup_lock_dir=str(WORK / 'locks'), live_backup_keep=0)
    extravars.update(variant)
    (rundir / 'vars.json').write_text(json.dumps(extravars))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS), ANSIBLE_NOCOLOR='1',
               ANSIBLE_FORCE_COLOR='0', ANSIBLE_CALLBACK_PLUGINS=str(BENCH / 'callback_plugins'),
               ANSIBLE_CALLBACKS_ENABLED='bench_timing', BENCH_TIMING_FILE=str(rundir / 'timing.json'),
               ANSIBLE_LOCAL_TEMP=str(rundir / 'tmp'), ANSIBLE_ASYNC_DIR=str(rundir / 'async'),
               ANSIBLE_RETRY_FILES_ENABLED='0')
    launched = time.time()
    seconds, rc, out = timed([BINDIR / 'ansible-playbook', '-i', rundir / 'inventory', rundir / 'main.yml',
                              '-e', '@%s' % (rundir / 'vars.json')], env=env, cwd=rundir)
    (rundir / 'output.txt').write_text(out)
    if rc != 0:
        raise ContenderError('%s: ansible-playbook rc=%s: %s (whole output: %s)' % (
            label, rc, why(out), rundir / 'output.txt'))
    return dict(seconds=seconds, phases=parse_timing(rundir / 'timing.json', seconds, len(vms), launched))


def parallel_default(collection):
    """live_backup_parallel from the role's defaults (as built by `make collection`), or None."""
    path = collection / 'roles/live_backup/defaults/main.yml'
    try:
        defaults = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return None
    value = defaults.get('live_backup_parallel')
    return value if isinstance(value, int) else None


PAR = None  # set in main()


def contenders(case, rep=0):
    base = [('limit', c_limit, None), ('virsh', c_virsh, None)]
    if case == 'single':
        return base + [('virtnbdbackup', c_nbd, None), ('role', role_run, {}),
                       ('role+verify+sum', role_run, dict(live_backup_verify=True, live_backup_checksum=True)),
                       ('role+zstd', role_run, dict(live_backup_compress='zstd'))]
    roles = [('role', role_run, {})]
    if PAR is not None and PAR != 1:
        roles.append(('role par=1', role_run, dict(live_backup_parallel=1)))
    if case == 'multi':
        # virtnbdbackup of 12 VMs takes over a minute and no target compares it there: once.
        return base + ([('virtnbdbackup', c_nbd, None)] if rep < NBD_MULTI_REPS else []) + roles
    return [('virsh', c_virsh, None)] + roles  # scale points


# --- the run ----------------------------------------------------------------------------------

RESULTS = dict(runs=[], skipped=[], notes=[], warmups=[])
MONITOR = None


def measure(case, label, func, variant, vms, rep):
    dest = dest_dir(label)
    drop_caches()
    MONITOR.begin(vms)
    record = dict(case=case, contender=label, rep=rep, n_vms=len(vms))
    started = time.monotonic()
    try:
        if func is role_run:
            record.update(func(label, vms, dest, variant))
        else:
            record.update(func(vms, dest, variant))
    except (ContenderError, libvirt.libvirtError, subprocess.SubprocessError, OSError) as exc:
        record['error'] = str(exc)[-3000:]
        record['seconds'] = time.monotonic() - started
    record.update(MONITOR.end())
    for vm in vms:
        try:
            if restore(vm):
                record.setdefault('error', '%s left %s on an overlay (restored by the bench)' % (label, vm.name))
        except (ContenderError, libvirt.libvirtError) as exc:
            record.setdefault('error', 'cleanup of %s failed: %s' % (vm.name, exc))
    shutil.rmtree(dest, ignore_errors=True)
    record['seconds'] = round(record['seconds'], 3)
    RESULTS['runs'].append(record)
    error = '  ERROR: ' + record['error'].splitlines()[0][:200] if 'error' in record else ''
    log('%-7s %-16s rep %d  %6.2fs%s' % (case, label, rep, record['seconds'], error))
    return record


def commit_case(vm, rep, label):
    """Snapshot, 64 MiB of guest writes into the overlay, then only the commit + pivot is timed."""
    overlay = vm.image + '.bench-commit.qcow2'
    snapshot(vm, overlay)
    vmtool('write', vm.name, 'vda', '0xcd', '8', str(COMMIT['write_mib']))
    drop_caches()
    MONITOR.begin([vm])
    record = dict(case='commit-%s' % vm.disk, contender=label, rep=rep, n_vms=1)
    if label == 'virsh':
        seconds, rc, out = timed(['bash', VIRSH_SCRIPT, 'commit', vm.name, overlay])
    else:
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS), ANSIBLE_LOAD_CALLBACK_PLUGINS='1',
                   ANSIBLE_STDOUT_CALLBACK='minimal', ANSIBLE_NOCOLOR='1')
        seconds, rc, out = timed([BINDIR / 'ansible', 'localhost', '-i', 'localhost,', '-c', 'local',
                                  '-e', 'ansible_python_interpreter=%s' % PY, '-m', 'virtops.libvirt.blockcommit',
                                  '-a', 'domain=%s disk=vda top=%s active=true finish=pivot delete=true' % (
                                      vm.name, overlay)], env=env)
        try:
            # minimal callback: "localhost | CHANGED => {...}"
            res = json.loads(out[out.index('{'):out.rindex('}') + 1])
            record['module_elapsed'] = round(res['elapsed'], 3)
        except (ValueError, KeyError, IndexError):
            pass
    record['seconds'] = round(seconds, 3)
    if rc != 0:
        record['error'] = 'rc=%s %s' % (rc, why(out))
    record.update(MONITOR.end())
    try:
        if restore(vm):
            record.setdefault('error', '%s left %s on an overlay' % (label, vm.name))
    except (ContenderError, libvirt.libvirtError) as exc:
        record.setdefault('error', 'cleanup failed: %s' % exc)
    if os.path.exists(overlay):
        os.unlink(overlay)
    RESULTS['runs'].append(record)
    module = '  (module %.2fs)' % record['module_elapsed'] if 'module_elapsed' in record else ''
    error = '  ERROR: ' + record['error'][:200] if 'error' in record else ''
    log('%-12s %-8s rep %d  %6.2fs%s%s' % (record['case'], label, rep, seconds, module, error))


def verify_floor(vm, reps=3):
    """What verify + checksum cost at least: the sha256 (hashlib, the role's Python) and the
    ``qemu-img compare`` of one image read from memory, medians. Both read a finished copy, so
    in the role they start when its ``qemu-img convert`` ends (and run at the same time)."""
    path = Path(vm.image)
    with open(path, 'rb') as handle:  # into the page cache, as a copy just written is
        while handle.read(4 * MiB):
            pass
    hashing, comparing = [], []
    for dummy in range(reps):
        seconds, rc, out = timed([PY, '-c', 'import hashlib, sys\n'
                                  'h = hashlib.sha256()\n'
                                  'with open(sys.argv[1], "rb") as f:\n'
                                  '    for c in iter(lambda: f.read(1 << 20), b""):\n'
                                  '        h.update(c)\n', path], timeout=120)
        if rc != 0:
            return dict(error='sha256: rc=%s %s' % (rc, why(out)))
        hashing.append(seconds)
        seconds, rc, out = timed(['qemu-img', 'compare', '-U', '-f', 'qcow2', '-F', 'qcow2', path, path],
                                 timeout=120)
        if rc != 0:
            return dict(error='qemu-img compare: rc=%s %s' % (rc, why(out)))
        comparing.append(seconds)
    size = path.stat().st_size
    result = dict(bytes=size, sha256_s=round(statistics.median(hashing), 3),
                  compare_s=round(statistics.median(comparing), 3))
    result['sha256_gb_s'] = round(size / result['sha256_s'] / 1e9, 2)
    log('verify floor: sha256 of %d MiB from memory %.2fs (%.2f GB/s), qemu-img compare %.2fs' % (
        size // MiB, result['sha256_s'], result['sha256_gb_s'], result['compare_s']))
    return result


def rotate(items, rep):
    shift = rep % len(items)
    return items[shift:] + items[:shift]


def fits(estimate):
    return time.monotonic() - T0 + estimate < BUDGET


def floor():
    """bench/ansible_floor.py against the private collection copy; its floor.json under RESULTS['floor'].

    Its output (progress, table) goes straight to ours. Returns False when it failed."""
    global FLOOR_S
    start = time.monotonic()
    path = OUT / 'floor.json'
    path.unlink(missing_ok=True)
    env = dict(os.environ, BENCH_COLLECTIONS=str(COLLECTIONS), BENCH_WORKDIR=str(WORK), BENCH_OUTPUT=str(OUT))
    # Within make bench's 15 minutes: 10 tasks per play and one repetition unless asked for more.
    env.setdefault('FLOOR_TASKS', '10')
    env.setdefault('FLOOR_BUDGET', '60')
    log('ansible_floor.py: what Ansible itself costs per task (local, ssh; pipelining)')
    proc = subprocess.Popen([PY, BENCH / 'ansible_floor.py'], stdin=subprocess.DEVNULL, env=env,
                            start_new_session=True)
    CHILDREN.add(proc)
    try:
        rc = proc.wait(timeout=FLOOR_TIMEOUT)
    except subprocess.TimeoutExpired:
        stop_group(proc)
        rc = 'timeout after %ds' % FLOOR_TIMEOUT
    finally:
        CHILDREN.discard(proc)
        FLOOR_S = time.monotonic() - start
    try:
        RESULTS['floor'] = json.loads(path.read_text())
    except (OSError, ValueError):
        RESULTS['floor'] = dict(error='no %s' % path)
    if rc != 0:
        RESULTS['floor'].setdefault('error', 'ansible_floor.py rc=%s' % rc)
        RESULTS['notes'].append('ansible_floor.py failed (rc=%s): %s' % (rc, RESULTS['floor']['error']))
        return False
    return True


def warm_up(case, vms, rep):
    """Untimed, before the contenders of one repetition of a case: the limit's copy of the
    same images, after ``drop_caches`` as for a measured run. The first run of a case after
    other cases was slow in every full run so far, whichever contender it was
    (docs/performance.md); this run takes that place, and its time is kept to show it."""
    dest = dest_dir('warm-up')
    drop_caches()
    try:
        seconds = c_limit(vms, dest, None)['seconds']
    except (ContenderError, subprocess.SubprocessError, OSError) as exc:
        seconds = None
        RESULTS['notes'].append('warm-up of %s rep %d failed: %s' % (case, rep, str(exc)[:200]))
    shutil.rmtree(dest, ignore_errors=True)
    RESULTS['warmups'].append(dict(case=case, rep=rep, seconds=round(seconds, 3) if seconds else None))
    log('%-7s %-16s rep %d  %6s (untimed warm-up)' % (case, 'limit', rep, '%.2fs' % seconds if seconds else '-'))


def rep_of(case, vms, rep):
    """One repetition of a case; its time without the contenders that the next one leaves out
    (the estimate of the next repetition)."""
    start = time.monotonic()
    if WARMUP:
        warm_up(case, vms, rep)
    once = 0.0
    later = [c[0] for c in contenders(case, rep + 1)]
    for label, func, variant in rotate(contenders(case, rep), rep):
        record = measure(case, label, func, variant, vms, rep)
        if label not in later:
            once += record['seconds']
    return time.monotonic() - start - once


def git_state():
    head = run(['git', '-C', ROOT, 'rev-parse', '--short', 'HEAD'], check=False).stdout.strip()
    dirty = run(['git', '-C', ROOT, 'status', '--porcelain', '--untracked-files=no'], check=False).stdout.strip()
    return head + (' + uncommitted changes' if dirty else '')


def scale_points(multi, single_rep):
    """The virsh loop and the role on the first n multi VMs, for the plot."""
    for n in SCALE:
        if n >= len(multi):
            continue
        # A single-case repetition holds about three role runs of one VM.
        if fits(single_rep / 3.0 * n):
            rep_of('scale-%d' % n, multi[:n], 0)
        else:
            RESULTS['skipped'].append('scale point of %d VMs (time budget %ds)' % (n, BUDGET))
            log('skipping the scale point of %d VMs: over the time budget' % n)


def machine():
    def read(path):
        try:
            return Path(path).read_text()
        except OSError:
            return ''
    cpu = re.search(r'model name\s*:\s*(.*)', read('/proc/cpuinfo'))
    mem = re.search(r'MemTotal:\s*(\d+)', read('/proc/meminfo'))
    fs = run(['findmnt', '-no', 'SOURCE,FSTYPE', '-T', WORK], check=False).stdout.split()
    disk = ''
    if fs and fs[0].startswith('/dev/'):
        info = run(['lsblk', '-sdno', 'NAME,TYPE,ROTA,SIZE,MODEL', fs[0]], check=False).stdout.split('\n')[-2:]
        words = ' '.join(info).split() + ['', '', '', '']
        disk = '%s (%s, %s, rotational=%s%s)' % (words[0], words[1], words[3], words[2],
                                                 ', ' + ' '.join(words[4:]).strip() if words[4] else '')
    versions = {}
    for key, argv in (('qemu', ['qemu-img', '--version']), ('libvirt', ['libvirtd', '--version']),
                      ('virtnbdbackup', ['virtnbdbackup', '-V']), ('ansible', [BINDIR / 'ansible', '--version'])):
        result = run(argv, check=False)
        line = ((result.stdout or result.stderr).strip().splitlines() or [''])[0]
        versions[key] = line if key in line.lower() else '%s %s' % (key, line)
    return dict(nproc=os.cpu_count(), cpu=cpu.group(1).strip() if cpu else platform.processor(),
                mem_gib=round(int(mem.group(1)) / 1024 / 1024, 1) if mem else None,
                filesystem=' '.join(fs), disks=disk, kernel=platform.release(),
                kvm=os.path.exists('/dev/kvm'), versions=versions, loadavg_start=os.getloadavg())


def summarize():
    groups = {}
    for rec in RESULTS['runs']:
        groups.setdefault((rec['case'], rec['contender']), []).append(rec)
    summary = []
    for (case, label), recs in groups.items():
        ok = [r for r in recs if 'error' not in r]
        entry = dict(case=case, contender=label, n_vms=recs[0]['n_vms'], runs=len(recs), ok=len(ok),
                     errors=[r['error'][:300] for r in recs if 'error' in r])
        if ok:
            secs = [r['seconds'] for r in ok]
            entry.update(median=round(statistics.median(secs), 3), min=min(secs), max=max(secs))
            mods = [r['module_elapsed'] for r in ok if 'module_elapsed' in r]
            if mods:
                entry['module_median'] = round(statistics.median(mods), 3)
            phases = [r['phases'] for r in ok if r.get('phases')]
            if phases:
                entry['phases'] = {k: round(statistics.median([p[k] for p in phases]), 3) for k in phases[0]}
            overlay = [v for r in ok for v in r.get('overlay_s', [])]
            pivot = [v for r in ok for v in r.get('pivot_delay_s', [])]
            if overlay:
                entry['overlay_median'] = round(statistics.median(overlay), 3)
                entry['overlay_max'] = max(overlay)
            if pivot:
                entry['pivot_delay_median'] = round(statistics.median(pivot), 4)
                entry['pivot_delay_max'] = max(pivot)
        summary.append(entry)
    by = {(e['case'], e['contender']): e for e in summary}
    for entry in summary:
        for ref in ('limit', 'virsh'):
            other = by.get((entry['case'], ref))
            if other and 'median' in entry and other.get('median'):
                entry['x_' + ref] = round(entry['median'] / other['median'], 2)
        # The role's copy phase (qemu-img convert + fsync of every disk) against the limit's
        # convert + sync of the same images: throughput as a fraction of the limit's.
        limit = by.get((entry['case'], 'limit'))
        if entry.get('phases') and entry['phases'].get('copy') and limit and limit.get('median'):
            entry['copy_throughput'] = round(limit['median'] / entry['phases']['copy'], 2)
    return summary


def print_tables(summary):
    print('\n==== make bench results (%s mode, %d repetition(s), medians) ====' % (
        'quick' if QUICK else 'full', REPS))
    print('%-14s %-17s %4s %5s %8s %8s %8s %7s %7s %8s %8s' % (
        'case', 'contender', 'VMs', 'ok', 'median', 'min', 'max', 'xlimit', 'xvirsh', 'overlay', 'pivot'))
    for e in summary:
        print('%-14s %-17s %4d %2d/%-2d %8s %8s %8s %7s %7s %8s %8s' % (
            e['case'], e['contender'], e['n_vms'], e['ok'], e['runs'],
            '%.2f' % e['median'] if 'median' in e else '-', '%.2f' % e['min'] if 'min' in e else '-',
            '%.2f' % e['max'] if 'max' in e else '-', e.get('x_limit', '-'), e.get('x_virsh', '-'),
            '%.2f' % e['overlay_median'] if 'overlay_median' in e else '-',
            '%.3f' % e['pivot_delay_median'] if 'pivot_delay_median' in e else '-'))
        if e.get('module_median') is not None:
            print('%-14s %-17s module elapsed (without Ansible start-up): %.2fs' % ('', '', e['module_median']))
    print('\nper-phase split of the role (median seconds; union of task times, "other" = wall - phases):')
    print('%-14s %-17s %8s %8s %8s %8s %8s %8s %9s %10s' % (
        'case', 'contender', 'wall', 'snapshot', 'copy', 'commit', 'pivot*', 'other', 'tasks/VM',
        'copy/limit'))
    for e in summary:
        p = e.get('phases')
        if not p:
            continue
        print('%-14s %-17s %8.2f %8.2f %8.2f %8.2f %8s %8.2f %9s %10s' % (
            e['case'], e['contender'], e['median'], p['snapshot'], p['copy'], p['commit'],
            '%.3f' % e['pivot_delay_median'] if 'pivot_delay_median' in e else '-', p['other'],
            p['tasks_per_vm'], e.get('copy_throughput', '-')))
    print('copy/limit: throughput of the copy phase as a fraction of the limit\'s (limit wall / copy phase)')
    floor = RESULTS.get('verify_floor') or {}
    if 'sha256_s' in floor:
        print('verify + checksum floor, the single image from memory: sha256 %.2fs (%.2f GB/s), '
              'qemu-img compare %.2fs' % (floor['sha256_s'], floor['sha256_gb_s'], floor['compare_s']))
    print('* pivot: delay from the READY event to the COMPLETED (pivoted) event, median over VMs and runs')
    for e in summary:
        for err in e['errors']:
            print('ERROR %s %s: %s' % (e['case'], e['contender'], err.splitlines()[0] if err else ''))


def cleanup(vms_names):
    for proc in list(CHILDREN):
        stop_group(proc)
    names = sorted(set(vms_names) | set(our_domains()))
    for name in names:
        # A domain with checkpoints (virtnbdbackup) cannot be undefined.
        try:
            dom = conn().lookupByName(name)
            flags = 0 if dom.isActive() else libvirt.VIR_DOMAIN_CHECKPOINT_DELETE_METADATA_ONLY
            for checkpoint in dom.listAllCheckpoints(0):
                checkpoint.delete(flags)
        except libvirt.libvirtError:
            pass
    if names:
        try:
            vmtool('destroy', *names, timeout=120)
        except (ContenderError, subprocess.SubprocessError) as exc:
            print('cleanup: %s' % exc, file=sys.stderr)
    reap_strays()
    for child in ('dest', 'runs', 'scratch', 'locks', 'collections'):
        shutil.rmtree(WORK / child, ignore_errors=True)
    for name in names:
        shutil.rmtree(WORK / name, ignore_errors=True)
    for path in WORK.glob('data-*.bin'):
        path.unlink()


def on_signal(signum, dummy_frame):
    raise KeyboardInterrupt('signal %d' % signum)


def main():
    global PAR, MONITOR
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    if os.geteuid() != 0:
        raise SystemExit('make bench runs as root (VMs, drop_caches)')
    source = SOURCE_COLLECTIONS / 'ansible_collections/virtops/libvirt'
    if not (source / 'galaxy.yml').exists():
        raise SystemExit('no collection at %s: run `make collection` first' % source)
    OUT.mkdir(parents=True, exist_ok=True)
    WORK.mkdir(parents=True, exist_ok=True)

    (WORK / 'scratch').mkdir(exist_ok=True)
    # From the collection being measured (its private copy is made below).
    PAR = parallel_default(source)
    RESULTS.update(mode='quick' if QUICK else 'full', reps=REPS, budget_s=BUDGET, run_timeout_s=RUN_TIMEOUT,
                   warmup=WARMUP,
                   started=time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()), machine=machine(),
                   live_backup_parallel_default=PAR,
                   cases=dict(single=SINGLE, multi=MULTI, scale=SCALE, commit=COMMIT),
                   git=git_state())
    if NBD_MULTI_REPS < REPS:
        RESULTS['notes'].append('virtnbdbackup on the %d VMs: in the first %d repetition(s) only '
                                '(BENCH_NBD_MULTI_REPS; over a minute a run, and no target compares it '
                                'there)' % (MULTI['count'], NBD_MULTI_REPS))
    RESULTS['notes'].append('live_backup_parallel: %s' % (
        'default %d, measured at 1 and at the default' % PAR if PAR is not None else 'not in the role, not measured'))
    names = []
    rc = 0
    held = hold_free_memory()
    RESULTS['machine']['page_reporting'] = dict(
        present=can_hold_free_memory(),
        held=dict((name, '%s (was %s)' % (HOLD_FREE_MEMORY[name], value)) for name, value in held.items()))
    try:
        stale = our_domains()
        if stale:
            log('removing VMs of an earlier bench: %s' % ' '.join(stale))
            cleanup(stale)
            WORK.mkdir(parents=True, exist_ok=True)
            (WORK / 'scratch').mkdir(exist_ok=True)
        COLLECTION.mkdir(parents=True, exist_ok=True)
        run(['rsync', '-a', '--delete', '--exclude=/tests/', '--exclude=/.git/', '--exclude=/bench/',
             '%s/' % source, '%s/' % COLLECTION])
        if FLOOR:
            if not floor():
                rc = 1
        else:
            RESULTS['notes'].append('what Ansible itself costs per task (bench/ansible_floor.py): not measured '
                                    '(BENCH_FLOOR=0, the default in quick mode)')
        MONITOR = Monitor()
        log('creating VMs (%s mode): 1 x %d MiB in %s, %d x %d MiB in %s, commit disks %s' % (
            'quick' if QUICK else 'full', SINGLE['data_mib'], SINGLE['disk'], MULTI['count'], MULTI['data_mib'],
            MULTI['disk'], '/'.join(COMMIT['disks'])))
        specs = [(PREFIX + 'c' + size.lower(), size, 16) for size in COMMIT['disks']]
        specs.append((PREFIX + 'single', SINGLE['disk'], SINGLE['data_mib']))
        specs += [('%sm%02d' % (PREFIX, i + 1), MULTI['disk'], MULTI['data_mib']) for i in range(MULTI['count'])]
        names.extend(s[0] for s in specs)
        for dummy, dummy, mib in specs:
            make_data_file(min(mib, 1024))
        with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
            made = list(pool.map(lambda spec: make_vm(*spec), specs))
        commit_vms = made[:len(COMMIT['disks'])]
        for vm, size in zip(commit_vms, COMMIT['disks']):
            vm.disk = size
        single = [made[len(COMMIT['disks'])]]
        multi = made[len(COMMIT['disks']) + 1:]
        log('VMs ready')

        for rep in range(REPS):
            for label in rotate(['virsh', 'module'], rep):
                for vm in commit_vms:
                    commit_case(vm, rep, label)
        # Every case gets one repetition; the scale points (one repetition) and the further
        # repetitions only while they fit in BENCH_BUDGET, estimated from the first one.
        first = {}
        for rep in range(REPS):
            for case, vms in (('single', single), ('multi', multi)):
                if rep == 0 and case == 'multi':
                    scale_points(multi, first['single'])
                if rep == 0 or fits(first[case]):
                    took = rep_of(case, vms, rep)
                    first.setdefault(case, took)
                else:
                    RESULTS['skipped'].append('%s rep %d (time budget %ds)' % (case, rep, BUDGET))
                    log('skipping %s rep %d: over the time budget of %ds' % (case, rep, BUDGET))
        RESULTS['verify_floor'] = verify_floor(single[0])
        summary = summarize()
        RESULTS['summary'] = summary
        print_tables(summary)
        if any('error' in r for r in RESULTS['runs']):
            rc = 1
    except KeyboardInterrupt as exc:
        log('interrupted (%s); cleaning up' % exc)
        rc = 130
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)  # the cleanup itself is not interrupted
        if MONITOR:
            MONITOR.stop = True
        release_free_memory(held)
        log('destroying the bench VMs')
        cleanup(names)
        RESULTS['finished'] = time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())
        RESULTS['duration_s'] = round(time.monotonic() - T0, 1)
        RESULTS['machine']['loadavg_end'] = os.getloadavg()
        (OUT / 'results.json').write_text(json.dumps(RESULTS, indent=1, default=str))
        log('results: %s (%.0fs in all)' % (OUT / 'results.json', RESULTS['duration_s']))
    return rc


if __name__ == '__main__':
    sys.exit(main())
