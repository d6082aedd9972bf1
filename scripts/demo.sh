#!/usr/bin/env bash
# Build mwcomms, start a local MediaWiki with an OAuth front, and run one
# pywikibot bot through mwcomms and through stock pywikibot, printing
# what it did and its timings side by side.  Arguments go to demo/run.py.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$ROOT/scripts/bootstrap.sh"
cd "$ROOT"
exec "$VENV/bin/python" demo/run.py "$@"
