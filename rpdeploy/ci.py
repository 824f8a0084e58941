"""What rpdeploy adds when it runs under GitHub Actions: a job summary and error annotations."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from rpdeploy.secrets import redact


def write_step_summary(markdown: str, environ: Mapping[str, str] | None = None) -> bool:
    """Append ``markdown`` to the job summary when Actions provides one; False otherwise."""
    environ = os.environ if environ is None else environ
    path = environ.get("GITHUB_STEP_SUMMARY")
    if not path:
        return False
    try:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(redact(markdown).rstrip("\n") + "\n\n")
    except OSError:
        return False  # a summary is a courtesy: never fail a deploy over it
    return True


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    def cell(value: object) -> str:
        return str(value if value is not None else "").replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def annotation_escape(text: str) -> str:
    """Escape a workflow command's message (%, CR and LF are special)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def annotation_property(text: str) -> str:
    """Escape a workflow command's property value (also , and :)."""
    return annotation_escape(text).replace(":", "%3A").replace(",", "%2C")
