#!/usr/bin/env bash
# Install Docker Compose v2 (Debian 13 "trixie" package `docker-compose`) as a private,
# unpacked copy under /opt/reconcile-tools/compose-v2, used as the oracle by
# scripts/compose-corpus.py ("does compose itself accept this file set?").
#
# The system's apt sources are NOT touched: a private sources list and a private lists
# directory are handed to apt-get with -o options, the .deb is downloaded and unpacked with
# `dpkg -x` (never installed with dpkg -i). Idempotent: does nothing when the binary exists.
set -euo pipefail

DEST="${COMPOSE_V2_DIR:-/opt/reconcile-tools/compose-v2}"
BIN="$DEST/usr/bin/docker-compose"
if [ -x "$BIN" ] && "$BIN" version >/dev/null 2>&1; then
    echo "compose v2 already installed: $BIN ($("$BIN" version --short 2>/dev/null || true))"
    exit 0
fi

WORK="${COMPOSE_V2_APT_DIR:-/var/tmp/reconcile-compose-v2-apt}"
mkdir -p "$WORK/lists/partial" "$WORK/archives/partial" "$DEST"
cat > "$WORK/sources.list" <<SRC
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main
SRC
APT_OPTS=(
    -o "Dir::Etc::sourcelist=$WORK/sources.list"
    -o "Dir::Etc::sourceparts=-"
    -o "Dir::State::Lists=$WORK/lists"
    -o "Dir::Cache::archives=$WORK/archives"
    -o "Dir::Cache::pkgcache=$WORK/pkgcache.bin"
    -o "Dir::Cache::srcpkgcache=$WORK/srcpkgcache.bin"
    -o "APT::Get::List-Cleanup=0"
)
apt-get "${APT_OPTS[@]}" -q update
VERSION="$(apt-cache "${APT_OPTS[@]}" policy docker-compose | awk '/Candidate:/ {print $2}')"
echo "docker-compose candidate from trixie: ${VERSION:-none}"
if [ -z "$VERSION" ] || [ "$VERSION" = "(none)" ]; then
    echo "docker-compose is not available from the trixie suite" >&2
    exit 1
fi
case "$VERSION" in
    1.*) echo "docker-compose $VERSION is compose v1, not v2" >&2; exit 1 ;;
esac
( cd "$WORK/archives" && apt-get "${APT_OPTS[@]}" -q download "docker-compose=$VERSION" )
DEB="$(ls -t "$WORK"/archives/docker-compose_*.deb | head -1)"
dpkg -x "$DEB" "$DEST"
if [ ! -x "$BIN" ]; then
    # Some builds ship only the CLI plugin path; expose it under the usual name.
    PLUGIN="$(find "$DEST" -type f -name docker-compose -perm -u+x | head -1)"
    if [ -z "$PLUGIN" ]; then
        echo "no docker-compose binary in $DEB" >&2
        exit 1
    fi
    mkdir -p "$DEST/usr/bin"
    ln -sf "$PLUGIN" "$BIN"
fi
"$BIN" version
echo "compose v2 installed: $BIN"
