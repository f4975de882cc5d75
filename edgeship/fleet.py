"""The controller's side of a fleet deploy: what goes to each board, packed once, named by content.

`deploy.yml` calls `python -m edgeship.fleet plan` once per run (on the controller) with every
board's gathered facts. For each board it picks the artifacts of the board's target (and a
CPU artifact of the same model for the labelled fallback), builds or reuses the offline
wheelhouse for the board's architecture and Python, and packs both into one deterministic
tar with a SHA256SUMS file whose artifact lines come from the artifacts' own manifests.
The board checks those sums before anything is installed or activated; the controller does
not re-hash the artifact files on purpose, so a file that changed after conversion (or on
the way) is caught where it matters, on the board.

The release id is the hash of every board's bundle: the same artifacts and runtime give the
same id, which is what makes a second identical deploy a no-op (`changed=0`).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import io
import json
import os
import sys
import tarfile
import tempfile
from pathlib import Path

from edgeship.errors import EdgeshipError
from edgeship.lockfile import cache_root, sha256_file

RELEASE_SCHEMA = 1
# The pip extra that brings each runtime backend onto a board (see runtime/pyproject.toml).
BACKEND_EXTRAS = {"litert": "litert", "edgetpu": "litert", "onnxruntime": "onnxruntime", "rknnlite": "rknn",
                  # TensorRT comes with JetPack; ONNX Runtime runs the same ONNX where there is no GPU.
                  "tensorrt": "onnxruntime"}
BOARD_ARCH = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}


def _manifest(folder: Path) -> dict | None:
    try:
        return json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError):
        return None


def find_artifacts(root: Path) -> list[dict]:
    """Every finished artifact under root: model name, target, quant, folder, manifest."""
    found = []
    if not root.is_dir():
        return found
    for folder in sorted(root.iterdir()):
        if not folder.is_dir() or folder.name.startswith("."):
            continue
        manifest = _manifest(folder)
        if manifest is None or "target" not in manifest:
            continue
        target, quant = manifest["target"], manifest["options"].get("quant")
        model = folder.name.split(f"-{target}-{quant}-")[0]
        found.append({"model": model, "target": target, "quant": quant, "dir": folder, "manifest": manifest,
                      "mtime": (folder / "manifest.json").stat().st_mtime})
    return found


def _newest(artifacts: list[dict], model: str, target: str, quant: str) -> dict | None:
    matches = [a for a in artifacts if (a["model"], a["target"], a["quant"]) == (model, target, quant)]
    return max(matches, key=lambda a: (a["mtime"], a["dir"].name)) if matches else None


def board_selection(board: dict, artifacts: list[dict], models: list[str] | None, root: Path | str = "the artifacts root") -> list[dict]:
    """Per model: the board's own artifact (or None when its target has none yet) and a CPU one."""
    models = models or sorted({a["model"] for a in artifacts})
    selection = []
    for model in models:
        primary = _newest(artifacts, model, board["target"], board["quant"])
        cpu = None
        if board.get("cpu_target") and board["cpu_target"] != board["target"]:
            cpu = _newest(artifacts, model, board["cpu_target"], board["cpu_quant"])
        if primary is None and cpu is None:
            continue
        note = None if primary else f"no {board['target']} {board['quant']} artifact of {model}; its CPU artifact runs, labelled as a fallback"
        selection.append({"model": model, "primary": primary, "cpu": cpu, "note": note})
    if not selection:
        wanted = f"{board['target']}/{board['quant']}" + (f" or {board['cpu_target']}/{board['cpu_quant']}" if board.get("cpu_target") else "")
        raise EdgeshipError(f"board {board['host']}: no artifact of {', '.join(models) or 'any model'} for {wanted} under {root}; "
                            f"convert one first, e.g. `invoke convert --target {board['cpu_target'] or board['target']} --model MODEL.onnx`")
    return selection


