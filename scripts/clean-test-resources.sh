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
#
# The engines of the multi-host test bed (scripts/multihost.sh, sockets
# /run/reconcile-mh/n*/docker.sock) are cleaned the same way when they answer; a test
# bed that a matching test run brought up and did not take down (its RUN_ID in
# /run/reconcile-mh/test-run: the run was killed) is taken down (multihost.sh down).
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
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly MH_RUN=/run/reconcile-mh

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
            container) out="$(docker ps -a --no-trunc --filter "label=$key" --format "{{.ID}} {{.Label \"$key\"}}")" || return 1 ;;
            network) out="$(docker network ls --no-trunc --filter "label=$key" --format "{{.ID}} {{.Label \"$key\"}}")" || return 1 ;;
            volume) out="$(docker volume ls --filter "label=$key" --format "{{.Name}} {{.Label \"$key\"}}")" || return 1 ;;
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

# clean_engine: every labelled container, network and volume on the engine DOCKER_HOST
# names (the caller's environment). List first (a failing `docker ps` must abort, not look
# like "nothing to do").
clean_engine() {
    local containers networks volumes n_containers n_networks n_volumes what
    containers="$(list_ids container)" || return 1
    networks="$(list_ids network)" || return 1
    volumes="$(list_ids volume)" || return 1

    # Containers first (they pin networks and volumes); -v drops anonymous volumes.
    remove_each container docker rm -f -v <<<"$containers"
    n_containers=$removed
    remove_each network docker network rm <<<"$networks"
    n_networks=$removed
    remove_each volume docker volume rm -f <<<"$volumes"
    n_volumes=$removed

    what="${KEYS[*]}"
    log "${DOCKER_HOST:-default engine}: removed $n_containers container(s), $n_networks network(s), $n_volumes volume(s) labelled ${what// /|}${MATCH:+=$MATCH}"
}

clean_engine || die "cannot list the resources on ${DOCKER_HOST:-the default engine}"

# The multi-host test bed: taken down when a matching test run left it behind, else its
# engines are cleaned like the default one.
if [[ -f "$MH_RUN/test-run" ]] && value_matches "$(cat "$MH_RUN/test-run" 2>/dev/null || true)" \
        && [[ -n "$MATCH" ]]; then
    log "taking down the multi-host test bed that run $(cat "$MH_RUN/test-run") left behind"
    bash "$SCRIPT_DIR/multihost.sh" down || failures=$((failures + 1))
else
    for sock in "$MH_RUN"/n*/docker.sock; do
        [[ -S "$sock" ]] || continue
        if DOCKER_HOST="unix://$sock" timeout 10 docker info >/dev/null 2>&1; then
            DOCKER_HOST="unix://$sock" clean_engine || failures=$((failures + 1))
        fi
    done
fi

if ((failures > 0)); then
    die "$failures resource(s) could not be removed"
fi
