"""The health gate, run on the board right after a release became `current` (edgeship_health role).

It asks the activated release what deploy.yml's check asked before activation, and more: is it
still as accurate as the release the board ran before, and still as fast? For each entry of the
release (release.json's `bench` list, which the verified bundle brought: a model on one runtime,
named by its artifact without the hash, e.g. digits-tflite-fp16, and matched so in the previous one):

- accuracy: `edgeship-runtime check`, run now through `current`; every metric the task judges (the
  `min_<metric>` / `max_<metric>` tolerances of the report) against the previous release's kept
  check (releases/<previous>/checks/<artifact>.json, or <model>.json as releases kept it before a
  board ran one model on several runtimes): a drop beyond --accuracy-drop-max fails;
- latency: a short bench of the previous release, the new one, and the previous one again, all now
  and under the same load (steady p50). The two runs of the previous release give the board's own
  run-to-run noise; the new release fails when it is slower than --latency-ratio-max times the
  previous one, a limit widened to 1 + noise-factor x noise on a board noisier than that, never past
  --latency-limit-max. A board noisier than --noise-max is benched again (--bench-rounds rounds at
  most, judged by the quietest); still that noisy, it gets no widening and the base is the previous
  release's fastest run.

A metric or time that is missing, NaN or infinite is never "not compared" where the previous
release had it: NaN passes every comparison, so it fails the gate instead.

The first release on a board has nothing to compare with: it is gated on its check alone, and the
verdict says so. The verdict goes to stdout and to releases/<new>/health.json as JSON; exit 0 when
the release is healthy, 1 when it is not, 2 when the gate itself could not run (one line on stderr).

Standard library only: it runs with the board's own Python, whatever the release installed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # edgeship's one name rule (names.NAME_RULE)
CLI = "venv/bin/edgeship-runtime"


class GateError(Exception):
    """The gate could not judge (not the release's fault alone): one line, exit 2."""


def safe_name(value: object, what: str) -> str:
    if not isinstance(value, str) or not NAME.fullmatch(value):
        raise GateError(f"{what} {json.dumps(value)[:80]} is not a release or artifact name (1-64 of A-Za-z0-9._-); deploy the release again")
    return value


def entry_key(entry: dict) -> str:
    """An entry's name across releases: its artifact folder without the content hash (digits-onnx-fp32)."""
    chosen = safe_name(entry.get("artifact") or entry.get("cpu_artifact"), f"model {entry.get('model')!r}: artifact")
    return chosen.rsplit("-", 1)[0] if chosen.count("-") >= 3 else chosen


def artifact_args(folder: Path, entry: dict, allow_cpu_fallback: bool) -> list[str]:
    """The artifact and fallback arguments deploy.yml's check gives a release's bench entry."""
    artifact, cpu = entry.get("artifact"), entry.get("cpu_artifact")
    chosen = safe_name(artifact or cpu, f"model {entry.get('model')!r}: artifact")
    args = [str(folder / "artifacts" / chosen)]
    if artifact and allow_cpu_fallback:
        args.append("--allow-cpu-fallback")
    if not artifact and entry.get("note"):
        args += ["--fallback-for", str(entry["note"])]
    if artifact and cpu and allow_cpu_fallback:
        args += ["--cpu-artifact", str(folder / "artifacts" / safe_name(cpu, "cpu artifact"))]
    return args


def run_json(argv: list[str], timeout_s: float, what: str) -> tuple[int, dict | None, str]:
    """(exit code, the JSON it printed or None, its last stderr line); a run past its bound is stopped,
    with everything it started: it runs in a session of its own, whose whole process group is killed
    (a backend's worker or a shell's child would otherwise outlive it and hold the board's cores)."""
    try:
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    except OSError as error:
        return 127, None, f"{what} did not start: {error}"
    RUNNING.add(process.pid)
    try:
        stdout, stderr = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        kill_group(process.pid)
        try:
            process.communicate(timeout=10)  # reap it; bounded, should anything have left the group holding its pipes
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        return 124, None, f"{what} took longer than {timeout_s:g} s and was stopped"
    finally:
        RUNNING.discard(process.pid)
    try:
        report = json.loads(stdout)
    except ValueError:
        report = None
    lines = [line for line in stderr.splitlines() if line.strip()]
    return process.returncode, report if isinstance(report, dict) else None, lines[-1] if lines else ""


RUNNING: set[int] = set()  # the process groups of the checks and benches running now


def kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def stop(signum: int, _frame: object) -> None:
    """The board's `timeout` (main.yml) stops the gate with TERM, and signals only the gate's own
    process group: the runs in sessions of their own go with it here."""
    for pgid in list(RUNNING):
        kill_group(pgid)
    print(f"health_gate: error: stopped by signal {signum} (the gate took longer than its bound)", file=sys.stderr)
    os._exit(128 + signum)


def number(value: object) -> float | None:
    """A finite int or float (not a bool), else None: NaN compares False with everything, so a NaN
    metric or time would pass any bound it is held to."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def accuracy_drops(new: dict, old: dict, drop_max: float) -> list[str]:
    """Each judged metric (a tolerance min_X / max_X of the task) that moved the wrong way by more
    than drop_max against the previous release's check. A judged metric the previous check has must
    be in the new one and finite: a metric that went missing or NaN is a failure, not "not compared".
    Metrics the previous check lacks (or has as no finite number) are not compared."""
    drops = []
    tolerances = {**(old.get("tolerances") or {}), **(new.get("tolerances") or {})}
    ours: dict = new.get("metrics") or {}
    theirs: dict = old.get("metrics") or {}
    ours, theirs = (ours if isinstance(ours, dict) else {}), (theirs if isinstance(theirs, dict) else {})
    for key in sorted(tolerances):
        bound, _, metric = key.partition("_")
        before = number(theirs.get(metric))
        if bound not in ("min", "max") or before is None:
            continue
        now = number(ours.get(metric))
        if now is None:
            shown = "missing" if metric not in ours else json.dumps(ours.get(metric))
            drops.append(f"{metric} is {shown} after activation, was {before:.4g} (a judged metric must be a finite number)")
            continue
        worse = before - now if bound == "min" else now - before
        if worse > drop_max:
            drops.append(f"{metric} {now:.4g}, was {before:.4g} (more than {drop_max:g} worse)")
    return drops


def latency_verdict(previous: list[float], new: float, ratio_max: float, noise_factor: float, noise_floor: float,
                    limit_max: float = 0.0, noise_max: float = math.inf) -> dict:
    """new p50 against the mean of the previous release's two p50s taken around it. The limit is
    widened for the board's own noise, but never past limit_max (0: twice ratio_max); and where the
    noise is above noise_max, it is not widened at all and the new release is held to the previous
    one's fastest run: so noisy a board says nothing about a widened limit (runs of 10 and 30 ms
    would have allowed 5x)."""
    noise = (max(previous) - min(previous)) / min(previous) if len(previous) > 1 and min(previous) > 0 else 0.0
    noisy = noise > noise_max
    if noisy:
        base, limit = min(previous), ratio_max
    else:
        base = sum(previous) / len(previous)
        limit = min(max(ratio_max, 1 + noise_factor * max(noise, noise_floor)), limit_max if limit_max > 0 else 2 * ratio_max)
    ratio = new / base if base > 0 else float("inf")
    return {"previous_p50_ms": previous, "p50_ms": new, "ratio": round(ratio, 3), "noise": round(noise, 3), "limit": round(limit, 3),
            "noisy": noisy, "passed": ratio <= limit}


class Gate:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.root = Path(args.root)
        self.new = self.root / "releases" / safe_name(args.release, "release")
        self.previous = self.root / "releases" / safe_name(args.previous, "previous release") if args.previous else None
        self.current = self.root / "current"

    def release(self, folder: Path) -> dict:
        try:
            data = json.loads((folder / "release.json").read_text())
        except (OSError, ValueError) as error:
            raise GateError(f"{folder / 'release.json'} is not readable JSON ({error}); deploy the release again") from None
        if not isinstance(data, dict) or not isinstance(data.get("bench"), list):
            raise GateError(f"{folder / 'release.json'} has no bench list; deploy the release again")
        return data

    def bench(self, folder: Path, entry: dict) -> tuple[float | None, str]:
        argv = [str(folder / CLI), "bench", *artifact_args(folder, entry, self.args.allow_cpu_fallback)]
        argv += (["--threads", str(self.args.threads)] if self.args.threads > 0 else []) + self.args.bench_arg
        code, report, why = run_json(argv, self.args.timeout_s, f"the bench of {folder.name}")
        p50 = ((report or {}).get("steady") or {}).get("p50_ms")
        if code != 0:
            return None, why or f"the bench of {folder.name} exited {code}"
        time_ms = number(p50)
        if time_ms is None or time_ms <= 0:
            return None, f"the bench of {folder.name} gave a p50 of {json.dumps(p50)} ms, not a positive finite time"
        return time_ms, ""

    def kept_check(self, entry: dict) -> dict | None:
        """The previous release's kept check of the entry (check --record), or None."""
        assert self.previous is not None
        chosen = safe_name(entry.get("artifact") or entry.get("cpu_artifact"), "artifact")
        for name in (chosen, safe_name(entry.get("model"), "model")):
            try:
                report = json.loads((self.previous / "checks" / f"{name}.json").read_text()).get("report")
            except (OSError, ValueError, AttributeError):
                continue
            if isinstance(report, dict):
                return report
        return None

    def model(self, entry: dict, previous: dict) -> dict:
        name = entry_key(entry)
        result: dict = {"model": safe_name(entry.get("model"), "model"), "entry": name, "reasons": [], "notes": []}
        argv = [str(self.current / CLI), "check", *artifact_args(self.current, entry, self.args.allow_cpu_fallback)]
        argv += ["--max-samples", str(self.args.max_samples)] if self.args.max_samples > 0 else []
        code, check, why = run_json(argv, self.args.timeout_s, f"the check of {name}")
        if code != 0 or check is None:
            failed = "; ".join(map(str, (check or {}).get("failed") or [])) or why or f"exit {code}"
            result["reasons"].append(f"{name}: the check after activation failed: {failed}")
            return result
        result["metrics"] = check.get("metrics")
        old_entry = previous.get(name)
        if self.previous is None:
            return result  # the first release: the verdict's notes say so once
        if old_entry is None:
            result["notes"].append(f"{name}: the previous release did not run it; gated on its check alone")
            return result
        assert self.previous is not None  # entries to compare come from a previous release
        old = self.kept_check(old_entry)
        if old is None:
            result["notes"].append(f"{name}: the previous release kept no check; accuracy not compared")
        else:
            result["reasons"] += [f"{name}: {drop}" for drop in accuracy_drops(check, old, self.args.accuracy_drop_max)]
        verdict = self.latency(name, entry, old_entry, result)
        if verdict is not None:
            result["latency"] = verdict
        if verdict is None or verdict["passed"]:
            pass
        elif verdict["noisy"]:
            result["reasons"].append(
                f"{name}: p50 {verdict['p50_ms']:.4g} ms is {verdict['ratio']:.2f}x the previous release's fastest "
                f"{min(verdict['previous_p50_ms']):.4g} ms (limit {verdict['limit']:.2f}x, not widened: run-to-run noise "
                f"{verdict['noise']:.0%} above edgeship_health_noise_max {self.args.noise_max:.0%} "
                f"in each of {verdict['rounds']} rounds of benches)")
        else:
            result["reasons"].append(
                f"{name}: p50 {verdict['p50_ms']:.4g} ms is {verdict['ratio']:.2f}x the previous release's "
                f"{sum(verdict['previous_p50_ms']) / 2:.4g} ms (limit {verdict['limit']:.2f}x: edgeship_health_latency_ratio_max "
                f"{self.args.latency_ratio_max:g}, run-to-run noise {verdict['noise']:.0%})")
        return result

    def latency(self, name: str, entry: dict, old_entry: dict, result: dict) -> dict | None:
        """Bench previous, new, previous; on a board noisier than --noise-max, again (up to --bench-rounds
        rounds in all), and judge by the quietest round."""
        assert self.previous is not None
        best: dict | None = None
        for round_number in range(1, max(1, self.args.bench_rounds) + 1):
            before, why_before = self.bench(self.previous, old_entry)
            new, why_new = self.bench(self.new, entry)
            after, why_after = self.bench(self.previous, old_entry)
            if new is None:
                result["reasons"].append(f"{name}: the bench after activation failed: {why_new}")
                return None
            if (before is None or after is None) and best is not None:
                return best  # an earlier round judged; this one could not
            if before is None or after is None:
                result["notes"].append(f"{name}: the previous release did not bench ({why_before or why_after}); latency not compared")
                return None
            verdict = latency_verdict([before, after], new, self.args.latency_ratio_max, self.args.noise_factor, self.args.noise_floor,
                                      self.args.latency_limit_max, self.args.noise_max)
            if best is None or verdict["noise"] < best["noise"]:
                best = verdict
            best["rounds"] = round_number  # how many rounds it took, whichever round judged
            if not verdict["noisy"]:
                break
        return best

    def run(self) -> dict:
        if os.path.realpath(self.current) != os.path.realpath(self.new):
            raise GateError(f"{self.current} does not point at {self.new}; the gate judges the release just activated")
        release = self.release(self.new)
        previous: dict = {}
        if self.previous is not None:
            try:
                previous = {entry_key(e): e for e in self.release(self.previous)["bench"] if isinstance(e, dict)}
            except GateError as error:
                previous = {}
                print(f"health_gate: note: {error}", file=sys.stderr)
        models = [self.model(entry, previous) for entry in release["bench"] if isinstance(entry, dict)]
        reasons = [r for m in models for r in m["reasons"]]
        notes = [n for m in models for n in m["notes"]]
        if self.previous is None:
            notes.insert(0, "first release on this board: nothing to compare with, gated on its check alone")
        verdict = {"release": self.new.name, "previous": self.previous.name if self.previous else None, "passed": not reasons,
                   "reasons": reasons, "notes": notes, "models": models, "checked_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        write_json(self.new / "health.json", verdict)
        return verdict


def write_json(path: Path, data: dict) -> None:
    """Replaced whole (a new file renamed over it), never written through a link."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "w") as handle:
        handle.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(temporary, path)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="health gate of a just-activated edgeship release")
    p.add_argument("--root", required=True, help="the deploy root (releases/ and current)")
    p.add_argument("--release", required=True, help="the release just activated")
    p.add_argument("--previous", default="", help="the release the board ran before ('' on the first release)")
    p.add_argument("--allow-cpu-fallback", action="store_true")
    p.add_argument("--max-samples", type=int, default=0)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--latency-ratio-max", type=float, default=1.5)
    p.add_argument("--noise-factor", type=float, default=2.0)
    p.add_argument("--noise-floor", type=float, default=0.02)
    p.add_argument("--latency-limit-max", type=float, default=0.0, help="the widened limit's ceiling (0: twice --latency-ratio-max)")
    p.add_argument("--noise-max", type=float, default=0.5, help="above this noise the limit is not widened and the board benched again")
    p.add_argument("--bench-rounds", type=int, default=3, help="rounds of benches at most while the noise is above --noise-max")
    p.add_argument("--accuracy-drop-max", type=float, default=0.01)
    p.add_argument("--timeout-s", type=float, default=600.0, help="bound on each check and bench")
    p.add_argument("--bench-arg", action="append", default=[], help="one argument for `edgeship-runtime bench` (repeat)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, stop)
    try:
        verdict = Gate(args).run()
    except (GateError, OSError) as error:
        print(f"health_gate: error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(verdict, sort_keys=True))
    return 0 if verdict["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
