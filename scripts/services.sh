#!/usr/bin/env bash
# Starts the real services the tests use, idempotently (running ones are checked and kept):
#
#   docker engine   dockerd in the background (log: /var/log/rpdeploy-test/dockerd.log), if `docker info` fails
#   registry        Debian's docker-registry (Distribution 2.8) on 127.0.0.1:5000, plain HTTP (docker treats
#                   127.0.0.0/8 as insecure by default), htpasswd (bcrypt) auth, storage in
#                   /var/lib/rpdeploy-test/registry; a login + push is checked on every start
#
# Test credentials are made once and kept in /var/lib/rpdeploy-test/registry.env (mode 0600):
#   REGISTRY_HOST=127.0.0.1:5000
#   REGISTRY_USERNAME=rpdeploy-test
#   REGISTRY_PASSWORD=<random>
# The systemd/sshd host is a container the test fixtures start per test (tests/support/services.py),
# from the image scripts/images.sh builds; nothing to start for it here.
#
# Usage: scripts/services.sh [start|status|stop]
#   start   (default) start what is not running; exit non-zero if anything cannot be made to work
#   status  tell what runs; exit non-zero if something is missing
#   stop    stop the registry, remove test containers whose test run is gone, and stop dockerd if
#           this script started it
# Needs root and the Debian packages docker.io docker-registry apache2-utils curl (see .ci/run).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

REGISTRY_DIR=$RPDEPLOY_TEST_STATE/registry
REGISTRY_ENV=$RPDEPLOY_TEST_STATE/registry.env
REGISTRY_HTPASSWD=$RPDEPLOY_TEST_STATE/registry.htpasswd
REGISTRY_CONFIG=$RPDEPLOY_TEST_STATE/registry.yml
REGISTRY_PID=$RPDEPLOY_TEST_STATE/registry.pid
DOCKERD_PID=$RPDEPLOY_TEST_STATE/dockerd.pid
# Containers the fixtures start carry this label and their test process's pid in $FIXTURE_LABEL.pid,
# so `stop` can clear what a killed run left without touching a running session's.
FIXTURE_LABEL=org.rpdeploy.test.fixture
read -r -a DOCKERD_ARGS <<<"${RPDEPLOY_TEST_DOCKERD_ARGS:---storage-driver=overlay2}"
DOCKERD_OWN_PIDFILE=${RPDEPLOY_TEST_DOCKERD_PIDFILE:-/var/run/docker.pid} # the one dockerd itself writes

# pid_is PIDFILE NAME: the pid in PIDFILE is alive and runs program NAME (guards against reused pids).
pid_is() {
  local pid
  pid=$(cat "$1" 2>/dev/null) || return 1
  [[ -n $pid ]] && [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == "$2"* ]]
}

# --- docker engine -------------------------------------------------------------------------------
docker_up() { docker info >/dev/null 2>&1; }

start_docker() {
  if docker_up; then
    log "docker engine: running"
    return
  fi
  need_cmd docker dockerd
  if pid_is "$DOCKERD_OWN_PIDFILE" dockerd; then
    log "docker engine: dockerd (pid $(cat "$DOCKERD_OWN_PIDFILE")) is starting; waiting for it"
  else
    # A dockerd that was killed leaves its pid file, and a new one refuses to start beside it.
    rm -f "$DOCKERD_OWN_PIDFILE"
    log "docker engine: starting dockerd ${DOCKERD_ARGS[*]} (log: $RPDEPLOY_TEST_LOGS/dockerd.log)"
    setsid dockerd "${DOCKERD_ARGS[@]}" </dev/null >>"$RPDEPLOY_TEST_LOGS/dockerd.log" 2>&1 9>&- &
    echo $! >"$DOCKERD_PID"
  fi
  if ! wait_for 60 docker_up; then
    tail -n 30 "$RPDEPLOY_TEST_LOGS/dockerd.log" >&2 || true
    die "the docker engine did not answer within 60 s; see $RPDEPLOY_TEST_LOGS/dockerd.log"
  fi
  log "docker engine: running ($(docker version -f '{{.Server.Version}}'))"
}

