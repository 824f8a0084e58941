#!/usr/bin/env bash
# The project's one test command, for people and for CI (.ci/run runs it): on a Debian machine,
# as root, it installs what is missing and starts what is not running, then runs the tests.
#
#   apt        the Debian packages below that are not installed (apt-get update + install)
#   pip        this checkout with its test extras (pip install -e '.[test]'), unless already installed;
#              into a virtualenv in .venv/ when python3 is the system's (Debian's is externally managed,
#              PEP 668, and refuses pip installs), which later runs then use
#   contracts  the upstream contracts regenerated and compared (CI's full run, or RPDEPLOY_TEST_CONTRACTS=1)
#   services   the docker engine and the registry (scripts/services.sh; idempotent)
#   images     the local test base images (scripts/images.sh; a second when they exist)
#   tests      pytest; extra arguments go to it: scripts/test.sh tests/test_config.py -x
#
# Each phase's time is printed at the end. A phase with nothing to do takes about a second, so a
# focused run stays quick. Not root: the phases that need root are skipped when their work is
# done already, else the command stops and names what to run as root.
#
# Environment: PYTHON (default: .venv/bin/python when this script made it, else python3; a PYTHON you
# give is used as it is); RPDEPLOY_TEST_SETUP=0 runs pytest only;
# RPDEPLOY_TEST_CONTRACTS=1|0 adds or drops the contracts phase (default: on when CI is set and no
# pytest arguments are given, as in .ci/run).
# Usage: scripts/test.sh [--setup-only] [PYTEST ARGS...]
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
PYTHON_GIVEN=${PYTHON:+1}
VENV=$PWD/.venv
PYTHON=${PYTHON:-python3}
if [[ -z $PYTHON_GIVEN && -x $VENV/bin/python ]]; then
  PYTHON=$VENV/bin/python # made by an earlier run (install_python)
fi
CI_SET=$([[ -n ${CI:-} && ${CI,,} != 0 && ${CI,,} != false && ${CI,,} != no ]] && echo 1 || echo 0)
SETUP=${RPDEPLOY_TEST_SETUP:-1}
SETUP_ONLY=0
if [[ ${1:-} == --setup-only ]]; then
  SETUP_ONLY=1
  shift
