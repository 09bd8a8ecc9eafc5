#!/usr/bin/env bash
# test.sh - set everything up and run the whole test suite (unit, store, e2e against the
# real engine). Extra arguments go to pytest (e.g. --run-slow for the long fault runs, or
# tests/e2e for the end-to-end suite only).
#
# The engine: RECONCILE_ENGINE=docker20 (default: Debian 12's 20.10 on the default
# socket) | docker26 (Docker 26.1 in its own network namespace, see docs/ENGINES.md) |
# podman. scripts/ensure-docker.sh starts it and says which DOCKER_HOST to use; with
# docker26, pytest runs inside that engine's network namespace, where its published
# ports (127.0.0.1:...) are.
#
#   bash scripts/test.sh                                   # everything, on docker20
#   RECONCILE_ENGINE=docker26 bash scripts/test.sh tests/e2e
set -euo pipefail
cd "$(dirname "$0")/.."
export RECONCILE_ENGINE="${RECONCILE_ENGINE:-docker20}"
DOCKER_HOST="$(bash scripts/ensure-docker.sh --engine "$RECONCILE_ENGINE" | tail -n 1)"
export DOCKER_HOST
bash scripts/setup.sh
export RECONCILE_TEST_RUN="${RECONCILE_TEST_RUN:-$(date +%s | tail -c 7)}"
in_engine_netns=()
case "$RECONCILE_ENGINE" in
    docker26) in_engine_netns=(nsenter --net=/run/netns/reconcile-d26) ;;
    podman) in_engine_netns=(nsenter --net=/run/netns/reconcile-podman) ;;   # scripts/ensure-podman.sh's
esac
echo "test.sh: engine $RECONCILE_ENGINE at $DOCKER_HOST" >&2
status=0
"${in_engine_netns[@]}" python3 -m pytest -q -p no:cacheprovider "$@" || status=$?
if [[ "$status" == 5 ]]; then
    echo "test.sh: ERROR: pytest collected no tests (exit 5) from: ${*:-the default paths}" >&2
fi
bash scripts/clean-test-resources.sh "$RECONCILE_TEST_RUN*" >/dev/null 2>&1 || true
exit $status
