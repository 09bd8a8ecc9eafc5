#!/usr/bin/env bash
# setup.sh - everything the project needs on this host: a Docker engine (installed and
# started if missing, reused if running), the Python package with its test extras, and the
# offline-built images the examples and tests use. Idempotent; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"

bash scripts/ensure-docker.sh
if true; then
    echo "setup: installing reconcile (pip install -e '.[test]')" >&2
    "$PY" -m pip install -q --disable-pip-version-check --root-user-action=ignore -e '.[test]'
fi
bash scripts/build-images.sh