fi
# The contracts take a while (a 300 MB wheel, a git clone): on for CI's full run, off for a focused one.
CONTRACTS=${RPDEPLOY_TEST_CONTRACTS:-$([[ $CI_SET == 1 && $# == 0 ]] && echo 1 || echo 0)}

# docker.io: engine (and containerd, runc); docker-registry: Distribution 2.8; apache2-utils: htpasswd;
# openssh-*: ssh client for the tests (the server runs inside the systemd host image);
# debootstrap, busybox-static, zstd: the test base images (scripts/images.sh); curl: health checks;
# git: the contracts phase clones runpod-workers/worker-vllm where GitHub is reachable;
# python3, python3-venv: the tests' Python, and a virtualenv where Debian's refuses pip (PEP 668);
# tmux: the recorded first-deploy walk-through (scripts/walkthrough.py, tests/test_walkthrough.py);
# and the linter of every shell script, those shipped for the backend host too (tests/test_shell_scripts.py).
PACKAGES=(docker.io docker-registry apache2-utils openssh-server openssh-client debootstrap busybox-static zstd curl git
  python3 python3-venv tmux shellcheck)

TIMINGS=()
phase() {
  local name=$1 start=$SECONDS status=0
  shift
  printf '\n=== %s: %s\n' "$name" "$*"
  "$@" || status=$?
  TIMINGS+=("$(printf '%-9s %5d s  %s' "$name" $((SECONDS - start)) "$([[ $status == 0 ]] && echo ok || echo "FAILED ($status)")")")
  if [[ $status != 0 ]]; then
    printf '\n=== %s failed with exit code %s\n' "$name" "$status" >&2
    exit "$status"
  fi
}
summary() {
  ((${#TIMINGS[@]})) || return 0
  printf '\n=== phase timings (total %d s)\n' "$SECONDS"
  printf '  %s\n' "${TIMINGS[@]}"
}
trap summary EXIT

is_root() { [[ $EUID == 0 ]]; }

missing_packages() {
  local p
  for p in "${PACKAGES[@]}"; do
    [[ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" == installed ]] || printf '%s\n' "$p"
  done
}

install_packages() {
  local missing
  mapfile -t missing < <(missing_packages)
  if ((${#missing[@]} == 0)); then
    echo "all ${#PACKAGES[@]} packages are installed"
    return
  fi
  if ! is_root; then
    echo "missing Debian packages: ${missing[*]}; as root: apt-get install -y ${missing[*]}" >&2
    return 1
  fi
  apt-get update -q && apt-get install -y -q "${missing[@]}"
}

# This checkout installed (editable) with the test extras importable, seen from outside it.
python_ready() {
  (cd / && "$PYTHON" - "$OLDPWD" <<'EOF') 2>/dev/null
import importlib, pathlib, sys
import rpdeploy
if pathlib.Path(rpdeploy.__file__).resolve().parent.parent != pathlib.Path(sys.argv[1]).resolve():
    sys.exit(1)
for name in ("pytest", "runpod", "docker", "httpx", "typer", "pydantic", "jinja2", "yaml"):
    importlib.import_module(name)
EOF
}

# pip may install into $PYTHON: it has pip, and is a virtualenv or not externally managed (PEP 668).
pip_allowed() {
  "$PYTHON" - <<'EOF' 2>/dev/null
import importlib.util, os, sys, sysconfig
managed = os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED"))
in_venv = sys.prefix != sys.base_prefix
sys.exit(0 if importlib.util.find_spec("pip") and (in_venv or not managed) else 1)
EOF
}

install_python() {
  if python_ready; then
    echo "rpdeploy (this checkout) and its test extras are installed for $PYTHON"
    return
  fi
  if [[ -z $PYTHON_GIVEN ]] && ! pip_allowed; then
    echo "$PYTHON is the system's Python, which pip must not change (PEP 668): a virtualenv in $VENV"
    "$PYTHON" -m venv "$VENV"
    PYTHON=$VENV/bin/python # for the phases after this one, and found by the next run
  fi
  "$PYTHON" -m pip install -q -e '.[test]'
  echo "rpdeploy (this checkout) and its test extras are installed for $PYTHON"
}

# The upstream contracts, regenerated from upstream itself: the pinned vLLM wheel from PyPI
# (~300 MB, cached outside the repository in ~/.cache/rpdeploy-contracts) and worker-vllm's
# source at the pinned tag. A difference from tests/contracts/*.json fails the run.
check_contracts() {
  "$PYTHON" scripts/contracts/vllm_surface.py --check || return
  # GitHub may be out of reach (exit 3): then the committed worker-vllm contract stands, said so.
  local status=0
  "$PYTHON" scripts/contracts/worker_vllm_env.py --check || status=$?
  [[ $status == 0 || $status == 3 ]] || return "$status"
}

start_services() {
  if is_root; then
    scripts/services.sh
  elif scripts/services.sh status; then
    echo "running (started by root earlier)"
  else
    echo "the docker engine or the registry is not running; as root: scripts/services.sh" >&2
    return 1
  fi
}

if [[ $SETUP != 0 ]]; then
  phase apt install_packages
  phase pip install_python
  [[ $CONTRACTS == 0 ]] || phase contracts check_contracts
  phase services start_services
  phase images scripts/images.sh
fi
[[ $SETUP_ONLY == 1 ]] && exit 0
# -p loads the real-service fixtures even where tests/conftest.py does not (loading twice is a no-op).
phase tests "$PYTHON" -m pytest -p tests.support.services -q "$@"
