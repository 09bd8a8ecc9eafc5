#!/usr/bin/env bash
# check.sh - the static checks .ci/run runs beside the tests (about a minute):
#   mypy --strict on controller, crd_like, store (config: pyproject.toml [tool.mypy]);
#   ruff with the rule set in pyproject.toml [tool.ruff.lint] (why each rule: there);
#   import-linter's layer contracts (.importlinter);
#   the complexity bar (scripts/complexity.py: complexity <= 15, <= 7 parameters; exceptions
#   in scripts/complexity-allow.txt, which only shrinks).
# Installs the checkers (the `check` extra) when missing. Exit 1 if any check fails.
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if ! "$PY" -c "import mypy, importlinter, ruff, radon" 2>/dev/null || ! "$PY" -m pip show -q types-docker >/dev/null 2>&1; then
    echo "check: installing the checkers (pip install -e '.[check]')" >&2
    "$PY" -m pip install -q --disable-pip-version-check --root-user-action=ignore -e '.[check]' >&2
fi
status=0
step() {  # step NAME CMD...
    local name="$1" t0=$SECONDS
    shift
    if "$@"; then echo "check: $name ok ($((SECONDS - t0))s)" >&2; else echo "check: $name FAILED" >&2; status=1; fi
}
step "mypy --strict" "$PY" -m mypy controller crd_like store
step "ruff" "$PY" -m ruff check controller crd_like store
step "import contracts" lint-imports --no-cache
step "complexity" "$PY" scripts/complexity.py
exit $status
