#!/bin/sh
# Put back the env file (and drop-in) kept under a backup stamp, or remove what was absent.
# Args: ENV_FILE STAMP DROPIN. Exit 76: no such backup; 75: daemon-reload failed.
# Sent on stdin and run by rpdeploy.backend.host (see rpdeploy/backend/session.py).
# ls -n is how POSIX sh reads a numeric owner (stat and find -printf are not POSIX).
# shellcheck disable=SC2012
set -eu
export LC_ALL=C
umask 077
f=$1 stamp=$2 dropin=$3
bak="$f.rpdeploy-$stamp"
fail() { code=$1; shift; echo "rpdeploy: $*" >&2; exit "$code"; }
tmp=
trap 'rm -f -- ${tmp:+"$tmp"}' EXIT
reload=0
if [ -n "$dropin" ]; then
  if [ -f "$bak.dropin.bak" ]; then
    tmp=$(mktemp "$(dirname -- "$dropin")/.rpdeploy.conf.XXXXXX")
    cat -- "$bak.dropin.bak" > "$tmp"
    chmod 644 "$tmp"
    mv -f -- "$tmp" "$dropin"
    tmp=
    rm -f -- "$bak.dropin.bak"
    echo "@rpdeploy restored $dropin"
    reload=1
  elif [ -f "$bak.dropin.absent" ]; then
    rm -f -- "$dropin" "$bak.dropin.absent"
    rmdir -- "$(dirname -- "$dropin")" 2>/dev/null || true
    echo "@rpdeploy removed $dropin"
    reload=1
  fi
fi
if [ -f "$bak.bak" ]; then
  owner=$(ls -lnd -- "$bak.bak" | awk '{print $3":"$4}')
  tmp=$(mktemp "$(dirname -- "$f")/.$(basename -- "$f").rpdeploy-restore.XXXXXX")
  cat -- "$bak.bak" > "$tmp"
  chmod 600 "$tmp"
  if [ "$(id -u)" = 0 ]; then chown "$owner" "$tmp"; fi
  sync -- "$tmp" 2>/dev/null || sync
  mv -f -- "$tmp" "$f"
  tmp=
  rm -f -- "$bak.bak"
  echo "@rpdeploy restored $f"
elif [ -f "$bak.absent" ]; then
  rm -f -- "$f" "$bak.absent"
  echo "@rpdeploy removed $f"
else
  fail 76 "no backup $bak.bak on this host"
fi
if [ "$reload" = 1 ]; then
  systemctl daemon-reload || fail 75 "systemctl daemon-reload failed"
  echo "@rpdeploy reloaded"
fi
exit 0
