#!/usr/bin/env bash
# setup.sh - everything the project needs on this host: a container engine (installed and
# started if missing, reused if running; RECONCILE_ENGINE picks it, see ensure-docker.sh),
# the Python package with its test extras, and the offline-built images the examples and
# tests use, built on that engine. Idempotent; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"

DOCKER_HOST="$(bash scripts/ensure-docker.sh | tail -n 1)"
export DOCKER_HOST
if true; then
    echo "setup: installing reconcile (pip install -e '.[test]')" >&2
    "$PY" -m pip install -q --disable-pip-version-check --root-user-action=ignore -e '.[test]'
fi
bash scripts/build-images.sh
