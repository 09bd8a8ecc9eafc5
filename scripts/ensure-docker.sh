#!/usr/bin/env bash
# ensure-docker.sh - make a container engine available on this host and print the
# DOCKER_HOST to use (one line on stdout; progress goes to stderr).
#
# Usage: scripts/ensure-docker.sh [--engine docker20|docker26|podman] [--stop]
#   The engine comes from --engine, else RECONCILE_ENGINE, else from DOCKER_HOST when it
#   names one of the sockets below, else docker20.
#
#   docker20 (default)  Debian 12's docker.io on the default socket (/var/run/docker.sock):
#       * If `docker info` already answers (DOCKER_HOST is honoured), do nothing.
#       * Otherwise (root only): install docker.io via apt if dockerd/docker are
#         missing, clean up leftovers of an earlier session whose processes were
#         killed (stale pid files, sockets, wedged dockerd, orphaned containerd),
#         start dockerd in the background and wait until it answers.
#   docker26  Debian 13 ("trixie") docker.io 26.1 + containerd 1.7, fetched from this
#       machine's Debian mirror with a private apt configuration (the system's sources
#       and packages are untouched), unpacked into /opt/reconcile-engines/docker-26, run
#       with Debian 12's own runc (trixie's needs glibc 2.38). Its dockerd runs in its own
#       network namespace `reconcile-d26` (own iptables chains, bridge and published
#       ports), with its own data-root, exec-root, pid file and socket:
#       unix:///run/reconcile-docker26/docker.sock. Published ports (127.0.0.1:...) are
#       reachable inside that namespace only: run clients that use them with
#       `nsenter --net=/run/netns/reconcile-d26 ...` (see docs/ENGINES.md).
#   podman    Debian 12's podman with its Docker-compatible API (start_podman).
#
#   --stop    stop the selected engine (docker26/podman only; docker20 is never stopped).
#
# Does not rely on systemd: it is only used when systemd really is PID 1.
#
# Environment knobs (all optional):
#   RECONCILE_ENGINE           docker20 | docker26 | podman
#   RECONCILE_DOCKERD_LOG      dockerd log file   (/var/log/reconcile-dockerd.log,
#                              docker26: /var/log/reconcile-docker26.log)
#   RECONCILE_DOCKERD_TIMEOUT  seconds to wait for the engine (60)
#   RECONCILE_DOCKERD_GRACE    seconds to wait for an alive-but-silent dockerd
#                              before killing it (20)
#   RECONCILE_DOCKERD_ARGS     extra dockerd arguments (word-split)
#   VERBOSE=1                  more progress output
set -euo pipefail

readonly PROG="ensure-docker"
readonly TIMEOUT="${RECONCILE_DOCKERD_TIMEOUT:-60}"
readonly GRACE="${RECONCILE_DOCKERD_GRACE:-20}"
readonly LOCK_FILE="/run/lock/reconcile-ensure-docker.lock"

# The docker20 engine's files (the docker26 engine has its own, see below).
readonly DOCKER_PIDFILE="/var/run/docker.pid"
readonly DOCKER_SOCK="/var/run/docker.sock"
readonly MANAGED_CTRD_DIR="/var/run/docker/containerd"   # containerd started by dockerd
readonly SYSTEM_CTRD_DIR="/run/containerd"               # system containerd
# Every file of the docker26 engine lives under paths carrying this mark, so the
# docker20 code never mistakes its dockerd for the default engine's.
readonly OTHER_ENGINES_MARK="/run/reconcile-"

# docker26: Debian 13 packages, unpacked (never installed) into their own directory.
readonly D26_ROOT="/opt/reconcile-engines/docker-26"
readonly D26_VERSION="26.1.5+dfsg1-9+deb13u1+b1"   # docker.io in trixie
readonly D26_CTRD_VERSION="1.7.24~ds1-6+deb13u1"    # containerd in trixie
readonly D26_RUN="/run/reconcile-docker26"
readonly D26_SOCK="$D26_RUN/docker.sock"
readonly D26_PIDFILE="$D26_RUN/docker.pid"
readonly D26_EXEC="$D26_RUN/exec"
readonly D26_DATA="/var/lib/reconcile-docker26"
readonly D26_NETNS="reconcile-d26"
readonly D26_NETNS_FILE="/run/netns/$D26_NETNS"
readonly RUNC="/usr/sbin/runc"   # Debian 12's runc (trixie's needs glibc 2.38)

