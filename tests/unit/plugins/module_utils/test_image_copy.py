# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""image_copy: argv, progress parsing, result shaping, and the partial-file rules
against a fake qemu-img (real copies are in the integration target)."""

from __future__ import annotations

import grp
import hashlib
import json
import os
import pwd
import stat
import sys

import pytest
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args

from ansible_collections.virtops.libvirt.plugins.module_utils import _image_copy
from ansible_collections.virtops.libvirt.plugins.module_utils._image_copy import (
    Background,
    ImageCopy,
    ProgressParser,
    compare_args,
    convert_argv,
    copy_result,
    option_errors,
    progress_record,
    run_convert,
    sha256_file,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._file_args import FileAttributes
from ansible_collections.virtops.libvirt.plugins.module_utils._libvirt import LibvirtFailure
from ansible_collections.virtops.libvirt.plugins.module_utils._qemu_img import QemuImg, backing_file

QI = '/usr/bin/qemu-img'


def params(**kwargs):
    base = dict(src='/img/a.qcow2', dest='/bak/a.qcow2', src_format=None, format='qcow2',
                compress='none', backing_chain=True, checksum=False, verify=False,
                mode=None, force=False, progress_file=None)
    base.update(kwargs)
    return base


def file_attributes(check_mode=False, **file_args):
    """FileAttributes over a real AnsibleModule with the common file arguments given."""
    args = dict(file_args, _ansible_check_mode=check_mode)
    with patch_module_args(args):
        module = AnsibleModule(argument_spec={}, add_file_common_args=True, supports_check_mode=True)
    return FileAttributes(module)


def test_option_errors():
    assert option_errors(params()) == []
    assert option_errors(params(compress='zstd')) == []
    assert 'needs format: qcow2' in option_errors(params(format='raw', compress='zlib'))[0]
    assert 'backing_chain' in option_errors(params(format='raw', backing_chain=False))[0]
    assert 'mode' in option_errors(params(mode='rw'))[0]
    assert option_errors(params(mode='u=rw,g=r')) == []
    assert 'owner no-such-user-virtops' in option_errors(params(owner='no-such-user-virtops'))[0]


def test_convert_argv_flattens_sparse_with_force_share():
    assert convert_argv(QI, '/s', 'qcow2', '/d.partial', 'raw') == [
        QI, 'convert', '-U', '-p', '-f', 'qcow2', '-O', 'raw', '-S', '4k', '/s', '/d.partial']


def test_convert_argv_compression_and_shallow():
    zstd = convert_argv(QI, '/s', 'raw', '/d', 'qcow2', 'zstd')
    assert zstd[zstd.index('-c'):] == ['-c', '-o', 'compression_type=zstd', '/s', '/d']
    zlib = convert_argv(QI, '/s', 'raw', '/d', 'qcow2', 'zlib')
    assert zlib[zlib.index('-c'):] == ['-c', '/s', '/d'] and '-o' not in zlib
    shallow = convert_argv(QI, '/s', 'qcow2', '/d', 'qcow2', backing=('/b.qcow2', 'qcow2'))
    assert shallow[-6:] == ['-B', '/b.qcow2', '-F', 'qcow2', '/s', '/d']


def test_compare_args():
    assert compare_args('/s', 'qcow2', '/d', 'raw') == [
        'compare', '-U', '-f', 'qcow2', '-F', 'raw', '/s', '/d']


def test_backing_file():
    assert backing_file({}, '/img/top.qcow2') is None
    assert backing_file({'backing-filename': 'base.qcow2', 'backing-filename-format': 'raw'},
                        '/img/top.qcow2') == ('/img/base.qcow2', 'raw')
    assert backing_file({'full-backing-filename': '/x/b.qcow2', 'backing-filename': 'b.qcow2'},
                        '/img/top.qcow2') == ('/x/b.qcow2', None)


def test_progress_parser_any_chunking():
    stream = '    (0.00/100%)\r    (1.17/100%)\r    (12.50/100%)\r    (100.00/100%)\r'
    for size in (1, 3, 7, len(stream)):
        parser = ProgressParser()
        seen = [parser.feed(stream[i:i + size]) for i in range(0, len(stream), size)]
        assert parser.percent == 100.0
        assert [p for p in seen if p is not None] == sorted(p for p in seen if p is not None)
    parser = ProgressParser()
    assert parser.feed('    (12') is None
    assert parser.feed('.5/100%)\r    (13.') == 12.5
    assert parser.feed('noise\n') == 12.5


def test_progress_record():
    assert progress_record(None, 1000, 0.04) == dict(percent=0.0, bytes_total=1000, bytes_done=0,
                                                     elapsed=0.0)
    assert progress_record(12.5, 1 << 30, 3.26) == dict(
        percent=12.5, bytes_total=1 << 30, bytes_done=(1 << 30) // 8, elapsed=3.3)


def test_copy_result_shape(tmp_path):
    path = tmp_path / 'f'
    path.write_bytes(b'x' * 10)
    result = copy_result(True, params(), 'raw', 4096, stat=os.stat(str(path)), duration=1.23456)
    assert result['size'] == os.stat(str(path)).st_blocks * 512
    assert (result['apparent_size'], result['duration'], result['src_format']) == (10, 1.235, 'raw')
    assert set(result) == {'changed', 'src', 'dest', 'src_format', 'format', 'compress',
                           'virtual_size', 'size', 'apparent_size', 'sha256', 'verified',
                           'duration', 'msg'}
    assert copy_result(True, params(), 'raw', 4096)['size'] is None


FAKE = r'''#!%s
import os, sys, time
if os.environ.get('FAKE_FAIL'):
    sys.stderr.write('Could not open %%s: boom\n' %% sys.argv[-2])
    sys.exit(1)
for pct in (0, 25, 50, 100):
    sys.stdout.write('    (%%.2f/100%%%%)\r' %% pct)
    sys.stdout.flush()
    time.sleep(float(os.environ.get('FAKE_DELAY', '0')))
with open(sys.argv[-1], 'wb') as out:
    out.write(b'copied')
'''


@pytest.fixture
def fake_qemu(tmp_path, monkeypatch):
    script = tmp_path / 'qemu-img'
    script.write_text(FAKE % sys.executable)
    script.chmod(0o755)
    monkeypatch.setattr(_image_copy, 'PROGRESS_INTERVAL', 0.05)

    class Qemu(QemuImg):
        """The real QemuImg (info parsing and all) over a fake run()."""
        binary = str(script)
        calls = []

        def __init__(self):  # pylint: disable=super-init-not-called
            pass

        def run(self, args, what):
            self.calls.append(args)
            if args[0] == 'compare':
                if os.environ.get('FAKE_MISMATCH'):
                    raise LibvirtFailure('%s failed: Content mismatch at offset 0!' % what, rc=1)
                return 'Images are identical.'
            return json.dumps({'format': 'qcow2', 'virtual-size': 1 << 20})
    return Qemu()


def test_run_convert_ticks_and_stderr(fake_qemu, monkeypatch):
    ticks = []
    monkeypatch.setenv('FAKE_DELAY', '0.05')
    rc, err = run_convert([fake_qemu.binary, '/dev/null', os.devnull], ticks.append, interval=0.02)
    assert (rc, err) == (0, '')
    assert ticks[-1] == 100.0 and len(ticks) > 2
    monkeypatch.setenv('FAKE_FAIL', '1')
    rc, err = run_convert([fake_qemu.binary, '/src', '/dst'])
    assert rc == 1 and 'Could not open /src: boom' in err


def test_copy_writes_partial_then_renames(fake_qemu, tmp_path, monkeypatch):
    monkeypatch.setenv('FAKE_DELAY', '0.06')
    src, dest = tmp_path / 'src.qcow2', tmp_path / 'out' / 'dest.qcow2'
    src.write_bytes(b'source')
    dest.parent.mkdir()
    (tmp_path / 'out' / 'dest.qcow2.partial').write_bytes(b'stale partial of a killed run')
    seen = []
    real_update = _image_copy.ProgressFile.update

    def spy(progress, percent):
        real_update(progress, percent)
        with open(progress.path) as handle:
            seen.append(json.load(handle))
    monkeypatch.setattr(_image_copy.ProgressFile, 'update', spy)
    progress = tmp_path / 'progress.json'
    result = ImageCopy(fake_qemu, params(src=str(src), dest=str(dest), checksum=True, verify=True,
                                         mode='0640', progress_file=str(progress)),
                       attributes=file_attributes(mode='0640')).run()
    assert result['changed'] and result['verified'] and result['virtual_size'] == 1 << 20
    assert result['sha256'] == hashlib.sha256(b'copied').hexdigest()
    assert dest.read_bytes() == b'copied' and stat.S_IMODE(dest.stat().st_mode) == 0o640
    assert os.listdir(str(dest.parent)) == ['dest.qcow2']
    assert not progress.exists() and seen[0]['percent'] == 0.0
    assert set(seen[0]) == {'percent', 'bytes_total', 'bytes_done', 'elapsed', 'pid', 'start'}
    assert seen[0]['pid'] == os.getpid()
    assert seen[0]['bytes_total'] == 1 << 20
    assert src.read_bytes() == b'source'

    again = ImageCopy(fake_qemu, params(src=str(src), dest=str(dest), checksum=True)).run()
    assert not again['changed'] and 'kept' in again['msg']
    assert again['sha256'] == result['sha256'] and again['apparent_size'] == 6


@pytest.mark.parametrize('env', ['FAKE_FAIL', 'FAKE_MISMATCH'])
def test_failure_leaves_no_partial_and_keeps_old_dest(fake_qemu, tmp_path, monkeypatch, env):
    monkeypatch.setenv(env, '1')
    src, dest = tmp_path / 'src', tmp_path / 'dest'
    src.write_bytes(b'source')
    dest.write_bytes(b'old backup')
    with pytest.raises(LibvirtFailure) as failure:
        ImageCopy(fake_qemu, params(src=str(src), dest=str(dest), force=True, verify=True)).run()
    assert ('boom' if env == 'FAKE_FAIL' else 'verification failed') in failure.value.msg
    assert sorted(os.listdir(str(tmp_path))) == ['dest', 'qemu-img', 'src']
    assert dest.read_bytes() == b'old backup'


def test_refusals_and_check_mode(fake_qemu, tmp_path):
    src = tmp_path / 'src'
    src.write_bytes(b'source')
    cases = [
        (params(src=str(tmp_path / 'missing'), dest=str(tmp_path / 'd')), 'does not exist'),
        (params(src=str(src), dest=str(tmp_path / 'nodir' / 'd')), 'create it first'),
        (params(src=str(src), dest=str(src), force=True), 'same file'),
        (params(src=str(src), dest=str(tmp_path)), 'is a directory'),
    ]
    for case, text in cases:
        with pytest.raises(LibvirtFailure) as failure:
            ImageCopy(fake_qemu, case).run()
        assert text in failure.value.msg
    result = ImageCopy(fake_qemu, params(src=str(src), dest=str(tmp_path / 'd'))).run(True)
    assert result['changed'] and result['virtual_size'] == 1 << 20 and result['size'] is None
    assert 'would copy' in result['msg'] and not (tmp_path / 'd').exists()


def test_concurrent_run_is_refused(fake_qemu, tmp_path):
    partial = str(tmp_path / 'd.partial')
    fd = _image_copy.open_partial(partial)
    try:
        with pytest.raises(LibvirtFailure, match='another copy'):
            _image_copy.open_partial(partial)
    finally:
        os.close(fd)
    assert stat.S_IMODE(os.stat(partial).st_mode) == 0o600


def test_convert_argv_without_force_share_takes_the_image_lock():
    argv = convert_argv(QI, '/s', 'qcow2', '/d', 'qcow2', force_share=False)
    assert '-U' not in argv and argv[:2] == [QI, 'convert']


def test_background_sha256_matches_and_reports_errors(tmp_path):
    data = tmp_path / 'copy.qcow2'
    data.write_bytes(b'x' * (3 << 20))
    assert Background(sha256_file, str(data)).result() == hashlib.sha256(b'x' * (3 << 20)).hexdigest()
    with pytest.raises(OSError):
        Background(sha256_file, str(tmp_path / 'missing')).result()


def nobody():
    """A user and a group that are not root's, or a skip."""
    if os.geteuid() != 0:
        pytest.skip('chown needs root')
    try:
        return pwd.getpwuid(65534).pw_name, grp.getgrgid(65534).gr_name
    except KeyError:
        pytest.skip('no user and group 65534')


