#!/usr/bin/env bash
# clean-test-resources.sh - remove test containers, networks and volumes.
#
# Usage: scripts/clean-test-resources.sh [RUN_ID]
#   no argument: everything labelled io.reconcile.test-run (any value)
#   RUN_ID:      only resources labelled io.reconcile.test-run=RUN_ID
#
# Only resources carrying that label are touched (containers are removed with
# their anonymous volumes; images are left alone). Exits non-zero if the
# engine is unreachable or something could not be removed.
set -euo pipefail

readonly PROG="clean-test-resources"
readonly KEY="io.reconcile.test-run"

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { printf '%s: ERROR: %s\n' "$PROG" "$*" >&2; exit 1; }

case "${1:-}" in
    -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
esac
(($# <= 1)) || die "usage: $0 [RUN_ID]"

if [[ $# == 1 ]]; then
    [[ -n "$1" ]] || die "RUN_ID must not be empty"
    [[ "$1" != *$'\n'* && "$1" != *,* ]] || die "invalid RUN_ID: $1"
    FILTER="label=$KEY=$1"
else
    FILTER="label=$KEY"
fi

timeout 15 docker info >/dev/null 2>&1 || die "docker engine not reachable (run scripts/ensure-docker.sh)"

failures=0
removed=0
# remove_each KIND CMD... : run "CMD id" for every id on stdin (sets $removed);
# resources that vanished meanwhile are not an error.
remove_each() {
    local kind="$1" id err
    shift
    removed=0
    while IFS= read -r id; do
        [[ -n "$id" ]] || continue
        if err="$("$@" "$id" 2>&1 >/dev/null)"; then
            removed=$((removed + 1))
        elif [[ "$err" == *"No such"* || "$err" == *"not found"* ]]; then
            : # already gone
        else
            log "could not remove $kind ${id:0:12}: ${err//$'\n'/ }"
            failures=$((failures + 1))
        fi
    done
}

# List first (a failing `docker ps` must abort, not look like "nothing to do").
containers="$(docker ps -aq --no-trunc --filter "$FILTER")"
networks="$(docker network ls -q --no-trunc --filter "$FILTER")"
volumes="$(docker volume ls -q --filter "$FILTER")"

# Containers first (they pin networks and volumes); -v drops anonymous volumes.
remove_each container docker rm -f -v <<<"$containers"
n_containers=$removed
remove_each network docker network rm <<<"$networks"
n_networks=$removed
remove_each volume docker volume rm -f <<<"$volumes"
n_volumes=$removed

log "removed $n_containers container(s), $n_networks network(s), $n_volumes volume(s) with $FILTER"
if ((failures > 0)); then
    die "$failures resource(s) could not be removed"
fi
