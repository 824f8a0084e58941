"""The package's import boundaries, read from the source (every import, function-level ones included).

* Commands stay on top: nothing outside ``rpdeploy.cli`` and ``rpdeploy.commands`` imports them
  (a ``__main__`` entry point excepted).
* ``docker`` is imported by ``rpdeploy.build`` only; ``rich`` by ``rpdeploy.output``, the CLI and
  the commands only; ``typer`` by the CLI and the commands only.
* The emulator is imported by the commands that start it, and by itself.
* Each concern package imports only what its ``__init__`` docstring says ("May import:"),
  as listed in PACKAGE_IMPORTS below, and that docstring says what the package owns.

A test of the test builds a small module tree with one violation of each kind and checks that
each is reported.
"""

from __future__ import annotations

import ast
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "rpdeploy"

#: Shared by everything: config, errors, output, secrets and the small helpers.
GROUND_FLOOR = {
    "rpdeploy",  # __version__
    "rpdeploy.ci",
    "rpdeploy.config",
    "rpdeploy.errors",
    "rpdeploy.fsutil",
    "rpdeploy.limits",
    "rpdeploy.methods",
    "rpdeploy.output",
    "rpdeploy.secrets",
    "rpdeploy.versions",
}
#: Concern package -> what else of rpdeploy it may import (besides the ground floor and itself).
#: Mirrors the "May import:" paragraph of each package's __init__ docstring.
PACKAGE_IMPORTS = {
    "rpdeploy.preflight": set(),
    "rpdeploy.build": {"rpdeploy.preflight", "rpdeploy.worker", "rpdeploy.deploy.ledger"},
    "rpdeploy.backend": set(),
    "rpdeploy.runpod": {"rpdeploy.preflight", "rpdeploy.deploy.ledger"},
    "rpdeploy.deploy": {
        "rpdeploy.preflight",
        "rpdeploy.build",
        "rpdeploy.backend",
        "rpdeploy.runpod",
        "rpdeploy.worker",
    },
    "rpdeploy.worker": set(),
    # The emulator stands in for RunPod: it shares RunPod's schema and the cold-start estimate.
    "rpdeploy.emulator": {"rpdeploy.runpod.schema", "rpdeploy.preflight"},
}
#: Where the modules still at the top level go in the re-layout's second step (issues 16 and 18
#: were editing them): an import of one is checked as an import of its destination.
PENDING = {
    "rpdeploy.deploy.stages": "rpdeploy.deploy.stages",
    "rpdeploy.deploy.planning": "rpdeploy.deploy.planning",
    "rpdeploy.deploy.ledger": "rpdeploy.deploy.ledger",
    "rpdeploy.deploy.teardown": "rpdeploy.deploy.teardown",
    "rpdeploy.deploy.smoke": "rpdeploy.deploy.smoke",
    "rpdeploy.deploy.doctor": "rpdeploy.deploy.doctor",
    "rpdeploy.preflight.models_table": "rpdeploy.preflight.models_table",
    "rpdeploy.worker.render": "rpdeploy.worker.render",
    "rpdeploy.worker.scaffold": "rpdeploy.worker.scaffold",
}
#: The commands that start the emulator (``rpdeploy emulator``, ``deploy --emulator``; issue 16's
#: ``_target`` runs the commands against a lasting one).
EMULATOR_USERS = {"rpdeploy.commands.emulator", "rpdeploy.commands.deploy", "rpdeploy.commands._target"}
TOP = {"rpdeploy.cli", "rpdeploy.commands"}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str  # what it imports (a module, or a module's attribute: "rpdeploy.deploy.ledger.Ledger")
    line: int


