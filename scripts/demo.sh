#!/usr/bin/env bash
# demo.sh - set everything up, apply examples/demo/ and show `reconcile status`.
# Uses the default store (RECONCILE_DB, or /var/lib/reconcile/reconcile.db as root).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
reconcile apply -f examples/demo/stack.yaml --wait --timeout 90s
reconcile status
echo
echo "demo-web answers on http://127.0.0.1:8080/ :"
wget -qO- http://127.0.0.1:8080/ 2>/dev/null | head -3 || curl -s http://127.0.0.1:8080/ | head -3
echo
echo "Next: 'reconcile run' keeps it healed; 'reconcile history' tells what happened and why."