# --- registry ------------------------------------------------------------------------------------
ensure_credentials() {
  # Parsed, not sourced: the file is data. Made once; REGISTRY_HOST follows RPDEPLOY_TEST_REGISTRY_ADDR.
  REGISTRY_USERNAME=$(sed -n 's/^REGISTRY_USERNAME=//p' "$REGISTRY_ENV" 2>/dev/null || true)
  REGISTRY_PASSWORD=$(sed -n 's/^REGISTRY_PASSWORD=//p' "$REGISTRY_ENV" 2>/dev/null || true)
  if [[ -z $REGISTRY_USERNAME || -z $REGISTRY_PASSWORD ]]; then
    REGISTRY_USERNAME=rpdeploy-test
    REGISTRY_PASSWORD=$(head -c 32 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 32)
    log "registry: new test credentials in $REGISTRY_ENV"
  fi
  (umask 077 && printf 'REGISTRY_HOST=%s\nREGISTRY_USERNAME=%s\nREGISTRY_PASSWORD=%s\n' \
    "$RPDEPLOY_TEST_REGISTRY_ADDR" "$REGISTRY_USERNAME" "$REGISTRY_PASSWORD" >"$REGISTRY_ENV.tmp")
  if cmp -s "$REGISTRY_ENV.tmp" "$REGISTRY_ENV"; then rm "$REGISTRY_ENV.tmp"; else mv "$REGISTRY_ENV.tmp" "$REGISTRY_ENV"; fi
  if ! htpasswd -vi "$REGISTRY_HTPASSWD" "$REGISTRY_USERNAME" <<<"$REGISTRY_PASSWORD" >/dev/null 2>&1; then
    (umask 077 && htpasswd -ciB "$REGISTRY_HTPASSWD" "$REGISTRY_USERNAME" <<<"$REGISTRY_PASSWORD" 2>/dev/null)
    RESTART_NEEDED=1
  fi
}

write_registry_config() {
  local secret
  secret=$(sed -n 's/^  secret: //p' "$REGISTRY_CONFIG" 2>/dev/null || true)
  [[ -n $secret ]] || secret=$(head -c 32 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
  (umask 077 && cat >"$REGISTRY_CONFIG.tmp" <<EOF
# Written by scripts/services.sh; edits are overwritten.
version: 0.1
log:
  level: info
  fields:
    service: rpdeploy-test-registry
storage:
  filesystem:
    rootdirectory: $REGISTRY_DIR
  delete:
    enabled: true
http:
  addr: $RPDEPLOY_TEST_REGISTRY_ADDR
  secret: $secret
  headers:
    X-Content-Type-Options: [nosniff]
auth:
  htpasswd:
    realm: rpdeploy-test
    path: $REGISTRY_HTPASSWD
EOF
  )
  if cmp -s "$REGISTRY_CONFIG.tmp" "$REGISTRY_CONFIG"; then
    rm "$REGISTRY_CONFIG.tmp"
  else
    mv "$REGISTRY_CONFIG.tmp" "$REGISTRY_CONFIG"
    RESTART_NEEDED=1
  fi
}

# HTTP status of GET /v2/ with optional curl args (000: nothing answers).
registry_status() {
  curl -s -o /dev/null -m 5 -w '%{http_code}' "$@" "http://$RPDEPLOY_TEST_REGISTRY_ADDR/v2/" || true
}
# The credentials go to curl as a config on stdin (-K -), never in its argv: any process could read
# them from /proc/PID/cmdline while the check runs (the secret audit samples argv and caught it).
registry_authed() {
  [[ "$(printf 'user = "%s:%s"\n' "$REGISTRY_USERNAME" "$REGISTRY_PASSWORD" | registry_status -K -)" == 200 ]]
}

stop_registry() {
  if pid_is "$REGISTRY_PID" docker-registry; then
    local pid
    pid=$(cat "$REGISTRY_PID")
    kill "$pid"
    wait_for 10 bash -c "! kill -0 $pid" || kill -9 "$pid" 2>/dev/null || true
    log "registry: stopped (pid $pid)"
  fi
  rm -f "$REGISTRY_PID"
}

start_registry() {
  need_cmd docker-registry htpasswd curl
  mkdir -p "$REGISTRY_DIR"
  RESTART_NEEDED=0
  ensure_credentials
  write_registry_config
  local status
  status=$(registry_status)
  if [[ $status == 401 ]] && { [[ $RESTART_NEEDED == 1 ]] || ! registry_authed; }; then
    pid_is "$REGISTRY_PID" docker-registry \
      || die "a registry on $RPDEPLOY_TEST_REGISTRY_ADDR refuses the credentials in $REGISTRY_ENV and was not started by this script; stop it"
    log "registry: restarting with the current credentials"
    stop_registry
    status=$(registry_status)
  fi
  case $status in
    401) log "registry: running on $RPDEPLOY_TEST_REGISTRY_ADDR" ;;
    000)
      log "registry: starting on $RPDEPLOY_TEST_REGISTRY_ADDR (log: $RPDEPLOY_TEST_LOGS/registry.log)"
      setsid docker-registry serve "$REGISTRY_CONFIG" </dev/null >>"$RPDEPLOY_TEST_LOGS/registry.log" 2>&1 9>&- &
      echo $! >"$REGISTRY_PID"
      if ! wait_for 30 registry_authed; then
        tail -n 20 "$RPDEPLOY_TEST_LOGS/registry.log" >&2 || true
        die "the registry did not answer on $RPDEPLOY_TEST_REGISTRY_ADDR within 30 s"
      fi
      ;;
    *) die "something else answers on $RPDEPLOY_TEST_REGISTRY_ADDR (GET /v2/ -> HTTP $status, expected 401); free the port or set RPDEPLOY_TEST_REGISTRY_ADDR" ;;
  esac
}

