#!/usr/bin/env bash
# multihost.sh - several Docker hosts on one machine: issue 15's multi-host test bed, and a
# way to try `reconcile run --node` by hand (docs/ENGINES.md, "Several hosts on one machine").
#
# Usage: scripts/multihost.sh up | down [--purge] | status | clean
#        scripts/multihost.sh engine-stop NODE | engine-start NODE
#        scripts/multihost.sh link-down NODE | link-up NODE
#        scripts/multihost.sh exec NODE CMD...
#
#   up      (root; idempotent) builds, or repairs, this layout and prints one line per node
#           ("n1 DOCKER_HOST=unix:///run/reconcile-mh/n1/docker.sock netns=... addr=...")
#           and, last, the store URL ("RECONCILE_DB=postgresql+psycopg://...").
#             netns reconcile-mh-net   bridge rcmhbr0 10.231.0.1/24; PostgreSQL on
#                                      10.231.0.1:55433 (scripts/ensure-postgres.sh)
#             netns reconcile-mh-nK    veth rcmhK (on the bridge) <-> rcmhKn 10.231.0.1K/24;
#                                      a dockerd (Debian's, with its own containerd) with
#                                      its own socket /run/reconcile-mh/nK/docker.sock,
#                                      exec root, pid file, data root /var/lib/reconcile-mh/nK,
#                                      iptables, docker0 (--bip 172.31.1K.1/24) and address
#                                      pool (10.24K.0.0/16)
#           The test images (scripts/build-images.sh) are copied from the engine DOCKER_HOST
#           names (default: the local one) into every node engine that lacks them
#           (docker save | docker load: offline). Traffic flows only between these
#           namespaces: a node reaches the bridge address, nothing else.
#   down    removes everything: the containers, networks and volumes on the node engines,
#           the engines, PostgreSQL, processes left in the namespaces, the namespaces (with
#           their veths and the bridge) and /run/reconcile-mh. --purge also deletes
#           /var/lib/reconcile-mh (engine data roots with their images, PostgreSQL's data).
#   clean   removes every container, network and volume on the node engines (they are the
#           harness's own), keeps the engines and their images.
#   status  per node: namespace, link, engine (version, running containers), and whether
#           PostgreSQL answers from that node; exit 0 when everything is up.
#   engine-stop NODE / engine-start NODE   stop (SIGTERM: its containers stop with it) or
#           start one node's dockerd - "the machine went down / came back".
#   link-down NODE / link-up NODE   cut the node's veth on the bridge side / restore it:
#           a partition (its engine keeps running, PostgreSQL is out of reach).
#   exec NODE CMD...   run CMD inside the node's network namespace with its DOCKER_HOST
#           and RECONCILE_DB (unless already set), e.g.
#           scripts/multihost.sh exec n1 reconcile run --node n1 --node-label zone=a
#
# NODE is n1..nN or 1..N. Knobs: RECONCILE_MH_NODES (3, at most 9), RECONCILE_MH_TIMEOUT
# (seconds to wait for an engine, 60), RECONCILE_MH_ENSURE_PG (the PostgreSQL script,
# default scripts/ensure-postgres.sh next to this one). Every wait is bounded. Works after a
# machine restart (stale pid files, sockets, namespace entries, containerds are cleared).
set -euo pipefail

readonly PROG="multihost"
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly SCRIPT_DIR
readonly NODES="${RECONCILE_MH_NODES:-3}"
readonly TIMEOUT="${RECONCILE_MH_TIMEOUT:-60}"
readonly NET_NS="reconcile-mh-net"
readonly BRIDGE="rcmhbr0"
readonly NET_PREFIX="10.231.0"
readonly BRIDGE_ADDR="$NET_PREFIX.1"
readonly RUN_ROOT="/run/reconcile-mh"
readonly DATA_ROOT="/var/lib/reconcile-mh"
readonly LOG_DIR="$DATA_ROOT/log"
readonly PG_PORT=55433
readonly PG_DATA="$DATA_ROOT/pg/data"
readonly PG_URL="postgresql+psycopg://reconcile:reconcile@$BRIDGE_ADDR:$PG_PORT/reconcile"
readonly PG_SCRIPT="${RECONCILE_MH_ENSURE_PG:-$SCRIPT_DIR/ensure-postgres.sh}"
readonly PG_BIN="/usr/lib/postgresql/15/bin"
readonly LOCK_FILE="/run/lock/reconcile-multihost.lock"
readonly IMAGES=(reconcile/busybox:latest reconcile/demo-web:1 reconcile/demo-web:2
                 reconcile/demo-worker:1 reconcile/demo-job:1)
