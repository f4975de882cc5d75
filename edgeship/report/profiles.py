"""The report's per-operator tables: which operators each board's runtime spends its time in.

A profile comes in a bench row's record: a board's `bench --profile` JSON keeps it under
`profile`, the main job's controller row under `host_profile` (edgeship_runtime.profile's
document either way). Both are a board's word, so each is read as untrusted: a bounded number
of entries, names cut to a length and shown as text by the templates (Markdown escaping, HTML
autoescape), times and shares that are finite numbers in range, or the entry is left out and
the table says how many were.
"""

from __future__ import annotations

import json
import math

from edgeship.report.board_values import number
from edgeship.report.board_values import text as _text

SHOWN = 10  # operators (and op types) per table
MAX_ENTRIES = 100  # what a profile may list at all; past it, it is not read
MAX_NAME = 80
MAX_TEXT = 200


def _number(value, high: float = math.inf) -> float | None:
    """A finite number in [0, high], else None."""
    return number(value, 0.0, high)


def _entries(values, name_key: str | None) -> tuple[list[dict], int]:
    """The valid entries of a `top` (name_key "op") or `by_type` (None) list, at most SHOWN, and how many were invalid."""
    kept: list[dict] = []
    dropped = 0
    for value in values[:MAX_ENTRIES]:
        entry = value if isinstance(value, dict) else {}
        kind, ms, share = _text(entry.get("type"), MAX_NAME), _number(entry.get("ms")), _number(entry.get("share"), 1.0 + 1e-9)
        name = _text(entry.get(name_key), MAX_NAME) if name_key else kind
        if name is None or kind is None or ms is None or share is None:
            dropped += 1
            continue
        nodes = entry.get("nodes")
        kept.append({"op": name, "type": kind, "ms": ms, "share": min(share, 1.0),
                     "nodes": nodes if isinstance(nodes, int) and not isinstance(nodes, bool) and nodes >= 0 else None})
    kept.sort(key=lambda item: -float(item["ms"]))
    return kept[:SHOWN], dropped


def read_profile(document) -> dict | None:
    """A profile document as the report shows it, or None when there is none to show. Not
    available: {"unavailable": reason}. Malformed: {"unavailable": what is wrong}."""
    if not isinstance(document, dict):
        return None
    if document.get("available") is not True:
        return {"unavailable": _text(document.get("reason"), MAX_TEXT) or "the runtime offers no per-operator timing"}
    top, by_type = document.get("top"), document.get("by_type", [])
    if not isinstance(top, list) or not isinstance(by_type, list):
        return {"unavailable": "malformed profile (its top or by_type is not a list): not shown"}
    if len(top) > MAX_ENTRIES or len(by_type) > MAX_ENTRIES:
        return {"unavailable": f"malformed profile (over {MAX_ENTRIES} entries): not shown"}
    operators, dropped_ops = _entries(top, "op")
    types, dropped_types = _entries(by_type, None)
    runs = document.get("runs")
    return {
        "profiler": _text(document.get("profiler"), MAX_TEXT) or "-",
        "runs": runs if isinstance(runs, int) and not isinstance(runs, bool) and runs > 0 else None,
        "total_ms": _number(document.get("total_ms")),
        "top": operators, "by_type": types, "dropped": dropped_ops + dropped_types,
    }


def profile_sections(benches: list[dict]) -> dict:
    """{"shown": [...one per bench row with a profile...], "unavailable": [{"reason", "rows": ["board model
    target quant", ...]}...]} from the store's bench rows, boards in name order, the controller's among them."""
    shown: list[dict] = []
    unavailable: dict[str, list[str]] = {}
    for row in sorted(benches, key=lambda r: (r.get("board") or "", r.get("model") or "", r.get("target") or "", r.get("quant") or "")):
        try:
            record = json.loads(row.get("record") or "{}")
        except (TypeError, ValueError):
            continue
        if not isinstance(record, dict):
            continue
        profile = read_profile(record.get("host_profile" if row.get("source") == "controller" else "profile"))
        if profile is None:
            continue
        where = {key: row.get(key) for key in ("board", "model", "target", "quant", "backend", "source")}
        if "unavailable" in profile:
            unavailable.setdefault(profile["unavailable"], []).append(" ".join(str(where[key]) for key in ("board", "model", "target", "quant")))
        else:
            shown.append({**where, **profile})
    return {"shown": shown, "unavailable": [{"reason": reason, "rows": rows} for reason, rows in sorted(unavailable.items())]}
