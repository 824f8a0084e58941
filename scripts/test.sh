#!/usr/bin/env bash
# The project's test command, for CI (.ci/run) and for people: run scripts/services.sh first
# (as root) so the docker engine and the registry are up; the test images are built on demand.
# Extra arguments go to pytest, e.g. scripts/test.sh tests/infra -k registry
set -euo pipefail
cd "$(dirname "$0")/.."
# -p loads the real-service fixtures even where tests/conftest.py does not (loading twice is a no-op).
exec "${PYTHON:-python3}" -m pytest -p tests.support.services -q "$@"
