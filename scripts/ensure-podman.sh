#!/usr/bin/env bash
# ensure-podman.sh - make Podman's Docker-compatible API available on this host.
#
#   * If the API already answers on the socket (and says it is Podman), do nothing.
#   * Otherwise (root only): install Debian 12's `podman` (with catatonit and the
#     CNI dnsname plugin) via apt when missing,
#     write a private containers.conf (passed to the service as CONTAINERS_CONF),
#     clean up a stale service (pid file, socket), start
#     `podman system service --time=0 unix://SOCKET` in the background inside its
#     own network namespace, and wait until /_ping and /version answer.
#   * Prints the DOCKER_HOST to use as the last line on stdout
#     (`DOCKER_HOST=unix:///run/podman/podman.sock`).
#
# Why the private containers.conf:
#   default_ulimits = []     without it every container start fails on these
#                            machines ("error setting rlimit type 7: operation not
#                            permitted": Podman copies the service's own nofile
#                            limit into each container, above what is allowed here)
#   cgroup_manager=cgroupfs  there is no systemd to ask for cgroups
#   events_logger=file       there is no journald; the events API reads this file
#
# Why a network namespace (default `reconcile-podman`): Podman's CNI bridge
# (cni-podman0, 10.88.0.0/16) and its iptables rules would otherwise live beside
# the Docker engine's bridge and DOCKER chains in the host's namespace. In its own
# namespace Podman's bridges, iptables rules and published ports never touch the
# host's: Docker 20.10 on /var/run/docker.sock keeps running undisturbed. The API
# socket is a file, so clients reach it from any namespace; but ports Podman
# publishes (127.0.0.1:PORT) exist only inside the namespace, so whatever talks
# to them (the e2e tests) runs there too: see --exec.
# The namespace is entered with `nsenter --net` (network only), not `ip netns
# exec`: the latter also remounts /sys, which hides the cgroup mounts, and then
# runc fails every start with "no cgroup mount found in mountinfo".
#
# Usage:
#   scripts/ensure-podman.sh                 ensure it runs; print DOCKER_HOST=...
#   scripts/ensure-podman.sh --exec CMD...   ensure it runs, then run CMD inside its
#                                            network namespace with DOCKER_HOST set
#   scripts/ensure-podman.sh --stop          stop the service this script started
#
# Environment knobs (all optional):
#   RECONCILE_PODMAN_SOCK     API socket                 (/run/podman/podman.sock)
#   RECONCILE_PODMAN_NETNS    network namespace; empty = the host's (reconcile-podman)
#   RECONCILE_PODMAN_DIR      containers.conf, pid file  (/var/lib/reconcile-podman)
#   RECONCILE_PODMAN_LOG      service log                (/var/log/reconcile-podman.log)
#   RECONCILE_PODMAN_TIMEOUT  seconds to wait for the API (60)
#   RECONCILE_PODMAN_GRACE    seconds a running but silent service gets before it is
#                             restarted (20; a loaded host can be slow to answer)
set -euo pipefail

readonly PROG="ensure-podman"
readonly SOCK="${RECONCILE_PODMAN_SOCK:-/run/podman/podman.sock}"
readonly NETNS="${RECONCILE_PODMAN_NETNS-reconcile-podman}"
readonly STATE_DIR="${RECONCILE_PODMAN_DIR:-/var/lib/reconcile-podman}"
readonly LOG_FILE="${RECONCILE_PODMAN_LOG:-/var/log/reconcile-podman.log}"
readonly TIMEOUT="${RECONCILE_PODMAN_TIMEOUT:-60}"
readonly GRACE="${RECONCILE_PODMAN_GRACE:-20}"
readonly CONF="$STATE_DIR/containers.conf"
readonly PIDFILE="$STATE_DIR/service.pid"
readonly LOCK_FILE="/run/lock/reconcile-ensure-podman.lock"
readonly DOCKER_HOST_VALUE="unix://$SOCK"

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { printf '%s: ERROR: %s\n' "$PROG" "$*" >&2; exit 1; }

