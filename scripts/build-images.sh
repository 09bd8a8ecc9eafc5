#!/usr/bin/env bash
# build-images.sh - build the offline test images (no registry needed, never pulls).
#
#   reconcile/busybox:latest    docker import of a rootfs made from the host's
#                               static /bin/busybox (+ all applet symlinks)
#   reconcile/demo-web:1, :2    busybox httpd on :80 serving /www (index, /health)
#   reconcile/demo-worker:1     heartbeat every 2 s, exits 0 promptly on SIGTERM
#   reconcile/demo-job:1        prints "migrating", sleeps 1 s, exits $JOB_EXIT_CODE
#
# All images carry the label io.reconcile.test-image=true. An image is built
# only when it is missing, when its sources (images/<name>/, build args, base
# image) changed since it was built (label io.reconcile.test-image.source-hash), or with
# --force. Freshly built images get a quick smoke test.
#
# Usage: scripts/build-images.sh [--force] [--no-verify]
#   The images are built on the engine DOCKER_HOST points to (RECONCILE_ENGINE=docker26
#   selects that engine when DOCKER_HOST is unset; see scripts/ensure-docker.sh).
#   Progress goes to stderr; the last line (stdout) lists the images present.
#   VERBOSE=1 shows docker build output.
set -euo pipefail

readonly PROG="build-images"
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
readonly SCRIPT_DIR REPO_ROOT
readonly IMAGES_DIR="$REPO_ROOT/images"
BUILT=()     # images built in this run
OLD_IDS=()   # replaced image ids, removed at the end if nothing uses them
readonly TEST_LABEL="io.reconcile.test-image=true"
readonly HASH_LABEL="io.reconcile.test-image.source-hash"
readonly BASE_IMAGE="reconcile/busybox:latest"
readonly IMAGE_PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Bump when the rootfs layout produced by make_rootfs changes.
readonly ROOTFS_LAYOUT_VERSION=1

# name  context-dir  VERSION build-arg
readonly DERIVED_IMAGES=(
    "reconcile/demo-web:1     demo-web     1"
    "reconcile/demo-web:2     demo-web     2"
    "reconcile/demo-worker:1  demo-worker  1"
    "reconcile/demo-job:1     demo-job     1"
)

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { printf '%s: ERROR: %s\n' "$PROG" "$*" >&2; exit 1; }

FORCE=0
VERIFY=1
for arg in "$@"; do
    case "$arg" in
        --force | -f) FORCE=1 ;;
        --no-verify) VERIFY=0 ;;
        -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
        *) die "unknown argument: $arg (usage: $0 [--force] [--no-verify])" ;;
    esac
done

# Legacy builder: the Debian engine (20.10) + a CLI without buildx falls back to
# it anyway; being explicit keeps behaviour identical everywhere and offline.
export DOCKER_BUILDKIT=0

WORK_DIR=""
VERIFYING=""   # image under smoke test
cleanup() {
    local rc=$?
    # A failed smoke test must not leave an image that looks "up to date".
    if [[ -n "$VERIFYING" && "$rc" != 0 ]]; then
        log "removing $VERIFYING after its failed smoke test"
        docker rmi "$VERIFYING" >/dev/null 2>&1 || true
    fi
    if [[ -n "$WORK_DIR" ]]; then rm -rf "$WORK_DIR"; fi
}
trap cleanup EXIT
WORK_DIR="$(mktemp -d /tmp/reconcile-build-images.XXXXXX)"

# --------------------------------------------------------------------------
is_static() { ! ldd "$1" >/dev/null 2>&1; }

