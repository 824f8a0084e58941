#!/usr/bin/env bash
# Builds the local base images the tests use, offline-first (Docker Hub is out of reach here):
#
#   rpdeploy-test/rootfs:<key>       debootstrap'd Debian bookworm (minbase + scripts/images/rootfs/packages)
#   rpdeploy-test/busybox:1          /bin/busybox and its applets: tiny, for fast build/push tests
#   rpdeploy-test/python:1           rootfs + runpod SDK (wheels pip-downloaded on the host) + tests/standins/*;
#                                    the stand-in for vllm/vllm-openai
#   rpdeploy-test/systemd-host:1     rootfs + sshd (keys only) + user deploy (sudo) + spring-boot.service stand-in
#
# Each image carries the label org.rpdeploy.test.key, a hash of its inputs (recipe files, stand-ins,
# base key); an image whose key matches is reused, so a warm run takes about a second and needs no
# network. Caches (debs, rootfs tarball, wheels) live under $RPDEPLOY_TEST_CACHE (/var/cache/rpdeploy-test).
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

need_cmd docker sha256sum tar
docker info >/dev/null 2>&1 || die "the docker engine does not answer; start it with scripts/services.sh"
mkdir -p "$RPDEPLOY_TEST_CACHE"/{debs,rootfs,wheels} "$RPDEPLOY_TEST_LOGS"

image_key() { docker image inspect -f "{{ index .Config.Labels \"$LABEL\" }}" "$1" 2>/dev/null || true; }

# True when image $1 exists with key $2 (and no --rebuild).
is_fresh() {
  [[ $REBUILD == 0 && "$(image_key "$1")" == "$2" ]]
}

# Scratch space on disk (a rootfs is a few hundred MB, too big for a tmpfs /tmp), removed on exit.
WORK=$(mktemp -d /var/tmp/rpdeploy-images.XXXXXX)
BUILD_CONTAINER=rpdeploy-test-build-$$
trap 'rm -rf "$WORK"; docker rm -f "$BUILD_CONTAINER" >/dev/null 2>&1 || true' EXIT

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
ROOTFS_KEY=$(printf '%s %s' "$SUITE" "$(hash_inputs "$RECIPES/rootfs")" | sha256sum | cut -c1-16)
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
  zstd -dc "$tarball" | docker import --change "LABEL $LABEL=$ROOTFS_KEY" - "$ROOTFS_IMAGE" >/dev/null
  # Older rootfs tarballs and images are dead weight once a new key is built.
  find "$RPDEPLOY_TEST_CACHE/rootfs" -name "$SUITE-*.tar.zst" ! -name "$SUITE-$ROOTFS_KEY.tar.zst" -delete
  docker image ls --format '{{.Repository}}:{{.Tag}}' rpdeploy-test/rootfs | grep -vxF "$ROOTFS_IMAGE" \
    | xargs -r docker image rm >/dev/null 2>&1 || true
}

# --- busybox -------------------------------------------------------------------------------------
BUSYBOX_IMAGE=rpdeploy-test/busybox:1

build_busybox() {
  need_cmd busybox
  local bin key dir=$WORK/busybox
  bin=$(readlink -f "$(command -v busybox)")
  # Bump the "recipe" number when the layout below changes.
  key=$(printf 'recipe-1 %s' "$(hash_inputs "$bin")" | sha256sum | cut -c1-16)
  if is_fresh "$BUSYBOX_IMAGE" "$key"; then
    log "reusing $BUSYBOX_IMAGE"
    return
  fi
  mkdir -p "$dir"/{bin,etc,root,tmp}
  chmod 1777 "$dir/tmp"
  cp "$bin" "$dir/bin/busybox"
  local applet
  for applet in $("$bin" --list); do
    [[ $applet == busybox ]] || ln -s busybox "$dir/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$dir/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\n' >"$dir/etc/group"
  tar --numeric-owner --owner=0 --group=0 -C "$dir" -c . \
    | docker import --change "LABEL $LABEL=$key" --change 'ENV PATH=/bin' --change 'CMD ["/bin/sh"]' \
      - "$BUSYBOX_IMAGE" >/dev/null
  log "built $BUSYBOX_IMAGE"
}

# --- images provisioned from the rootfs ------------------------------------------------------------
# provision IMAGE KEY LOGNAME [docker run options...]: runs /build/recipe/provision.sh in a container
# of the rootfs image without network, then commits it as IMAGE (one layer over the rootfs).
provision() {
  local image=$1 key=$2 logname=$3; shift 3
  docker rm -f "$BUILD_CONTAINER" >/dev/null 2>&1 || true
  timed "$image" "$RPDEPLOY_TEST_LOGS/$logname.log" \
    docker run --name "$BUILD_CONTAINER" --network none "$@" "$ROOTFS_IMAGE" sh /build/recipe/provision.sh
  # The committed config replaces the build command; env and labels are the image's contract.
  local previous
  previous=$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)
  docker commit --change "LABEL $LABEL=$key" "${CHANGES[@]}" "$BUILD_CONTAINER" "$image" >/dev/null
  docker rm "$BUILD_CONTAINER" >/dev/null
  # The image the tag pointed at is now untagged; drop it unless something still uses it.
  [[ -z $previous ]] || docker image rm "$previous" >/dev/null 2>&1 || true
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

build_python() {
  local image=rpdeploy-test/python:1 key wheels
  key=$(printf '%s %s' "$ROOTFS_KEY" "$(hash_inputs "$RECIPES/python" "$STANDINS")" | sha256sum | cut -c1-16)
  if is_fresh "$image" "$key"; then
    log "reusing $image"
    return
  fi
  wheels=$RPDEPLOY_TEST_CACHE/wheels/$(hash_inputs "$RECIPES/python/requirements.txt")
  if [[ $REBUILD == 1 || ! -d $wheels ]]; then
    timed "wheels for $(grep -v '^#' "$RECIPES/python/requirements.txt" | paste -sd' ' -)" \
      "$RPDEPLOY_TEST_LOGS/pip-download.log" fetch_wheels "$wheels"
  fi
  local mounts=(-v "$RECIPES/python:/build/recipe:ro" -v "$wheels:/build/wheels:ro")
  [[ -d $STANDINS ]] && mounts+=(-v "$STANDINS:/build/standins:ro")
  CHANGES=(--change 'ENV PIP_BREAK_SYSTEM_PACKAGES=1' --change 'ENV PIP_DISABLE_PIP_VERSION_CHECK=1'
    --change 'WORKDIR /' --change 'CMD ["python3"]')
  provision "$image" "$key" python-image "${mounts[@]}"
}

build_systemd_host() {
  local image=rpdeploy-test/systemd-host:1 key
  key=$(printf '%s %s' "$ROOTFS_KEY" "$(hash_inputs "$RECIPES/systemd-host")" | sha256sum | cut -c1-16)
  if is_fresh "$image" "$key"; then
    log "reusing $image"
    return
  fi
  CHANGES=(--change 'ENV container=docker' --change 'EXPOSE 22' --change 'EXPOSE 8080'
    --change 'WORKDIR /' --change 'CMD ["/sbin/init"]')
  provision "$image" "$key" systemd-host-image -v "$RECIPES/systemd-host:/build/recipe:ro"
}

start=$SECONDS
build_busybox
build_rootfs
build_python
build_systemd_host
docker image ls --format '  {{.Repository}}:{{.Tag}}\t{{.Size}}' | grep '^  rpdeploy-test/' >&2 || true
log "images ready in $((SECONDS - start)) s"