def test_copy_has_mode_and_owner_before_the_rename(fake_qemu, tmp_path, monkeypatch):
    user, group = nobody()
    src, dest = tmp_path / 'src', tmp_path / 'dest.qcow2'
    src.write_bytes(b'source')
    renamed = []
    real_rename = os.rename

    def rename(old, new):
        info = os.stat(old)
        renamed.append((old, stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid))
        real_rename(old, new)
    monkeypatch.setattr(_image_copy.os, 'rename', rename)
    result = ImageCopy(fake_qemu, params(src=str(src), dest=str(dest)),
                       attributes=file_attributes(mode='g+r', owner=user, group=group)).run()
    uid, gid = pwd.getpwnam(user).pw_uid, grp.getgrnam(group).gr_gid
    assert renamed == [(str(dest) + '.partial', 0o640, uid, gid)]
    info = dest.stat()
    assert (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid) == (0o640, uid, gid)
    assert result['changed'] and result['size'] == info.st_blocks * 512


def test_a_new_copy_without_mode_is_private(fake_qemu, tmp_path):
    src, dest = tmp_path / 'src', tmp_path / 'dest.qcow2'
    src.write_bytes(b'source')
    old = os.umask(0o022)
    try:
        ImageCopy(fake_qemu, params(src=str(src), dest=str(dest)), attributes=file_attributes()).run()
    finally:
        os.umask(old)
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600


