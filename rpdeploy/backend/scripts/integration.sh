#!/bin/sh
# Send one request to the backend's own API, on its host (backend.integration_test, step 11).
# Args: URL METHOD TIMEOUT HEADERS_LEN BODY_LEN MAX_ANSWER. Stdin: the headers (curl's
# "Name: value" lines, HEADERS_LEN bytes) then the body (BODY_LEN bytes); they may hold
# credentials, so they go to a private temp folder, never to argv.
# Prints "@status CODE", maybe "@error TEXT", then "@body" and the answer's first MAX_ANSWER bytes.
# Exit: 0 sent (whatever the answer), 6 neither curl nor python3 on the host, 90 no temp folder.
# Sent on stdin and run by rpdeploy.backend.host (see rpdeploy/backend/integration.py).
set -u
export LC_ALL=C
url=$1 method=$2 timeout=$3 hlen=$4 blen=$5 max=$6
umask 077
d=$(mktemp -d) || exit 90
trap 'rm -rf -- "$d"' EXIT
dd bs=1 count="$hlen" of="$d/h" 2>/dev/null
dd bs=1 count="$blen" of="$d/b" 2>/dev/null
: > "$d/o"
if command -v curl >/dev/null 2>&1; then
  if [ "$blen" -gt 0 ]; then
    code=$(curl -sS -X "$method" -H @"$d/h" --data-binary @"$d/b" -o "$d/o" -w '%{http_code}' \
      --max-time "$timeout" --noproxy '*' -- "$url" 2>"$d/e")
  else
    code=$(curl -sS -X "$method" -H @"$d/h" -o "$d/o" -w '%{http_code}' \
      --max-time "$timeout" --noproxy '*' -- "$url" 2>"$d/e")
  fi
elif command -v python3 >/dev/null 2>&1; then
  code=$(python3 - "$url" "$method" "$timeout" "$d" 2>"$d/e" <<'PY'
import sys, urllib.error, urllib.request
url, method, timeout, d = sys.argv[1:5]
headers = {}
with open(d + "/h", encoding="utf-8") as lines:
    for line in lines:
        name, _, value = line.rstrip("\r\n").partition(":")
        if name:
            headers[name.strip()] = value.strip()
with open(d + "/b", "rb") as source:
    data = source.read() or None
request = urllib.request.Request(url, data=data, method=method, headers=headers)
try:
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=float(timeout)) as answer:
        code, body = answer.status, answer.read()
except urllib.error.HTTPError as error:
    code, body = error.code, error.read()
except Exception as error:
    sys.stderr.write(f"{type(error).__name__}: {error}\n")
    code, body = 0, b""
with open(d + "/o", "wb") as out:
    out.write(body)
print(code)
PY
)
else
  exit 6
fi
echo "@status ${code:-000}"
if [ -s "$d/e" ]; then echo "@error $(head -c 300 "$d/e" | tr '\n' ' ')"; fi
echo "@body"
head -c "$max" "$d/o"
exit 0
