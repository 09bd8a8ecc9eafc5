#!/usr/bin/env bash
# clean-test-resources.sh - remove test containers, networks and volumes.
#
# Usage: scripts/clean-test-resources.sh [RUN_ID]
#   no argument: everything labelled io.reconcile.test-run (any value)
#   RUN_ID:      only resources whose label value is RUN_ID; a RUN_ID with a
#                '*' is a shell pattern ('123456*' also matches '123456-t1ab')
#
# Label keys looked at: io.reconcile.test-run and reconcile.test-run (the
# controller rejects user labels under io.reconcile., so specs made by the
# tests carry the latter). Override with RECONCILE_TEST_RUN_LABELS="k1 k2".
# Only resources carrying such a label are touched (containers are removed
# with their anonymous volumes; images are left alone). Exits non-zero if the
# engine is unreachable or something could not be removed.
set -euo pipefail

readonly PROG="clean-test-resources"
read -r -a KEYS <<<"${RECONCILE_TEST_RUN_LABELS:-io.reconcile.test-run reconcile.test-run}"

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { printf '%s: ERROR: %s\n' "$PROG" "$*" >&2; exit 1; }

case "${1:-}" in
    -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
esac
(($# <= 1)) || die "usage: $0 [RUN_ID]"
((${#KEYS[@]} > 0)) || die "RECONCILE_TEST_RUN_LABELS is empty"

MATCH=""
if [[ $# == 1 ]]; then
    [[ -n "$1" ]] || die "RUN_ID must not be empty"
    [[ "$1" != *$'\n'* ]] || die "invalid RUN_ID"
    MATCH="$1"
fi

timeout 15 docker info >/dev/null 2>&1 || die "docker engine not reachable (run scripts/ensure-docker.sh)"

# value_matches VALUE: no RUN_ID -> any value; RUN_ID with '*' -> pattern; else exact.
value_matches() {
    [[ -z "$MATCH" ]] && return 0
    if [[ "$MATCH" == *'*'* ]]; then
        # shellcheck disable=SC2053  # intentional pattern match
        [[ "$1" == $MATCH ]]
    else
        [[ "$1" == "$MATCH" ]]
    fi
}

# list_ids KIND: ids of KIND (container|network|volume) carrying a matching
# test-run label, one per line, deduplicated. Fails if docker fails.
list_ids() {
    local kind="$1" key line id value out
    for key in "${KEYS[@]}"; do
        case "$kind" in
            container) out="$(docker ps -a --no-trunc --filter "label=$key" --format "{{.ID}} {{.Label \"$key\"}}")" ;;
            network) out="$(docker network ls --no-trunc --filter "label=$key" --format "{{.ID}} {{.Label \"$key\"}}")" ;;
            volume) out="$(docker volume ls --filter "label=$key" --format "{{.Name}} {{.Label \"$key\"}}")" ;;
        esac
        while IFS= read -r line; do
            [[ -n "$line" ]] || continue
            id="${line%% *}"
            value="${line#* }"
            [[ "$line" == *" "* ]] || value=""
            if value_matches "$value"; then echo "$id"; fi
        done <<<"$out"
    done | sort -u
}

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
containers="$(list_ids container)"
networks="$(list_ids network)"
volumes="$(list_ids volume)"

# Containers first (they pin networks and volumes); -v drops anonymous volumes.
remove_each container docker rm -f -v <<<"$containers"
n_containers=$removed
remove_each network docker network rm <<<"$networks"
n_networks=$removed
remove_each volume docker volume rm -f <<<"$volumes"
n_volumes=$removed

what="${KEYS[*]}"
log "removed $n_containers container(s), $n_networks network(s), $n_volumes volume(s) labelled ${what// /|}${MATCH:+=$MATCH}"
if ((failures > 0)); then
    die "$failures resource(s) could not be removed"
fi
