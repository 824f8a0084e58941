#!/usr/bin/env bash
# Builds the local base images the tests use, offline-first (Docker Hub is out of reach here):
#
#   rpdeploy-test/rootfs:<key>         debootstrap'd Debian bookworm (minbase + scripts/images/rootfs/packages)
#   rpdeploy-test/busybox:<key>        /bin/busybox and its applets: tiny, for fast build/push tests
#   rpdeploy-test/python:<key>         rootfs + runpod SDK (wheels pip-downloaded on the host) + tests/standins/*;
#                                      the stand-in for vllm/vllm-openai
#   rpdeploy-test/systemd-host:<key>   rootfs + sshd (keys only) + user deploy (sudo) + spring-boot.service stand-in
#
# <key> is a hash of the image's inputs (recipe files, stand-ins, base key); an image whose key
# exists is reused, so a warm run takes a second and needs no network. Each checkout gets the
# images of its own inputs, so test sessions of different branches sharing one docker engine do
# not swap each other's images. The tag :1 (rpdeploy-test/python:1, ...) points at the images of
# the last run, for people; tests use the keyed tags, which this script prints on stdout:
#   busybox=rpdeploy-test/busybox:<key>
#   python=rpdeploy-test/python:<key>
#   systemd_host=rpdeploy-test/systemd-host:<key>
# Caches (debs, rootfs tarball, wheels) live under $RPDEPLOY_TEST_CACHE (/var/cache/rpdeploy-test).
#
# Usage: scripts/images.sh [--rebuild]    (--rebuild ignores every cache except downloaded .debs)
# Needs: root, a running docker engine (scripts/services.sh), debootstrap, busybox-static, zstd,
# python3 with pip on the host (for `pip download`; only when the python image is (re)built).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

REBUILD=0
for arg in "$@"; do
  case $arg in
    --rebuild) REBUILD=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $arg (see --help)" ;;
  esac
done

