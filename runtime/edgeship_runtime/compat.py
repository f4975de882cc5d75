"""Will this board's accelerator runtime load this artifact? Checked before anything runs.

RKNN models carry the version of the rknn-toolkit2 that built them; a board whose
`librknnrt.so` is older refuses them at load time with the classic
"Invalid RKNN model version" (or, worse, misbehaves), and a model compiled for one
Rockchip chip does not run on another. Both are caught here, from the manifest and the
board, with a message that says what to install or rebuild, so a deploy refuses the
release instead of activating it.
"""

from __future__ import annotations

import re

from edgeship_runtime.errors import ArtifactError

# Chips that share one NPU design and load each other's models.
RKNN_FAMILIES = ({"rk3566", "rk3568"},)


def _version(text: str | None) -> tuple[int, ...] | None:
    found = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", text or "")
    return tuple(int(part) for part in found.groups() if part is not None) if found else None


def _same_chip(a: str, b: str) -> bool:
    return a == b or any(a in family and b in family for family in RKNN_FAMILIES)


def rknn_compatibility(manifest: dict, board: dict) -> dict:
    """{"status": "ok"|"no-runtime"|"newer-runtime", ...} or ArtifactError on a mismatch."""
    model_file = manifest["artifact"]["file"]
    toolkit = manifest.get("toolchain", {}).get("rknn-toolkit2")
    platform = manifest.get("options", {}).get("platform")
    npu = board["accelerators"]["rknpu"]
    chips = [entry.split(",", 1)[1] for entry in board["board"].get("compatible", []) if entry.startswith("rockchip,rk")]
    if platform and chips and not any(_same_chip(platform, chip) for chip in chips):
        raise ArtifactError(f"{model_file} was compiled for {platform} but this board is {chips[0]} ({board['board'].get('model')}); "
                            f"convert again with --option platform={chips[0]}")
    library, runtime = npu.get("librknnrt"), npu.get("librknnrt_version")
    result = {"toolkit": toolkit, "platform": platform, "librknnrt": library, "librknnrt_version": runtime}
    if not library:
        return {**result, "status": "no-runtime"}
    built, have = _version(toolkit), _version(runtime)
    if built is None or have is None:
        raise ArtifactError(f"cannot compare versions for {model_file}: manifest toolkit {toolkit!r}, {library} version {runtime!r}; "
                            f"install a librknnrt.so that reports its version (from Rockchip's rknn-toolkit2 release)")
    if have[:2] < built[:2] or have[0] != built[0]:
        raise ArtifactError(f"{model_file} was built by rknn-toolkit2 {toolkit} but this board's {library} is version {runtime}: "
                            f"RKNN Lite would fail with \"Invalid RKNN model version\"; install librknnrt {built[0]}.{built[1]}.x "
                            f"(rknpu2 runtime/Linux/librknn_api/aarch64 in Rockchip's rknn-toolkit2 {toolkit} release) on the board, "
                            f"or convert with the rknn-toolkit2 that matches {runtime}")
    return {**result, "status": "ok" if have[:2] == built[:2] else "newer-runtime"}


CHECKS = {"rknnlite": rknn_compatibility}


def compatibility(manifest: dict, board: dict) -> dict | None:
    """The compatibility record of an artifact on this board (None when its backend has no
    runtime to match); raises ArtifactError on a mismatch."""
    check = CHECKS.get(manifest.get("runtime_backend"))
    return check(manifest, board) if check else None
