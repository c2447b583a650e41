# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What Ansible itself costs per task, on this machine (issue 7).

Run it with the dev venv's Python (ansible): ``.venv/bin/python bench/ansible_floor.py``;
``make bench`` runs it too (bench/bench.py, results under the key ``floor``).

Plays against this machine, ``gather_facts: false``, the venv's Python as
``ansible_python_interpreter`` (no interpreter discovery):

- ``ansible-playbook`` start-up: a play with 0 tasks, T(0);
- N (20) tasks of ``ansible.builtin.ping``, T(ping N), and N tasks of
  ``virtops.libvirt.domain_info`` (the key ``domain_list`` in the results) (read-only, ``qemu:///system``), T(domain_list N);
- per-task cost = (T(N) - T(0)) / N, from the medians;

for the connections ``local`` and ``ssh`` (root@127.0.0.1, a key of its own, Ansible's default
``ssh_args`` so ControlPersist: the first task of a run opens the master connection), each
without and with pipelining (``ANSIBLE_PIPELINING``). Every (connection, play) pair runs once
per repetition, in an order rotated by repetition, the wall time of the whole
``ansible-playbook``. A verbose (``-vvv``) run of one ping task per connection, before the
timed runs (it also warms the caches), counts what one task does: processes run on the target
(``EXEC``; over ssh each is one ssh round trip through the master connection) and files
copied (``PUT``; over ssh one sftp round trip). The bench_timing callback
(bench/callback_plugins) gives the duration of the first task and the median of the others.

ssh: when no sshd listens on 127.0.0.1:22 the script installs ``openssh-server`` (apt-get,
when missing), starts it (``systemctl`` under systemd, else ``service ssh start``, else
``/usr/sbin/sshd``) and stops it again at the end (unless FLOOR_KEEP_SSHD=1). The only global
change besides the package is one line in /root/.ssh/authorized_keys, the public half of
``$BENCH_WORKDIR/floor/id_ed25519``, marked ``virtops-bench-floor``. Host keys go to
``$BENCH_WORKDIR/floor/known_hosts``. When ssh cannot be set up, the reason is recorded and
only ``local`` is measured.

Environment: FLOOR_REPS (5), FLOOR_TASKS (20), FLOOR_BUDGET (seconds by which further
repetitions must end, 170), FLOOR_KEEP_SSHD, BENCH_COLLECTIONS (a directory holding
``ansible_collections/virtops/libvirt``, default .build), BENCH_WORKDIR
(/var/lib/virtops-bench), BENCH_OUTPUT (directory of floor.json, default bench/output).
Exits non-zero only when a measured run fails.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / 'bench'
PY = sys.executable
BINDIR = Path(PY).parent
REPS = max(1, int(os.environ.get('FLOOR_REPS', '5')))
N = max(1, int(os.environ.get('FLOOR_TASKS', '20')))
BUDGET = float(os.environ.get('FLOOR_BUDGET', '170'))
KEEP_SSHD = os.environ.get('FLOOR_KEEP_SSHD', '0') not in ('', '0')
COLLECTIONS = Path(os.environ.get('BENCH_COLLECTIONS', str(ROOT / '.build')))
WORK = Path(os.environ.get('BENCH_WORKDIR', '/var/lib/virtops-bench')) / 'floor'
OUT = Path(os.environ.get('BENCH_OUTPUT', str(BENCH / 'output')))
URI = 'qemu:///system'
KEY = WORK / 'id_ed25519'
KNOWN_HOSTS = WORK / 'known_hosts'
MARK = 'virtops-bench-floor'
AUTHORIZED = Path('/root/.ssh/authorized_keys')
SSHD = Path('/usr/sbin/sshd')
RUN_TIMEOUT = 300
RETRIES = 2

PLAYS = ('startup', 'ping', 'domain_list')
MODULES = {'ping': ('ansible.builtin.ping', {}),
           'domain_list': ('virtops.libvirt.domain_info', {'uri': URI})}
# (connection, pipelining): the rows of the table, in this order.
CONFIGS = [('local', False), ('local', True), ('ssh', False), ('ssh', True)]
HOSTS = {'local': 'floor-local', 'ssh': 'floor-ssh'}

T0 = time.monotonic()


class FloorError(Exception):
    pass


def log(msg):
    print('[floor %6.1fs] %s' % (time.monotonic() - T0, msg), flush=True)


def run(argv, timeout=120, env=None):
    """Untimed helper command; never raises on a non-zero exit."""
    try:
        return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout,
                              check=False, env=env)
    except (OSError, subprocess.SubprocessError) as exc:
        return subprocess.CompletedProcess(argv, 127, '', str(exc))


