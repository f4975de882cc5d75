"""A benchmark's clocks, as the board recorded them (the bench JSON's `clocks`, written by
edgeship_runtime.clocks): a label for the report's row, and the state `invoke compare` asks
before it calls a latency move a regression (a run with its clocks held is not comparable with
one whose governor let them float)."""

from __future__ import annotations

import json


def _clocks(record: str | dict | None) -> dict | None:
    """The `clocks` of a bench record (the store keeps the bench JSON as text), when it has any."""
    if isinstance(record, str):
        try:
            record = json.loads(record)
        except ValueError:
            return None
    clocks = (record or {}).get("clocks") if isinstance(record, dict) else None
    return clocks if isinstance(clocks, dict) and isinstance(clocks.get("before"), dict) else None


def _governors(state: dict) -> list[str]:
    found = [policy.get("governor") for policy in (state.get("cpufreq") or {}).values() if isinstance(policy, dict)]
    found += [f"{name} {device.get('governor')}" for name, device in sorted((state.get("devfreq") or {}).items()) if isinstance(device, dict)]
    return sorted({str(governor) for governor in found if governor})


def _hottest(state: dict | None) -> float | None:
    values = [value for value in ((state or {}).get("thermal_c") or {}).values() if isinstance(value, int | float)]
    return max(values) if values else None


def clock_state(record: str | dict | None) -> str:
    """What `compare` holds two runs to: held or not, and the governors during the run."""
    clocks = _clocks(record)
    if clocks is None:
        return "clocks not recorded"
    governors = _governors(clocks["before"])
    return f"clocks {'held' if clocks.get('held') else 'not held'}" + (f" ({', '.join(governors)})" if governors else " (no cpufreq)")


def clock_labels(record: str | dict | None) -> list[str]:
    """The row's clock label: held or not, the governors, the fastest core's clock and the
    hottest zone before -> after the run (a board that heats up throttles); none for a board
    that has neither cpufreq nor thermal zones (a VM)."""
    clocks = _clocks(record)
    if clocks is None:
        return []
    before, after = clocks["before"], clocks.get("after") or {}
    megahertz: list[float] = [policy["cur_mhz"] for policy in (before.get("cpufreq") or {}).values()
                              if isinstance(policy, dict) and isinstance(policy.get("cur_mhz"), int | float)]
    hot_before, hot_after = _hottest(before), _hottest(after)
    if not before.get("cpufreq") and hot_before is None:
        return []
    parts = [clock_state(record)]
    if megahertz:
        parts.append(f"{max(megahertz):.0f} MHz")
    if hot_before is not None:
        parts.append(f"{hot_before:.0f} -> {hot_after:.0f} °C" if hot_after is not None else f"{hot_before:.0f} °C")
    if str(before.get("sysfs") or "/sys") != "/sys":
        parts.append(f"read from {before['sysfs']}")  # a stand-in tree (the board simulator's) says so
    return [", ".join(parts)]


def clocks_differ(before: str | dict | None, now: str | dict | None) -> tuple[str, str] | None:
    """Both runs' clock states when they differ: held against not held, or other governors (a
    run that recorded none counts as not held; its governors are unknown, so only `held` is asked)."""
    base, new = _clocks(before), _clocks(now)
    held = (bool(base and base.get("held")), bool(new and new.get("held")))
    if held[0] != held[1] or (base and new and _governors(base["before"]) != _governors(new["before"])):
        return clock_state(before), clock_state(now)
    return None