export PATH="${PATH:-/usr/bin:/bin}:/usr/local/sbin:/usr/sbin:/sbin"

# api GET PATH: the body of a GET on the socket (5 s at most), or fail.
api() {
    [[ -S "$SOCK" ]] || return 1
    if command -v curl >/dev/null 2>&1; then
        curl -fsS --max-time 10 --unix-socket "$SOCK" "http://podman$1" 2>/dev/null
    else
        python3 - "$SOCK" "$1" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_UNIX); s.settimeout(10); s.connect(sys.argv[1])
s.sendall(f"GET {sys.argv[2]} HTTP/1.0\r\nHost: podman\r\n\r\n".encode())
data = b""
while chunk := s.recv(65536):
    data += chunk
head, _, body = data.partition(b"\r\n\r\n")
if b" 200 " not in head.split(b"\r\n")[0]:
    sys.exit(1)
sys.stdout.write(body.decode())
EOF
    fi
}

# podman_ok: /_ping answers OK and /version names the Podman engine.
podman_ok() {
    local version
    [[ "$(api /_ping || true)" == OK ]] || return 1
    # (into a variable: `api | grep -q` would fail under pipefail when grep exits first)
    version="$(api /version)" || return 1
    [[ "$version" == *'"Podman Engine"'* ]]
}

pid_alive() {
    local pid="$1" state
    [[ "$pid" =~ ^[0-9]+$ && -r "/proc/$pid/stat" ]] || return 1
    state="$(sed -e 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)" || return 1
    [[ -n "$state" && "$state" != Z && "$state" != X ]]
}

