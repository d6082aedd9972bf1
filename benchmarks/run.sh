#!/usr/bin/env bash
# Run the benchmark suite: bash benchmarks/run.sh [--smoke] [--out DIR] ...
#
# Installs what the suite needs (scripts/bootstrap.sh), then runs
# `python -m benchmarks` with the arguments given here.  Results go to
# benchmarks/out/ unless --out names another folder.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$ROOT/scripts/bootstrap.sh"
cd "$ROOT"

# pycurl's wheel on PyPI bundles its own libcurl (8.x).  The suite compares
# pycurl with raw libcurl programs linked against the system libcurl, so
# pycurl is rebuilt from source when it reports another libcurl version.
system_libcurl=$(curl-config --version | awk '{print $2}')
pycurl_libcurl=$("$VENV/bin/python" -c \
    'import pycurl; print(pycurl.version_info()[1])' 2>/dev/null || true)
if [ "$pycurl_libcurl" != "$system_libcurl" ]; then
    say "building pycurl against the system libcurl $system_libcurl" \
        "(installed pycurl uses ${pycurl_libcurl:-none})"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
        --force-reinstall --no-deps --no-binary pycurl --no-cache-dir pycurl
fi

exec "$VENV/bin/python" -m benchmarks "$@"
