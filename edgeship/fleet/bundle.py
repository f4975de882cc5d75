"""One deterministic tar per board: the release's wheels and artifacts, release.json, and a
SHA256SUMS file whose artifact lines come from the artifacts' own manifests (the controller does
not re-hash artifact files on purpose: a file that changed after conversion, or on the way, is
caught where it matters, on the board)."""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import tarfile
import tempfile
from pathlib import Path

from edgeship.errors import EdgeshipError
from edgeship_runtime.files import sha256_file

RELEASE_SCHEMA = 1


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


def pack_bundle(board: dict, selection: list[dict], wheelhouse: Path, extras: tuple[str, ...], bundles: Path, label: str = "",
                device_nodes: tuple[str, ...] = ()) -> dict:
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
        # the board's accelerator device nodes (its target's), which services may open
        "device_allow": list(device_nodes),
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
