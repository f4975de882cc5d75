"""Time to result: `./dev main` in a clean clone, first as a new user meets it, then again with
nothing changed; every phase of both runs and their totals against the goals (first run under
22 minutes on 2 cores, second under 5: issue 29).

    .venv/bin/python benchmarks/main_job.py --clone /tmp/edgeship-clone [--fresh] [--runs 2] [-- MAIN ARGS]

With `--task test` it times `./dev test` the same way (CI's command; its tiers are the phases),
against a first run of 45 minutes: CI gives 90 on 2 cores and a fresh run must stay well under 60.

The clone is made from this checkout's HEAD (what CI would get) and gets its own `.venv`,
examples, artifacts and results. `--fresh` also removes every edgeship image from the Docker
engine, prunes its build cache and points EDGESHIP_CACHE at a new folder inside the clone, so
wheelhouses come from PyPI again, the base image is bootstrapped from Debian's archive again and
every toolchain and board image is built again. The Docker engine itself stays installed (a
machine without it spends one apt transaction more in `./dev setup`, which this measures too
when the engine is absent). It stops any simulated fleet of this checkout first: the clone's
fleet uses the same ports.

Figures come from each run's wall clock and its results/<run-id>/timings.json (the main job's
phases, which overlap: images build while the fleet comes up and conversions start).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from edgeship.paths import REPO_ROOT

# Goals per task: the main job's first run on a fresh machine and its second; the tests' fresh run
# must stay well under CI's 60 minutes (2 cores, 90-minute limit).
GOALS_S = {"main": {"first": 22 * 60, "second": 5 * 60}, "test": {"first": 45 * 60, "second": 25 * 60}}


def remove_edgeship_images() -> int:
    """Every edgeship/* image (toolchains, bases, boards) and the build cache: a fresh engine's state."""
    listed = subprocess.run(["docker", "images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"], capture_output=True, text=True, check=True)
    ours = sorted({line.split()[1] for line in listed.stdout.splitlines() if line.startswith("edgeship/")})
    containers = subprocess.run(["docker", "ps", "-aq", "--filter", "label=io.edgeship.sim"], capture_output=True, text=True).stdout.split()
    if containers:
        subprocess.run(["docker", "rm", "-f", *containers], capture_output=True)
    for _ in range(5):  # a parent listed before its child image is refused ("has dependent child images"): go round again
        left = [image for image in ours if subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode == 0]
        if not left:
            break
        subprocess.run(["docker", "rmi", "-f", *left], capture_output=True)
    else:
        sys.exit(f"main_job.py: {' '.join(left)} could not be removed (an image or container of another build uses it); "
                 "remove it, then run again: a fresh run must bootstrap every image")
    subprocess.run(["docker", "builder", "prune", "-af"], capture_output=True)
    return len(ours)


def run_task(clone: Path, env: dict, task: str, task_args: list[str], log: Path) -> tuple[float, int, dict]:
    """Run `./dev TASK` in the clone; the phases are the main job's timings.json, or for the tests
    the spans between the tiers' "=== edgeship tests: ... ===" lines."""
    before = set((clone / "results").glob("2*")) if (clone / "results").is_dir() else set()
    began = time.monotonic()
    marks: list[tuple[str, float]] = []
    with log.open("w") as out, subprocess.Popen(["./dev", task, *task_args], cwd=clone, env=env, stdout=subprocess.PIPE,
                                                stderr=subprocess.STDOUT, text=True) as process:
        assert process.stdout is not None
        for line in process.stdout:
            out.write(line)
            out.flush()  # the log is followed while the task runs
            if line.startswith("=== edgeship tests: "):
                marks.append((line.removeprefix("=== edgeship tests: ").strip(" =\n"), time.monotonic() - began))
    code = process.returncode
    seconds = time.monotonic() - began
    if task == "test":
        ends = [at for _, at in marks[1:]] + [seconds]
        return seconds, code, {name: {"start_s": at, "end_s": end, "seconds": end - at} for (name, at), end in zip(marks, ends)}
    runs = sorted(set((clone / "results").glob("2*")) - before)
    timings = json.loads((runs[-1] / "timings.json").read_text()) if runs and (runs[-1] / "timings.json").is_file() else {}
    return seconds, code, timings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clone", required=True, type=Path, help="folder for the clean clone (made anew)")
    parser.add_argument("--fresh", action="store_true", help="remove edgeship's images and build cache, use an empty EDGESHIP_CACHE")
    parser.add_argument("--runs", type=int, default=2, help="main job runs, one after another (default 2)")
    parser.add_argument("--task", choices=sorted(GOALS_S), default="main", help="what to time: ./dev main (default) or ./dev test")
    parser.add_argument("main_args", nargs="*", help="arguments for the task (after --)")
    args = parser.parse_args()

    subprocess.run([str(REPO_ROOT / "dev"), "sim.down"], cwd=REPO_ROOT, capture_output=True)
    if args.clone.exists():
        shutil.rmtree(args.clone)
    subprocess.run(["git", "clone", "--quiet", str(REPO_ROOT), str(args.clone)], check=True)
    env = dict(os.environ)
    env.pop("VIRTUAL_ENV", None)
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if not p.startswith(str(REPO_ROOT)))
    if args.fresh:
        env["EDGESHIP_CACHE"] = str(args.clone / ".fresh-cache")
        print(f"fresh: removed {remove_edgeship_images()} edgeship images and the build cache; EDGESHIP_CACHE={env['EDGESHIP_CACHE']}",
              flush=True)
    commit = subprocess.run(["git", "-C", str(args.clone), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print(f"./dev {args.task} in a clean clone of {commit} at {args.clone}, {os.cpu_count()} CPUs", flush=True)
    results = []
    for number in range(1, args.runs + 1):
        log = args.clone.parent / f"{args.clone.name}-{args.task}-{number}.log"
        seconds, code, timings = run_task(args.clone, env, args.task, args.main_args, log)
        results.append((seconds, code, timings))
        print(f"run {number}: {seconds / 60:.1f} min, exit {code} (log {log})", flush=True)
        for phase, span in timings.items():
            print(f"    {phase:<16} {span['start_s']:>7.0f} s -> {span['end_s']:>7.0f} s   {span['seconds']:>7.0f} s", flush=True)
    for label, (seconds, code, _) in zip(("first", "second"), results):
        goal = GOALS_S[args.task][label]
        print(f"{label} run: {seconds / 60:.1f} min = {seconds / goal:.2f} x the goal of {goal // 60} min"
              f"{'' if code == 0 else f' (exit {code})'}")
    if len(results) >= 2:
        print(f"second / first = {results[1][0] / results[0][0]:.2f}")
    return 0 if all(code == 0 for _, code, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