# the engine the images come from: the caller's (before any DOCKER_HOST of a node is set)
readonly SOURCE_HOST="${DOCKER_HOST:-unix:///var/run/docker.sock}"

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { printf '%s: ERROR: %s\n' "$PROG" "$*" >&2; exit 1; }

export PATH="${PATH:-/usr/bin:/bin}:/usr/local/sbin:/usr/sbin:/sbin"
# shellcheck source=lib/procs.sh
source "$SCRIPT_DIR/lib/procs.sh"

[[ "$NODES" =~ ^[1-9]$ ]] || die "RECONCILE_MH_NODES must be 1..9, not '$NODES'"

# --------------------------------------------------------------------------
# names and paths of node K
node_ns() { echo "reconcile-mh-n$1"; }
node_run() { echo "$RUN_ROOT/n$1"; }
node_sock() { echo "$RUN_ROOT/n$1/docker.sock"; }
node_host() { echo "unix://$RUN_ROOT/n$1/docker.sock"; }
node_pidfile() { echo "$RUN_ROOT/n$1/docker.pid"; }
node_exec() { echo "$RUN_ROOT/n$1/exec"; }
node_data() { echo "$DATA_ROOT/n$1"; }
node_log() { echo "$LOG_DIR/n$1-dockerd.log"; }
node_addr() { echo "$NET_PREFIX.1$1"; }

# "n2" | "2" -> 2
node_index() {
    local k="${1#n}"
    [[ "$k" =~ ^[1-9]$ ]] && ((k <= NODES)) || die "unknown node '$1' (expected n1..n$NODES)"
    echo "$k"
}

in_ns() { local ns="$1"; shift; nsenter --net="/run/netns/$ns" "$@"; }

node_docker() {  # node_docker K ARGS...: the docker CLI against node K's engine, bounded
    local k="$1"
    shift
    DOCKER_HOST="$(node_host "$k")" timeout 60 docker "$@"
}

