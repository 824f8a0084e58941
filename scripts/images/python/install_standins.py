"""Install each package folder under tests/standins into the image's site-packages.

Runs inside the image build (python3 from Debian, stdlib only). Every subfolder with an
__init__.py becomes an importable package plus a minimal .dist-info, so `import vllm` works
without PYTHONPATH and importlib.metadata / `pip show` see the stand-in's __version__.
"""

from __future__ import annotations

import re
import shutil
import sys
import sysconfig
from pathlib import Path

VERSION = re.compile(r"""^__version__\s*=\s*["']([^"']+)["']""", re.MULTILINE)


def install(package: Path, site: Path) -> None:
    name = package.name
    version_match = VERSION.search((package / "__init__.py").read_text())
    version = version_match.group(1) if version_match else "0.0.0+rpdeploy.standin"
    target = site / name
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(package, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    info = site / f"{name}-{version}.dist-info"
    shutil.rmtree(info, ignore_errors=True)
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nSummary: rpdeploy test stand-in\n"
    )
    (info / "INSTALLER").write_text("rpdeploy-test\n")
    (info / "top_level.txt").write_text(f"{name}\n")
    files = [p for p in target.rglob("*") if p.is_file()] + [info / n for n in ("METADATA", "INSTALLER", "top_level.txt")]
    record = [f"{p.relative_to(site)},," for p in files] + [f"{info.name}/RECORD,,"]
    (info / "RECORD").write_text("\n".join(record) + "\n")
    print(f"stand-in {name} {version} -> {target}")


def main(standins: Path) -> None:
    site = Path(sysconfig.get_paths()["purelib"])
    site.mkdir(parents=True, exist_ok=True)
    for package in sorted(standins.iterdir()):
        if (package / "__init__.py").is_file():
            install(package, site)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