def extras_for(selection: list[dict], configured: list[str] | None, demo: bool = False) -> tuple[str, ...]:
    """The runtime extras a board installs: as configured, or its artifacts' backends (plus
    `demo`, OpenCV for the camera demo, when the board shows it)."""
    if configured:
        extras = set(configured)
    else:
        backends = {a["manifest"]["runtime_backend"] for entry in selection for a in (entry["primary"], entry["cpu"]) if a}
        extras = {BACKEND_EXTRAS[b] for b in backends if BACKEND_EXTRAS.get(b)}
    return tuple(sorted(extras | ({"demo"} if demo else set())))


def _tarinfo(name: str, size: int) -> tarfile.TarInfo:
    """A member with no time, owner or mode of this machine in it: same files, same tar bytes."""
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime, info.uid, info.gid, info.uname, info.gname = size, 0o644, 0, 0, 0, "", ""
    return info


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    tar.addfile(_tarinfo(name, len(data)), io.BytesIO(data))


def _add_file(tar: tarfile.TarFile, name: str, path: Path) -> None:
    with open(path, "rb") as handle:
        tar.addfile(_tarinfo(name, path.stat().st_size), handle)


@functools.lru_cache(maxsize=1024)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    return sha256_file(Path(path))


def _sha256(path: Path) -> str:
    """sha256 of a file, hashed once per plan: boards of one platform share one wheelhouse.
    The cache is keyed by size and mtime, so a file changed in between is hashed again."""
    stat = path.stat()
    return _file_sha256(str(path), stat.st_size, stat.st_mtime_ns)


def pack_bundle(board: dict, selection: list[dict], wheelhouse: Path, extras: tuple[str, ...], bundles: Path, label: str = "") -> dict:
    """Write the board's deterministic bundle tar; return its path, sha256 and release.json content."""
    sums, members = [], []
    for wheel in sorted(wheelhouse.glob("*.whl")):
        digest = _sha256(wheel)
        sums.append((f"wheels/{wheel.name}", digest))
        members.append((f"wheels/{wheel.name}", wheel))
    artifact_dirs = {}
    for entry in selection:
        for artifact in (entry["primary"], entry["cpu"]):
            if artifact and artifact["dir"].name not in artifact_dirs:
                artifact_dirs[artifact["dir"].name] = artifact
    for name, artifact in sorted(artifact_dirs.items()):
        manifest_path = artifact["dir"] / "manifest.json"
        # The manifest names every file's sha256; the manifest itself is hashed here.
        sums.append((f"artifacts/{name}/manifest.json", _sha256(manifest_path)))
        members.append((f"artifacts/{name}/manifest.json", manifest_path))
        for relative, digest in sorted(artifact["manifest"]["files"].items()):
            sums.append((f"artifacts/{name}/{relative}", digest))
            members.append((f"artifacts/{name}/{relative}", artifact["dir"] / relative))
    runtime_wheel = next((w.name for w in wheelhouse.glob("edgeship_runtime-*.whl")), None)
    pip_wheel = next((w.name for w in wheelhouse.glob("pip-*.whl")), None)
    release = {
        "schema": RELEASE_SCHEMA,
        "host": board["host"],
        "label": label,
        "target": board["target"],
        "cpu_target": board.get("cpu_target"),
        "arch": board["arch"],
        "python": board["python"],
        "extras": list(extras),
        "runtime_wheel": runtime_wheel,
        "pip_wheel": pip_wheel,
        "bench": [{"model": e["model"], "artifact": e["primary"]["dir"].name if e["primary"] else None,
                   "backend": e["primary"]["manifest"]["runtime_backend"] if e["primary"] else None,
                   "cpu_artifact": e["cpu"]["dir"].name if e["cpu"] else None, "note": e["note"]} for e in selection],
    }
    release_bytes = (json.dumps(release, indent=2, sort_keys=True) + "\n").encode()
    sums.append(("release.json", hashlib.sha256(release_bytes).hexdigest()))
    sums_text = "".join(f"{digest}  {name}\n" for name, digest in sorted(sums))
    bundles.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=bundles, prefix=".bundle-", suffix=".tar")
    os.close(handle)
    try:
        with tarfile.open(temporary, "w", format=tarfile.GNU_FORMAT) as tar:
            _add_bytes(tar, "release.json", release_bytes)
            for name, path in sorted(members):
                if not path.is_file():
                    raise EdgeshipError(f"{path} is listed in {path.parent}/manifest.json but missing; convert the artifact again")
                _add_file(tar, name, path)
            _add_bytes(tar, "SHA256SUMS", sums_text.encode())  # last: its presence means the rest was extracted
        digest = _sha256(Path(temporary))
        final = bundles / f"{digest[:24]}.tar"
        os.replace(temporary, final)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return {"bundle": str(final), "bundle_sha256": digest, "release": release,
            "artifacts": sorted(artifact_dirs), "files": len(sums)}