RECIPES=$REPO_ROOT/scripts/images
STANDINS=$REPO_ROOT/tests/standins
SUITE=bookworm
MIRROR=${RPDEPLOY_TEST_DEBIAN_MIRROR:-http://deb.debian.org/debian}
LABEL=org.rpdeploy.test.key
HOST_PYTHON=${PYTHON:-python3}
KEEP=3 # keyed images kept per name (other checkouts may still use older keys)

need_cmd docker sha256sum tar
docker info >/dev/null 2>&1 || die "the docker engine does not answer; start it with scripts/services.sh"
mkdir -p "$RPDEPLOY_TEST_CACHE"/{debs,rootfs,wheels} "$RPDEPLOY_TEST_LOGS"
take_lock "$RPDEPLOY_TEST_CACHE/images.lock"

# Scratch space on disk (a rootfs is a few hundred MB, too big for a tmpfs /tmp), removed on exit.
WORK=$(mktemp -d /var/tmp/rpdeploy-images.XXXXXX)
BUILD_CONTAINER=rpdeploy-test-build-$$
trap 'rm -rf "$WORK"; docker rm -f "$BUILD_CONTAINER" >/dev/null 2>&1 || true' EXIT

# key OF...: a 16-hex hash of the arguments (strings) and of the inputs they name.
key_of() { printf '%s\n' "$@" | sha256sum | cut -c1-16; }

# True when image $1 exists with key label $2 (and no --rebuild).
is_fresh() {
  [[ $REBUILD == 0 && "$(docker image inspect -f "{{ index .Config.Labels \"$LABEL\" }}" "$1" 2>/dev/null)" == "$2" ]]
}

# prune REPO KEY: untag all but the newest $KEEP keyed images of REPO (KEY among those kept);
# an image a container or another image still uses stays until it is free.
prune() {
  local repo=$1 key=$2
  docker image ls --format '{{.Tag}}' "$repo" | grep -vxF -e 1 -e "$key" | tail -n +"$KEEP" \
    | sed "s|^|$repo:|" | xargs -r docker image rm >/dev/null 2>&1 || true
}

# drop_untagged ID: remove image ID (the one a rebuild took the tag from) if no tag is left on it.
drop_untagged() {
  [[ -n $1 && "$(docker image inspect -f '{{len .RepoTags}}' "$1" 2>/dev/null)" == 0 ]] || return 0
  docker image rm "$1" >/dev/null 2>&1 || true
}
image_id() { docker image inspect -f '{{.Id}}' "$1" 2>/dev/null || true; }

# publish NAME REPO KEY: point REPO:1 at REPO:KEY and report NAME=REPO:KEY on stdout.
publish() {
  local name=$1 repo=$2 key=$3 previous
  previous=$(image_id "$repo:1")
  docker tag "$repo:$key" "$repo:1"
  drop_untagged "$previous"
  printf '%s=%s:%s\n' "$name" "$repo" "$key"
  prune "$repo" "$key"
}

# Runs a stage, timing it; on failure shows the tail of its log. The stage runs as a background
# job so that `set -e` still holds inside it (bash ignores it in functions called from an `if`).
timed() {
  local what=$1 logfile=$2; shift 2
  local start=$SECONDS
  log "building $what (log: $logfile)"
  "$@" >"$logfile" 2>&1 &
  if ! wait $!; then
    tail -n 40 "$logfile" >&2
    die "building $what failed; full log: $logfile"
  fi
  log "built $what in $((SECONDS - start)) s"
}

# --- rootfs --------------------------------------------------------------------------------------
ROOTFS_KEY=$(key_of "$SUITE" "$(hash_inputs "$RECIPES/rootfs")")
ROOTFS_IMAGE=rpdeploy-test/rootfs:$ROOTFS_KEY

debootstrap_rootfs() {
  local tarball=$1 dir=$WORK/rootfs
  debootstrap --variant=minbase --include="$(grep -v '^#' "$RECIPES/rootfs/packages" | paste -sd, -)" \
    --cache-dir="$RPDEPLOY_TEST_CACHE/debs" "$SUITE" "$dir" "$MIRROR"
  sh "$RECIPES/rootfs/finish.sh" "$dir"
  tar --numeric-owner --xattrs -C "$dir" -c . | zstd -q -T0 -3 -o "$tarball.tmp"
  mv "$tarball.tmp" "$tarball"
}

build_rootfs() {
  if is_fresh "$ROOTFS_IMAGE" "$ROOTFS_KEY"; then
    log "reusing $ROOTFS_IMAGE"
    return
  fi
  need_cmd debootstrap zstd
  local tarball=$RPDEPLOY_TEST_CACHE/rootfs/$SUITE-$ROOTFS_KEY.tar.zst
  if [[ $REBUILD == 1 || ! -s $tarball ]]; then
    timed "Debian $SUITE rootfs (debootstrap)" "$RPDEPLOY_TEST_LOGS/debootstrap.log" debootstrap_rootfs "$tarball"
  else
    log "reusing cached rootfs tarball $tarball"
  fi
  local previous
  previous=$(image_id "$ROOTFS_IMAGE")
  zstd -dc "$tarball" | docker import --change "LABEL $LABEL=$ROOTFS_KEY" - "$ROOTFS_IMAGE" >/dev/null
  drop_untagged "$previous"
  # Older rootfs tarballs are dead weight once a new key is built.
  find "$RPDEPLOY_TEST_CACHE/rootfs" -name "$SUITE-*.tar.zst" ! -name "$SUITE-$ROOTFS_KEY.tar.zst" -delete
  prune rpdeploy-test/rootfs "$ROOTFS_KEY"
}

# --- busybox -------------------------------------------------------------------------------------
build_busybox() {
  need_cmd busybox
  local repo=rpdeploy-test/busybox bin key dir=$WORK/busybox applet previous
  bin=$(readlink -f "$(command -v busybox)")
  key=$(key_of recipe-1 "$(hash_inputs "$bin")") # bump "recipe-1" when the layout below changes
  if is_fresh "$repo:$key" "$key"; then
    log "reusing $repo:$key"
  else
    mkdir -p "$dir"/{bin,etc,root,tmp}
    chmod 1777 "$dir/tmp"
    cp "$bin" "$dir/bin/busybox"
    for applet in $("$bin" --list); do
      [[ $applet == busybox ]] || ln -s busybox "$dir/bin/$applet"
    done
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$dir/etc/passwd"
    printf 'root:x:0:\nnobody:x:65534:\n' >"$dir/etc/group"
    previous=$(image_id "$repo:$key")
    tar --numeric-owner --owner=0 --group=0 -C "$dir" -c . \
      | docker import --change "LABEL $LABEL=$key" --change 'ENV PATH=/bin' --change 'CMD ["/bin/sh"]' \
        - "$repo:$key" >/dev/null
    drop_untagged "$previous"
    log "built $repo:$key"
  fi
  publish busybox "$repo" "$key"
}

# --- images provisioned from the rootfs ------------------------------------------------------------
# provision NAME REPO KEY [docker run options...]: unless REPO:KEY exists, runs /build/recipe/provision.sh
# in a container of the rootfs image without network and commits it as REPO:KEY (one layer over
# the rootfs), with the Dockerfile-like changes in the array CHANGES. Then publishes it.
provision() {
  local name=$1 repo=$2 key=$3 previous; shift 3
  if is_fresh "$repo:$key" "$key"; then
    log "reusing $repo:$key"
  else
    docker rm -f "$BUILD_CONTAINER" >/dev/null 2>&1 || true
    timed "$repo:$key" "$RPDEPLOY_TEST_LOGS/$name-image.log" \
      docker run --name "$BUILD_CONTAINER" --network none "$@" "$ROOTFS_IMAGE" sh /build/recipe/provision.sh
    # The committed config replaces the build command; env and labels are the image's contract.
    previous=$(image_id "$repo:$key")
    docker commit --change "LABEL $LABEL=$key" "${CHANGES[@]}" "$BUILD_CONTAINER" "$repo:$key" >/dev/null
    docker rm "$BUILD_CONTAINER" >/dev/null
    drop_untagged "$previous"
  fi
  publish "$name" "$repo" "$key"
}

# Wheels for scripts/images/python/requirements.txt, downloaded once per version of that file.
# Targets the image's Python (CPython 3.11, glibc 2.36), whatever the host's Python is.
fetch_wheels() {
  local dir=$1 tmp=$WORK/wheels arch v platforms=()
  arch=$(uname -m)
  # pip does not widen an explicit manylinux_2_36 to older glibc tags by itself: list them.
  for v in $(seq 36 -1 17); do platforms+=(--platform "manylinux_2_${v}_$arch"); done
  platforms+=(--platform "manylinux2014_$arch" --platform "manylinux2010_$arch" --platform "manylinux1_$arch")
  "$HOST_PYTHON" -m pip download --quiet --disable-pip-version-check --only-binary=:all: \
    --implementation cp --python-version 3.11 --abi cp311 "${platforms[@]}" \
    -r "$RECIPES/python/requirements.txt" -d "$tmp"
  rm -rf "$dir"
  mv "$tmp" "$dir"
}

PYTHON_REPO=rpdeploy-test/python
PYTHON_KEY=$(key_of "$ROOTFS_KEY" "$(hash_inputs "$RECIPES/python" "$STANDINS")")
WHEELS=$RPDEPLOY_TEST_CACHE/wheels/$(hash_inputs "$RECIPES/python/requirements.txt")
WHEELS_JOB=

# Starts the wheel download in the background when the python image will need it: it only
# needs the host's network, so it overlaps with debootstrap on a cold cache.
start_wheels() {
  if ! is_fresh "$PYTHON_REPO:$PYTHON_KEY" "$PYTHON_KEY" && [[ $REBUILD == 1 || ! -d $WHEELS ]]; then
    timed "wheels for $(grep -v '^#' "$RECIPES/python/requirements.txt" | paste -sd' ' -)" \
      "$RPDEPLOY_TEST_LOGS/pip-download.log" fetch_wheels "$WHEELS" &
    WHEELS_JOB=$!
  fi
}

build_python() {
  if [[ -n $WHEELS_JOB ]]; then
    wait "$WHEELS_JOB" || exit 1 # timed has said what failed
  fi
  local mounts=(-v "$RECIPES/python:/build/recipe:ro" -v "$WHEELS:/build/wheels:ro")
  [[ -d $STANDINS ]] && mounts+=(-v "$STANDINS:/build/standins:ro")
  CHANGES=(--change 'ENV PIP_BREAK_SYSTEM_PACKAGES=1' --change 'ENV PIP_DISABLE_PIP_VERSION_CHECK=1'
    --change 'WORKDIR /' --change 'CMD ["python3"]')
  provision python "$PYTHON_REPO" "$PYTHON_KEY" "${mounts[@]}"
}

build_systemd_host() {
  local key
  key=$(key_of "$ROOTFS_KEY" "$(hash_inputs "$RECIPES/systemd-host")")
  CHANGES=(--change 'ENV container=docker' --change 'EXPOSE 22' --change 'EXPOSE 8080'
    --change 'WORKDIR /' --change 'CMD ["/sbin/init"]')
  provision systemd_host rpdeploy-test/systemd-host "$key" -v "$RECIPES/systemd-host:/build/recipe:ro"
}

start=$SECONDS
start_wheels
build_busybox
build_rootfs
build_python
build_systemd_host
docker image ls --format '{{.Repository}}:{{.Tag}}\t{{.Size}}' | grep -E '^rpdeploy-test/[^:]+:1\s' | sed 's/^/  /' >&2 || true
log "images ready in $((SECONDS - start)) s"
