"""What rpdeploy adds when it runs under GitHub Actions: a job summary and error annotations.

The job summary is GitHub-flavoured Markdown that GitHub renders (with its HTML sanitizer),
and much of what goes in it was not written by rpdeploy: names from deploy.yaml, error
messages from RunPod or a worker, a model's answer. Such text goes in through
:func:`md_code` (an inline code span, which renders nothing) or :func:`md_text` (every
Markdown and HTML character escaped), and the whole summary through
:func:`rpdeploy.output.printable`, so no control character, bidi override or stray link,
image or HTML tag reaches the page.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence

from rpdeploy.output import printable
from rpdeploy.secrets import redact

# Characters with a meaning in Markdown (CommonMark's escapable ASCII punctuation).
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|~>])")
_MAX_INLINE = 500


def md_text(text: str, *, limit: int = _MAX_INLINE) -> str:
    """``text`` as literal Markdown text on one line: punctuation backslash-escaped, ``<``/``&`` as entities."""
    one_line = printable(text[:limit] + ("..." if len(text) > limit else ""), newlines=False)
    return _MARKDOWN.sub(r"\\\1", one_line.replace("&", "&amp;").replace("<", "&lt;"))


def md_code(text: str, *, limit: int = _MAX_INLINE) -> str:
    """``text`` as an inline code span, whatever backticks it holds (CommonMark: a longer fence)."""
    body = printable(text[:limit] + ("..." if len(text) > limit else ""), newlines=False)
    longest = max((len(run) for run in re.findall(r"`+", body)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if body.startswith("`") or body.endswith("`") or not body.strip() else ""
    return f"{fence}{pad}{body}{pad}{fence}"


def md_block(text: str) -> str:
    """``text`` as a fenced code block (rendered verbatim)."""
    body = printable(text)
    longest = max((len(run) for run in re.findall(r"`{3,}", body)), default=2)
    fence = "`" * (longest + 1)
    return f"{fence}text\n{body}\n{fence}"


def write_step_summary(markdown: str, environ: Mapping[str, str] | None = None) -> bool:
    """Append ``markdown`` to the job summary when Actions provides one; False otherwise."""
    environ = os.environ if environ is None else environ
    path = environ.get("GITHUB_STEP_SUMMARY")
    if not path:
        return False
    try:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(printable(redact(markdown)).rstrip("\n") + "\n\n")
    except OSError:
        return False  # a summary is a courtesy: never fail a deploy over it
    return True


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A table; every cell is literal text (see :func:`md_text`)."""

    def cell(value: object) -> str:
        return md_text(str(value if value is not None else ""))

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def annotation_escape(text: str) -> str:
    """Escape a workflow command's message (%, CR and LF are special)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def annotation_property(text: str) -> str:
    """Escape a workflow command's property value (also , and :)."""
    return annotation_escape(text).replace(":", "%3A").replace(",", "%2C")