def test_kept_dest_gets_the_file_arguments(fake_qemu, tmp_path):
    src, dest = tmp_path / 'src', tmp_path / 'dest.qcow2'
    src.write_bytes(b'source')
    dest.write_bytes(b'an earlier copy')
    dest.chmod(0o600)

    def run(check_mode=False, **file_args):
        return ImageCopy(fake_qemu, params(src=str(src), dest=str(dest), **file_args),
                         attributes=file_attributes(check_mode, **file_args)).run(check_mode)
    result = run(mode='0644')
    assert result['changed'] and 'were set' in result['msg'] and 'kept' in result['msg']
    assert stat.S_IMODE(dest.stat().st_mode) == 0o644
    assert dest.read_bytes() == b'an earlier copy'
    assert not run(mode='0644')['changed']
    assert not run()['changed']  # no mode asked: a kept copy keeps its mode
    checked = run(check_mode=True, mode='0600')
    assert checked['changed'] and 'would be set' in checked['msg']
    assert stat.S_IMODE(dest.stat().st_mode) == 0o644


def test_chattr_attributes_come_after_the_rename(fake_qemu, tmp_path):
    src, dest = tmp_path / 'src', tmp_path / 'dest.qcow2'
    src.write_bytes(b'source')
    partial = str(dest) + '.partial'
    calls = []

    class Recorder(object):
        def prepare(self, path, final):
            calls.append(('prepare', path, final, os.path.exists(path), os.path.exists(final)))

        def apply(self, path, changed=False):
            calls.append(('apply', path, changed, os.path.exists(partial), os.path.exists(path)))
            return changed
    ImageCopy(fake_qemu, params(src=str(src), dest=str(dest)), attributes=Recorder()).run()
    assert calls == [('prepare', partial, str(dest), True, False),
                     ('apply', str(dest), True, False, True)]


def test_a_failed_attribute_leaves_no_partial(fake_qemu, tmp_path):
    src, dest = tmp_path / 'src', tmp_path / 'dest.qcow2'
    src.write_bytes(b'source')

    class Failing(object):
        def prepare(self, path, final):
            raise SystemExit(1)  # what fail_json does
    with pytest.raises(SystemExit):
        ImageCopy(fake_qemu, params(src=str(src), dest=str(dest)), attributes=Failing()).run()
    assert sorted(os.listdir(str(tmp_path))) == ['qemu-img', 'src']


def test_convert_argv_limits_the_read_rate():
    argv = convert_argv(QI, '/s', 'qcow2', '/d.partial', 'qcow2', bandwidth=50)
    assert argv[argv.index('-r') + 1] == '50M'
    assert '-r' not in convert_argv(QI, '/s', 'qcow2', '/d.partial', 'qcow2', bandwidth=0)
