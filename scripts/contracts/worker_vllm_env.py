"""The env vars RunPod's worker-vllm reads, at the pinned tag: tests/contracts/worker-vllm-<tag>.json.

    python scripts/contracts/worker_vllm_env.py                    # (re)write the contract
    python scripts/contracts/worker_vllm_env.py --check            # fail on any difference
    python scripts/contracts/worker_vllm_env.py --git DIR          # read this git directory
                                                                   # (or set RPDEPLOY_WORKER_VLLM_GIT)

Method 1 configures worker-vllm only through env vars (rpdeploy/runpod/deployment.py,
``model_env``). A name the worker does not read is silently ignored, so each name rpdeploy sets
must be in this contract. The tag is the one of ``WORKER_VLLM_IMAGE`` in rpdeploy/versions.py;
the source is ``github.com/runpod-workers/worker-vllm`` at that tag (a bare clone cached in
``$RPDEPLOY_CONTRACTS_CACHE``, default ``~/.cache/rpdeploy-contracts``), read with ``ast``:

- ``src/args_builder.py``: every flag of ``VALUE_FLAGS``, ``PAIRED_BOOL_FLAGS`` and ``BOOL_FLAGS``
  becomes the env var ``flag_to_env_name(flag)`` (``--max-model-len`` -> ``MAX_MODEL_LEN``) unless
  it is in ``RESERVED_ENV_VARS``; ``ENV_ALIASES`` adds the historical names (``MODEL_NAME``...);
  ``REMOVED_FLAGS`` are read only to warn; ``TRUE_VALUES``/``FALSE_VALUES`` are the booleans.
- every ``os.getenv("X")`` / ``os.environ.get("X")`` / ``os.environ["X"]`` read in ``src/*.py``
  (``MAX_CONCURRENCY``, ``HF_TOKEN``...), recorded as read by the wrapper itself.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = ROOT / "tests" / "contracts"
VERSIONS = ROOT / "rpdeploy" / "versions.py"
UPSTREAM = "https://github.com/runpod-workers/worker-vllm"
FORMAT = 1
EXIT_UNREACHABLE = 3


def pinned_tag(versions_file: Path = VERSIONS) -> str:
    tree = ast.parse(versions_file.read_text(encoding="utf-8"))
    for stmt in tree.body:
        if (
            isinstance(stmt, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "WORKER_VLLM_IMAGE" for t in stmt.targets)
            and isinstance(stmt.value, ast.Constant)
            and isinstance(stmt.value.value, str)
        ):
            return stmt.value.value.rpartition(":")[2]
    raise SystemExit(f"{versions_file}: no WORKER_VLLM_IMAGE string")


def cache_dir() -> Path:
    configured = os.environ.get("RPDEPLOY_CONTRACTS_CACHE")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "rpdeploy-contracts"


def git_dir(tag: str, given: Path | None = None) -> Path:
    """A git directory that has ``tag``: the one given (or ``$RPDEPLOY_WORKER_VLLM_GIT``), else a cached bare clone."""
    given = given or (
        Path(os.environ["RPDEPLOY_WORKER_VLLM_GIT"]) if os.environ.get("RPDEPLOY_WORKER_VLLM_GIT") else None
    )
    if given is not None:
        return given
    clone = cache_dir() / "worker-vllm.git"
    try:
        if not clone.is_dir():
            clone.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(["git", "clone", "--bare", "--quiet", UPSTREAM, str(clone)], check=True)
        if _git(clone, "tag", "--list", tag).strip() != tag:
            subprocess.run(["git", "-C", str(clone), "fetch", "--quiet", "--tags", "origin"], check=True)
    except subprocess.CalledProcessError as exc:
        raise SourceUnreachable(f"cannot fetch {UPSTREAM} at {tag} (git exited {exc.returncode})") from None
    return clone


class SourceUnreachable(Exception):
    """worker-vllm's repository cannot be reached (no clone given, GitHub out of reach)."""


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def _literal(node: ast.expr) -> Any:
    # frozenset({...}) and set literals become sorted lists; dicts and strings stay as they are.
    if isinstance(node, ast.Call) and getattr(node.func, "id", "") in ("frozenset", "set") and node.args:
        return sorted(ast.literal_eval(node.args[0]))
    value = ast.literal_eval(node)
    return sorted(value) if isinstance(value, (set, frozenset)) else value


