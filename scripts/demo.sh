#!/usr/bin/env bash
# Build mwcomms, start a local MediaWiki with an OAuth front, and run one
# pywikibot bot through mwcomms and through stock pywikibot, printing
# what it did and its timings side by side.  Arguments go to demo/run.py.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
for arg in "$@"; do
    case $arg in
    -h | --help)
        # The help needs no venv, no build and no wiki.
        exec python3 "$ROOT/demo/run.py" --help ;;
    esac
done
source "$ROOT/scripts/bootstrap.sh"
cd "$ROOT"
exec "$VENV/bin/python" demo/run.py "$@"
