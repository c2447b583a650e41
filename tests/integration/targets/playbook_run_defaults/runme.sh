#!/usr/bin/env bash
# Precedence of the AWX-facing run defaults (docs/awx.md): a survey answer or job template
# variable is an extra var, and an extra var on the role's own variable overrides every host's
# inventory value. The playbooks' `virtops_default_*` variables only fill in what a host leaves
# unset. Needs no libvirt: `--tags settings` stops before the role's tasks.
set -euo pipefail

# The collection under test, as ansible-playbook finds it (ansible-test runs a copy of this
# directory elsewhere).
root=$(ansible-galaxy collection list virtops.libvirt --format json | python3 -c '
import json, sys
paths = [p for p, c in json.load(sys.stdin).items() if "virtops.libvirt" in c]
print(paths[0] + "/virtops/libvirt")')

run() {
  local playbook=$1; shift
  ansible-playbook -i inventory.yml "check_$playbook.yml" --tags settings \
    -e virtops_test_root="$root" "$@"
}

for playbook in backup recover; do
  # (a) The danger: the role's own variables as extra vars override the inventory. hv02's
  # retention of 30 and hv03's group value of 14 become 7 (older backups would be pruned), and
  # hv02's domain list becomes the survey's.
  run "$playbook" -e '{"live_backup_keep": 7}' -e '{"live_backup_domains": ["web01"]}' -e '{"expect": {
      "hv01": {"keep": 7, "domains": ["web01"]},
      "hv02": {"keep": 7, "domains": ["web01"]},
      "hv03": {"keep": 7, "domains": ["web01"]}}}'

  # (b) The run defaults: hosts keep their own values; a host without one gets the default.
  # A survey's comma-separated text answer becomes a list.
  run "$playbook" -e '{"virtops_default_keep": 7}' -e 'virtops_default_domains="db01, web01 ,"' \
    -e virtops_default_compress=zstd -e '{"expect": {
      "hv01": {"keep": 7, "domains": ["db01", "web01"], "compress": "zstd"},
      "hv02": {"keep": 30, "domains": ["db01", "web01"], "compress": "zstd"},
      "hv03": {"keep": 14, "domains": ["db01", "web01"], "compress": "zstd"}}}'

  # `all` stays `all`; an empty answer (an optional survey question left blank) sets nothing.
  run "$playbook" -e virtops_default_domains=all -e 'virtops_default_keep=""' -e '{"expect": {
      "hv01": {"domains": "all"},
      "hv02": {"keep": 30, "domains": ["db01", "web01"]},
      "hv03": {"keep": 14, "domains": "all"}}}'

  # No run defaults: every host as in the inventory.
  run "$playbook" -e '{"expect": {"hv01": {}, "hv02": {"keep": 30, "domains": ["db01", "web01"]}, "hv03": {"keep": 14}}}'

  # A misspelt run default fails the run instead of being ignored.
  if out=$(run "$playbook" -e virtops_default_kep=7 -e '{"expect": {}}' 2>&1); then
    echo "$out"; echo "a misspelt run default was accepted" >&2; exit 1
  fi
  grep -q 'unknown run defaults: virtops_default_kep' <<<"$out" || { echo "$out"; exit 1; }
done

# A value the role refuses is caught by the role's argument spec, still before any task.
if out=$(run backup -e virtops_default_compress=lz4 -e '{"expect": {}}' 2>&1); then
  echo "$out"; echo "an invalid run default was accepted" >&2; exit 1
fi
grep -q 'live_backup_compress' <<<"$out" || { echo "$out"; exit 1; }
echo "playbook_run_defaults: all cases passed"