def _constants(source: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for stmt in ast.parse(source).body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            try:
                out[stmt.targets[0].id] = _literal(stmt.value)
            except (ValueError, TypeError, SyntaxError):
                continue
    return out


def _env_reads(source: str) -> set[str]:
    """Names read with os.getenv / os.environ.get / os.environ[...] (writes are not reads)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = ast.unparse(node.func)
            if func in ("os.getenv", "os.environ.get", "getenv", "environ.get"):
                names.add(str(node.args[0].value))
        if (
            isinstance(node, ast.Subscript)
            and isinstance(node.ctx, ast.Load)
            and ast.unparse(node.value) in ("os.environ", "environ")
            and isinstance(node.slice, ast.Constant)
        ):
            names.add(str(node.slice.value))
    return names


def flag_to_env_name(flag: str) -> str:
    """The rule of worker-vllm's args_builder.flag_to_env_name."""
    return flag.lstrip("-").replace("-", "_").upper()


def contract_document(repo: Path, tag: str) -> dict[str, Any]:
    commit = _git(repo, "rev-parse", f"{tag}^{{commit}}").strip()
    builder = _git(repo, "show", f"{tag}:src/args_builder.py")
    consts = _constants(builder)
    required = ("ENV_ALIASES", "RESERVED_ENV_VARS", "VALUE_FLAGS", "PAIRED_BOOL_FLAGS", "BOOL_FLAGS", "REMOVED_FLAGS")
    missing = [name for name in required if name not in consts]
    if missing:
        raise SystemExit(f"worker-vllm {tag} src/args_builder.py no longer defines {missing}: read it again")
    # The generic rule must still be the one this script applies.
    rule = next(
        (n for n in ast.parse(builder).body if isinstance(n, ast.FunctionDef) and n.name == "flag_to_env_name"), None
    )
    if rule is None or 'lstrip("-").replace("-", "_").upper()' not in ast.unparse(rule).replace("'", '"'):
        raise SystemExit(f"worker-vllm {tag}: flag_to_env_name changed; update this script")

    env: dict[str, dict[str, Any]] = {}
    reserved = set(consts["RESERVED_ENV_VARS"])
    for kind, flags in (("value", "VALUE_FLAGS"), ("paired_bool", "PAIRED_BOOL_FLAGS"), ("bool", "BOOL_FLAGS")):
        for flag in consts[flags]:
            name = flag_to_env_name(flag)
            if name not in reserved:
                env[name] = {"read_by": "args_builder", "flag": flag, "kind": kind}
    kinds = {entry["flag"]: entry["kind"] for entry in env.values()}
    for name, flag in consts["ENV_ALIASES"].items():
        env[name] = {"read_by": "args_builder alias", "flag": flag, "kind": kinds.get(flag, "value")}
    wrapper: dict[str, list[str]] = {}
    for path in sorted(_git(repo, "ls-tree", "--name-only", f"{tag}:src").split()):
        if path.endswith(".py"):
            for name in _env_reads(_git(repo, "show", f"{tag}:src/{path}")):
                wrapper.setdefault(name, []).append(f"src/{path}")
    for name, files in sorted(wrapper.items()):
        env.setdefault(name, {"read_by": "wrapper", "files": files})
        env[name]["files"] = files
    return {
        "format": FORMAT,
        "repository": UPSTREAM,
        "tag": tag,
        "commit": commit,
        "generator": "scripts/contracts/worker_vllm_env.py",
        "env": dict(sorted(env.items())),
        "reserved": sorted(reserved),
        "removed": sorted(flag_to_env_name(f) for f in consts["REMOVED_FLAGS"]),
        "true_values": consts.get("TRUE_VALUES", []),
        "false_values": consts.get("FALSE_VALUES", []),
    }


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=1, sort_keys=True, ensure_ascii=True) + "\n"


def contract_path(tag: str) -> Path:
    return CONTRACTS / f"worker-vllm-{tag}.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="regenerate in memory and fail on any difference")
    parser.add_argument("--git", type=Path, help="a git directory of worker-vllm that has the pinned tag")
    args = parser.parse_args(argv)
    tag = pinned_tag()
    try:
        source = git_dir(tag, args.git)
    except SourceUnreachable as exc:
        # Machines that reach only PyPI (CI here) cannot regenerate this contract; the committed
        # file, made from the commit it names, stays the reference. Exit 3 tells "not checked"
        # apart from "out of date" (1).
        print(f"not checked: {exc}; set RPDEPLOY_WORKER_VLLM_GIT to a clone that has the tag", file=sys.stderr)
        return EXIT_UNREACHABLE
    text = render(contract_document(source, tag))
    path = contract_path(tag)
    if args.check:
        current = path.read_text(encoding="utf-8") if path.is_file() else None
        if current != text:
            print(
                f"{path.relative_to(ROOT)} is out of date: run python {Path(__file__).relative_to(ROOT)}",
                file=sys.stderr,
            )
            return 1
        print(f"{path.relative_to(ROOT)} matches worker-vllm {tag}")
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    print(f"wrote {path.relative_to(ROOT)} from worker-vllm {tag}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
