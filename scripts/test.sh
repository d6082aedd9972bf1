#!/usr/bin/env bash
# Build mwcomms and run the whole test suite, including the tests against
# a local MediaWiki that the suite starts itself.  Extra arguments go to
# pytest.  Exit status: pytest's, except that "no tests collected" (5)
# counts as a failure with a message.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$ROOT/scripts/bootstrap.sh"
cd "$ROOT"
status=0
"$VENV/bin/python" -m pytest "$@" || status=$?
if [ "$status" -eq 5 ]; then
    echo "[mwcomms] pytest collected no tests" >&2
fi
exit "$status"
