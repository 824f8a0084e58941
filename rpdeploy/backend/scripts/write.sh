#!/bin/sh
# Install a new env file (and drop-in) atomically after a backup, if nothing changed since it was read.
# Args: ENV_FILE STAMP EXPECTED_CKSUM ENV_LEN DROPIN DROPIN_LEN NEWDIR NEWOWNER OLD_BACKUP...
# stdin: the env file's bytes, then the drop-in's. Exit 71-75: see the fail calls.
# Sent on stdin and run by rpdeploy.backend.host (see rpdeploy/backend/session.py).
# ls -n is how POSIX sh reads a numeric owner (stat and find -printf are not POSIX).
# shellcheck disable=SC2012
set -eu
export LC_ALL=C
umask 077
f=$1 stamp=$2 expect=$3 envlen=$4 dropin=$5 droplen=$6 newdir=$7 newowner=$8
shift 8
dir=$(dirname -- "$f")
base=$(basename -- "$f")
fail() { code=$1; shift; echo "rpdeploy: $*" >&2; exit "$code"; }
if [ ! -d "$dir" ]; then
  if [ "$newdir" = create ]; then mkdir -p -- "$dir"; else fail 71 "folder $dir does not exist"; fi
fi
if [ -f "$f" ]; then now=$(cksum < "$f"); else now=absent; fi
if [ "$now" != "$expect" ]; then fail 72 "$f changed after it was read (by someone else?); nothing written"; fi
tmp='' dtmp='' btmp=''
trap 'rm -f -- ${tmp:+"$tmp"} ${dtmp:+"$dtmp"} ${btmp:+"$btmp"}' EXIT
tmp=$(mktemp "$dir/.$base.rpdeploy-new.XXXXXX")
dd bs=1 count="$envlen" of="$tmp" 2>/dev/null
got=$(wc -c < "$tmp" | tr -d ' ')
if [ "$got" != "$envlen" ]; then fail 73 "received $got of $envlen bytes of the new env file; nothing written"; fi
if [ -f "$f" ]; then
  owner=$(ls -lnd -- "$f" | awk '{print $3":"$4}')
elif [ "$newowner" = dir ]; then
  owner=$(ls -lnd -- "$dir" | awk '{print $3":"$4}')
else
  owner=0:0
fi
chmod 600 "$tmp"
if [ "$(id -u)" = 0 ]; then chown "$owner" "$tmp"; fi
if [ -n "$dropin" ]; then
  ddir=$(dirname -- "$dropin")
  if [ ! -d "$ddir" ]; then mkdir -p -- "$ddir"; chmod 755 "$ddir"; fi
  dtmp=$(mktemp "$ddir/.rpdeploy.conf.XXXXXX")
  dd bs=1 count="$droplen" of="$dtmp" 2>/dev/null
  got=$(wc -c < "$dtmp" | tr -d ' ')
  if [ "$got" != "$droplen" ]; then fail 73 "received $got of $droplen bytes of the drop-in; nothing written"; fi
  chmod 644 "$dtmp"
fi
bak="$f.rpdeploy-$stamp"
if [ -e "$bak.bak" ] || [ -e "$bak.absent" ]; then fail 74 "backup $bak exists already"; fi
if [ -f "$f" ]; then
  btmp="$bak.tmp"
  cp -- "$f" "$btmp"
  chmod 600 "$btmp"
  if [ "$(id -u)" = 0 ]; then chown "$owner" "$btmp"; fi
  mv -f -- "$btmp" "$bak.bak"
  btmp=
  echo "@rpdeploy backup $bak.bak"
else
  : > "$bak.absent"
  echo "@rpdeploy backup $bak.absent"
fi
if [ -n "$dropin" ]; then
  if [ -f "$dropin" ]; then
    btmp="$bak.dropin.tmp"
    cp -- "$dropin" "$btmp"
    mv -f -- "$btmp" "$bak.dropin.bak"
    btmp=
  else
    : > "$bak.dropin.absent"
  fi
fi
sync -- "$tmp" 2>/dev/null || sync
mv -f -- "$tmp" "$f"
tmp=
echo "@rpdeploy installed $f"
if [ -n "$dropin" ]; then
  mv -f -- "$dtmp" "$dropin"
  dtmp=
  echo "@rpdeploy installed $dropin"
  systemctl daemon-reload || fail 75 "systemctl daemon-reload failed"
  echo "@rpdeploy reloaded"
fi
for old in "$@"; do rm -f -- "$dir/$old"; done
exit 0