# our_service_pid: the pid in our pid file, if it is still our podman service.
our_service_pid() {
    local pid
    [[ -f "$PIDFILE" ]] || return 1
    pid="$(tr -dc '0-9' <"$PIDFILE")"
    pid_alive "$pid" || return 1
    [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == podman ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "system service" || return 1
    echo "$pid"
}

stop_service() {
    local pid i
    if pid="$(our_service_pid)"; then
        log "stopping the Podman API service (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do pid_alive "$pid" || break; sleep 0.2; done
        if pid_alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
    fi
    rm -f "$PIDFILE"
    # only a socket nothing answers on is removed (never one another service serves)
    if [[ -S "$SOCK" ]] && ! podman_ok; then rm -f "$SOCK"; fi
}

# Debian's podman, catatonit (the init Podman runs for `init: true`; only a
# "Recommends" of podman, and without it every such create fails with
# "container-init binary not found on the host") and the CNI `dnsname` plugin
# (golang-github-containernetworking-plugin-dnsname, with dnsmasq-base; not a
# dependency of podman, it only "Enhances" it: without it Podman 4.3's CNI
# networks have no DNS, so service names do not resolve between containers).
# Podman looks the plugin up when it creates a network, so networks created
# before it was installed stay without DNS.
readonly DNSNAME_PLUGIN=/usr/lib/cni/dnsname
installed() {
    command -v podman >/dev/null 2>&1 && [[ -x /usr/libexec/podman/catatonit && -x "$DNSNAME_PLUGIN" ]]
}
install_podman() {
    local pkgs=()
    command -v podman >/dev/null 2>&1 || pkgs+=(podman)
    [[ -x /usr/libexec/podman/catatonit ]] || pkgs+=(catatonit)
    [[ -x "$DNSNAME_PLUGIN" ]] || pkgs+=(golang-github-containernetworking-plugin-dnsname)
    ((${#pkgs[@]} > 0)) || return 0
    [[ "$(id -u)" == 0 ]] || die "${pkgs[*]} not installed and this is not root (apt-get install ${pkgs[*]})"
    log "${pkgs[*]} missing: installing Debian's package(s) via apt"
    local out
    out="$(mktemp /tmp/reconcile-podman-apt.XXXXXX)"
    if ! { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${pkgs[@]}"; } \
            >"$out" 2>&1; then
        tail -n 20 "$out" >&2
        rm -f "$out"
        die "apt-get install ${pkgs[*]} failed"
    fi
    rm -f "$out"
}

write_conf() {
    mkdir -p "$STATE_DIR"
    cat >"$CONF.tmp" <<'EOF'
# Written by scripts/ensure-podman.sh; passed to `podman system service` as CONTAINERS_CONF.
[containers]
# The default copies the service's nofile limit into every container; here that
# fails each start with "error setting rlimit type 7: operation not permitted".
default_ulimits = []

[engine]
# No systemd on these hosts: cgroups directly, events in a file (no journald).
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
    mv -f "$CONF.tmp" "$CONF"
}

ensure_netns() {
    [[ -n "$NETNS" ]] || return 0
    if [[ ! -e "/run/netns/$NETNS" ]]; then
        log "creating network namespace $NETNS"
        ip netns add "$NETNS"
    fi
    ip -n "$NETNS" link set lo up
}

netns_prefix() {
    if [[ -n "$NETNS" ]]; then printf '%s\n' nsenter "--net=/run/netns/$NETNS"; fi
}

start_service() {
    local pid i prefix=()
    mapfile -t prefix < <(netns_prefix)
    mkdir -p "$(dirname "$SOCK")" "$(dirname "$LOG_FILE")"
    rm -f "$SOCK"
    log "starting podman system service on $SOCK${NETNS:+ in network namespace $NETNS} (log: $LOG_FILE)"
    # setsid + closed stdin: the service outlives this script and the shell that ran it
    # (fd 9, the lock, closed: the service and every container's conmon would inherit it
    # and hold the lock for as long as any container runs)
    (exec 9>&-; cd / && exec setsid "${prefix[@]}" env CONTAINERS_CONF="$CONF" \
        podman system service --time=0 "unix://$SOCK" </dev/null >>"$LOG_FILE" 2>&1) &
    pid=$!
    echo "$pid" >"$PIDFILE"
    for ((i = 0; i < TIMEOUT * 5; i++)); do
        if podman_ok; then
            log "Podman $(api /version | python3 -c 'import json,sys; v=json.load(sys.stdin); print(v["Version"], "API", v["ApiVersion"])') answers"
            return 0
        fi
        pid_alive "$pid" || { tail -n 20 "$LOG_FILE" >&2; die "podman system service exited; see $LOG_FILE"; }
        sleep 0.2
    done
    tail -n 20 "$LOG_FILE" >&2
    die "the Podman API did not answer within ${TIMEOUT}s"
}

ensure() {
    if podman_ok && installed; then return 0; fi
    install_podman
    if podman_ok; then return 0; fi
    [[ "$(id -u)" == 0 ]] || die "the Podman API does not answer on $SOCK and this is not root"
    mkdir -p "$(dirname "$LOCK_FILE")"
    exec 9>"$LOCK_FILE"
    flock -w 120 9 || die "timed out waiting for another ensure-podman.sh run"
    if podman_ok; then exec 9>&-; return 0; fi  # started by the run we waited for
    local pid i
    if pid="$(our_service_pid)"; then  # alive but silent: slow (loaded host), or wedged
        for ((i = 0; i < GRACE; i++)); do
            if podman_ok; then exec 9>&-; return 0; fi
            sleep 1
        done
        log "the Podman API service (pid $pid) has not answered for ${GRACE}s: restarting it"
    fi
    stop_service  # a service that no longer answers, a stale pid file or socket
    write_conf
    ensure_netns
    start_service
    exec 9>&-
}

main() {
    case "${1:-}" in
        --stop) stop_service; return 0 ;;
        -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; return 0 ;;
        --exec)
            shift
            (($# > 0)) || die "--exec needs a command"
            ensure
            local prefix=()
            mapfile -t prefix < <(netns_prefix)
            exec "${prefix[@]}" env DOCKER_HOST="$DOCKER_HOST_VALUE" RECONCILE_ENGINE=podman "$@"
            ;;
        "") ensure; echo "DOCKER_HOST=$DOCKER_HOST_VALUE" ;;
        *) die "unknown argument: $1 (usage: $0 [--exec CMD... | --stop])" ;;
    esac
}

main "$@"
