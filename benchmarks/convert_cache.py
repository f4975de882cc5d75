"""Cold conversion vs cached conversion of the same request, measured in one run.

    .venv/bin/python benchmarks/convert_cache.py   (after ./dev has made .venv)

Cold: a fresh artifacts folder, so the container runs. Cached: the identical request again,
which must return the existing artifact without starting a container (goal: under 1 s).
Also times the cached path through the CLI, interpreter start-up included (goal: at most 0.3 s;
edgeship/convert/hits.py answers it), beside `invoke --help convert`: Python, invoke, tasks.py and
the parse of convert's flags alone, the floor no cache hit gets under.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from edgeship.convert import Request, convert
from edgeship.examples import build_examples
from edgeship.images.build import build
from edgeship.images.engine import ensure_engine
from edgeship.images.locks import load_spec
from edgeship.paths import REPO_ROOT as ROOT

CLI_RUNS = 5  # a median over a few: the machine is shared, a single run says little


def main(example: str = "digits", quant: str = "int8", repeats: int = 5) -> None:
    client = ensure_engine()
    build(client, load_spec("tflite"))
    folder = build_examples(ROOT / "examples", names=(example,))[0]
    with tempfile.TemporaryDirectory(prefix="edgeship-bench-") as out:
        request = Request(target="tflite", model=folder / "model.onnx", quant=quant,
                          calib=folder / "calib" if quant == "int8" else None, eval=folder / "eval.npz", out=Path(out))
        started = time.perf_counter()
        artifact = convert(request, client=client)
        cold = time.perf_counter() - started
        cached = []
        for _ in range(repeats):
            started = time.perf_counter()
            assert convert(request, client=client) == artifact
            cached.append(time.perf_counter() - started)
        cli, floor = [], []
        command = [sys.executable, "-m", "invoke", "convert", "--target", "tflite", "--model", str(request.model), "--quant", quant,
                   "--eval", str(request.eval), "--out", out] + (["--calib", str(request.calib)] if request.calib else [])
        for _ in range(CLI_RUNS):
            started = time.perf_counter()
            result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
            cli.append(time.perf_counter() - started)
            assert result.stdout.strip().splitlines()[-1] == str(artifact)
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "invoke", "--help", "convert"], cwd=ROOT, capture_output=True, check=True)
            floor.append(time.perf_counter() - started)
    cached_median, cli_median = statistics.median(cached), statistics.median(cli)
    print(f"conversion cache benchmark: {example} / tflite / {quant}")
    print(f"  cold conversion (container):   {cold:8.3f} s")
    print(f"  cached conversion (in process): {cached_median:8.3f} s  (median of {repeats}; goal < 1 s: {'met' if cached_median < 1 else 'MISSED'})")
    print(f"  cached conversion (CLI):        {cli_median:8.3f} s  (median of {CLI_RUNS}, interpreter start included; goal <= 0.3 s: "
          f"{'met' if cli_median <= 0.3 else 'MISSED'})")
    print(f"  invoke --help convert (floor):  {statistics.median(floor):8.3f} s  (median of {CLI_RUNS}: Python, invoke, tasks.py, flags)")
    print(f"  cold / cached ratio:            {cold / cached_median:8.1f}x")


if __name__ == "__main__":
    main(*sys.argv[1:2])  # type: ignore[arg-type]  # an optional example name
