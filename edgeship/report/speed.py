"""An int8 or fp16 row's speed against its fp32 sibling, measured on the same runtime.

The figure comes from the bench results, not from the manifest: a conversion runs in a toolchain
image whose runtime is not the board's (the onnx image's ONNX Runtime is older than the board
runtime's; rk3588 and jetson artifacts cannot run there at all), and only the same board, backend
and accelerator give two latencies that can be divided. The sibling is the fp32 row of the same
model, target and backend on the same board (the controller counts as one), neither a CPU fallback.
"""

from __future__ import annotations

REDUCED = ("int8", "fp16")


def _latency(row: dict) -> float | None:
    return row.get("p50_ms") or row.get("mean_ms")


def mark_speed_vs_fp32(rows: list[dict]) -> None:
    """Set `speed_vs_fp32` (latency ratio, None without a sibling) on every row, and label an int8
    or fp16 row that is not faster than its sibling."""
    fp32 = {(row["model"], row["board"], row["target"], row["backend"], row.get("accelerator")): row for row in rows
            if row["quant"] == "fp32" and row["board"] and not row["fallback"] and _latency(row)}
    for row in rows:
        row["speed_vs_fp32"] = None
        if row["quant"] not in REDUCED or not row["board"] or row["fallback"] or not _latency(row):
            continue
        sibling = fp32.get((row["model"], row["board"], row["target"], row["backend"], row.get("accelerator")))
        latency, reference = _latency(row), _latency(sibling) if sibling else None
        if latency is None or reference is None:
            continue
        ratio = latency / reference
        row["speed_vs_fp32"] = ratio
        if ratio >= 1.0:
            row["labels"].append(f"not faster than fp32 ({ratio:.2f}x its latency)")
