#!/usr/bin/env bash
# Install what mwcomms needs on a Debian machine and build it into .venv.
#
# Sourced by demo.sh and test.sh; safe to run again (it skips what is
# already there).  Needs root for apt-get, or the packages preinstalled.
# Environment: MWCOMMS_VENV (default <repo>/.venv), MWCOMMS_PYTHON
# (default python3).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${MWCOMMS_VENV:-$ROOT/.venv}
PYTHON=${MWCOMMS_PYTHON:-python3}
# brotli and zstd: the command-line tools make compressed test bodies.
BUILD_PACKAGES=(gcc pkg-config libcurl4-openssl-dev libssl-dev nginx openssl curl
                brotli zstd)

say() { printf '[mwcomms] %s\n' "$*" >&2; }

missing=()
for pkg in "${BUILD_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' \
        || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x "$VENV/bin/python" ]; then
    say "creating virtual environment $VENV"
    "$PYTHON" -m venv "$VENV"
fi
# Reinstall only when the sources changed since the last install.
stamp="$VENV/.mwcomms-installed"
digest=$(cd "$ROOT" && cat setup.py pyproject.toml _mwcomms/* pywikibot_ext/*.py \
    | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$digest" ]; then
    say "pip install mwcomms with its test and benchmark extras"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
        "$ROOT[test,bench]"
    echo "$digest" >"$stamp"
fi
# The in-place build lets tests and benchmarks run from the source tree.
(cd "$ROOT" && "$VENV/bin/python" setup.py -q build_ext --inplace >/dev/null)
