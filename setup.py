"""Build the _mwcomms extension against the system libcurl and OpenSSL.

Both libraries are located with pkg-config.  Set MWCOMMS_PKG_CONFIG to
use another pkg-config binary, and MWCOMMS_CFLAGS to add compiler flags
(for example the sanitizer build in docs/developing.rst).
"""
import os
import shlex
import shutil
import subprocess
import sys
from glob import glob

from setuptools import Extension, setup

# pkg-config module name -> Debian package that provides its .pc file
REQUIRED_LIBRARIES = {
    'libcurl': 'libcurl4-openssl-dev',
    'openssl': 'libssl-dev',
}
MIN_LIBCURL = '7.74.0'


class BuildConfigError(SystemExit):
    """Stop the build with a message that names what to install."""

    def __init__(self, message):
        super().__init__('mwcomms build error: ' + message)


def run_pkg_config(pkg_config, *args):
    result = subprocess.run([pkg_config, *args], capture_output=True,
                            text=True, check=False)
    return result.returncode, result.stdout.strip(), result.stderr.strip()


def find_libraries():
    """Return (include_dirs, library_dirs, libraries, extra_compile_args)."""
    pkg_config = os.environ.get('MWCOMMS_PKG_CONFIG', 'pkg-config')
    if shutil.which(pkg_config) is None:
        raise BuildConfigError(
            f'{pkg_config!r} was not found. Install it (Debian: apt-get '
            'install pkg-config) or set MWCOMMS_PKG_CONFIG to its path.')
    missing = {}
    for module, package in REQUIRED_LIBRARIES.items():
        code, _, _ = run_pkg_config(pkg_config, '--exists', module)
        if code != 0:
            missing[module] = package
    if missing:
        names = ', '.join(f'{module} (Debian package {package})'
                          for module, package in missing.items())
        packages = ' '.join(missing.values())
        raise BuildConfigError(
            f'pkg-config cannot find {names}. Install the development '
            f'files, for example: apt-get install {packages}')
    code, _, err = run_pkg_config(pkg_config, '--atleast-version',
                                  MIN_LIBCURL, 'libcurl')
    if code != 0:
        _, version, _ = run_pkg_config(pkg_config, '--modversion', 'libcurl')
        raise BuildConfigError(
            f'libcurl {version} is too old: mwcomms needs {MIN_LIBCURL} or '
            'newer.')
    modules = list(REQUIRED_LIBRARIES)
    code, cflags, err = run_pkg_config(pkg_config, '--cflags', *modules)
    if code != 0:
        raise BuildConfigError(f'pkg-config --cflags failed: {err}')
    code, libs, err = run_pkg_config(pkg_config, '--libs', *modules)
    if code != 0:
        raise BuildConfigError(f'pkg-config --libs failed: {err}')

    include_dirs, library_dirs, libraries, extra = [], [], [], []
    for flag in shlex.split(cflags):
        if flag.startswith('-I'):
            include_dirs.append(flag[2:])
        else:
            extra.append(flag)
    for flag in shlex.split(libs):
        if flag.startswith('-L'):
            library_dirs.append(flag[2:])
        elif flag.startswith('-l'):
            libraries.append(flag[2:])
    return include_dirs, library_dirs, libraries, extra


def make_extension():
    if any(arg in sys.argv for arg in ('egg_info', 'sdist', '--version')):
        # Metadata-only commands need no C libraries.
        return Extension('_mwcomms', sources=sorted(glob('_mwcomms/*.c')))
    include_dirs, library_dirs, libraries, extra = find_libraries()
    extra_compile_args = extra + ['-std=c11', '-Wall', '-Wextra',
                                  '-Wno-unused-parameter',
                                  '-Wno-missing-field-initializers']
    extra_compile_args += shlex.split(os.environ.get('MWCOMMS_CFLAGS', ''))
    extra_link_args = shlex.split(os.environ.get('MWCOMMS_LDFLAGS', ''))
    return Extension(
        '_mwcomms',
        sources=sorted(glob('_mwcomms/*.c')),
        depends=sorted(glob('_mwcomms/*.h')),
        include_dirs=include_dirs,
        library_dirs=library_dirs,
        libraries=libraries + ['pthread'],
        extra_compile_args=extra_compile_args,
        extra_link_args=extra_link_args,
    )


# The package list is here rather than in pyproject.toml's [tool.setuptools]
# table, which older setuptools releases warn about as a beta feature.
setup(packages=['pywikibot_ext'], ext_modules=[make_extension()])
