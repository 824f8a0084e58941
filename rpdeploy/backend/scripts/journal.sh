#!/bin/sh
# The service's last journal lines, when the host has journald.
# Args: SERVICE LINES.
# Sent on stdin and run by rpdeploy.backend.host (see rpdeploy/backend/session.py).
export LC_ALL=C
if [ -d /run/systemd/system ] && command -v journalctl >/dev/null 2>&1; then
  journalctl -u "$1" -n "$2" --no-pager -o short-iso 2>/dev/null || true
fi
exit 0