# Echo the path of a statically linked busybox, installing busybox-static if
# needed. If /bin/busybox is the dynamic Debian `busybox`, extract the static
# one from its .deb instead of replacing the host's package.
find_static_busybox() {
    if [[ -n "${BUSYBOX:-}" ]]; then
        if ! { [[ -x "$BUSYBOX" ]] && is_static "$BUSYBOX"; }; then die "BUSYBOX=$BUSYBOX is not a static executable"; fi
        echo "$BUSYBOX"; return
    fi
    if [[ ! -e /bin/busybox ]]; then
        [[ "$(id -u)" == 0 ]] || die "/bin/busybox missing and not root: install busybox-static (apt-get install busybox-static)"
        log "/bin/busybox missing: installing busybox-static via apt"
        if ! { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends busybox-static; } \
                >"$WORK_DIR/apt.log" 2>&1; then
            tail -n 20 "$WORK_DIR/apt.log" >&2
            die "apt-get install busybox-static failed"
        fi
    fi
    if is_static /bin/busybox; then
        echo /bin/busybox; return
    fi
    log "/bin/busybox is dynamically linked: extracting busybox-static from its .deb"
    (cd "$WORK_DIR" && apt-get download busybox-static >"$WORK_DIR/apt.log" 2>&1) \
        || { tail -n 20 "$WORK_DIR/apt.log" >&2; die "apt-get download busybox-static failed"; }
    dpkg-deb -x "$WORK_DIR"/busybox-static_*.deb "$WORK_DIR/bbdeb"
    is_static "$WORK_DIR/bbdeb/bin/busybox" || die "extracted busybox is not static"
    echo "$WORK_DIR/bbdeb/bin/busybox"
}

static_busybox_at_hand() {
    if [[ -n "${BUSYBOX:-}" ]]; then [[ -x "$BUSYBOX" ]]; return; fi
    [[ -x /bin/busybox ]] && is_static /bin/busybox
}

image_id() { docker image inspect -f '{{.Id}}' "$1" 2>/dev/null || true; }
image_hash() { docker image inspect -f "{{index .Config.Labels \"$HASH_LABEL\"}}" "$1" 2>/dev/null || true; }

# Hash of all regular files under a directory (names + contents).
dir_hash() {
    (cd "$1" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum) | sha256sum | cut -c1-16
}

# needs_build IMAGE WANT_HASH
needs_build() {
    local img="$1" want="$2" have
    [[ "$FORCE" == 1 ]] && return 0
    [[ -n "$(image_id "$img")" ]] || return 0
    have="$(image_hash "$img")"
    if [[ "$have" != "$want" ]]; then
        log "$img is out of date (sources changed): rebuilding"
        return 0
    fi
    return 1
}

remember_old() {
    local id
    id="$(image_id "$1")"
    if [[ -n "$id" ]]; then OLD_IDS+=("$id"); fi
}

