"""A benchmark's clocks, as the board recorded them (the bench JSON's `clocks`, written by
edgeship_runtime.clocks): a label for the report's row, and the state `invoke compare` asks
before it calls a latency move a regression (a run with its clocks held is not comparable with
one whose governor let them float).

A board wrote it: every part is checked for its type (a list where a mapping belongs, a bool
where a number does) and every text is bounded and on one line before it reaches a label."""

from __future__ import annotations

import json

from edgeship.report.board_values import number as _number
from edgeship.report.board_values import text as _text

GOVERNOR_LIMIT = 40  # kernel governor names are under 20 characters
NAME_LIMIT = 64
SYSFS_LIMIT = 200


def _mapping(value) -> dict:
    return value if isinstance(value, dict) else {}


def _clocks(record: str | dict | None) -> dict | None:
    """The `clocks` of a bench record (the store keeps the bench JSON as text), when it has any."""
    if isinstance(record, str):
        try:
            record = json.loads(record)
        except ValueError:
            return None
    clocks = record.get("clocks") if isinstance(record, dict) else None
    return clocks if isinstance(clocks, dict) and isinstance(clocks.get("before"), dict) else None


def _held(clocks: dict | None) -> bool:
    return isinstance(clocks, dict) and clocks.get("held") is True  # "yes" or 1 from a board is not held


def _governors(state: dict) -> list[str]:
    found = [_text(policy.get("governor"), GOVERNOR_LIMIT) for policy in _mapping(state.get("cpufreq")).values() if isinstance(policy, dict)]
    for name, device in sorted(_mapping(state.get("devfreq")).items()):
        governor = _text(device.get("governor"), GOVERNOR_LIMIT) if isinstance(device, dict) else None
        if governor and _text(name, NAME_LIMIT):
            found.append(f"{_text(name, NAME_LIMIT)} {governor}")
    return sorted({governor for governor in found if governor})


def _hottest(state) -> float | None:
    values = [value for value in map(_number, _mapping(_mapping(state).get("thermal_c")).values()) if value is not None]
    return max(values) if values else None


def clock_state(record: str | dict | None) -> str:
    """What `compare` holds two runs to: held or not, and the governors during the run."""
    clocks = _clocks(record)
    if clocks is None:
        return "clocks not recorded"
    governors = _governors(clocks["before"])
    return f"clocks {'held' if _held(clocks) else 'not held'}" + (f" ({', '.join(governors)})" if governors else " (no cpufreq)")


def clock_labels(record: str | dict | None) -> list[str]:
    """The row's clock label: held or not, the governors, the fastest core's clock and the
    hottest zone before -> after the run (a board that heats up throttles); none for a board
    that has neither cpufreq nor thermal zones (a VM)."""
    clocks = _clocks(record)
    if clocks is None:
        return []
    before, after = clocks["before"], _mapping(clocks.get("after"))
    megahertz: list[float] = [value for value in (_number(policy.get("cur_mhz")) for policy in _mapping(before.get("cpufreq")).values()
                                                  if isinstance(policy, dict)) if value is not None]
    hot_before, hot_after = _hottest(before), _hottest(after)
    if not _mapping(before.get("cpufreq")) and hot_before is None:
        return []
    parts = [clock_state(record)]
    if megahertz:
        parts.append(f"{max(megahertz):.0f} MHz")
    if hot_before is not None:
        parts.append(f"{hot_before:.0f} -> {hot_after:.0f} °C" if hot_after is not None else f"{hot_before:.0f} °C")
    sysfs = _text(before.get("sysfs"), SYSFS_LIMIT)
    if sysfs and sysfs != "/sys":
        parts.append(f"read from {sysfs}")  # a stand-in tree (the board simulator's) says so
    return [", ".join(parts)]


def clocks_differ(before: str | dict | None, now: str | dict | None) -> tuple[str, str] | None:
    """Both runs' clock states when they differ: held against not held, or other governors (a
    run that recorded none counts as not held; its governors are unknown, so only `held` is asked)."""
    base, new = _clocks(before), _clocks(now)
    held = (_held(base), _held(new))
    if held[0] != held[1] or (base and new and _governors(base["before"]) != _governors(new["before"])):
        return clock_state(before), clock_state(now)
    return None
