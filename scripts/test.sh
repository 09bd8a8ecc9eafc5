#!/usr/bin/env bash
# test.sh - set everything up and run the whole test suite (unit, store, e2e against the
# real Docker engine). Extra arguments go to pytest (e.g. --run-slow for the long fault runs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export RECONCILE_TEST_RUN="${RECONCILE_TEST_RUN:-$(date +%s | tail -c 7)}"
status=0
python3 -m pytest -q -p no:cacheprovider "$@" || status=$?
bash scripts/clean-test-resources.sh "$RECONCILE_TEST_RUN*" >/dev/null 2>&1 || true
exit $status
