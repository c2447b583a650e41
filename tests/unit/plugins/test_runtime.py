# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""meta/runtime.yml against the modules: the action group and the redirects."""

from __future__ import annotations

import importlib
import os

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
MODULES = sorted(name[:-3] for name in os.listdir(os.path.join(ROOT, 'plugins', 'modules'))
                 if name.endswith('.py') and not name.startswith('_'))


def runtime():
    with open(os.path.join(ROOT, 'meta', 'runtime.yml')) as handle:
        return yaml.safe_load(handle)


def documentation(name):
    module = importlib.import_module('ansible_collections.virtops.libvirt.plugins.modules.' + name)
    return yaml.safe_load(module.DOCUMENTATION)


def test_the_action_group_is_every_module_with_a_connection():
    # module_defaults of the group give every member all of its keys (uri): a member without
    # `uri` would fail with "Unsupported parameters", a module with it left out would not get it.
    connected = [name for name in MODULES
                 if 'virtops.libvirt.connection' in documentation(name).get('extends_documentation_fragment', [])]
    assert sorted(runtime()['action_groups']['libvirt']) == connected
    assert 'async_progress' not in connected


def test_redirects_name_existing_modules():
    routing = runtime()['plugin_routing']['modules']
    assert routing['domain_list']['redirect'] == 'virtops.libvirt.domain_info'
    assert routing['domain_list']['deprecation']['removal_version'] == '1.0.0'
    for old, entry in routing.items():
        assert old not in MODULES
        assert entry['redirect'].split('.')[-1] in MODULES


def test_domain_options_have_the_name_alias():
    for name in MODULES:
        options = documentation(name).get('options') or {}
        if 'domain' in options:
            assert options['domain'].get('aliases') == ['name'], name
