# procs.sh - process and socket helpers shared by the engine scripts (sourced, not run):
# scripts/ensure-docker.sh and scripts/multihost.sh. Pure /proc scans (minimal images
# have no pgrep/procps). The sourcing script defines log() and die().
# shellcheck shell=bash

# A pid is alive when /proc/<pid> exists and it is not a zombie. (kill -0
# succeeds on zombies, and dockerd's own pid-file check only stats /proc/<pid>,
# so a zombie dockerd/containerd left in the process table would block a start.)
pid_alive() {
    local pid="$1" state
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    [[ -r "/proc/$pid/stat" ]] || return 1
    state="$(sed -e 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)" || return 1
    [[ -n "$state" && "$state" != Z && "$state" != X ]]
}

pid_comm() { cat "/proc/$1/comm" 2>/dev/null || true; }

# procs_named COMM [CMDLINE_SUBSTRING]: live root-owned pids with that command
# name (and, when given, that substring in their command line).
procs_named() {
    local comm="$1" want="${2:-}" dir pid cmdline
    for dir in /proc/[0-9]*; do
        pid="${dir#/proc/}"
        [[ "$(cat "$dir/comm" 2>/dev/null)" == "$comm" ]] || continue
        [[ "$(stat -c %u "$dir" 2>/dev/null)" == 0 ]] || continue
        if [[ -n "$want" ]]; then
            cmdline="$(tr '\0' ' ' <"$dir/cmdline" 2>/dev/null || true)"
            [[ "$cmdline" == *"$want"* ]] || continue
        fi
        if pid_alive "$pid"; then echo "$pid"; fi
    done
}

read_pidfile() {
    if [[ -f "$1" ]]; then tr -dc '0-9' <"$1" 2>/dev/null || true; fi
}

# Does something accept connections on a unix socket?
sock_alive() {
    local sock="$1"
    [[ -S "$sock" ]] || return 1
    if command -v python3 >/dev/null 2>&1; then
        python3 - "$sock" <<'PY' >/dev/null 2>&1
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(3)
s.connect(sys.argv[1])
PY
        return
    fi
    if command -v ctr >/dev/null 2>&1; then
        timeout 5 ctr --address "$sock" version >/dev/null 2>&1
        return
    fi
    return 0   # cannot tell: assume alive, never delete a socket we cannot probe
}

# Terminate one pid: TERM, wait up to $2 seconds, then KILL.
terminate_pid() {
    local pid="$1" wait_s="${2:-10}" what="${3:-process}" i
    pid_alive "$pid" || return 0
    log "stopping $what (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < wait_s * 4; i++)); do
        pid_alive "$pid" || return 0
        sleep 0.25
    done
    log "$what (pid $pid) ignored SIGTERM, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 20; i++)); do
        pid_alive "$pid" || return 0
        sleep 0.25
    done
    die "could not kill $what (pid $pid)"
}

# spawn_detached LOG CMD...: start CMD in the background, appending its output to LOG,
# and echo its pid. setsid: own session, so it survives the caller's process group being
# killed; nohup: ignore SIGHUP. Both exec, so the pid is CMD's. Every inherited fd above 2
# is closed first: a daemon must not hold the caller's lock fd, nor a caller's pipe (a CI
# step, or a $(...) around this function, would never see EOF).
spawn_detached() {
    local log_file="$1"
    shift
    mkdir -p "$(dirname "$log_file")"
    (
        for fd in /proc/"$BASHPID"/fd/*; do
            fd="${fd##*/}"
            if [[ "$fd" =~ ^[0-9]+$ ]] && ((fd > 2)); then eval "exec ${fd}>&-" 2>/dev/null || true; fi
        done
        exec setsid nohup "$@" >>"$log_file" 2>&1 </dev/null
    ) &
    local pid=$!
    disown "$pid" 2>/dev/null || true
    echo "$pid"
}
