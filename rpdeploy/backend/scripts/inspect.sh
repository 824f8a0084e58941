#!/bin/sh
# What the host has: the env file (path, owner, mode, content), the unit, backups.
# Args: ENV_FILE SERVICE DROPIN WANT_CONTENT MAX_CONTENT. Prints key=value facts, then
# "@content" and the file's bytes when asked for.
# Sent on stdin and run by rpdeploy.backend.host (see rpdeploy/backend/session.py).
# ls -n is how POSIX sh reads a numeric owner (stat and find -printf are not POSIX).
# shellcheck disable=SC2012
set -u
export LC_ALL=C
f=$1 svc=$2 dropin=$3 want_content=$4 max_content=$5
# A literal "~/" (from deploy.yaml) is expanded here, by hand.
# shellcheck disable=SC2088
case $f in "~/"*) f="$HOME/${f#"~/"}" ;; esac
if [ -L "$f" ]; then
  target=$(readlink -f -- "$f" 2>/dev/null || true)
  echo "symlink=$target"
  if [ -n "$target" ]; then f=$target; fi
fi
dir=$(dirname -- "$f")
base=$(basename -- "$f")
echo "path=$f"
echo "uid=$(id -u)"
echo "user=$(id -un 2>/dev/null || true)"
if [ -d "$dir" ]; then echo "dir=1"; else echo "dir=0"; fi
if [ -d "$dir" ] && [ -w "$dir" ] && [ -x "$dir" ]; then echo "dir_writable=1"; else echo "dir_writable=0"; fi
if [ -e "$f" ]; then
  if [ -f "$f" ]; then echo "file=1"; else echo "file=other"; fi
  echo "owner=$(ls -lnd -- "$f" | awk '{print $3":"$4}')"
  echo "mode=$(ls -ld -- "$f" | awk '{print $1}')"
  if [ -r "$f" ]; then echo "readable=1"; else echo "readable=0"; fi
else
  echo "file=0"
fi
if [ -n "$dropin" ] && [ -f "$dropin" ]; then echo "dropin_cksum=$(cksum < "$dropin")"; fi
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
  echo "systemd=1"
  echo "unit=$(systemctl show -p LoadState --value -- "$svc" 2>/dev/null)"
  echo "active=$(systemctl is-active -- "$svc" 2>/dev/null)"
  systemctl show -p EnvironmentFiles --value -- "$svc" 2>/dev/null | while IFS= read -r line; do
    if [ -n "$line" ]; then echo "envfile=$line"; fi
  done
else
  echo "systemd=0"
fi
if [ -d "$dir" ] && [ -r "$dir" ] && [ -x "$dir" ]; then
  echo "backups_listed=1"
  for b in "$dir/$base".rpdeploy-*; do
    if [ -f "$b" ]; then echo "backup=${b##*/}"; fi
  done
fi
if [ "$want_content" = 1 ] && [ -f "$f" ] && [ -r "$f" ]; then
  size=$(wc -c < "$f" | tr -d ' ')
  if [ "${size:-0}" -gt "$max_content" ]; then
    echo "too_large=$size"
  else
    echo "@content"
    cat -- "$f" || exit 3
  fi
fi
exit 0
