"""Offline stand-in for ansible-test's ``get-pip-<version>.py`` bootstrap script.

``ansible-test ... --venv`` bootstraps pip in each fresh virtual environment by running
``https://ci-files.testing.ansible.com/ansible-test/get-pip-<version>.py``, cached as
``~/.ansible/test/cache/get_pip_<version with _>.py``. That host is unreachable from our CI, so
``scripts/install-pip-standin.sh`` copies this file to the cache path instead.

It is run (through ansible-test's quiet_pip.py, as ``__main__``) by the interpreter of the new
virtual environment, with the arguments of ``get-pip.py``, e.g.
``--disable-pip-version-check pip==24.2 --no-setuptools --no-wheel``. It:

1. installs the pip bundled with this Python (``ensurepip.bootstrap()``);
2. restores the environment that ensurepip scrubbed: ensurepip deletes every ``PIP_*`` variable
   and sets ``PIP_CONFIG_FILE=/dev/null``, which would hide the machine's pip settings (index,
   find-links, certificates) from the next step;
3. runs ``python -m pip install`` with the given arguments, minus ``--no-setuptools`` and
   ``--no-wheel`` (get-pip.py options that pip itself does not know).
"""

import ensurepip
import os
import subprocess
import sys

GET_PIP_ONLY_OPTIONS = ('--no-setuptools', '--no-wheel')


def main():
    saved_env = dict(os.environ)

    ensurepip.bootstrap()

    os.environ.clear()
    os.environ.update(saved_env)
    if 'PIP_CONFIG_FILE' not in saved_env:
        os.environ.pop('PIP_CONFIG_FILE', None)

    args = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY_OPTIONS]
    cmd = [sys.executable, '-m', 'pip', 'install'] + args
    return subprocess.call(cmd)


if __name__ == '__main__':
    sys.exit(main())
