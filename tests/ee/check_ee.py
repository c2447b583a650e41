"""Check the execution environments (EE) of docs/awx.md with ``ansible-builder create``.

Run by ``make ee``: it builds the collection tarball into WORKDIR first. For every EE definition
in the guide (a ```yaml block with ``version: 3``), exactly as written there:

- ``ansible-builder create`` writes its build context (no container runtime, no network);
- the context installs an ansible-core that meta/runtime.yml allows, the tested one included,
  on a Python it runs on, and ansible-runner;
- the collection is installed from Galaxy, or from the tarball of this tree under the name the
  guide gives it (``additional_build_files`` puts it where the requirement points);
- the introspection ansible-builder runs inside the build finds no Python or system requirement
  of this collection (the EE must not build libvirt-python).

Usage: check_ee.py --doc docs/awx.md --root . --workdir .build/ee
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys

import yaml
from packaging.specifiers import SpecifierSet
from packaging.version import Version

COLLECTION = 'virtops.libvirt'
# ansible-core needs this Python or newer on the controller, from its 2.18 release on; 2.16
# and 2.17 need 3.10. The EE pins no older ansible-core than meta/runtime.yml's minimum.
MIN_CONTROLLER_PYTHON = (3, 10)


class CheckFailed(Exception):
    pass


def ee_blocks(doc):
    """The EE definitions in a markdown guide: ```yaml blocks that hold ``version: 3``."""
    with open(doc, encoding='utf-8') as handle:
        text = handle.read()
    blocks = re.findall(r'^```yaml\n(.*?)^```', text, flags=re.M | re.S)
    return [(block, yaml.safe_load(block)) for block in blocks
            if re.search(r'^version: 3$', block, re.M)]


def tested_core(root):
    """The ansible-core version of the dev venv (scripts/requirements-dev.txt)."""
    with open(os.path.join(root, 'scripts', 'requirements-dev.txt'), encoding='utf-8') as handle:
        match = re.search(r'^ansible-core==(\S+)', handle.read(), re.M)
    if not match:
        raise CheckFailed('scripts/requirements-dev.txt pins no ansible-core')
    return Version(match.group(1))


def check_core(definition, root):
    deps = definition.get('dependencies', {})
    ref = (deps.get('ansible_core') or {}).get('package_pip', '')
    if not ref.startswith('ansible-core'):
        raise CheckFailed('no ansible_core.package_pip ansible-core: %r' % (ref,))
    spec = SpecifierSet(ref[len('ansible-core'):])
    with open(os.path.join(root, 'meta', 'runtime.yml'), encoding='utf-8') as handle:
        required = SpecifierSet(yaml.safe_load(handle)['requires_ansible'])
    minimum = min(Version(item.version) for item in required if item.operator in ('>=', '>'))
    tested = tested_core(root)
    if tested not in spec:
        raise CheckFailed('%s excludes ansible-core %s, the tested version' % (ref, tested))
    below = Version('%d.%d.99' % (minimum.major, minimum.minor - 1))
    if below in spec:
        raise CheckFailed('%s allows ansible-core %s, older than meta/runtime.yml allows (%s)'
                          % (ref, below, required))
    if not (deps.get('ansible_runner') or {}).get('package_pip'):
        raise CheckFailed('no ansible_runner: AWX runs jobs through ansible-runner')
    python = (deps.get('python_interpreter') or {}).get('python_path', '/usr/bin/python3')
    match = re.search(r'python(\d+)\.(\d+)$', python)
    if not match or tuple(int(x) for x in match.groups()) < MIN_CONTROLLER_PYTHON:
        raise CheckFailed('python_path %s: ansible-core 2.16+ needs Python %d.%d or newer, named '
                          'by version (python3 is 3.9 on CentOS Stream 9)'
                          % ((python,) + MIN_CONTROLLER_PYTHON))
    return ref


def place_tarball(definition, ee_dir, tarball):
    """Copy the built tarball to where the definition expects it; return its requirement."""
    wanted = os.path.basename(tarball)
    files = definition.get('additional_build_files') or []
    sources = [item for item in files if item['src'].endswith('.tar.gz')]
    if len(sources) != 1:
        raise CheckFailed('a tarball variant needs one .tar.gz in additional_build_files')
    if os.path.basename(sources[0]['src']) != wanted:
        raise CheckFailed('the guide names %s, this tree builds %s (galaxy.yml version)'
                          % (sources[0]['src'], wanted))
    shutil.copy(tarball, os.path.join(ee_dir, sources[0]['src']))
    return sources[0]


def check_context(context, definition, source):
    """The generated build context installs what the definition asks for, from where it is."""
    containerfile = os.path.join(context, 'Containerfile')
    with open(containerfile, encoding='utf-8') as handle:
        text = handle.read()
    core = definition['dependencies']['ansible_core']['package_pip']
    if core not in text:
        raise CheckFailed('%s does not install %s' % (containerfile, core))
    with open(os.path.join(context, '_build', 'requirements.yml'), encoding='utf-8') as handle:
        requirements = yaml.safe_load(handle)
    names = [item['name'] for item in requirements.get('collections', [])]
    if source is None:
        if COLLECTION not in names:
            raise CheckFailed('the requirements do not name %s: %s' % (COLLECTION, names))
        return
    # ansible-builder copies _build/ to /build, the working directory of ansible-galaxy.
    in_context = os.path.join(context, '_build', source['dest'], os.path.basename(source['src']))
    in_image = '/build/%s/%s' % (source['dest'].strip('/'), os.path.basename(source['src']))
    if not os.path.isfile(in_context):
        raise CheckFailed('the tarball is not in the build context at %s' % in_context)
    if in_image not in names and os.path.relpath(in_image, '/build') not in names:
        raise CheckFailed('the requirements name %s, the tarball is at %s in the image'
                          % (names, in_image))


def check_introspection(context, tarball, workdir):
    """What ansible-builder's introspection finds for this collection: nothing."""
    collections = os.path.join(workdir, 'collections')
    shutil.rmtree(collections, ignore_errors=True)
    subprocess.run(['ansible-galaxy', 'collection', 'install', '--force', '-p', collections,
                    tarball], check=True, stdout=subprocess.DEVNULL,
                   env=dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections))
    script = os.path.join(context, '_build', 'scripts', 'introspect.py')
    out = subprocess.run([sys.executable, script, 'introspect', collections], check=True,
                         stdout=subprocess.PIPE, text=True).stdout
    found = yaml.safe_load(out) or {}
    ours = [line for key in ('python', 'system') for line in (found.get(key) or [])
            if COLLECTION in line]
    if ours:
        raise CheckFailed('the EE would install for %s: %s' % (COLLECTION, ours))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--doc', required=True)
    parser.add_argument('--root', required=True, help='the collection checkout')
    parser.add_argument('--workdir', required=True, help='holds the built tarball')
    args = parser.parse_args()
    tarballs = glob.glob(os.path.join(args.workdir, 'virtops-libvirt-*.tar.gz'))
    if len(tarballs) != 1:
        raise CheckFailed('expected one collection tarball in %s, found %s'
                          % (args.workdir, tarballs))
    tarball = os.path.abspath(tarballs[0])
    definitions = ee_blocks(args.doc)
    if len(definitions) < 2:
        raise CheckFailed('%s: expected the Galaxy and the tarball EE definitions, found %d'
                          % (args.doc, len(definitions)))
    for index, (text, definition) in enumerate(definitions):
        ee_dir = os.path.abspath(os.path.join(args.workdir, 'ee%d' % index))
        shutil.rmtree(ee_dir, ignore_errors=True)
        os.makedirs(ee_dir)
        core = check_core(definition, args.root)
        source = place_tarball(definition, ee_dir, tarball) \
            if definition.get('additional_build_files') else None
        with open(os.path.join(ee_dir, 'execution-environment.yml'), 'w', encoding='utf-8') as handle:
            handle.write(text)
        context = os.path.join(ee_dir, 'context')
        subprocess.run(['ansible-builder', 'create', '-f', 'execution-environment.yml',
                        '-c', context, '--output-filename', 'Containerfile'],
                       cwd=ee_dir, check=True)
        check_context(context, definition, source)
        check_introspection(context, tarball, args.workdir)
        print('ee: %s block %d (%s, collection from %s): build context %s ok'
              % (args.doc, index + 1, core, 'a tarball' if source else 'Galaxy', context))


if __name__ == '__main__':
    try:
        main()
    except (CheckFailed, subprocess.CalledProcessError) as exc:
        sys.exit('ee: FAILED: %s' % exc)
