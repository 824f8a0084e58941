# shellcheck shell=bash
# Shared by scripts/services.sh and scripts/images.sh (sourced, not run).
# Paths are overridable so a person can keep test state elsewhere; CI uses the defaults.

RPDEPLOY_TEST_STATE=${RPDEPLOY_TEST_STATE:-/var/lib/rpdeploy-test}
RPDEPLOY_TEST_CACHE=${RPDEPLOY_TEST_CACHE:-/var/cache/rpdeploy-test}
RPDEPLOY_TEST_LOGS=${RPDEPLOY_TEST_LOGS:-/var/log/rpdeploy-test}
RPDEPLOY_TEST_REGISTRY_ADDR=${RPDEPLOY_TEST_REGISTRY_ADDR:-127.0.0.1:5000}

# shellcheck disable=SC2034 # used by the scripts that source this file
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

log() { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2; }
die() { printf '[%s] ERROR: %s\n' "$(basename "$0")" "$*" >&2; exit 1; }

need_cmd() {
  local c
  for c in "$@"; do
    command -v "$c" >/dev/null 2>&1 || die "'$c' not found; install the test packages first (scripts/test.sh installs them)"
  done
}

# Poll "$@" once a second until it succeeds or $1 seconds pass.
wait_for() {
  local timeout=$1; shift
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 1
  done
}

# Content hash of files and directory trees: names and bytes, in a stable order, no caches.
hash_inputs() {
  local p
  for p in "$@"; do
    if [[ -d $p ]]; then
      (cd "$p" && find . -type f ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 \
        | LC_ALL=C sort -z | xargs -0 -r sha256sum)
    elif [[ -e $p ]]; then
      printf '%s  %s\n' "$(sha256sum <"$p" | cut -d' ' -f1)" "$(basename "$p")"
    else
      printf 'absent %s\n' "$(basename "$p")"
    fi
  done | sha256sum | cut -c1-16
}

# Serialise runs of the calling script (two test sessions may start at once); waits for the other.
# The lock is fd 9: daemons started while holding it must get `9>&-`, or they hold it forever.
take_lock() {
  local file=$1
  mkdir -p "$(dirname "$file")"
  exec 9>"$file"
  if ! flock -n 9; then
    log "another $(basename "$0") is running; waiting for it"
    flock 9
  fi
}
