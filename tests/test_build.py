"""setup.py names the Debian package to install when a library is missing."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# A pkg-config stand-in that finds only the modules listed in $KNOWN.
FAKE_PKG_CONFIG = """#!/bin/sh
for arg in "$@"; do last=$arg; done
case "$1" in
  --exists) case " $KNOWN " in *" $last "*) exit 0 ;; esac; exit 1 ;;
  --atleast-version) exit 0 ;;
  *) exit 1 ;;
esac
"""


def build_with(tmp_path: Path, known: str) -> subprocess.CompletedProcess:
    fake = tmp_path / 'pkg-config'
    fake.write_text(FAKE_PKG_CONFIG)
    fake.chmod(0o755)
    work = tmp_path / 'src'
    shutil.copytree(ROOT / '_mwcomms', work / '_mwcomms',
                    ignore=shutil.ignore_patterns('*.so', '*.o'))
    for name in ('setup.py', 'pyproject.toml', 'README.rst'):
        shutil.copy(ROOT / name, work / name)
    shutil.copytree(ROOT / 'pywikibot_ext', work / 'pywikibot_ext')
    env = dict(os.environ, MWCOMMS_PKG_CONFIG=str(fake), KNOWN=known)
    return subprocess.run([sys.executable, 'setup.py', 'build_ext'],
                          cwd=work, env=env, capture_output=True, text=True,
                          timeout=120, check=False)


@pytest.mark.parametrize(('known', 'package', 'present'), [
    ('openssl', 'libcurl4-openssl-dev', 'libssl-dev'),
    ('libcurl', 'libssl-dev', 'libcurl4-openssl-dev'),
])
def test_missing_library_names_package(tmp_path, known, package, present):
    result = build_with(tmp_path, known)
    assert result.returncode != 0
    assert 'mwcomms build error' in result.stderr
    assert f'apt-get install {package}' in result.stderr
    assert present not in result.stderr


def test_missing_pkg_config_is_named(tmp_path):
    work = tmp_path / 'src'
    work.mkdir()
    for name in ('setup.py', 'pyproject.toml', 'README.rst'):
        shutil.copy(ROOT / name, work / name)
    (work / '_mwcomms').mkdir()
    env = dict(os.environ, MWCOMMS_PKG_CONFIG=str(tmp_path / 'no-such'))
    result = subprocess.run([sys.executable, 'setup.py', 'build_ext'],
                            cwd=work, env=env, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode != 0
    assert 'pkg-config' in result.stderr
    assert 'MWCOMMS_PKG_CONFIG' in result.stderr