def module_name(root: Path, path: Path) -> str:
    parts = [root.name, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(root: Path) -> list[Import]:
    found = []
    for path in sorted(root.rglob("*.py")):
        if "templates" in path.relative_to(root).parts:
            continue
        module = module_name(root, path)
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found.extend(Import(module, alias.name, node.lineno) for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                found.extend(Import(module, f"{base}.{alias.name}", node.lineno) for alias in node.names)
    return found


def within(name: str, prefixes: set[str] | str) -> bool:
    prefixes = {prefixes} if isinstance(prefixes, str) else prefixes
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def concern_of(module: str) -> str | None:
    return next((package for package in PACKAGE_IMPORTS if within(module, package)), None)


def violations(root: Path) -> list[str]:
    problems = []
    for imp in imports_of(root):
        where = f"{imp.module}:{imp.line} imports {imp.target}"
        entry_point = imp.module.endswith(".__main__")
        if within(imp.target, TOP) and not within(imp.module, TOP) and not entry_point:
            problems.append(f"{where}: only the CLI imports the commands")
        if within(imp.target, "docker") and not within(imp.module, "rpdeploy.build"):
            problems.append(f"{where}: only rpdeploy.build imports docker")
        if within(imp.target, "rich") and not within(imp.module, TOP | {"rpdeploy.output"}):
            problems.append(f"{where}: only rpdeploy.output and the commands import rich")
        if within(imp.target, "typer") and not within(imp.module, TOP) and not entry_point:
            problems.append(f"{where}: only the CLI and the commands import typer")
        if (
            within(imp.target, "rpdeploy.emulator")
            and imp.module not in EMULATOR_USERS
            and not within(imp.module, "rpdeploy.emulator")
        ):
            problems.append(f"{where}: only the commands that start the emulator import it")
        concern = concern_of(PENDING.get(imp.module, imp.module))
        if concern and within(imp.target, "rpdeploy") and not within(imp.target, TOP | {"rpdeploy.emulator"}):
            allowed = (GROUND_FLOOR - {"rpdeploy"}) | PACKAGE_IMPORTS[concern] | {concern}
            target = next((PENDING[m] + imp.target[len(m) :] for m in PENDING if within(imp.target, m)), imp.target)
            if not within(target, allowed) and target not in {"rpdeploy", "rpdeploy.__version__"}:
                problems.append(f"{where}: {concern} may not import it (its __init__ docstring says what it may)")
    return problems


def test_the_package_keeps_its_boundaries() -> None:
    assert violations(ROOT) == []


@pytest.mark.parametrize("package", sorted(PACKAGE_IMPORTS))
def test_each_concern_package_says_what_it_owns_and_may_import(package: str) -> None:
    init = ROOT.parent.joinpath(*package.split("."), "__init__.py")
    doc = ast.get_docstring(ast.parse(init.read_text())) or ""
    assert "Owns:" in doc and "May import:" in doc, f"{init}: say what the package owns and may import"


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def test_the_boundary_check_reports_each_kind_of_violation(tmp_path: Path) -> None:
    root = write_tree(
        tmp_path / "rpdeploy",
        {
            "__init__.py": "",
            "cli.py": "import typer\nfrom rpdeploy.commands import check\n",
            "commands/__init__.py": "",
            "commands/check.py": "import rich\nfrom rpdeploy.preflight import check\n",
            "commands/emulator.py": "from rpdeploy.emulator import Emulator\n",
            "emulator/__init__.py": "",
            "emulator/__main__.py": "from rpdeploy.commands.emulator import main\n",
            "output.py": "import rich.console\n",
            "preflight/__init__.py": "",
            # a core module importing a command (inside a function: still an import)
            "preflight/check.py": "def f():\n    from rpdeploy.commands.check import check\n",
            # docker outside build, rich outside output, typer outside the CLI
            "preflight/cost.py": "import docker\nfrom rich.table import Table\nimport typer\n",
            # the emulator from a core module, and from a command that does not start it
            "runpod/__init__.py": "",
            "runpod/invoke.py": "from rpdeploy import emulator\n",
            # a relative import of a package this one may not import
            "backend/__init__.py": "from ..build import push\n",
            "build/__init__.py": "",
            "build/push.py": "import docker\nfrom rpdeploy.preflight import gpus\n",
        },
    )
    found = violations(root)
    expected = [
        "rpdeploy.backend:1 imports rpdeploy.build.push: rpdeploy.backend may not import it",
        "rpdeploy.preflight.check:2 imports rpdeploy.commands.check.check: only the CLI imports the commands",
        "rpdeploy.preflight.cost:1 imports docker: only rpdeploy.build imports docker",
        "rpdeploy.preflight.cost:2 imports rich.table.Table: only rpdeploy.output and the commands import rich",
        "rpdeploy.preflight.cost:3 imports typer: only the CLI and the commands import typer",
        "rpdeploy.runpod.invoke:1 imports rpdeploy.emulator: only the commands that start the emulator import it",
    ]
    for problem in expected:
        assert any(line.startswith(problem) for line in found), (problem, found)
    assert len(found) == len(expected), found


MAX_LINES = 800


def test_no_module_is_over_800_lines_without_a_reason_at_its_top() -> None:
    too_long = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = str(path.relative_to(ROOT.parent))
        lines = path.read_text().count("\n")
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        if lines > MAX_LINES and f"Over {MAX_LINES} lines" not in doc:
            too_long.append(f"{rel}: {lines} lines; split it, or say why in its docstring ('Over 800 lines: ...')")
    assert too_long == []
