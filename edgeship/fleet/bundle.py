"""One deterministic tar per board: the release's wheels and artifacts, release.json, and a
SHA256SUMS file whose artifact lines come from the artifacts' own manifests.

An artifact folder is input (a conversion container filled it, a user may have copied it): only
the files its manifest lists are packed, each a regular file inside the folder reached through
no link (`files.confined`), hashed as it goes into the tar and refused unless it is the file the
manifest lists. The board checks the sums again after the copy."""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import re
import stat
import tarfile
import tempfile
from pathlib import Path

from edgeship.errors import EdgeshipError
from edgeship_runtime import names
from edgeship_runtime.files import UnsafePath, confined, sha256_file

RELEASE_SCHEMA = 1
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _tarinfo(name: str, size: int) -> tarfile.TarInfo:
    """A member with no time, owner or mode of this machine in it: same files, same tar bytes."""
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime, info.uid, info.gid, info.uname, info.gname = size, 0o644, 0, 0, 0, "", ""
    return info


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    tar.addfile(_tarinfo(name, len(data)), io.BytesIO(data))


class _Hashing:
    """A file read by tarfile, hashed on the way: what is checked is what is packed."""

    def __init__(self, handle):
        self.handle, self.digest = handle, hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.handle.read(size)
        self.digest.update(data)
        return data


def _add_file(tar: tarfile.TarFile, name: str, path: Path) -> str:
    """Pack `path` (never through a link: O_NOFOLLOW, a regular file) as `name`; its sha256."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as error:
        raise EdgeshipError(f"{path} cannot be packed ({error.strerror}); convert the artifact again") from None
    with os.fdopen(descriptor, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise EdgeshipError(f"{path} is not a regular file; only an artifact's own files are packed: convert the artifact again")
        reader = _Hashing(handle)
        tar.addfile(_tarinfo(name, info.st_size), reader)  # tarfile only calls read()
    return reader.digest.hexdigest()


def _listed(artifact: dict) -> list[tuple[str, Path, str]]:
    """(relative name, path, listed sha256) of every file an artifact's manifest lists, each
    confined to its folder; EdgeshipError (one line naming the manifest) otherwise."""
    folder = artifact["dir"]
    where = folder / "manifest.json"
    try:  # the folder's name is a folder on the board and a word in its playbook tasks
        names.check(folder.name, f"artifact folder {folder}", "rename it, or convert the model again")
    except names.UnsafeName as error:
        raise EdgeshipError(str(error)) from None
    listed = artifact["manifest"].get("files")
    if not isinstance(listed, dict) or not listed:
        raise EdgeshipError(f"{where}: files is not a map of file name -> sha256; convert the artifact again")
    members = []
    for relative, digest in sorted(listed.items()):
        if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
            raise EdgeshipError(f"{where}: files[{relative!r}] is {digest!r}, not a sha256; convert the artifact again")
        try:
            path = confined(folder, relative, f"{where}: files entry")
        except UnsafePath as error:
            raise EdgeshipError(f"{error}; only an artifact's own files are packed: convert the artifact again") from None
        members.append((relative, path, digest))
    return members


@functools.lru_cache(maxsize=1024)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    return sha256_file(Path(path))


def _sha256(path: Path) -> str:
    """sha256 of a file, hashed once per plan: boards of one platform share one wheelhouse.
    The cache is keyed by size and mtime, so a file changed in between is hashed again."""
    info = path.stat()
    return _file_sha256(str(path), info.st_size, info.st_mtime_ns)


def pack_bundle(board: dict, selection: list[dict], wheelhouse: Path, extras: tuple[str, ...], bundles: Path, label: str = "",
                device_nodes: tuple[str, ...] = (), packed: dict | None = None) -> dict:
    """Write the board's deterministic bundle tar; return its path, sha256 and release.json content.

    A bundle names no board: boards of one platform, target and selection get the same bytes, and
    with `packed` (a dict kept for one plan) the same bundle, packed and hashed once, however many
    boards share it; what decides it (release.json and every member's path and listed sha256) keys it."""
    sums: list[tuple[str, str]] = []
    members: list[tuple[str, Path, str | None]] = []  # (tar name, path, the sha256 it must have, or None: hashed as packed)
    for wheel in sorted(wheelhouse.glob("*.whl")):
        members.append((f"wheels/{wheel.name}", wheel, _sha256(wheel)))
    artifact_dirs = {}
    for entry in selection:
        for artifact in (entry["primary"], entry["cpu"]):
            if artifact and artifact["dir"].name not in artifact_dirs:
                artifact_dirs[artifact["dir"].name] = artifact
    for name, artifact in sorted(artifact_dirs.items()):
        listed = _listed(artifact)
        try:  # the manifest names every file's sha256; the manifest itself is hashed as it is packed
            manifest_path = confined(artifact["dir"], "manifest.json", "the manifest")
        except UnsafePath as error:
            raise EdgeshipError(f"{error}; convert the artifact again") from None
        members.append((f"artifacts/{name}/manifest.json", manifest_path, None))
        members += [(f"artifacts/{name}/{relative}", path, digest) for relative, path, digest in listed]
    runtime_wheel = next((w.name for w in wheelhouse.glob("edgeship_runtime-*.whl")), None)
    pip_wheel = next((w.name for w in wheelhouse.glob("pip-*.whl")), None)
    release = {
        "schema": RELEASE_SCHEMA,
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
    decided_by = hashlib.sha256(release_bytes + "".join(f"{name}\0{path}\0{expected}\n" for name, path, expected in sorted(
        members, key=lambda member: member[0])).encode()).hexdigest()
    if packed is not None and decided_by in packed:
        return dict(packed[decided_by])
    bundles.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=bundles, prefix=".bundle-", suffix=".tar")
    os.close(handle)
    try:
        with tarfile.open(temporary, "w", format=tarfile.GNU_FORMAT) as tar:
            _add_bytes(tar, "release.json", release_bytes)
            for name, path, expected in sorted(members, key=lambda member: member[0]):
                digest = _add_file(tar, name, path)
                if expected is not None and digest != expected:
                    raise EdgeshipError(f"{path}: its sha256 {digest[:12]}... is not the {expected[:12]}... its manifest lists (it changed "
                                        f"after conversion); convert the artifact again, or restore the file")
                sums.append((name, digest))
            sums.append(("release.json", hashlib.sha256(release_bytes).hexdigest()))
            sums_text = "".join(f"{digest}  {name}\n" for name, digest in sorted(sums))
            _add_bytes(tar, "SHA256SUMS", sums_text.encode())  # last: its presence means the rest was extracted
        digest = _sha256(Path(temporary))
        final = bundles / f"{digest[:24]}.tar"
        os.replace(temporary, final)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    result = {"bundle": str(final), "bundle_sha256": digest, "release": release,
              "artifacts": sorted(artifact_dirs), "files": len(members) + 1}
    if packed is not None:
        packed[decided_by] = result
    return dict(result)