LOG_FILE="${RECONCILE_DOCKERD_LOG:-/var/log/reconcile-dockerd.log}"
DOCKERD_CMD=(dockerd)

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
vlog() { if [[ "${VERBOSE:-0}" == 1 ]]; then log "$@"; fi; }
die() { printf '%s: ERROR: %s\n' "$PROG" "$*" >&2; exit 1; }

export PATH="${PATH:-/usr/bin:/bin}:/usr/local/sbin:/usr/sbin:/sbin"
# pid_alive, pid_comm, procs_named, read_pidfile, sock_alive, terminate_pid, spawn_detached
# shellcheck source=lib/procs.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/procs.sh"

# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------
# docker_ok [timeout]: does `docker info` answer? (a wedged daemon can accept
# the connection and never reply, hence the timeout)
docker_ok() {
    command -v docker >/dev/null 2>&1 || return 1
    timeout "${1:-5}" docker info >/dev/null 2>&1
}

# All live dockerd processes owned by root (pid file first).
dockerd_pids() {
    local pid
    {
        pid="$(read_pidfile "$DOCKER_PIDFILE")"
        if [[ -n "$pid" ]] && pid_alive "$pid" && [[ "$(pid_comm "$pid")" == dockerd ]]; then
            echo "$pid"
        fi
        procs_named dockerd
    } | sort -un | while read -r pid; do
        # a dockerd of another engine of ours (docker26: its own exec-root) is not this one
        if [[ "$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)" != *"$OTHER_ENGINES_MARK"* ]]; then
            echo "$pid"
        fi
    done
}

# containerd processes that dockerd started itself (it passes this config path).
managed_containerd_pids() {
    local pid
    {
        pid="$(read_pidfile "$MANAGED_CTRD_DIR/containerd.pid")"
        if [[ -n "$pid" ]] && pid_alive "$pid" && [[ "$(pid_comm "$pid")" == containerd ]]; then
            echo "$pid"
        fi
        procs_named containerd "--config $MANAGED_CTRD_DIR/containerd.toml"
    } | sort -un
}

using_default_socket() {
    case "${DOCKER_HOST:-}" in
        "" | "unix://$DOCKER_SOCK" | "unix:///run/docker.sock") return 0 ;;
        *) return 1 ;;
    esac
}

# --------------------------------------------------------------------------
# steps
# --------------------------------------------------------------------------
# Returns 0 if it installed docker.io, 1 if it was already there.
install_docker() {
    if command -v dockerd >/dev/null 2>&1 && command -v docker >/dev/null 2>&1; then
        return 1
    fi
    log "dockerd/docker not found: installing docker.io via apt (takes a minute)"
    local apt_log
    apt_log="$(mktemp /tmp/reconcile-apt.XXXXXX.log)"
    if ! { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends docker.io; } >"$apt_log" 2>&1; then
        tail -n 30 "$apt_log" >&2
        die "apt-get install docker.io failed (full log: $apt_log)"
    fi
    rm -f "$apt_log"
    command -v dockerd >/dev/null 2>&1 || die "docker.io installed but dockerd still not in PATH"
    log "installed $(dockerd --version 2>/dev/null || echo docker.io)"
    return 0
}

# Wait up to $1 seconds for `docker info` to answer.
wait_for_engine() {
    local limit="$1" start=$SECONDS
    while ((SECONDS - start < limit)); do
        docker_ok && return 0
        sleep 1
    done
    return 1
}

