#!/usr/bin/env bash
# Build the production image from nothing and test the running container.
#
#   deploy/docker/build-and-test.sh     (or `make docker-test`, which installs the
#                                        test tools first)
#
# 1. A Docker daemon: the running one, or dockerd started here (installed with
#    apt when missing and we are root) and stopped again at the end.
# 2. A Debian base image made with debootstrap from the mirror apt already uses
#    (Docker Hub is not reachable from CI), with the host's extra CA certificates
#    so that HTTPS through an intercepting proxy works inside the build. It is
#    tagged by a hash of what made it and reused while that is unchanged. A
#    second tag holds the same system without pip, setuptools, wheel and venv:
#    the runtime stage's base.
# 3. `docker build` of the Dockerfile with those bases, the lock's hash and the
#    git commit as labels.
# 4. tests/container against containers of that image (ports on 127.0.0.1).
#
# Everything started here (dockerd, containers of this run) is stopped by id or
# PID on exit, failure included. Images stay, so that the next run reuses them.
#
# Environment (all optional):
#   MNIST_SERVE_IMAGE   tag to build and test (default mnist-serve:test)
#   DEBIAN_MIRROR       mirror URL for debootstrap (default: read from apt's sources)
#   DEBIAN_SUITE        default bookworm
#   PYTHON              interpreter with pytest and tritonclient (default .venv/bin/python)
#   PYTEST_ARGS         extra pytest arguments for the container suite
#   DOCKER_STATE_DIR    dockerd's pidfile and log when started here
set -euo pipefail
cd "$(dirname "$0")/../.."

IMAGE=${MNIST_SERVE_IMAGE:-mnist-serve:test}
SUITE=${DEBIAN_SUITE:-bookworm}
PYTHON=${PYTHON:-.venv/bin/python}
STATE=${DOCKER_STATE_DIR:-/var/tmp/mnist-serve-docker}
# What the build stage needs; the runtime base drops the BUILD_ONLY ones again.
PACKAGES="python3 python3-venv python3-pip python-is-python3 ca-certificates passwd"
BUILD_ONLY="python3-pip python3-venv python3.11-venv python3-pip-whl python3-setuptools-whl
    python3-setuptools python3-pkg-resources python3-wheel"
# Bump when the recipe below changes in a way the hash of its inputs cannot see.
RECIPE=3
RUN_ID="$(date +%s)-$$"

STARTED_DOCKERD=""
ROOTFS=""
PRUNE=""

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'build-and-test: %s\n' "$*" >&2; exit 1; }

