#!/usr/bin/env bash
# Put scripts/get_pip_standin.py where ansible-test looks for its cached pip bootstrap script:
#   ~/.ansible/test/cache/get_pip_<pip version, dots as underscores>.py
# for every pip version the installed ansible-test can ask for (read from its source,
# ansible_test/_internal/python_requirements.py: get_venv_packages()).
#
# Usage: install-pip-standin.sh [PYTHON]   (PYTHON: interpreter that has ansible-core; default python3)
# Extra versions may be given in PIP_STANDIN_VERSIONS="24.2 25.0".
set -euo pipefail

PYTHON=${1:-python3}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=$here/get_pip_standin.py
cache=${HOME}/.ansible/test/cache

versions=$("$PYTHON" - <<'EOF'
import os, re, sys
try:
    import ansible_test
except ImportError:
    sys.exit("install-pip-standin: ansible-test (ansible-core) is not installed for %s" % sys.executable)
path = os.path.join(os.path.dirname(ansible_test.__file__), '_internal', 'python_requirements.py')
with open(path) as f:
    text = f.read()
start = text.find('def get_venv_packages')
body = text[start:text.find('\ndef ', start + 1)] if start >= 0 else ''
found = set(re.findall(r"""\bpip\s*=\s*['"]([0-9][0-9A-Za-z.]*)['"]""", body))
found |= set(re.findall(r"""['"]pip['"]\s*:\s*['"]([0-9][0-9A-Za-z.]*)['"]""", body))
if not found:
    sys.exit("install-pip-standin: no pip version found in %s" % path)
print(' '.join(sorted(found)))
EOF
)
versions="$versions ${PIP_STANDIN_VERSIONS:-}"

mkdir -p "$cache"
for v in $versions; do
  dest=$cache/get_pip_${v//./_}.py
  if cmp -s "$src" "$dest"; then
    echo "install-pip-standin: $dest up to date"
  else
    install -m 0644 "$src" "$dest"
    echo "install-pip-standin: installed $dest"
  fi
done
