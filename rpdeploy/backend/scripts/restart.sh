#!/bin/sh
# Run the restart command (read from stdin; none for a plain check), then poll until the
# service is active and the health URL answers 2xx, or until the deadline.
# Args: SERVICE HEALTH_URL TIMEOUT CMD_LEN.
# Exit: 0 healthy, 3 the unit failed, 4 deadline passed, 5 restart command failed,
# 6 nothing to poll the health URL with, 7 no such unit.
# Sent on stdin and run by rpdeploy.backend.host (see rpdeploy/backend/session.py).
set -u
export LC_ALL=C
svc=$1 url=$2 timeout=$3 cmdlen=$4
start=$(date +%s)
systemd=0
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then systemd=1; fi
echo "@rpdeploy systemd $systemd"
if [ "$cmdlen" -gt 0 ]; then
  cmd=$(dd bs=1 count="$cmdlen" 2>/dev/null)
  sh -c "$cmd" </dev/null >&2
  rc=$?
  echo "@rpdeploy restart $rc"
else
  rc=0
fi
probe() {
  if command -v curl >/dev/null 2>&1; then
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 --noproxy '*' "$url" 2>/dev/null)
    echo "${code:-000}"
  elif command -v python3 >/dev/null 2>&1; then
    python3 -c 'import sys, urllib.request as r, urllib.error as e
try:
    print(r.build_opener(r.ProxyHandler({})).open(sys.argv[1], timeout=5).status)
except e.HTTPError as x:
    print(x.code)
except Exception:
    print("000")' "$url" 2>/dev/null || echo 000
  elif command -v wget >/dev/null 2>&1; then
    if wget -q -O /dev/null -T 5 "$url" 2>/dev/null; then echo 200; else echo 000; fi
  else
    echo none
  fi
}
# Without D-Bus, systemctl answers only root; use sudo for the read-only queries if we may.
sc=systemctl
if [ "$systemd" = 1 ]; then
  load=$(systemctl show -p LoadState --value -- "$svc" 2>/dev/null)
  if [ -z "$load" ] && [ "$(id -u)" != 0 ] && sudo -n true 2>/dev/null; then
    sc="sudo -n systemctl"
    load=$($sc show -p LoadState --value -- "$svc" 2>/dev/null)
  fi
  if [ -z "$load" ]; then
    echo "@rpdeploy note systemctl does not answer this user: relying on the health URL only"
    systemd=0
    echo "@rpdeploy systemd 0"
  elif [ "$load" = not-found ]; then
    echo "@rpdeploy status not-found -"
    exit 7
  fi
fi
last='' good=0 failed=0
while :; do
  state=-
  if [ "$systemd" = 1 ]; then state=$($sc is-active -- "$svc" 2>/dev/null); state=${state:-unknown}; fi
  code=-
  if [ -n "$url" ] && { [ "$state" = active ] || [ "$state" = - ]; }; then code=$(probe); fi
  if [ "$state $code" != "$last" ]; then echo "@rpdeploy status $state $code"; last="$state $code"; fi
  if [ "$rc" != 0 ]; then exit 5; fi
  if [ "$code" = none ]; then exit 6; fi
  ok=1
  if [ "$state" != active ] && [ "$state" != - ]; then ok=0; fi
  case $code in 2??|-) ;; *) ok=0 ;; esac
  if [ "$ok" = 1 ]; then
    good=$((good + 1))
    # Without a health URL, "active" must hold for a second: a unit that dies at start
    # is briefly active first.
    # (A single look, timeout 0, takes "active" as it is.)
    if [ -n "$url" ] || [ "$systemd" = 0 ] || [ "$good" -ge 2 ] || [ "$timeout" = 0 ]; then exit 0; fi
  else
    good=0
  fi
  if [ "$state" = failed ]; then failed=$((failed + 1)); else failed=0; fi
  if [ "$failed" -ge 2 ]; then exit 3; fi
  if [ $(( $(date +%s) - start )) -ge "$timeout" ]; then exit 4; fi
  sleep 1
done