cleanup() {
    local status=$?
    set +e
    if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
        # Containers of this run (the tests label theirs; compose's carry the
        # project name), removed by id.
        local ids
        ids=$( (docker ps -aq --filter "label=mnist-serve.test-run=$RUN_ID"
            docker ps -aq --filter "label=com.docker.compose.project=mnist-serve-test-$RUN_ID") | sort -u)
        if [ -n "$ids" ]; then
            log "removing leftover containers: $(echo "$ids" | tr '\n' ' ')"
            # shellcheck disable=SC2086
            docker rm -f $ids >/dev/null
        fi
    fi
    if [ -n "$PRUNE" ]; then
        # Untagged images built on our bases (earlier builds' stages and
        # images this run's tag replaced); nothing else on the daemon.
        docker image prune --force --filter "label=io.mnist-serve.base" >/dev/null
    fi
    if [ -n "$ROOTFS" ] && [ -d "$ROOTFS" ]; then
        rm -rf --one-file-system "$ROOTFS"
    fi
    if [ -n "$STARTED_DOCKERD" ]; then
        log "stopping dockerd (pid $STARTED_DOCKERD)"
        kill -TERM "$STARTED_DOCKERD" 2>/dev/null
        for _ in $(seq 150); do
            kill -0 "$STARTED_DOCKERD" 2>/dev/null || break
            sleep 0.2
        done
        if kill -0 "$STARTED_DOCKERD" 2>/dev/null; then
            log "dockerd did not stop in 30 s: killing it"
            kill -KILL "$STARTED_DOCKERD" 2>/dev/null
        fi
        wait "$STARTED_DOCKERD" 2>/dev/null
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- 1. the daemon -------------------------------------------------------------

ensure_daemon() {
    if docker info >/dev/null 2>&1; then
        log "using the running Docker daemon"
        return
    fi
    if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
        [ "$(id -u)" = 0 ] || die "no Docker here: install docker.io (as root) or start a daemon"
        log "installing docker.io"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
    fi
    [ "$(id -u)" = 0 ] || die "no Docker daemon runs and only root can start one"
    mkdir -p "$STATE"
    log "starting dockerd (log: $STATE/dockerd.log)"
    # No systemd here: dockerd in the background, with its own pidfile and log.
    dockerd --pidfile "$STATE/dockerd.pid" >"$STATE/dockerd.log" 2>&1 &
    STARTED_DOCKERD=$!
    for _ in $(seq 300); do
        docker info >/dev/null 2>&1 && return
        kill -0 "$STARTED_DOCKERD" 2>/dev/null || {
            STARTED_DOCKERD=""
            tail -n 30 "$STATE/dockerd.log" >&2
            die "dockerd exited"
        }
        sleep 0.2
    done
    tail -n 30 "$STATE/dockerd.log" >&2
    die "dockerd did not answer within 60 s"
}

# --- 2. the base images ----------------------------------------------------------

# The first http(s) URI apt uses for $SUITE (or, failing that, for the host's own
# release: a Debian mirror carries every suite), from sources.list and from
# deb822 .sources files. Nothing here names a host.
apt_mirror() {
    local codename files=()
    codename=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
    [ -f /etc/apt/sources.list ] && files+=(/etc/apt/sources.list)
    for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] && files+=("$f")
    done
    [ "${#files[@]}" -gt 0 ] || return 1
    awk -v want="$SUITE" -v fallback="$codename" '
        function pick(uri, suites,    n, s, i) {
            if (uri !~ /^https?:\/\//) return
            n = split(suites, s, " ")
            for (i = 1; i <= n; i++) {
                if (s[i] == want && exact == "") exact = uri
                if (s[i] == fallback && other == "") other = uri
            }
        }
        function flush() {
            if (types ~ /(^| )deb( |$)/ && enabled != "no") {
                n = split(uris, u, " ")
                for (j = 1; j <= n; j++) pick(u[j], suites)
            }
            types = uris = suites = enabled = ""
        }
        FNR == 1 { flush(); deb822 = (FILENAME ~ /\.sources$/) }
        /^[ \t]*#/ { next }
        deb822 && /^[ \t]*$/ { flush(); next }
        deb822 && /^Types:/ { sub(/^Types:[ \t]*/, ""); types = $0; next }
        deb822 && /^URIs:/ { sub(/^URIs:[ \t]*/, ""); uris = $0; next }
        deb822 && /^Suites:/ { sub(/^Suites:[ \t]*/, ""); suites = $0; next }
        deb822 && /^Enabled:/ { sub(/^Enabled:[ \t]*/, ""); enabled = tolower($0); next }
        !deb822 && $1 == "deb" {
            i = 2
            if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
            pick($i, $(i + 1))
        }
        END {
            flush()
            if (exact != "") print exact; else if (other != "") print other
        }
    ' "${files[@]}"
}

extra_certs() {
    find /usr/local/share/ca-certificates -type f -name '*.crt' 2>/dev/null | sort
}

base_tag() {
    local inputs
    inputs=$(
        echo "recipe $RECIPE suite $SUITE packages $PACKAGES build-only $BUILD_ONLY"
        extra_certs | while read -r crt; do sha256sum <"$crt"; done
    )
    echo "mnist-serve-base:$SUITE-$(printf '%s' "$inputs" | sha256sum | cut -c1-12)"
}

make_base() {
    local tag=$1 runtime_tag=$2 mirror
    command -v debootstrap >/dev/null 2>&1 || {
        [ "$(id -u)" = 0 ] || die "debootstrap is missing (apt-get install debootstrap)"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
    }
    [ "$(id -u)" = 0 ] || die "making the base image needs root (debootstrap, chroot)"
    mirror=${DEBIAN_MIRROR:-$(apt_mirror || true)}
    [ -n "$mirror" ] || die "no Debian mirror for $SUITE in apt's sources; set DEBIAN_MIRROR"
    mkdir -p "$STATE"
    ROOTFS=$(mktemp -d "$STATE/rootfs.XXXXXX")
    log "debootstrap $SUITE (minbase: ${PACKAGES// /, }) from apt's mirror"
    debootstrap --variant=minbase --components=main \
        --include="${PACKAGES// /,}" "$SUITE" "$ROOTFS" "$mirror" \
        >"$STATE/debootstrap.log" 2>&1 \
        || { tail -n 30 "$STATE/debootstrap.log" >&2; die "debootstrap failed"; }
    if [ -n "$(extra_certs)" ]; then
        log "adding the host's extra CA certificates"
        mkdir -p "$ROOTFS/usr/local/share/ca-certificates"
        extra_certs | while read -r crt; do cp "$crt" "$ROOTFS/usr/local/share/ca-certificates/"; done
        chroot "$ROOTFS" update-ca-certificates >/dev/null 2>&1 \
            || die "update-ca-certificates failed in the base"
    fi
    # Package caches and lists, documentation and message translations are not
    # needed to run (and dpkg is told to leave them out of later installs too);
    # the mirror's address, written by debootstrap, does not belong in an image.
    chroot "$ROOTFS" apt-get clean
    rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/*.bin \
        "$ROOTFS"/usr/share/doc/* "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* \
        "$ROOTFS"/usr/share/locale/* "$ROOTFS"/var/log/*.log "$ROOTFS"/var/log/apt/* \
        "$ROOTFS"/etc/apt/sources.list
    printf '%s\n' 'path-exclude=/usr/share/doc/*' 'path-exclude=/usr/share/man/*' \
        'path-exclude=/usr/share/info/*' 'path-exclude=/usr/share/locale/*' \
        >"$ROOTFS/etc/dpkg/dpkg.cfg.d/excludes"
    import_rootfs "$tag"
    # The runtime base: the same system without the packaging tools.
    local present=()
    for p in $BUILD_ONLY; do
        chroot "$ROOTFS" dpkg-query -W -f='${Status}' "$p" 2>/dev/null \
            | grep -q 'install ok installed' && present+=("$p")
    done
    chroot "$ROOTFS" dpkg --purge "${present[@]}" >/dev/null
    import_rootfs "$runtime_tag"
    rm -rf --one-file-system "$ROOTFS"
    ROOTFS=""
}

import_rootfs() {
    tar --numeric-owner --xattrs -C "$ROOTFS" -c . | docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["python3"]' \
        --change "LABEL io.mnist-serve.base=$1" \
        --message "debootstrap $SUITE --variant=minbase" \
        - "$1" >/dev/null
}

# Compose v2 (`docker compose`) if the CLI has it, else Debian's docker-compose,
# installed when missing and we may.
compose_command() {
    if docker compose version >/dev/null 2>&1; then
        echo "docker compose"
        return
    fi
    if ! command -v docker-compose >/dev/null 2>&1 && [ "$(id -u)" = 0 ] \
        && command -v apt-get >/dev/null 2>&1; then
        log "installing docker-compose (Debian) for the compose test"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null
    fi
    command -v docker-compose >/dev/null 2>&1 && echo docker-compose
    return 0
}

# --- main --------------------------------------------------------------------------

[ -x "$PYTHON" ] || die "$PYTHON not found: run \`make docker-test\` (it installs the test tools)"

# One run at a time on this machine: a second run would share (and the first
# would then stop) the dockerd the first one started, and both build one tag.
mkdir -p "$STATE"
exec 9>"$STATE/run.lock"
flock --wait 3600 9 || die "another run holds $STATE/run.lock"

ensure_daemon

BASE=$(base_tag)
BASE_RUNTIME="$BASE-runtime"
start=$SECONDS
if docker image inspect "$BASE" >/dev/null 2>&1 && docker image inspect "$BASE_RUNTIME" >/dev/null 2>&1; then
    log "reusing the base images $BASE and $BASE_RUNTIME"
    base_seconds=0
else
    make_base "$BASE" "$BASE_RUNTIME"
    base_seconds=$((SECONDS - start))
    log "base images made in ${base_seconds} s"
fi

LOCK_SHA=$(sha256sum requirements/runtime.txt | cut -c1-64)
COMMIT=$(git rev-parse HEAD 2>/dev/null || echo unknown)
if [ "$COMMIT" != unknown ] && [ -n "$(git status --porcelain 2>/dev/null)" ]; then
    COMMIT="$COMMIT-dirty"
fi
VERSION=$("$PYTHON" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')

log "building $IMAGE"
PRUNE=1
start=$SECONDS
mkdir -p "$STATE"
docker build \
    --build-arg PYTHON_IMAGE="$BASE" \
    --build-arg RUNTIME_IMAGE="$BASE_RUNTIME" \
    --build-arg VERSION="$VERSION" \
    --build-arg LOCK_SHA256="$LOCK_SHA" \
    --build-arg GIT_COMMIT="$COMMIT" \
    --tag "$IMAGE" . >"$STATE/build.log" 2>&1 \
    || { tail -n 40 "$STATE/build.log" >&2; die "docker build failed (log: $STATE/build.log)"; }
build_seconds=$((SECONDS - start))

size() { docker image inspect --format '{{.Size}}' "$1" | awk '{printf "%.0f MB", $1 / 1e6}'; }
log "image $IMAGE: $(size "$IMAGE"); base $(size "$BASE"), runtime base $(size "$BASE_RUNTIME")"
log "layers of $IMAGE (newest first, empty ones left out):"
docker history --format '{{.Size}}\t{{.CreatedBy}}' "$IMAGE" \
    | awk -F '\t' '$1 != "0B" { printf "     %8s  %s\n", $1, substr($2, 1, 90) }' >&2
log "time: base ${base_seconds} s (0: reused), image build ${build_seconds} s"

COMPOSE=$(compose_command)
[ -n "$COMPOSE" ] || log "no docker compose here: the compose test will skip"
log "container suite"
# shellcheck disable=SC2086
MNIST_SERVE_TEST_IMAGE="$IMAGE" MNIST_SERVE_TEST_RUN="$RUN_ID" MNIST_SERVE_TEST_COMPOSE="$COMPOSE" \
    "$PYTHON" -m pytest tests/container -p no:cacheprovider --durations=5 ${PYTEST_ARGS:-}