def make_plan(boards: list[dict], artifacts_root: Path, models: list[str] | None = None, bundles: Path | None = None, label: str = "") -> dict:
    from edgeship.runtime_wheels import ensure_runtime_wheelhouse

    bundles = bundles or cache_root() / "bundles"
    artifacts = find_artifacts(artifacts_root)
    if not artifacts:
        raise EdgeshipError(f"no artifacts under {artifacts_root}; run `invoke convert ...` (or `./dev main`) first, "
                            "or point edgeship_deploy_artifacts_root at the folder that holds them")
    plans = {}
    for board in sorted(boards, key=lambda b: b["host"]):
        arch = BOARD_ARCH.get(board["arch"])
        if arch is None:
            raise EdgeshipError(f"board {board['host']}: architecture {board['arch']!r} has no wheels; edgeship supports x86_64 and aarch64 boards")
        board = dict(board, arch=arch, python=".".join(str(board["python"]).split(".")[:2]))
        selection = board_selection(board, artifacts, models, artifacts_root)
        extras = extras_for(selection, board.get("extras"), str(board.get("demo", False)).lower() in ("true", "1", "yes"))
        wheelhouse = ensure_runtime_wheelhouse(arch, board["python"], extras)
        plans[board["host"]] = pack_bundle(board, selection, wheelhouse, extras, bundles, label)
    release_id = hashlib.sha256("".join(f"{h}:{p['bundle_sha256']}\n" for h, p in sorted(plans.items())).encode()).hexdigest()[:16]
    return {"release_id": release_id, "hosts": plans}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edgeship.fleet", description="controller-side helpers for the fleet playbooks")
    commands = parser.add_subparsers(dest="command", required=True)
    plan_parser = commands.add_parser("plan", help="pack each board's bundle; boards as a JSON list on stdin; plan JSON on stdout")
    plan_parser.add_argument("--artifacts", required=True, help="artifacts root folder")
    plan_parser.add_argument("--models", default="", help="comma-separated model names (default: every model found)")
    plan_parser.add_argument("--label", default="", help="free-text label kept in release.json (a new label makes a new release)")
    summary_parser = commands.add_parser("summary", help="print the benchmark summary table of results/<run-id>")
    summary_parser.add_argument("run_dir")
    summary_parser.add_argument("--hosts", default="", help="comma-separated hosts that were asked to run (missing ones are reported)")
    args = parser.parse_args(argv)
    try:
        if args.command == "plan":
            boards = json.load(sys.stdin)
            models = [m for m in args.models.split(",") if m] or None
            print(json.dumps(make_plan(boards, Path(args.artifacts), models, label=args.label)))
            return 0
        from edgeship.fleet_report import write_summary

        print(write_summary(Path(args.run_dir), [h for h in args.hosts.split(",") if h]))
        return 0
    except EdgeshipError as error:
        print(f"edgeship: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