try_systemd() {
    [[ "$(cat /proc/1/comm 2>/dev/null || true)" == systemd ]] || return 1
    command -v systemctl >/dev/null 2>&1 || return 1
    log "systemd is PID 1: trying 'systemctl start docker'"
    systemctl start docker.service >/dev/null 2>&1 || { log "systemctl start docker failed; falling back to a manual dockerd"; return 1; }
    if wait_for_engine "$TIMEOUT"; then
        return 0
    fi
    log "docker.service started but the engine does not answer; falling back to a manual dockerd"
    systemctl stop docker.service docker.socket >/dev/null 2>&1 || true
    return 1
}

# Handle a dockerd that is alive but not answering: give it a grace period
# (it may be starting or shutting down), then kill it.
# Returns 0 only if the engine answers after the grace period.
handle_silent_dockerd() {
    local pids pid
    pids="$(dockerd_pids)"
    [[ -n "$pids" ]] || return 1
    log "dockerd is running (pid ${pids//$'\n'/ }) but does not answer; waiting up to ${GRACE}s"
    if wait_for_engine "$GRACE"; then
        return 0
    fi
    for pid in $(dockerd_pids); do
        terminate_pid "$pid" 15 dockerd
    done
    return 1
}

cleanup_stale_state() {
    local pid sock

    # dockerd pid file: dockerd refuses to start while /proc/<pid> exists.
    if [[ -e "$DOCKER_PIDFILE" ]]; then
        pid="$(read_pidfile "$DOCKER_PIDFILE")"
        if [[ -z "$pid" ]] || ! pid_alive "$pid" || [[ "$(pid_comm "$pid")" != dockerd ]]; then
            vlog "removing stale $DOCKER_PIDFILE (pid '${pid}')"
            rm -f "$DOCKER_PIDFILE"
        fi
    fi

    # No dockerd is alive at this point, so the API socket is stale.
    if [[ -e "$DOCKER_SOCK" ]]; then
        vlog "removing stale $DOCKER_SOCK"
        rm -f "$DOCKER_SOCK"
    fi

    # containerd that an earlier dockerd started: dockerd re-uses it if its
    # pid file names a live process; an orphan whose parent is gone may be
    # wedged, so stop it and let the new dockerd start a fresh one (running
    # containers' shims survive this).
    for pid in $(managed_containerd_pids); do
        terminate_pid "$pid" 10 "orphaned containerd"
    done
    if [[ -d "$MANAGED_CTRD_DIR" ]]; then
        pid="$(read_pidfile "$MANAGED_CTRD_DIR/containerd.pid")"
        if [[ -n "$pid" ]] && pid_alive "$pid" && [[ "$(pid_comm "$pid")" == containerd ]]; then
            : # a live containerd we did not identify as ours: leave it
        else
            rm -f "$MANAGED_CTRD_DIR"/*.pid \
                  "$MANAGED_CTRD_DIR/containerd.sock" \
                  "$MANAGED_CTRD_DIR/containerd.sock.ttrpc" \
                  "$MANAGED_CTRD_DIR/containerd-debug.sock"
        fi
    fi

    # System containerd: if /run/containerd/containerd.sock exists, dockerd
    # connects to it instead of starting its own containerd - a dead socket
    # there makes dockerd hang. Remove it only when nothing answers on it.
    sock="$SYSTEM_CTRD_DIR/containerd.sock"
    if [[ -e "$sock" ]] && ! sock_alive "$sock"; then
        log "removing stale $sock (nothing listening)"
        rm -f "$sock" "$sock.ttrpc" "$SYSTEM_CTRD_DIR/debug.sock"
        if [[ -f "$SYSTEM_CTRD_DIR/containerd.pid" ]]; then
            pid="$(read_pidfile "$SYSTEM_CTRD_DIR/containerd.pid")"
            if [[ -z "$pid" ]] || ! pid_alive "$pid"; then rm -f "$SYSTEM_CTRD_DIR/containerd.pid"; fi
        fi
    fi
}

# Start dockerd detached; echo its pid.
launch_dockerd() {
    local -a args=()
    if [[ -n "${RECONCILE_DOCKERD_ARGS:-}" ]]; then
        # shellcheck disable=SC2206  # intentional word splitting
        args=(${RECONCILE_DOCKERD_ARGS})
    fi
    args+=("$@")
    mkdir -p "$(dirname "$LOG_FILE")"
    printf '\n===== %s: %s starting dockerd %s =====\n' "$(date -u +%FT%TZ)" "$PROG" "${args[*]}" >>"$LOG_FILE"
    # DOCKERD_CMD: the dockerd to run (docker26: inside its network namespace)
    spawn_detached "$LOG_FILE" "${DOCKERD_CMD[@]}" "${args[@]}"
}

# Print the interesting tail of the dockerd log written since byte offset $1
# (without the grpc connectivity chatter).
show_log_since() {
    tail -c +"$(($1 + 1))" "$LOG_FILE" 2>/dev/null | grep -v 'module=grpc' | tail -n 15 | sed 's/^/    /' >&2 || true
}

# Start dockerd and wait for it; returns 1 if it died or timed out.
start_and_wait() {
    local log_offset pid start=$SECONDS
    log_offset=$(stat -c %s "$LOG_FILE" 2>/dev/null || echo 0)
    pid="$(launch_dockerd "$@")"
    log "started dockerd (pid $pid, log $LOG_FILE); waiting up to ${TIMEOUT}s"
    while ((SECONDS - start < TIMEOUT)); do
        if docker_ok; then
            log "docker engine ready after $((SECONDS - start))s (server $(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?'))"
            return 0
        fi
        if ! pid_alive "$pid"; then
            log "dockerd (pid $pid) exited during start-up; last log lines:"
            show_log_since "$log_offset"
            return 1
        fi
        sleep 1
    done
    log "docker engine did not answer within ${TIMEOUT}s; last log lines:"
    show_log_since "$log_offset"
    terminate_pid "$pid" 10 dockerd || true
    return 1
}

iptables_broken_in_last_start() {
    local last
    last="$(tail -n 60 "$LOG_FILE" 2>/dev/null || true)"
    grep -qiE 'iptables|nf_tables|NAT chain' <<<"$last"
}

# --------------------------------------------------------------------------
start_docker20() {
    # Fast path: engine already answers.
    if docker_ok 10; then
        vlog "docker engine already answers; nothing to do"
        return 0
    fi

    if ! using_default_socket; then
        die "DOCKER_HOST=$DOCKER_HOST does not answer; refusing to start a local engine for a non-default DOCKER_HOST (unset it to use the local one)"
    fi
    [[ "$(id -u)" == 0 ]] || die "docker engine not reachable and not running as root: run this script as root (e.g. sudo $0) to install/start dockerd"

    # Serialise concurrent callers (e.g. parallel CI steps).
    mkdir -p "$(dirname "$LOCK_FILE")"
    exec 9>"$LOCK_FILE"
    if ! flock -w "$((TIMEOUT + GRACE + 30))" 9; then
        die "timed out waiting for another ensure-docker.sh run (lock $LOCK_FILE)"
    fi
    if docker_ok; then
        log "docker engine came up (started by a concurrent run)"
        return 0
    fi

    if install_docker; then
        # The package's postinst may have started the engine itself.
        if docker_ok || { [[ -n "$(dockerd_pids)" ]] && wait_for_engine 15; }; then
            log "docker engine is up (started by the package)"
            return 0
        fi
    fi

    if try_systemd; then
        log "docker engine ready (systemd)"
        return 0
    fi

    if handle_silent_dockerd; then
        log "docker engine ready (an already running dockerd finished starting)"
        return 0
    fi

    cleanup_stale_state

    if start_and_wait; then
        return 0
    fi

    # One fallback for kernels/sandboxes where dockerd cannot program iptables:
    # port publishing still works through docker-proxy.
    if iptables_broken_in_last_start && [[ " ${RECONCILE_DOCKERD_ARGS:-} " != *"--iptables"* ]]; then
        log "dockerd failed on iptables; retrying once with --iptables=false --ip-masq=false"
        for pid in $(dockerd_pids); do terminate_pid "$pid" 10 dockerd; done
        cleanup_stale_state
        if start_and_wait --iptables=false --ip-masq=false; then
            return 0
        fi
    fi
    die "could not start the docker engine (see $LOG_FILE)"
}


# --------------------------------------------------------------------------
# docker26
# --------------------------------------------------------------------------
# The Debian mirror this machine already uses (first deb.debian.org-like URI of its
# sources), so the download works wherever the system's apt does.
debian_mirror() {
    local uri
    uri="$(grep -rhoE '^(URIs:|deb)[[:space:]]+(\[[^]]*\][[:space:]]+)?https?://[^[:space:]]+' \
        /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null \
        | grep -oE 'https?://[^[:space:]]+' | grep -v -e security -e '-security' | grep -E '/debian/?$' | head -n1 || true)"
    echo "${uri:-http://deb.debian.org/debian}"
}

d26_installed() {
    [[ -x "$D26_ROOT/usr/sbin/dockerd" && -x "$D26_ROOT/usr/bin/containerd" ]] || return 1
    [[ "$(cat "$D26_ROOT/.versions" 2>/dev/null)" == "docker.io=$D26_VERSION containerd=$D26_CTRD_VERSION" ]]
}

# Fetch docker.io and containerd from trixie with a private apt configuration (own
# source list, no source parts, own lists directory) and unpack them with dpkg -x.
install_docker26() {
    d26_installed && return 0
    [[ -x "$RUNC" ]] || die "$RUNC missing: install Debian 12's runc (apt-get install runc)"
    local work mirror apt_log
    work="$(mktemp -d /tmp/reconcile-docker26.XXXXXX)"
    mirror="$(debian_mirror)"
    apt_log="$work/apt.log"
    log "fetching docker.io $D26_VERSION and containerd $D26_CTRD_VERSION from $mirror (trixie), unpacking into $D26_ROOT"
    mkdir -p "$work/lists/partial" "$work/debs"
    printf 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s trixie main\n' "$mirror" >"$work/sources.list"
    local -a apt_opts=(-o "Dir::Etc::sourcelist=$work/sources.list" -o "Dir::Etc::sourceparts=-"
                       -o "Dir::State::Lists=$work/lists" -o "APT::Get::List-Cleanup=0"
                       -o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache=")
    if ! { timeout 300 apt-get "${apt_opts[@]}" update \
            && (cd "$work/debs" && timeout 600 apt-get "${apt_opts[@]}" download \
                "docker.io=$D26_VERSION" "containerd=$D26_CTRD_VERSION"); } >"$apt_log" 2>&1; then
        tail -n 20 "$apt_log" >&2
        die "could not fetch docker.io/containerd from trixie (log: $apt_log)"
    fi
    rm -rf "$D26_ROOT.new"
    mkdir -p "$D26_ROOT.new"
    local deb
    for deb in "$work"/debs/*.deb; do dpkg -x "$deb" "$D26_ROOT.new"; done
    [[ -x "$D26_ROOT.new/usr/sbin/dockerd" && -x "$D26_ROOT.new/usr/bin/containerd" ]] \
        || die "the unpacked packages hold no dockerd/containerd ($work/debs)"
    echo "docker.io=$D26_VERSION containerd=$D26_CTRD_VERSION" >"$D26_ROOT.new/.versions"
    rm -rf "$D26_ROOT"
    mkdir -p "$(dirname "$D26_ROOT")"
    mv "$D26_ROOT.new" "$D26_ROOT"
    rm -rf "$work"
    log "installed $("$D26_ROOT/usr/sbin/dockerd" --version 2>/dev/null || echo "docker.io $D26_VERSION") in $D26_ROOT"
}

# The network namespace: created when missing; a stale entry (a file that is no
# longer a namespace, e.g. after a reboot) is replaced. Idempotent.
ensure_netns() {
    if ! command -v ip >/dev/null 2>&1; then
        log "ip (iproute2) missing: installing it via apt"
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends iproute2 >/dev/null 2>&1 \
            || die "apt-get install iproute2 failed (needed for the docker26 network namespace)"
    fi
    if [[ -e "$D26_NETNS_FILE" ]] && ! nsenter --net="$D26_NETNS_FILE" true 2>/dev/null; then
        log "removing stale network namespace entry $D26_NETNS_FILE"
        ip netns delete "$D26_NETNS" 2>/dev/null || rm -f "$D26_NETNS_FILE"
    fi
    if [[ ! -e "$D26_NETNS_FILE" ]]; then
        ip netns add "$D26_NETNS" || die "ip netns add $D26_NETNS failed"
        vlog "created network namespace $D26_NETNS"
    fi
    nsenter --net="$D26_NETNS_FILE" ip link set lo up || die "cannot bring lo up in $D26_NETNS"
}

# dockerd processes of the docker26 engine (pid file first, then a /proc scan for its exec-root).
d26_dockerd_pids() {
    local pid
    {
        pid="$(read_pidfile "$D26_PIDFILE")"
        if [[ -n "$pid" ]] && pid_alive "$pid" && [[ "$(pid_comm "$pid")" == dockerd ]]; then echo "$pid"; fi
        procs_named dockerd "--exec-root $D26_EXEC"
    } | sort -un
}

d26_containerd_pids() {
    local pid
    {
        pid="$(read_pidfile "$D26_EXEC/containerd/containerd.pid")"
        if [[ -n "$pid" ]] && pid_alive "$pid" && [[ "$(pid_comm "$pid")" == containerd ]]; then echo "$pid"; fi
        procs_named containerd "--config $D26_EXEC/containerd/containerd.toml"
    } | sort -un
}

# After the session's processes were killed, files stay: pid files, sockets, the
# containerd that dockerd started. None of it may block the next start.
d26_cleanup_stale_state() {
    local pid
    for pid in $(d26_containerd_pids); do terminate_pid "$pid" 10 "orphaned docker26 containerd"; done
    rm -f "$D26_PIDFILE" "$D26_SOCK"
    rm -f "$D26_EXEC"/containerd/*.pid "$D26_EXEC/containerd/containerd.sock" \
          "$D26_EXEC/containerd/containerd.sock.ttrpc" "$D26_EXEC/containerd/containerd-debug.sock"
}

start_docker26() {
    export DOCKER_HOST="unix://$D26_SOCK"
    LOG_FILE="${RECONCILE_DOCKERD_LOG:-/var/log/reconcile-docker26.log}"
    if docker_ok 10; then
        vlog "docker26 engine already answers; nothing to do"
        return 0
    fi
    [[ "$(id -u)" == 0 ]] || die "the docker26 engine does not answer and this is not root: run $0 as root"
    mkdir -p "$(dirname "$LOCK_FILE")"
    exec 9>"/run/lock/reconcile-ensure-docker26.lock"
    flock -w "$((TIMEOUT + GRACE + 600))" 9 || die "timed out waiting for another ensure-docker.sh --engine docker26 run"
    if docker_ok; then log "docker26 engine came up (started by a concurrent run)"; return 0; fi
    command -v docker >/dev/null 2>&1 || install_docker || true   # the client (docker20's CLI speaks API 1.41)
    install_docker26
    ensure_netns

    local pids pid
    pids="$(d26_dockerd_pids)"
    if [[ -n "$pids" ]]; then
        log "docker26 dockerd is running (pid ${pids//$'\n'/ }) but does not answer; waiting up to ${GRACE}s"
        if wait_for_engine "$GRACE"; then return 0; fi
        for pid in $pids; do terminate_pid "$pid" 15 "docker26 dockerd"; done
    fi
    d26_cleanup_stale_state
    mkdir -p "$D26_RUN" "$D26_EXEC" "$D26_DATA"
    # nsenter --net, not `ip netns exec`: the latter also makes a mount namespace and
    # remounts /sys, which hides the cgroup v1 hierarchies dockerd needs.
    DOCKERD_CMD=(nsenter --net="$D26_NETNS_FILE" env "PATH=$D26_ROOT/usr/bin:$D26_ROOT/usr/sbin:/usr/sbin:/usr/bin:/sbin:/bin"
                 "$D26_ROOT/usr/sbin/dockerd")
    if start_and_wait --data-root "$D26_DATA" --exec-root "$D26_EXEC" --pidfile "$D26_PIDFILE" \
            -H "unix://$D26_SOCK" --userland-proxy-path "$D26_ROOT/usr/sbin/docker-proxy" \
            --containerd-namespace reconcile-d26 --containerd-plugins-namespace reconcile-d26-plugins; then
        return 0
    fi
    die "could not start the docker26 engine (see $LOG_FILE)"
}

stop_docker26() {
    local pid
    [[ "$(id -u)" == 0 ]] || die "stopping the docker26 engine needs root"
    for pid in $(d26_dockerd_pids); do terminate_pid "$pid" 60 "docker26 dockerd"; done
    for pid in $(d26_containerd_pids); do terminate_pid "$pid" 10 "docker26 containerd"; done
    rm -f "$D26_PIDFILE" "$D26_SOCK"
    if [[ -e "$D26_NETNS_FILE" && -z "$(ip netns pids "$D26_NETNS" 2>/dev/null)" ]]; then
        ip netns delete "$D26_NETNS" 2>/dev/null || true
    fi
    log "docker26 engine stopped"
}

# --------------------------------------------------------------------------
# podman (filled in by the Podman work)
# --------------------------------------------------------------------------
# The Podman work brings scripts/ensure-podman.sh (its own namespace, containers.conf,
# stale-service handling); this script hands over to it when it is there.
readonly PODMAN_SCRIPT="$(dirname "${BASH_SOURCE[0]}")/ensure-podman.sh"

start_podman() {
    [[ -f "$PODMAN_SCRIPT" ]] || { log "podman: not yet"; exit 1; }
    local host
    host="$(bash "$PODMAN_SCRIPT" | tail -n 1)" || die "ensure-podman.sh failed"
    echo "${host#DOCKER_HOST=}"
}

stop_podman() {
    [[ -f "$PODMAN_SCRIPT" ]] || { log "podman: not yet"; exit 1; }
    bash "$PODMAN_SCRIPT" --stop
}

# --------------------------------------------------------------------------
# The engine DOCKER_HOST names, if it is one of ours.
engine_of_docker_host() {
    case "${DOCKER_HOST:-}" in
        "unix://$D26_SOCK") echo docker26 ;;
        "unix:///run/podman/podman.sock") echo podman ;;
        *) echo docker20 ;;
    esac
}

main() {
    local engine="${RECONCILE_ENGINE:-}" stop=0
    while (($# > 0)); do
        case "$1" in
            -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
            --engine) (($# >= 2)) || die "--engine needs a value (docker20|docker26|podman)"; engine="$2"; shift ;;
            --engine=*) engine="${1#--engine=}" ;;
            --stop) stop=1 ;;
            *) die "unknown argument: $1 (usage: $0 [--engine docker20|docker26|podman] [--stop])" ;;
        esac
        shift
    done
    engine="${engine:-$(engine_of_docker_host)}"
    case "$engine" in
        docker20)
            ((stop == 0)) || die "--stop: the docker20 engine (default socket) is never stopped by this script"
            start_docker20
            echo "${DOCKER_HOST:-unix://$DOCKER_SOCK}"
            ;;
        docker26)
            if ((stop == 1)); then stop_docker26; exit 0; fi
            start_docker26
            echo "unix://$D26_SOCK"
            ;;
        podman)
            if ((stop == 1)); then stop_podman; exit 0; fi
            start_podman   # prints the DOCKER_HOST
            ;;
        *) die "unknown engine '$engine' (RECONCILE_ENGINE / --engine): expected docker20, docker26 or podman" ;;
    esac
}

main "$@"
