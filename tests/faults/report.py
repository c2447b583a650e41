# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Render the fault-injection results as markdown (for docs/reliability.md).

    python tests/faults/report.py [--faults tests/output/faults.jsonl]
                                  [--bad tests/output/bad_inputs.json] [--since ISO-TIME]

Table 1: case x signal (x target) with passes/runs and the rerun time; table 2: the first
failure of each failing case; table 3: the bad-input rows.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import OrderedDict

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load_faults(path, since=None):
    rows = []
    if not os.path.exists(path):
        return rows
    with open(path) as handle:
        for line in handle:
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if since and row.get('time', '') < since:
                continue
            rows.append(row)
    return rows


def cell(text, limit=160):
    text = ' '.join(str(text).split()).replace('|', '\\|')
    return text if len(text) <= limit else text[:limit - 1] + '…'


def kill_point_table(rows):
    groups = OrderedDict()
    for row in rows:
        key = (row.get('case'), row.get('signal'), row.get('target'))
        groups.setdefault(key, []).append(row)
    out = ['| case | signal | target | passes/runs | rerun s (median) |',
           '|---|---|---|---|---|']
    for (case, sig, target), group in sorted(groups.items(), key=lambda kv: tuple(str(k) for k in kv[0])):
        passes = sum(1 for r in group if r.get('outcome') == 'pass')
        reruns = sorted(r['rerun_seconds'] for r in group if r.get('rerun_seconds') is not None)
        median = reruns[len(reruns) // 2] if reruns else '-'
        out.append('| %s | %s | %s | %d/%d | %s |' % (cell(case), sig, target, passes, len(group), median))
    return out


def failure_table(rows):
    out = ['| case | signal | target | rep | first failure |', '|---|---|---|---|---|']
    for row in rows:
        if row.get('outcome') == 'fail':
            out.append('| %s | %s | %s | %s | %s |' % (cell(row.get('case')), row.get('signal'),
                                                       row.get('target'), row.get('rep'),
                                                       cell((row.get('failures') or ['?'])[0], 300)))
    return out


def bad_input_table(rows):
    out = ['| kind | input | failed | message | nothing changed |', '|---|---|---|---|---|']
    for row in rows:
        out.append('| %s | `%s` | %s | %s | %s |' % (
            row.get('kind'), cell(row.get('input'), 80), 'yes' if row.get('status') != 'successful' else 'NO (accepted)',
            cell(row.get('message'), 200),
            'yes' if row.get('nothing_changed') else 'NO: ' + cell('; '.join(row.get('changes', [])), 150)))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--faults', default=os.environ.get(
        'FAULTS_RESULTS', os.path.join(ROOT, 'tests/output/faults.jsonl')))
    parser.add_argument('--bad', default=os.environ.get(
        'FAULTS_BAD_RESULTS', os.path.join(ROOT, 'tests/output/bad_inputs.json')))
    parser.add_argument('--since', help='only runs recorded at or after this UTC time (ISO 8601)')
    args = parser.parse_args(argv)
    faults = load_faults(args.faults, args.since)
    passed = sum(r.get('outcome') == 'pass' for r in faults)
    source = os.path.relpath(args.faults, ROOT)
    lines = ['## Fault injection: kill points x signals', '',
             '%d runs, %d passed (source: %s).' % (len(faults), passed, source), '']
    lines += kill_point_table(faults)
    if any(r.get('outcome') == 'fail' for r in faults):
        lines += ['', '### Failures', ''] + failure_table(faults)
    if os.path.exists(args.bad) and os.path.getsize(args.bad):
        with open(args.bad) as handle:
            bad = [r for r in json.load(handle) if not args.since or r.get('time', '') >= args.since]
        lines += ['', '## Bad inputs', '',
                  '%d rows: %d rejected, %d changed nothing.' % (
                      len(bad), sum(r.get('status') != 'successful' for r in bad),
                      sum(bool(r.get('nothing_changed')) for r in bad)), '']
        lines += bad_input_table(bad)
    sys.stdout.write('\n'.join(lines) + '\n')


if __name__ == '__main__':
    main()