# --------------------------------------------------------------------------
make_rootfs() {
    local bb="$1" root="$2" applet d
    mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,usr/local/bin,usr/local/sbin,usr/share} \
             "$root"/{etc,proc,sys,dev,run,var/log,var/run,var/tmp,tmp,root,home,www,mnt,opt}
    chmod 1777 "$root/tmp" "$root/var/tmp"
    chmod 0700 "$root/root"
    install -m 0755 "$bb" "$root/bin/busybox"
    while IFS= read -r applet; do
        [[ -z "$applet" || "$applet" == bin/busybox ]] && continue
        d="$(dirname "$applet")"
        mkdir -p "$root/$d"
        ln -sfn /bin/busybox "$root/$applet"
    done < <("$bb" --list-full)
    cp "$IMAGES_DIR/busybox/etc/"* "$root/etc/"
    chmod 0644 "$root"/etc/*
    # Docker bind-mounts these at run time; have them exist as plain files.
    : >"$root/etc/resolv.conf"
    : >"$root/etc/hostname"
    ln -sfn /proc/mounts "$root/etc/mtab"
}

build_base() {
    local bb="$1" want
    want="$(printf '%s\n' "layout=$ROOTFS_LAYOUT_VERSION" "$(sha256sum <"$bb" | cut -c1-64)" \
        "$(dir_hash "$IMAGES_DIR/busybox")" | sha256sum | cut -c1-16)"
    needs_build "$BASE_IMAGE" "$want" || return 0

    log "building $BASE_IMAGE (docker import of static $("$bb" --help 2>&1 | head -n1 | cut -d' ' -f1-2))"
    remember_old "$BASE_IMAGE"
    make_rootfs "$bb" "$WORK_DIR/rootfs"
    tar --numeric-owner --owner=0 --group=0 -C "$WORK_DIR/rootfs" -cf "$WORK_DIR/rootfs.tar" .
    docker import \
        --change 'CMD ["sh"]' \
        --change "ENV PATH=$IMAGE_PATH" \
        --change "LABEL $TEST_LABEL" \
        --change "LABEL $HASH_LABEL=$want" \
        --message "reconcile test base image from static busybox" \
        "$WORK_DIR/rootfs.tar" "$BASE_IMAGE" >/dev/null
    BUILT+=("$BASE_IMAGE")
    verify_image "$BASE_IMAGE"
}

build_derived() {
    local img="$1" ctx_name="$2" version="$3" ctx want base_id
    ctx="$IMAGES_DIR/$ctx_name"
    [[ -f "$ctx/Dockerfile" ]] || die "missing $ctx/Dockerfile"
    base_id="$(image_id "$BASE_IMAGE")"
    want="$(printf '%s\n' "$base_id" "VERSION=$version" "$(dir_hash "$ctx")" | sha256sum | cut -c1-16)"
    needs_build "$img" "$want" || return 0

    log "building $img (images/$ctx_name, VERSION=$version)"
    remember_old "$img"
    local out="$WORK_DIR/build-${ctx_name}-${version}.log"
    local -a extra=()
    if [[ "$FORCE" == 1 ]]; then extra+=(--no-cache); fi
    if ! docker build --pull=false --rm --force-rm "${extra[@]}" \
            --build-arg "VERSION=$version" \
            --label "$TEST_LABEL" --label "$HASH_LABEL=$want" \
            -t "$img" "$ctx" >"$out" 2>&1; then
        grep -v -e '^DEPRECATED' -e 'BuildKit' -e 'buildx' -e 'docs.docker.com' "$out" | tail -n 25 >&2
        die "docker build of $img failed"
    fi
    if [[ "${VERBOSE:-0}" == 1 ]]; then cat "$out" >&2; fi
    BUILT+=("$img")
    verify_image "$img"
}

# --------------------------------------------------------------------------
# Smoke tests (only for images built in this run).

# run_once ARGS...: `docker run ARGS` keeping the container's exit code, then remove it.
# (Not `docker run --rm`: against Podman's Docker-compatible API the CLI's --rm path
# reports exit 0 whatever the container exited with; one LABEL per --change above for
# the same reason: Podman reads "LABEL a=b c=d" as one label.)
run_once() {
    local name="reconcile-build-verify-$$-$RANDOM" rc=0
    docker run --name "$name" "$@" || rc=$?
    docker rm -f "$name" >/dev/null 2>&1 || true
    return "$rc"
}
verify_base() {
    local out
    out="$(run_once "$BASE_IMAGE" sh -c 'wget --help >/dev/null 2>&1; echo ok')" || true
    [[ "$out" == ok ]] || die "$BASE_IMAGE smoke test failed (got: '$out')"
    out="$(run_once "$BASE_IMAGE" sh -c '
        for a in sh httpd nc wget sleep kill ps grep; do command -v "$a" >/dev/null || { echo "missing $a"; exit 1; }; done
        trap "echo trapped" TERM; kill -TERM $$; id -un; [ -d /tmp ] && [ -w /tmp ] && echo fine')" || true
    [[ "$out" == $'trapped\nroot\nfine' ]] || die "$BASE_IMAGE applet check failed (got: '$out')"
}

verify_web() {
    local img="$1" version="$2" out
    out="$(run_once "$img" sh -c '
        httpd -p 127.0.0.1:8080 -h /www
        wget -qO- http://127.0.0.1:8080/ | grep -q "demo-web v$DEMO_WEB_VERSION" && echo "demo-web v$DEMO_WEB_VERSION"
        wget -qO- http://127.0.0.1:8080/health
        make-unhealthy; wget -qO- http://127.0.0.1:8080/health >/dev/null 2>&1 && echo still-healthy || echo unhealthy
        make-healthy; wget -qO- http://127.0.0.1:8080/health')" || true
    [[ "$out" == "demo-web v$version"$'\nok\nunhealthy\nok' ]] || die "$img smoke test failed (got: '$out')"
}

verify_worker() {
    local img="$1" cid code i logs
    cid="$(docker run -d "$img")"
    for ((i = 0; i < 20; i++)); do
        [[ "$(docker logs "$cid" 2>&1)" == *heartbeat* ]] && break
        sleep 0.25
    done
    docker stop -t 5 "$cid" >/dev/null
    code="$(docker inspect -f '{{.State.ExitCode}}' "$cid")"
    logs="$(docker logs "$cid" 2>&1)"
    docker rm -f "$cid" >/dev/null
    [[ "$logs" == *"heartbeat 1"* ]] || die "$img printed no heartbeat (logs: '$logs')"
    [[ "$logs" == *SIGTERM* && "$code" == 0 ]] || die "$img did not exit 0 on SIGTERM (exit $code, logs: '$logs')"
}

verify_job() {
    local img="$1" out code
    out="$(run_once "$img")" || die "$img exited non-zero by default"
    [[ "$out" == migrating ]] || die "$img printed '$out', expected 'migrating'"
    code=0; run_once -e JOB_EXIT_CODE=3 "$img" >/dev/null || code=$?
    [[ "$code" == 3 ]] || die "$img with JOB_EXIT_CODE=3 exited $code"
}

verify_image() {
    local img="$1"
    [[ "$VERIFY" == 1 ]] || return 0
    VERIFYING="$img"
    case "$img" in
        "$BASE_IMAGE") verify_base ;;
        reconcile/demo-web:*) verify_web "$img" "${img##*:}" ;;
        reconcile/demo-worker:*) verify_worker "$img" ;;
        reconcile/demo-job:*) verify_job "$img" ;;
    esac
    VERIFYING=""
}

# --------------------------------------------------------------------------
main() {
    # Build on the engine DOCKER_HOST (or RECONCILE_ENGINE) selects: ensure-docker.sh
    # starts it if needed and prints the DOCKER_HOST every docker command below uses.
    DOCKER_HOST="$("$SCRIPT_DIR/ensure-docker.sh" | tail -n 1)"
    export DOCKER_HOST
    log "building on $DOCKER_HOST ($(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?'))"

    # Serialise concurrent runs (after ensure-docker, so dockerd never
    # inherits this lock fd).
    exec 8>"/tmp/reconcile-build-images.lock"
    flock -w 600 8 || die "timed out waiting for another build-images.sh run"

    local start=$SECONDS bb entry img ctx version
    BUILT=()
    OLD_IDS=()
    if [[ "$FORCE" == 0 && -n "$(image_id "$BASE_IMAGE")" ]] && ! static_busybox_at_hand; then
        : # base exists and no static busybox here to compare with: keep it
    else
        bb="$(find_static_busybox)"
        build_base "$bb"
    fi

    for entry in "${DERIVED_IMAGES[@]}"; do
        read -r img ctx version <<<"$entry"
        build_derived "$img" "$ctx" "$version"
    done

    if ((${#BUILT[@]} > 0)); then
        log "built ${#BUILT[@]} image(s) in $((SECONDS - start))s$([[ "$VERIFY" == 1 ]] && echo ', smoke tests passed')"
        # Drop images that were replaced, if nothing else uses them.
        local i
        # Only ids that ended up untagged: a cached rebuild can yield the same id.
        for ((i = ${#OLD_IDS[@]} - 1; i >= 0; i--)); do
            if [[ "$(docker image inspect -f '{{len .RepoTags}}' "${OLD_IDS[i]}" 2>/dev/null || echo x)" == 0 ]]; then
                docker rmi "${OLD_IDS[i]}" >/dev/null 2>&1 || true
            fi
        done
    else
        log "all images up to date"
    fi

    local present=() missing=()
    for img in "$BASE_IMAGE" $(printf '%s\n' "${DERIVED_IMAGES[@]}" | awk '{print $1}'); do
        if [[ -n "$(image_id "$img")" ]]; then present+=("$img"); else missing+=("$img"); fi
    done
    ((${#missing[@]} == 0)) || die "images missing after build: ${missing[*]}"
    echo "images present: ${present[*]}"
}

main
