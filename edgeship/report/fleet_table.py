"""The fleet benchmark summary: one row per board and model from results/<run-id>/<host>.json."""

from __future__ import annotations

import json
from pathlib import Path

HEADER = ("board", "arch", "target", "model", "backend", "accelerator", "mean ms", "p90 ms", "FPS", "accuracy check")


def _accelerator(result: dict) -> str:
    bench = result.get("bench") or {}
    if bench.get("fallback"):
        return "CPU fallback (" + (result.get("note") or bench["fallback"].get("reason", "accelerator absent")).split(";")[0] + ")"
    if result.get("note"):
        return f"CPU fallback ({result['note'].split(';')[0]})"
    return bench.get("accelerator", "-")


def rows(run_dir: Path, hosts: list[str] | None = None) -> list[tuple]:
    table = []
    seen = set()
    for path in sorted(run_dir.glob("*.json")):
        if path.name in ("summary.json", "report.json"):
            continue
        document = json.loads(path.read_text())
        host = document.get("host", path.stem)
        seen.add(host)
        for result in document.get("results", []):
            bench, check = result.get("bench") or {}, result.get("check") or {}
            steady = bench.get("steady") or {}
            arch = (document.get("detect") or {}).get("arch", "-")
            table.append((host, arch, document.get("target", "-"), result["model"], bench.get("backend", "-"), _accelerator(result),
                          f"{steady['mean_ms']:.2f}" if steady else "-", f"{steady['p90_ms']:.2f}" if steady else "-",
                          f"{steady['fps']:.1f}" if steady.get("fps") else "-", "pass" if check.get("passed") else "FAIL"))
    for host in sorted(set(hosts or ()) - seen):
        table.append((host, "-", "-", "-", "-", "-", "-", "-", "-", "FAILED: no result (board unreachable or a task failed; see the play recap)"))
    return table


def render(table: list[tuple]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in table]
    return "\n".join(lines)


def write_summary(run_dir: Path, hosts: list[str] | None = None) -> str:
    table = rows(run_dir, hosts)
    text = render(table)
    (run_dir / "summary.md").write_text(f"# edgeship fleet benchmark {run_dir.name}\n\n{text}\n")
    (run_dir / "summary.json").write_text(json.dumps([dict(zip(HEADER, row)) for row in table], indent=2) + "\n")
    return text