def tail(result, size=400):
    return ' '.join((result.stderr or result.stdout or '').split())[-size:]


# --- ssh to 127.0.0.1 ---------------------------------------------------------------------------

def sshd_listening():
    try:
        with socket.create_connection(('127.0.0.1', 22), timeout=2):
            return True
    except OSError:
        return False


def apt_install(package):
    env = dict(os.environ, DEBIAN_FRONTEND='noninteractive')
    argv = ['apt-get', 'install', '-y', '-q', '-o', 'DPkg::Lock::Timeout=120', package]
    result = run(argv, timeout=600, env=env)
    if result.returncode != 0:
        # An image without package lists: update them once, then try again.
        run(['apt-get', 'update', '-q', '-o', 'DPkg::Lock::Timeout=120'], timeout=600, env=env)
        result = run(argv, timeout=600, env=env)
    if result.returncode != 0:
        raise FloorError('apt-get install %s failed: %s' % (package, tail(result)))


def authorize_key():
    """Our public key in /root/.ssh/authorized_keys, once; an older key of ours is replaced."""
    pub = KEY.with_suffix('.pub').read_text().strip()
    AUTHORIZED.parent.mkdir(mode=0o700, exist_ok=True)
    lines = AUTHORIZED.read_text().splitlines() if AUTHORIZED.exists() else []
    if pub in lines:
        return False
    kept = [line for line in lines if not line.rstrip().endswith(' ' + MARK)]
    tmp = AUTHORIZED.with_name(AUTHORIZED.name + '.virtops-bench')
    tmp.write_text('\n'.join(kept + [pub]) + '\n')
    os.chmod(tmp, 0o600)
    os.replace(tmp, AUTHORIZED)
    return True


def start_sshd():
    """Start sshd the way this machine does it; returns how (for stop_sshd)."""
    if not list(Path('/etc/ssh').glob('ssh_host_*_key')):
        result = run(['ssh-keygen', '-A'])
        if result.returncode != 0:
            raise FloorError('ssh-keygen -A failed: %s' % tail(result))
    if Path('/run/systemd/system').is_dir() and shutil.which('systemctl'):
        how, argv = 'systemctl', ['systemctl', 'start', 'ssh']
    elif Path('/etc/init.d/ssh').exists() and shutil.which('service'):
        how, argv = 'service', ['service', 'ssh', 'start']
    else:
        Path('/run/sshd').mkdir(mode=0o755, exist_ok=True)
        how, argv = 'sshd', [SSHD]
    result = run(argv, timeout=60)
    for dummy in range(50):
        if sshd_listening():
            return how
        time.sleep(0.1)
    raise FloorError('sshd does not listen on 127.0.0.1:22 after `%s` (rc=%d): %s' % (
        ' '.join(str(a) for a in argv), result.returncode, tail(result)))


def stop_sshd(how):
    if how == 'systemctl':
        run(['systemctl', 'stop', 'ssh'], timeout=60)
    elif how == 'service':
        run(['service', 'ssh', 'stop'], timeout=60)
    elif how == 'sshd':
        # Only the listener we started, by the pid it wrote; sessions end with their clients.
        try:
            pid = int(Path('/run/sshd.pid').read_text().split()[0])
            os.kill(pid, signal.SIGTERM)
        except (OSError, ValueError, IndexError):
            pass


def ssh_options():
    return ['-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=%s' % KNOWN_HOSTS]


def setup_ssh(info):
    """Make `ssh -i KEY root@127.0.0.1` work; fills info; raises FloorError with the reason."""
    if not SSHD.exists():
        log('installing openssh-server (apt-get)')
        apt_install('openssh-server')
        info['installed'] = True
    if not KEY.exists():
        result = run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', MARK, '-f', KEY])
        if result.returncode != 0:
            raise FloorError('ssh-keygen failed: %s' % tail(result))
    info['authorized_keys_changed'] = authorize_key()
    if not sshd_listening():
        info['started'] = start_sshd()
        log('started sshd (%s)' % info['started'])
    result = run(['ssh', '-i', KEY, '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=10', '-o', 'ControlMaster=no']
                 + ssh_options() + ['root@127.0.0.1', 'true'], timeout=60)
    if result.returncode != 0:
        raise FloorError('ssh root@127.0.0.1 with %s failed (rc=%d): %s' % (KEY, result.returncode, tail(result)))
    info['available'] = True


