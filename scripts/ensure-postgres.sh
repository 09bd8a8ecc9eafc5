#!/usr/bin/env bash
# ensure-postgres.sh - a throwaway PostgreSQL 15 cluster for the store (tests, CI, demos).
#
#   * Installs Debian's postgresql-15 with apt-get when /usr/lib/postgresql/15 is missing.
#   * Creates the cluster in a throwaway data directory (initdb) the first time, owned by
#     and run as the `postgres` user; listens on ADDR:PORT only (TCP needs a password:
#     scram-sha-256) and on a Unix socket inside the data directory (the script's own
#     administration, as `postgres`, without a password).
#   * Idempotent: a cluster that already answers is reused. A stale postmaster.pid (its
#     process gone, or the pid now belongs to something else, as after a machine restart)
#     and leftover socket lock files are removed before starting.
#   * Waits (bounded: RECONCILE_PG_TIMEOUT seconds, default 60) until it answers, then
#     makes sure role `reconcile` (password `reconcile`, may create databases) and its
#     database `reconcile` exist.
#   * Prints the SQLAlchemy URL as its last line on stdout:
#     postgresql+psycopg://reconcile:reconcile@ADDR:PORT/reconcile
#
# The cluster is for tests: fsync and synchronous commit are off (fast, and a crash of
# the machine may lose it). Do not use it for anything you want to keep.
#
# Usage:
#   scripts/ensure-postgres.sh [--port P] [--listen ADDR] [--data DIR] [--netns NS]
#   scripts/ensure-postgres.sh [--port P] [--data DIR] --stop
#
#   --port P       TCP port (55432)
#   --listen ADDR  the address to listen on (127.0.0.1)
#   --data DIR     the data directory (/tmp/reconcile-pg-PORT/data)
#   --netns NS     start the server inside network namespace NS (`ip netns exec`); it then
#                  listens on ADDR inside NS. The Unix socket is a file, so this script
#                  administers it from here.
#   --stop         stop the cluster (fast shutdown); no error when it does not run
set -euo pipefail

readonly PROG="ensure-postgres"
PORT=55432
LISTEN=127.0.0.1
DATA=""
NETNS=""
STOP=0
TIMEOUT="${RECONCILE_PG_TIMEOUT:-60}"
BIN=/usr/lib/postgresql/15/bin

log() { echo "$PROG: $*" >&2; }
die() { log "error: $*"; exit 1; }

while [ $# -gt 0 ]; do
    case "$1" in
        --port) PORT="${2:?--port needs a value}"; shift 2 ;;
        --listen) LISTEN="${2:?--listen needs a value}"; shift 2 ;;
        --data) DATA="${2:?--data needs a value}"; shift 2 ;;
        --netns) NETNS="${2:?--netns needs a value}"; shift 2 ;;
        --stop) STOP=1; shift ;;
        -h|--help) sed -n '2,32p' "$0"; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done
case "$PORT" in ''|*[!0-9]*) die "--port must be a number, not '$PORT'" ;; esac
DATA="${DATA:-/tmp/reconcile-pg-$PORT/data}"
SOCK="$DATA/run"            # the Unix socket's directory
URL="postgresql+psycopg://reconcile:reconcile@$LISTEN:$PORT/reconcile"

as_pg() { runuser -u postgres -- "$@"; }
in_ns() { if [ -n "$NETNS" ]; then ip netns exec "$NETNS" "$@"; else "$@"; fi; }
answers() { "$BIN/pg_isready" -q -h "$SOCK" -p "$PORT" -t 2 >/dev/null 2>&1; }
psql_admin() { as_pg "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$SOCK" -p "$PORT" -d postgres "$@"; }

# one invocation at a time per port (the store tests and CI may both call it)
mkdir -p "$(dirname "$DATA")"
exec 9>"$(dirname "$DATA")/.ensure-postgres.lock"
flock -w "$TIMEOUT" 9 || die "another $PROG holds $(dirname "$DATA")/.ensure-postgres.lock"

postmaster_alive() {
    # the pid in postmaster.pid is the postmaster of THIS data directory (not a pid reused
    # after a restart, by anything, or by another cluster's postgres)
    local pid
    [ -f "$DATA/postmaster.pid" ] || return 1
    pid="$(head -n 1 "$DATA/postmaster.pid" 2>/dev/null || true)"
    case "$pid" in ''|*[!0-9]*) return 1 ;; esac
    [ -r "/proc/$pid/cmdline" ] && grep -qx 'postgres\|postmaster' "/proc/$pid/comm" 2>/dev/null \
        && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "-D $DATA "
}

if [ "$STOP" = 1 ]; then
    if postmaster_alive; then
        as_pg "$BIN/pg_ctl" -D "$DATA" -m fast -w -t "$TIMEOUT" stop >&2 || die "pg_ctl stop failed (see $DATA/log)"
        log "stopped the cluster in $DATA"
    else
        log "no cluster runs in $DATA"
    fi
    exit 0
fi

if [ ! -x "$BIN/postgres" ]; then
    log "installing Debian's postgresql-15"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql-15; } >&2 \
        || die "apt-get could not install postgresql-15"
    [ -x "$BIN/postgres" ] || die "$BIN/postgres is missing after installing postgresql-15"
fi

if ! postmaster_alive; then
    if [ ! -f "$DATA/PG_VERSION" ]; then
        log "creating a throwaway cluster in $DATA"
        rm -rf "$DATA"
        mkdir -p "$DATA"
        chown postgres: "$DATA"
        chmod 700 "$DATA"
        as_pg "$BIN/initdb" -D "$DATA" -U postgres -E UTF8 --locale=C.UTF-8 \
            --auth-local=trust --auth-host=scram-sha-256 >/dev/null || die "initdb failed"
        echo "host all all 0.0.0.0/0 scram-sha-256" >>"$DATA/pg_hba.conf"
    fi
    # a machine restart leaves postmaster.pid and socket lock files behind: postgres
    # refuses to start while they name a pid that exists (now someone else's)
    rm -f "$DATA/postmaster.pid"
    mkdir -p "$SOCK"
    rm -f "$SOCK"/.s.PGSQL.*
    chown postgres: "$SOCK"
    log "starting PostgreSQL on $LISTEN:$PORT${NETNS:+ in network namespace $NETNS}"
    in_ns runuser -u postgres -- "$BIN/pg_ctl" -D "$DATA" -l "$DATA/log" -w -t "$TIMEOUT" \
        -o "-c listen_addresses=$LISTEN -c port=$PORT -c unix_socket_directories=$SOCK" \
        -o "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
        start >&2 9>&- || { tail -n 20 "$DATA/log" >&2 || true; die "PostgreSQL did not start (log: $DATA/log)"; }
fi

deadline=$((SECONDS + TIMEOUT))
until answers; do
    [ "$SECONDS" -lt "$deadline" ] || die "PostgreSQL in $DATA does not answer after ${TIMEOUT}s (log: $DATA/log)"
    sleep 0.5
done

psql_admin <<'SQL' >&2
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'reconcile') THEN
    CREATE ROLE reconcile LOGIN CREATEDB PASSWORD 'reconcile';
  END IF;
END $$;
SQL
if [ "$(psql_admin -tA -c "SELECT 1 FROM pg_database WHERE datname = 'reconcile'")" != 1 ]; then
    psql_admin -c "CREATE DATABASE reconcile OWNER reconcile" >&2
fi
log "PostgreSQL 15 answers on $LISTEN:$PORT (data $DATA)"
echo "$URL"
