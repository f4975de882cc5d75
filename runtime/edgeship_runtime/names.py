"""The one name rule: what a model or artifact name may be wherever edgeship uses it.

A name becomes a folder (`artifacts/<name>-<target>-...`, `releases/<id>/<name>`), part of a
systemd unit and its ExecStart line, an argument on a board's shell and a value rendered by
Jinja. The set below is what all of them carry without quoting: letters, digits, `.`, `_` and
`-`, starting with a letter or digit (so never `.`, `..`, a hidden file or an option), at most
64 characters. Every place that takes a name from a user, a file or a manifest calls `check`.
"""

from __future__ import annotations

import re

NAME_RULE = "1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class UnsafeName(ValueError):
    """A name that would not be safe as a file name, a systemd unit, a shell word or a template value."""


def is_safe(value: object) -> bool:
    return isinstance(value, str) and _NAME.fullmatch(value) is not None


def check(value: object, what: str, fix: str = "") -> str:
    """`value` when it follows the rule; else UnsafeName with one line naming `what`, the value and the fix."""
    if is_safe(value):
        return value  # type: ignore[return-value]
    shown = repr(value) if not isinstance(value, str) or len(value) <= 80 else repr(value[:77] + "...")
    raise UnsafeName(f"{what} {shown} is not a safe name ({NAME_RULE}){'; ' + fix if fix else ''}")


def suggest(value: str) -> str:
    """A safe name close to `value` (for messages and defaults): other characters become '-'."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", value).strip("-._")[:64]
    return cleaned or "model"