def close_masters(cpdir):
    """End the ControlPersist masters a run left (they would serve the next run's first task)."""
    for sock in Path(cpdir).glob('*'):
        run(['ssh', '-o', 'ControlPath=%s' % sock, '-O', 'exit', 'root@127.0.0.1'], timeout=30)


# --- plays ------------------------------------------------------------------------------------------

def write_files(tmp, ssh_ok):
    hosts = {'floor-local': dict(ansible_connection='local', ansible_python_interpreter=PY)}
    if ssh_ok:
        hosts['floor-ssh'] = dict(
            ansible_connection='ssh', ansible_host='127.0.0.1', ansible_user='root',
            ansible_ssh_private_key_file=str(KEY), ansible_python_interpreter=PY,
            # Added to Ansible's default ssh_args (-C -o ControlMaster=auto -o ControlPersist=60s).
            ansible_ssh_common_args=' '.join(ssh_options()))
    # YAML is a superset of JSON: the inventory and the playbooks are written as JSON.
    (tmp / 'inventory.yml').write_text(json.dumps({'all': {'hosts': hosts}}, indent=1))
    (tmp / 'ansible.cfg').write_text('[defaults]\n')
    for conn in HOSTS:
        for play in PLAYS:
            count = 0 if play == 'startup' else N
            module, args = MODULES.get(play, MODULES['ping'])
            write_play(tmp / ('%s-%s.yml' % (conn, play)), HOSTS[conn], module, args, count)
        write_play(tmp / ('%s-one.yml' % conn), HOSTS[conn], *MODULES['ping'], count=1)


def write_play(path, host, module, args, count):
    tasks = [{'name': '%s %d' % (module.split('.')[-1], i + 1), module: args} for i in range(count)]
    path.write_text(json.dumps([{'name': 'Ansible floor: %d task(s) of %s' % (count, module),
                                 'hosts': host, 'gather_facts': False, 'tasks': tasks}], indent=1))


