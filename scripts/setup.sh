#!/usr/bin/env bash
# setup.sh - everything the project needs on this host: a container engine (installed and
# started if missing, reused if running; RECONCILE_ENGINE picks it, see ensure-docker.sh),
# the Python package with its test extras (Playwright among them), Debian's chromium for
# the status page's browser test (tests/e2e/test_status_page_e2e.py; Playwright drives it,
# it downloads no browser of its own), and the offline-built images the examples and tests
# use, built on that engine. Idempotent; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"

DOCKER_HOST="$(bash scripts/ensure-docker.sh | tail -n 1)"
export DOCKER_HOST
if true; then
    echo "setup: installing reconcile (pip install -e '.[test]')" >&2
    "$PY" -m pip install -q --disable-pip-version-check --root-user-action=ignore -e '.[test]'
fi
if ! command -v chromium >/dev/null 2>&1; then
    echo "setup: installing Debian's chromium (the status page's browser test)" >&2
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; } >&2; then
        # not fatal here: the browser test then fails and says why (it never skips)
        echo "setup: WARNING: chromium could not be installed; tests/e2e/test_status_page_e2e.py will fail" >&2
    fi
fi
bash scripts/build-images.sh