# A real docker login + push with the test credentials, in a throw-away client config so the
# credentials are not left in ~/.docker/config.json (tests must pass them explicitly).
check_registry_push() {
  local config out status=0 image=$RPDEPLOY_TEST_REGISTRY_ADDR/rpdeploy-services-check:latest
  config=$(mktemp -d)
  out=$(docker --config "$config" login -u "$REGISTRY_USERNAME" --password-stdin "$RPDEPLOY_TEST_REGISTRY_ADDR" \
    <<<"$REGISTRY_PASSWORD" 2>&1) || status=1
  if [[ $status == 0 ]]; then
    tar -cf - -T /dev/null | docker import - "$image" >/dev/null
    out=$(docker --config "$config" push "$image" 2>&1) || status=2
    docker image rm "$image" >/dev/null
  fi
  rm -rf "$config"
  case $status in
    1) die "docker login to $RPDEPLOY_TEST_REGISTRY_ADDR failed: $out" ;;
    2) die "docker push to $RPDEPLOY_TEST_REGISTRY_ADDR failed: $out" ;;
  esac
  log "registry: login and push work"
}

# --- commands ------------------------------------------------------------------------------------
cmd_start() {
  [[ $EUID == 0 ]] || die "run as root (it starts dockerd and writes under /var)"
  mkdir -p "$RPDEPLOY_TEST_STATE" "$RPDEPLOY_TEST_LOGS"
  chmod 0700 "$RPDEPLOY_TEST_STATE"
  take_lock "$RPDEPLOY_TEST_STATE/services.lock"
  start_docker
  start_registry
  check_registry_push
  log "ready; registry credentials: $REGISTRY_ENV"
}

cmd_status() {
  local ok=0
  if docker_up; then log "docker engine: running"; else log "docker engine: NOT running"; ok=1; fi
  case $(registry_status) in
    401) log "registry: running on $RPDEPLOY_TEST_REGISTRY_ADDR" ;;
    *) log "registry: NOT running on $RPDEPLOY_TEST_REGISTRY_ADDR"; ok=1 ;;
  esac
  if [[ -s $REGISTRY_ENV ]]; then
    log "registry credentials: $REGISTRY_ENV"
  else
    log "registry credentials: none yet"
    ok=1
  fi
  return $ok
}

cmd_stop() {
  if docker_up; then
    local id pid
    docker ps -a --filter "label=$FIXTURE_LABEL" --format "{{.ID}} {{.Label \"$FIXTURE_LABEL.pid\"}}" \
      | while read -r id pid; do
        if [[ -z $pid ]] || ! kill -0 "$pid" 2>/dev/null; then docker rm -f "$id" >/dev/null; fi
      done
  fi
  stop_registry
  if pid_is "$DOCKERD_PID" dockerd; then
    pid=$(cat "$DOCKERD_PID")
    kill "$pid"
    wait_for 30 bash -c "! kill -0 $pid" || die "dockerd (pid $pid) did not stop within 30 s"
    log "docker engine: stopped (pid $pid)"
  else
    docker_up && log "docker engine: left running (not started by this script)"
  fi
  rm -f "$DOCKERD_PID"
}

case ${1:-start} in
  start) cmd_start ;;
  status) cmd_status ;;
  stop) cmd_stop ;;
  -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' ;;
  *) die "unknown command: $1 (start, status or stop)" ;;
esac
