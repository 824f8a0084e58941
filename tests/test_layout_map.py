"""The README's layout map is checked against the tree: every package and module is on it, and
everything on it exists (issue 17: "a map a person can check against the tree")."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "rpdeploy"


def layout_map(readme: str) -> dict[str, str]:
    """Entry name (``cli.py``, ``commands/``...) -> its text, from the README's Layout block."""
    section = readme.split("### Layout", 1)[1]
    block = section.split("```text", 1)[1].split("```", 1)[0]
    entries: dict[str, str] = {}
    current: list[str] = []
    for line in block.splitlines():
        if line.startswith("  ") and not line.startswith("   "):  # a new entry: "  name   text"
            names, *text_parts = re.split(r"\s{2,}", line.strip(), maxsplit=1)
            text = text_parts[0] if text_parts else ""
            current = names.split()
            for name in current:
                entries[name] = text
        elif line.startswith("   ") and current:  # its text goes on
            for name in current:
                entries[name] = f"{entries[name]} {line.strip()}".strip()
    return entries


def missing_from_map(entries: dict[str, str], package: Path) -> list[str]:
    problems = []
    for child in sorted(package.iterdir()):
        if child.name.startswith(("_", ".")) or child.name == "__pycache__":
            continue
        if child.is_dir() and (child / "__init__.py").exists():
            if f"{child.name}/" not in entries:
                problems.append(f"rpdeploy/{child.name}/ is not on the map")
                continue
            if child.name == "commands":  # one module per command: the map says so
                continue
            text = entries[f"{child.name}/"]
            for module in sorted(child.glob("*.py")):
                if module.stem not in ("__init__", "__main__") and not re.search(rf"\b{module.stem}\b", text):
                    problems.append(f"rpdeploy/{child.name}/{module.name} is not named under {child.name}/")
        elif child.suffix == ".py" and child.name not in entries:
            problems.append(f"rpdeploy/{child.name} is not on the map")
    for name in entries:
        if name.startswith(("rpdeploy/", "templates/", "tests/", "benchmarks/", "examples/", "scripts/", "docs/")):
            path = ROOT / name
        else:
            path = package / name
        if not path.exists():
            problems.append(f"the map names {name}, which does not exist")
    return problems


def test_the_readme_layout_map_matches_the_tree() -> None:
    entries = layout_map((ROOT / "README.md").read_text(encoding="utf-8"))
    assert "cli.py" in entries and "deploy/" in entries, entries
    assert missing_from_map(entries, PACKAGE) == []


def test_the_map_check_sees_a_module_that_is_not_on_it(tmp_path: Path) -> None:
    package = tmp_path / "rpdeploy"
    (package / "deploy").mkdir(parents=True)
    (package / "deploy" / "__init__.py").write_text("")
    (package / "deploy" / "stages.py").write_text("")
    (package / "deploy" / "newcomer.py").write_text("")
    (package / "cli.py").write_text("")
    (package / "stray.py").write_text("")
    readme = (
        "### Layout\n\n```text\nrpdeploy/\n"
        "  cli.py      the commands\n  deploy/     stages, and\n              gone\n```\n"
    )
    entries = layout_map(readme)
    assert entries["deploy/"] == "stages, and gone"
    problems = missing_from_map(entries, package)
    assert "rpdeploy/deploy/newcomer.py is not named under deploy/" in problems
    assert "rpdeploy/stray.py is not on the map" in problems
    assert all("stages" not in p for p in problems)