def play_env(tmp, pipelining, tag):
    """A clean Ansible environment: none of the caller's ANSIBLE_* settings leak in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith('ANSIBLE_')}
    env.update(
        PATH=str(BINDIR) + os.pathsep + os.environ.get('PATH', ''),
        ANSIBLE_CONFIG=str(tmp / 'ansible.cfg'), ANSIBLE_HOME=str(tmp / 'home'),
        ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS), ANSIBLE_PIPELINING='1' if pipelining else '0',
        ANSIBLE_SSH_CONTROL_PATH_DIR=str(tmp / 'cp' / tag), ANSIBLE_NOCOLOR='1', ANSIBLE_FORCE_COLOR='0',
        ANSIBLE_RETRY_FILES_ENABLED='0', ANSIBLE_CALLBACK_PLUGINS=str(BENCH / 'callback_plugins'),
        ANSIBLE_CALLBACKS_ENABLED='bench_timing', BENCH_TIMING_FILE=str(tmp / 'runs' / (tag + '.timing.json')))
    return env


def play_run(tmp, conn, pipelining, play, tag, verbose=False):
    """One ansible-playbook; returns (wall seconds, output, timing records). Output goes to a file:
    a ControlPersist master outlives the run and must not hold a pipe we wait on."""
    env = play_env(tmp, pipelining, tag)
    (tmp / 'runs').mkdir(exist_ok=True)
    out_path = tmp / 'runs' / (tag + '.out')
    argv = [BINDIR / 'ansible-playbook', '-i', tmp / 'inventory.yml', tmp / ('%s-%s.yml' % (conn, play))]
    if verbose:
        argv.append('-vvv')
    with open(out_path, 'w') as out:
        start = time.monotonic()
        proc = subprocess.Popen([str(a) for a in argv], stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, env=env, cwd=tmp, start_new_session=True)
        try:
            rc = proc.wait(timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            rc = 'timeout after %ds' % RUN_TIMEOUT
        seconds = time.monotonic() - start
    if conn == 'ssh':
        close_masters(tmp / 'cp' / tag)
    text = out_path.read_text(errors='replace')
    if rc != 0:
        # The run directory goes at the end; the output of the last failed run stays.
        kept = WORK / 'last-failed-run.out'
        shutil.copyfile(out_path, kept)
        errors = [line.strip() for line in text.splitlines() if re.search(r'ERROR|FAILED!|fatal:|UNREACHABLE', line)]
        raise FloorError('%s pipelining=%s %s: ansible-playbook rc=%s: %s (output: %s)' % (
            conn, pipelining, play, rc, (errors[0] if errors else text[-300:])[:300], kept))
    try:
        tasks = json.loads((tmp / 'runs' / (tag + '.timing.json')).read_text())['tasks']
    except (OSError, ValueError, KeyError):
        tasks = []
    return seconds, text, tasks


def play_retried(results, tmp, conn, pipelining, play, tag):
    """play_run, run again (up to RETRIES times) after a failure: a failed run measures nothing, and
    a task can fail for a reason outside Ansible (domain_list while another job undefines a domain).
    Every retry is recorded."""
    for attempt in range(RETRIES + 1):
        try:
            return play_run(tmp, conn, pipelining, play, '%s-%d' % (tag, attempt) if attempt else tag)
        except FloorError as exc:
            if attempt == RETRIES:
                raise
            results['retried'].append(str(exc)[:600])
            log('run failed, running it again: %s' % str(exc)[:300])
    raise AssertionError('not reached')


def round_trips(text):
    """What one task did on the target, from -vvv output: processes run and files copied."""
    execs = len(re.findall(r'^<[^>]+> (?:SSH: )?EXEC (?!sftp)', text, re.M))
    sftp = len(re.findall(r'^<[^>]+> SSH: EXEC sftp', text, re.M))
    puts = len(re.findall(r'^<[^>]+> PUT ', text, re.M))
    return dict(exec=execs, put=puts, sftp=sftp)


def med(values):
    return round(statistics.median(values), 4) if values else None


def summarize(raw, trips):
    rows = []
    for conn, pipelining in CONFIGS:
        key = '%s/%s' % (conn, int(pipelining))
        if key not in raw:
            continue
        times = raw[key]
        row = dict(connection=conn, pipelining=pipelining, reps=len(times['startup']),
                   startup_s=med(times['startup']), round_trips_one_ping_task=trips.get(key),
                   runs={play: [round(t, 3) for t in times[play]] for play in PLAYS})
        for play in ('ping', 'domain_list'):
            if times[play] and times['startup']:
                row['%s_play_s' % play] = med(times[play])
                row['%s_per_task_s' % play] = round((statistics.median(times[play]) - statistics.median(
                    times['startup'])) / N, 4)
            firsts = [t[0] for t in times[play + '_tasks'] if t]
            rests = [d for t in times[play + '_tasks'] for d in t[1:]]
            row['%s_first_task_s' % play] = med(firsts)
            row['%s_task_median_s' % play] = med(rests)
        rows.append(row)
    return rows


def durations(tasks):
    return [round(r['end'] - r['start'], 4) for r in sorted(tasks, key=lambda r: r['start'])]


def print_table(results):
    print('\n==== What Ansible itself costs per task (%d task(s) per play, medians of %d repetition(s)) ====' % (
        N, results['reps_done']))
    print('%-6s %-10s %10s %12s %19s %17s %14s' % (
        'conn', 'pipelining', 'start-up s', 'ping/task s', 'domain_list/task s', 'first ping task s',
        'exec/put/task'))
    for row in results['rows']:
        trips = row.get('round_trips_one_ping_task') or {}
        print('%-6s %-10s %10s %12s %19s %17s %14s' % (
            row['connection'], 'yes' if row['pipelining'] else 'no', fmt(row['startup_s'], 2),
            fmt(row.get('ping_per_task_s'), 3), fmt(row.get('domain_list_per_task_s'), 3),
            fmt(row.get('ping_first_task_s'), 3), '%d/%d' % (trips['exec'], trips['put']) if trips else '-'))
    if not results['ssh'].get('available'):
        print('ssh not measured: %s' % results['ssh'].get('why'))
    saves = results.get('ssh_pipelining_saves_per_task_s')
    if saves:
        print('ssh: pipelining saves %s per task' % ', '.join('%.3f s (%s)' % (v, k) for k, v in saves.items()))
    print('exec/put: what one ping task did on the target (-vvv): processes run (over ssh: one round trip '
          'each) and files copied (over ssh: one sftp round trip each)')
    for note in (results['notes'] + ['skipped: ' + s for s in results['skipped']]
                 + ['a failed run was run again: ' + s for s in results['retried']]):
        print('note: %s' % note)
    if results.get('error'):
        print('ERROR: %s' % results['error'])


def fmt(value, digits):
    return '-' if value is None else '%.*f' % (digits, value)


def on_signal(signum, dummy_frame):
    raise KeyboardInterrupt('signal %d' % signum)


def main():
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    if os.geteuid() != 0:
        raise SystemExit('ansible_floor.py runs as root (ssh as root to 127.0.0.1, libvirt qemu:///system)')
    if not (COLLECTIONS / 'ansible_collections/virtops/libvirt/galaxy.yml').exists():
        raise SystemExit('no collection under %s (BENCH_COLLECTIONS): run `make collection` first' % COLLECTIONS)
    WORK.mkdir(parents=True, exist_ok=True)
    OUT.mkdir(parents=True, exist_ok=True)
    version = run([BINDIR / 'ansible', '--version']).stdout.splitlines()
    results = dict(started=time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()), reps=REPS, tasks_per_play=N,
                   budget_s=BUDGET, ansible=version[0] if version else '?', python=PY,
                   machine=dict(nproc=os.cpu_count(), kernel=platform.release(), loadavg_start=os.getloadavg()),
                   ssh=dict(available=False, why=None, installed=False, started=None), notes=[], skipped=[], retried=[])
    ssh = results['ssh']
    try:
        setup_ssh(ssh)
    except (FloorError, OSError) as exc:
        ssh['why'] = str(exc)
        log('ssh not available, measuring local only: %s' % exc)
    configs = [c for c in CONFIGS if c[0] == 'local' or ssh['available']]
    tmp = Path(tempfile.mkdtemp(prefix='run-', dir=WORK))
    rc = 0
    raw = {'%s/%d' % (c, p): {k: [] for k in PLAYS + ('ping_tasks', 'domain_list_tasks')} for c, p in configs}
    trips = {}
    try:
        write_files(tmp, ssh['available'])
        # Untimed: one verbose ping task per configuration (what one task does), and a warm cache.
        for conn, pipelining in configs:
            key = '%s/%d' % (conn, pipelining)
            dummy, text, dummy = play_run(tmp, conn, pipelining, 'one', 'vvv-%s-%d' % (conn, pipelining),
                                          verbose=True)
            trips[key] = round_trips(text)
        items = [(c, p, play) for c, p in configs for play in PLAYS]
        first = None
        for rep in range(REPS):
            if first is not None and time.monotonic() - T0 + first > BUDGET:
                results['skipped'].append('repetitions %d-%d (FLOOR_BUDGET %ds)' % (rep + 1, REPS, BUDGET))
                log('stopping after %d repetition(s): the next would end after FLOOR_BUDGET (%ds)' % (rep, BUDGET))
                break
            started = time.monotonic()
            shift = (rep * 5) % len(items)
            for conn, pipelining, play in items[shift:] + items[:shift]:
                key = '%s/%d' % (conn, pipelining)
                seconds, dummy, tasks = play_retried(results, tmp, conn, pipelining, play,
                                                     '%s-%d-%s-%d' % (conn, pipelining, play, rep))
                raw[key][play].append(seconds)
                if play != 'startup':
                    raw[key][play + '_tasks'].append(durations(tasks))
            first = first or time.monotonic() - started
            log('repetition %d of %d done in %.0fs' % (rep + 1, REPS, time.monotonic() - started))
    except FloorError as exc:
        results['error'] = str(exc)
        log('error: %s' % exc)
        rc = 1
    finally:
        if ssh.get('started') and not KEEP_SSHD:
            stop_sshd(ssh['started'])
            log('stopped the sshd it started (%s)' % ssh['started'])
        for cpdir in (tmp / 'cp').glob('*'):
            close_masters(cpdir)
        shutil.rmtree(tmp, ignore_errors=True)
    results['reps_done'] = min((len(v['startup']) for v in raw.values()), default=0)
    results['rows'] = summarize(raw, trips)
    by = {(r['connection'], r['pipelining']): r for r in results['rows']}
    plain, piped = by.get(('ssh', False), {}), by.get(('ssh', True), {})
    for play in ('ping', 'domain_list'):
        a, b = plain.get('%s_per_task_s' % play), piped.get('%s_per_task_s' % play)
        if a is not None and b is not None:
            results.setdefault('ssh_pipelining_saves_per_task_s', {})[play] = round(a - b, 4)
    if ssh['available']:
        results['notes'].append(
            'ssh start-up is the play with 0 tasks, which opens no connection; the first task of an ssh run '
            'opens the ControlPersist master connection, which is part of the per-task cost (1/%d of it)' % N)
    results['machine']['loadavg_end'] = os.getloadavg()
    results['duration_s'] = round(time.monotonic() - T0, 1)
    (OUT / 'floor.json').write_text(json.dumps(results, indent=1))
    print_table(results)
    log('results: %s (%.0fs in all)' % (OUT / 'floor.json', results['duration_s']))
    return rc


if __name__ == '__main__':
    sys.exit(main())
