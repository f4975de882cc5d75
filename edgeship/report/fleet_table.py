"""The fleet benchmark summary: one row per board and model from results/<run-id>/<host>.json."""

from __future__ import annotations

import json
from pathlib import Path

from edgeship.report.markdown import md_text
from edgeship_runtime.files import atomic_write_text

HEADER = ("board", "arch", "target", "model", "backend", "accelerator", "mean ms", "p90 ms", "FPS", "accuracy check")


def _accelerator(result: dict) -> str:
    bench = result.get("bench") or {}
    if bench.get("fallback"):
        return "CPU fallback (" + (result.get("note") or bench["fallback"].get("reason", "accelerator absent")).split(";")[0] + ")"
    if result.get("note"):
        return f"CPU fallback ({result['note'].split(';')[0]})"
    return bench.get("accelerator", "-")


def _row(host: str, document: dict, result: dict) -> tuple:
    bench, check = result.get("bench") or {}, result.get("check") or {}
    steady = bench.get("steady") or {}
    arch = (document.get("detect") or {}).get("arch", "-")
    return (host, arch, document.get("target", "-"), result["model"], bench.get("backend", "-"), _accelerator(result),
            f"{steady['mean_ms']:.2f}" if steady else "-", f"{steady['p90_ms']:.2f}" if steady else "-",
            f"{steady['fps']:.1f}" if steady.get("fps") else "-", "pass" if check.get("passed") else "FAIL")


def rows(run_dir: Path, hosts: list[str] | None = None) -> list[tuple]:
    """One row per board and model. A board's file is read as untrusted (store's reader: links,
    huge, not UTF-8, cut off or too deeply nested files are named, not read); the file name says
    which board it is, and a result of the wrong shape is a row saying so, never a traceback."""
    from edgeship.report.store import NOT_BOARD_FILES, board_name, read_result_file

    table = []
    seen = set()
    for path in sorted(run_dir.glob("*.json")):
        if path.name in NOT_BOARD_FILES or path.name.startswith("compare-"):
            continue
        problems: list[list[str]] = []
        document = read_result_file(path, problems)
        host = board_name(path, document, [])
        if host is None:
            continue  # not a board's file
        seen.add(host)
        results = (document or {}).get("results")
        if not isinstance(results, list):
            why = problems[0][1] if problems else 'no "results" list'
            table.append((host, "-", "-", "-", "-", "-", "-", "-", "-", f"FAILED: {path.name} not read ({why})"))
            continue
        assert document is not None  # results came from it
        for result in results:
            try:
                table.append(_row(host, document, result))
            except (KeyError, TypeError, ValueError, AttributeError) as error:
                table.append((host, "-", "-", "-", "-", "-", "-", "-", "-", f"FAILED: a result of {path.name} not read ({type(error).__name__})"))
    for host in sorted(set(hosts or ()) - seen):
        table.append((host, "-", "-", "-", "-", "-", "-", "-", "-", "FAILED: no result (board unreachable or a task failed; see the play recap)"))
    return table


def render(table: list[tuple]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(md_text(cell) for cell in row) + " |" for row in table]
    return "\n".join(lines)


def write_summary(run_dir: Path, hosts: list[str] | None = None) -> str:
    table = rows(run_dir, hosts)
    text = render(table)
    atomic_write_text(run_dir / "summary.md", f"# edgeship fleet benchmark {md_text(run_dir.name)}\n\n{text}\n")
    atomic_write_text(run_dir / "summary.json", json.dumps([dict(zip(HEADER, row)) for row in table], indent=2, default=str) + "\n")
    return text
