"""The lines `invoke convert` prints about a finished artifact: accuracy against fp32, then
what its target has to say (op placement, toolchain checks)."""

from __future__ import annotations

import json
from pathlib import Path

from edgeship.convert.request import find_target


def summary(artifact_dir: Path) -> list[str]:
    manifest = json.loads((artifact_dir / "manifest.json").read_text())
    accuracy = manifest["accuracy"]
    lines = []
    if accuracy.get("measured_with"):
        lines.append(f"accuracy measured with {accuracy['measured_with']}")
    for name, figures in accuracy["outputs"].items():
        agreement = figures.get("top1_agreement")
        lines.append(f"accuracy of {name!r} vs fp32: cosine min {figures['cosine_min']:.5f}"
                     + (f", top-1 agreement {agreement:.2%}" if agreement is not None else "")
                     + f" ({'within' if figures['passed'] else 'BELOW'} tolerance)")
    labelled = accuracy.get("labelled_accuracy")
    if labelled:
        lines.append(f"labelled accuracy on {labelled['samples']} samples: fp32 {labelled['fp32']:.2%}, "
                     f"converted {labelled['converted']:.2%} ({(labelled['converted'] - labelled['fp32']) * 100:+.2f} points)")
    ops_path = artifact_dir / "ops.json"
    ops = json.loads(ops_path.read_text()) if ops_path.exists() else {}
    return lines + find_target(manifest["target"]).converter.summary(artifact_dir, manifest, ops)