engine_ok() { DOCKER_HOST="$(node_host "$1")" timeout "${2:-5}" docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

need_root() { [[ "$(id -u)" == 0 ]] || die "$1 needs root (network namespaces, dockerd)"; }

take_lock() {
    mkdir -p "$(dirname "$LOCK_FILE")"
    exec 8>"$LOCK_FILE"
    flock -w "$((TIMEOUT * 3 + 120))" 8 || die "timed out waiting for another $PROG run (lock $LOCK_FILE)"
}

# --------------------------------------------------------------------------
# namespaces and links
ns_valid() { [[ -e "/run/netns/$1" ]] && nsenter --net="/run/netns/$1" true 2>/dev/null; }

# Create NS when missing; replace an entry that is no longer a namespace (after a reboot
# /run is empty anyway; a half-deleted entry is not).
ensure_ns() {
    local ns="$1"
    if [[ -e "/run/netns/$ns" ]] && ! ns_valid "$ns"; then
        log "removing stale network namespace entry /run/netns/$ns"
        ip netns delete "$ns" 2>/dev/null || rm -f "/run/netns/$ns"
    fi
    if [[ ! -e "/run/netns/$ns" ]]; then
        ip netns add "$ns" || die "ip netns add $ns failed"
    fi
    ip -n "$ns" link set lo up || die "cannot bring lo up in $ns"
}

ensure_bridge() {
    ensure_ns "$NET_NS"
    if ! ip -n "$NET_NS" link show "$BRIDGE" >/dev/null 2>&1; then
        ip -n "$NET_NS" link add "$BRIDGE" type bridge || die "cannot create bridge $BRIDGE in $NET_NS"
    fi
    # a fixed address: a bridge takes its lowest port's otherwise, so a veth made anew would
    # change it under the nodes' ARP caches (PostgreSQL unreachable for a while)
    ip -n "$NET_NS" link set "$BRIDGE" address 02:00:0a:e7:00:01
    ip -n "$NET_NS" addr replace "$BRIDGE_ADDR/24" dev "$BRIDGE"
    ip -n "$NET_NS" link set "$BRIDGE" up
}

# Node K's namespace and its veth pair: rcmhK in the bridge's namespace, rcmhKn in the node's.
ensure_node_link() {
    local k="$1" ns
    ns="$(node_ns "$k")"
    ensure_ns "$ns"
    if ! ip -n "$ns" link show "rcmh${k}n" >/dev/null 2>&1 || ! ip -n "$NET_NS" link show "rcmh$k" >/dev/null 2>&1; then
        # half a pair (one side's namespace was deleted and made anew): a new pair
        ip -n "$NET_NS" link del "rcmh$k" 2>/dev/null || true
        ip -n "$ns" link del "rcmh${k}n" 2>/dev/null || true
        ip -n "$NET_NS" link add "rcmh$k" type veth peer name "rcmh${k}n" netns "$ns" \
            || die "cannot create the veth pair rcmh$k/rcmh${k}n"
    fi
    ip -n "$NET_NS" link set "rcmh$k" master "$BRIDGE" up
    ip -n "$ns" addr replace "$(node_addr "$k")/24" dev "rcmh${k}n"
    ip -n "$ns" link set "rcmh${k}n" up
}

# --------------------------------------------------------------------------
# node engines
node_dockerd_pids() {
    local k="$1" pid
    {
        pid="$(read_pidfile "$(node_pidfile "$k")")"
        if [[ -n "$pid" ]] && pid_alive "$pid" && [[ "$(pid_comm "$pid")" == dockerd ]]; then echo "$pid"; fi
        procs_named dockerd "--exec-root $(node_exec "$k") "
    } | sort -un
}

node_containerd_pids() {
    local k="$1" pid ctrd
    ctrd="$(node_exec "$k")/containerd"
    {
        pid="$(read_pidfile "$ctrd/containerd.pid")"
        if [[ -n "$pid" ]] && pid_alive "$pid" && [[ "$(pid_comm "$pid")" == containerd ]]; then echo "$pid"; fi
        procs_named containerd "--config $ctrd/containerd.toml"
    } | sort -un
}

# Is process PID in network namespace NS (not in an older namespace of the same name)?
pid_in_ns() {
    local want
    want="net:[$(stat -L -c %i "/run/netns/$2" 2>/dev/null)]"
    [[ "$(readlink "/proc/$1/ns/net" 2>/dev/null)" == "$want" ]]
}

clear_stale_engine_files() {
    local k="$1" pid ctrd
    ctrd="$(node_exec "$k")/containerd"
    for pid in $(node_containerd_pids "$k"); do terminate_pid "$pid" 10 "orphaned containerd of n$k"; done
    rm -f "$(node_pidfile "$k")" "$(node_sock "$k")" "$ctrd"/*.pid "$ctrd/containerd.sock" \
          "$ctrd/containerd.sock.ttrpc" "$ctrd/containerd-debug.sock"
}

# Launch node K's dockerd unless it answers already (does not wait for it).
launch_engine() {
    local k="$1" ns pid pids
    ns="$(node_ns "$k")"
    pids="$(node_dockerd_pids "$k")"
    for pid in $pids; do
        if ! pid_in_ns "$pid" "$ns"; then
            # its namespace was deleted and made anew: it no longer reaches the bridge
            terminate_pid "$pid" 30 "dockerd of n$k (in a namespace that is gone)"
            pids=""
        fi
    done
    if [[ -n "$pids" ]]; then
        if engine_ok "$k" 10; then return 0; fi
        log "dockerd of n$k (pid ${pids//$'\n'/ }) is running but does not answer; waiting up to 20s"
        local i
        for ((i = 0; i < 20; i++)); do engine_ok "$k" && return 0; sleep 1; done
        for pid in $pids; do terminate_pid "$pid" 30 "dockerd of n$k"; done
    fi
    clear_stale_engine_files "$k"
    mkdir -p "$(node_run "$k")" "$(node_exec "$k")" "$(node_data "$k")" "$LOG_DIR"
    # Its own config file: nothing of /etc/docker/daemon.json applies, and its own identity
    # key (Docker 20.10 keeps the engine ID's key in /etc/docker/key.json otherwise: all
    # nodes would report the same ID).
    printf '{"deprecated-key-path": "%s/key.json"}\n' "$(node_data "$k")" >"$(node_run "$k")/daemon.json"
    printf '\n===== %s: %s starting dockerd of n%s =====\n' "$(date -u +%FT%TZ)" "$PROG" "$k" >>"$(node_log "$k")"
    # nsenter --net, not `ip netns exec`: the latter also makes a mount namespace and
    # remounts /sys, which hides the cgroup v1 hierarchies dockerd needs.
    spawn_detached "$(node_log "$k")" nsenter --net="/run/netns/$ns" dockerd \
        --config-file "$(node_run "$k")/daemon.json" \
        --data-root "$(node_data "$k")/docker" --exec-root "$(node_exec "$k")" \
        --pidfile "$(node_pidfile "$k")" -H "$(node_host "$k")" \
        --containerd-namespace "reconcile-mh-n$k" --containerd-plugins-namespace "reconcile-mh-n$k-plugins" \
        --bip "172.31.1$k.1/24" --default-address-pool "base=10.24$k.0.0/16,size=24" \
        --cgroup-parent "/reconcile-mh-n$k" --shutdown-timeout 5 --label "reconcile.multihost.node=n$k" \
        >/dev/null
}

# Wait (bounded) until every given node's engine answers.
wait_engines() {
    local start=$SECONDS k pending
    while :; do
        pending=()
        for k in "$@"; do engine_ok "$k" || pending+=("$k"); done
        ((${#pending[@]} == 0)) && return 0
        if ((SECONDS - start >= TIMEOUT)); then
            for k in "${pending[@]}"; do
                log "the engine of n$k does not answer after ${TIMEOUT}s; last lines of $(node_log "$k"):"
                grep -v 'module=grpc' "$(node_log "$k")" 2>/dev/null | tail -n 15 | sed 's/^/    /' >&2 || true
            done
            die "node engine(s) ${pending[*]/#/n} did not come up"
        fi
        sleep 0.5
    done
}

stop_engine() {
    local k="$1" pid
    for pid in $(node_dockerd_pids "$k"); do terminate_pid "$pid" 40 "dockerd of n$k"; done
    for pid in $(node_containerd_pids "$k"); do terminate_pid "$pid" 10 "containerd of n$k"; done
    rm -f "$(node_pidfile "$k")" "$(node_sock "$k")"
}

# Everything on node K's engine goes (the engine is the harness's own).
remove_everything_on() {
    local k="$1" ids
    engine_ok "$k" || return 0
    ids="$(node_docker "$k" ps -aq)" || die "cannot list the containers of n$k"
    if [[ -n "$ids" ]]; then
        # shellcheck disable=SC2086  # one id per word
        node_docker "$k" rm -f -v $ids >/dev/null || die "cannot remove the containers of n$k"
    fi
    node_docker "$k" network prune -f >/dev/null || log "n$k: network prune failed"
    node_docker "$k" volume prune -f >/dev/null || log "n$k: volume prune failed"
}

# --------------------------------------------------------------------------
# images: copied from the source engine into every node engine that lacks them
load_images() {
    local img k id missing_any=0 tar
    declare -A src_id
    for img in "${IMAGES[@]}"; do
        id="$(DOCKER_HOST="$SOURCE_HOST" timeout 30 docker image inspect -f '{{.Id}}' "$img" 2>/dev/null)" \
            || die "image $img is missing on $SOURCE_HOST: run scripts/build-images.sh"
        src_id[$img]="$id"
    done
    local -a need=()
    for ((k = 1; k <= NODES; k++)); do
        for img in "${IMAGES[@]}"; do
            if [[ "$(node_docker "$k" image inspect -f '{{.Id}}' "$img" 2>/dev/null)" != "${src_id[$img]}" ]]; then
                need+=("$k")
                missing_any=1
                break
            fi
        done
    done
    ((missing_any)) || return 0
    tar="$(mktemp /tmp/reconcile-mh-images.XXXXXX.tar)"
    log "copying the test images into n${need[*]}"
    if ! DOCKER_HOST="$SOURCE_HOST" timeout 120 docker save "${IMAGES[@]}" >"$tar"; then
        rm -f "$tar"
        die "docker save of the test images failed on $SOURCE_HOST"
    fi
    local -a pids=()
    for k in "${need[@]}"; do
        DOCKER_HOST="$(node_host "$k")" timeout 120 docker load -q -i "$tar" >/dev/null &
        pids+=("$!")
    done
    local failed=0 pid
    for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
    rm -f "$tar"
    ((failed == 0)) || die "docker load of the test images into a node engine failed"
}

# --------------------------------------------------------------------------
# PostgreSQL, in the bridge's namespace on the bridge address
pg_reachable_from() {  # pg_reachable_from NS
    in_ns "$1" "$PG_BIN/pg_isready" -q -h "$BRIDGE_ADDR" -p "$PG_PORT" -t 3 >/dev/null 2>&1
}

pg_up() {
    [[ -f "$PG_SCRIPT" ]] || die "$PG_SCRIPT is missing (issue 15's PostgreSQL support); set RECONCILE_MH_ENSURE_PG"
    local url pid
    pid="$(head -n 1 "$PG_DATA/postmaster.pid" 2>/dev/null || true)"
    if [[ -n "$pid" ]] && pid_alive "$pid" && [[ "$(pid_comm "$pid")" == postgres ]] && ! pid_in_ns "$pid" "$NET_NS"; then
        # it lives in a namespace that was deleted and made anew: the bridge no longer leads to it
        log "PostgreSQL (pid $pid) runs outside $NET_NS: restarting it"
        bash "$PG_SCRIPT" 8>&- --port "$PG_PORT" --data "$PG_DATA" --stop || die "cannot stop PostgreSQL (pid $pid)"
    fi
    # 8>&-: the server must not inherit (and hold) this script's lock
    url="$(bash "$PG_SCRIPT" 8>&- --netns "$NET_NS" --listen "$BRIDGE_ADDR" --port "$PG_PORT" --data "$PG_DATA" | tail -n 1)" \
        || die "$PG_SCRIPT could not start PostgreSQL"
    [[ "$url" == "$PG_URL" ]] || log "note: $PG_SCRIPT printed $url (expected $PG_URL)"
}

pg_down() {
    if [[ -f "$PG_SCRIPT" ]]; then
        bash "$PG_SCRIPT" 8>&- --port "$PG_PORT" --data "$PG_DATA" --stop || log "stopping PostgreSQL failed"
    elif [[ -f "$PG_DATA/postmaster.pid" ]]; then
        runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 30 stop >&2 || log "pg_ctl stop failed"
    fi
}

# --------------------------------------------------------------------------
cmd_up() {
    need_root "up"
    command -v ip >/dev/null && command -v nsenter >/dev/null || die "needs ip (iproute2) and nsenter (util-linux)"
    command -v dockerd >/dev/null && command -v docker >/dev/null || die "needs dockerd and docker (Debian's docker.io)"
    take_lock
    local k t0=$SECONDS
    ensure_bridge
    for ((k = 1; k <= NODES; k++)); do ensure_node_link "$k"; done
    for ((k = 1; k <= NODES; k++)); do launch_engine "$k"; done
    pg_up
    wait_engines $(seq 1 "$NODES")
    load_images
    for ((k = 1; k <= NODES; k++)); do
        pg_reachable_from "$(node_ns "$k")" || die "PostgreSQL ($BRIDGE_ADDR:$PG_PORT) does not answer from $(node_ns "$k")"
    done
    log "up after $((SECONDS - t0))s"
    for ((k = 1; k <= NODES; k++)); do
        echo "n$k DOCKER_HOST=$(node_host "$k") netns=$(node_ns "$k") addr=$(node_addr "$k")"
    done
    echo "RECONCILE_DB=$PG_URL"
}

# Processes still inside NS (agents started with `exec`, shims): ours, since the namespace is.
kill_ns_procs() {
    local ns="$1" pid
    [[ -e "/run/netns/$ns" ]] || return 0
    for pid in $(ip netns pids "$ns" 2>/dev/null); do terminate_pid "$pid" 10 "process in $ns ($(pid_comm "$pid"))"; done
}

cmd_down() {
    local purge=0 k
    [[ "${1:-}" == --purge ]] && purge=1
    [[ -z "${1:-}" || "$purge" == 1 ]] || die "usage: $0 down [--purge]"
    need_root "down"
    take_lock
    for ((k = 1; k <= 9; k++)); do   # 9: also the nodes of an earlier, larger RECONCILE_MH_NODES
        [[ -e "$(node_sock "$k")" || -e "$(node_pidfile "$k")" || -e "/run/netns/$(node_ns "$k")" ]] || continue
        remove_everything_on "$k"
        stop_engine "$k"
        kill_ns_procs "$(node_ns "$k")"
        ip netns delete "$(node_ns "$k")" 2>/dev/null || true
    done
    pg_down
    kill_ns_procs "$NET_NS"
    ip netns delete "$NET_NS" 2>/dev/null || true
    rm -rf "$RUN_ROOT"
    if ((purge)); then rm -rf "$DATA_ROOT"; fi
    if ((purge)); then log "down (data purged)"; else log "down (data kept in $DATA_ROOT)"; fi
}

cmd_status() {
    local k ns ok=0 link version running
    for ((k = 1; k <= NODES; k++)); do
        ns="$(node_ns "$k")"
        if ! ns_valid "$ns"; then echo "n$k: no namespace $ns"; ok=1; continue; fi
        link="$(ip -n "$NET_NS" -o link show "rcmh$k" 2>/dev/null | grep -q 'state UP' && echo up || echo down)"
        [[ "$link" == up ]] || ok=1
        if version="$(DOCKER_HOST="$(node_host "$k")" timeout 5 docker version --format '{{.Server.Version}}' 2>/dev/null)"; then
            running="$(node_docker "$k" ps -q | wc -l)"
        else
            version="not answering"; running="-"; ok=1
        fi
        local pg="unreachable"
        if pg_reachable_from "$ns"; then pg="reachable"; else ok=1; fi
        echo "n$k: $(node_host "$k") engine $version, $running running; link $link; PostgreSQL $pg"
    done
    if ns_valid "$NET_NS" && pg_reachable_from "$NET_NS"; then echo "store: $PG_URL"; else echo "store: PostgreSQL not answering"; ok=1; fi
    return "$ok"
}

main() {
    local cmd="${1:-}"
    shift || true
    case "$cmd" in
        up) cmd_up ;;
        down) cmd_down "$@" ;;
        status) cmd_status ;;
        clean)
            need_root "$cmd"; take_lock
            local k
            for ((k = 1; k <= NODES; k++)); do remove_everything_on "$k"; done
            ;;
        engine-stop) need_root "$cmd"; take_lock; stop_engine "$(node_index "${1:?engine-stop NODE}")" ;;
        engine-start)
            need_root "$cmd"; take_lock
            local k
            k="$(node_index "${1:?engine-start NODE}")"
            ensure_node_link "$k"
            launch_engine "$k"
            wait_engines "$k"
            echo "n$k DOCKER_HOST=$(node_host "$k")"
            ;;
        link-down) need_root "$cmd"; ip -n "$NET_NS" link set "rcmh$(node_index "${1:?link-down NODE}")" down ;;
        link-up) need_root "$cmd"; ip -n "$NET_NS" link set "rcmh$(node_index "${1:?link-up NODE}")" up ;;
        exec)
            local k
            k="$(node_index "${1:?exec NODE CMD...}")"
            shift
            (($# > 0)) || die "usage: $0 exec NODE CMD..."
            exec nsenter --net="/run/netns/$(node_ns "$k")" env DOCKER_HOST="$(node_host "$k")" \
                RECONCILE_DB="${RECONCILE_DB:-$PG_URL}" "$@"
            ;;
        -h | --help | help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" ;;
        *) die "unknown command '${cmd}' (usage: $0 up|down [--purge]|status|engine-stop|engine-start|link-down|link-up|exec; --help)" ;;
    esac
}

main "$@"
