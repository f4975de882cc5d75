"""Markdown from strings the boards and the runs wrote: shown as text, never as markup.

A board's result file, a manifest or a run's notes can hold anything: `<script>`, a
`[link](javascript:...)`, a `|` that splits a table row, a newline that starts a heading.
report.md and compare-*.md render every such value through `md_text` (or `md_code` inside a
code span), so it reads as the text it is. The HTML report has Jinja2's autoescape instead.
"""

from __future__ import annotations

import re

from markupsafe import Markup

# CommonMark's inline markup characters (and GFM's tables `|`, strikethrough `~` and email
# autolinks `@`); backslash-escaped, each shows as itself. An underscore between two letters or
# digits cannot open or close emphasis (CommonMark's intraword rule), so `x86_64` stays as it is.
_SPECIAL = re.compile(r"([\\`*\[\]<>|~&@]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9]))")
_WWW = re.compile(r"(?i)\b(www)\.")


def md_text(value: object) -> Markup:
    """`value` as Markdown text on one line: markup characters escaped, URLs not linked."""
    text = " ".join(str(value).splitlines())
    text = _SPECIAL.sub(r"\\\1", text)
    # GFM links bare http://... and www.... on its own: a backslash before ':' or '.' stops it
    text = _WWW.sub(r"\1\\.", text.replace("://", "\\://"))
    return Markup(text)


def md_code(value: object) -> Markup:
    """`value` as a code span (a path, an image tag): backticks longer than any run inside it,
    and `|` escaped, which GFM tables need even there."""
    text = " ".join(str(value).splitlines()).replace("|", "\\|")
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return Markup(f"{fence}{pad}{text}{pad}{fence}")


def finalize(value: object) -> object:
    """Jinja2's `finalize` for Markdown templates: every rendered value is text, unless a filter
    (md, code, trusted) already made it Markup."""
    return value if isinstance(value, Markup) else md_text(value)
