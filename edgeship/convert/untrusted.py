"""What a toolchain container leaves behind is input from something edgeship does not trust: a
vendor compiler run on a model the user did not write. Its folder is walked with lstat before
anything in it is read, owned or moved (no symbolic links, hard links, devices, FIFOs or
sockets, nothing over the size caps), and the files the controller reads from it are opened
as regular files only, never followed."""

from __future__ import annotations

import os
from pathlib import Path

from edgeship.errors import EdgeshipError
from edgeship_runtime.files import TreeLimits, UnreadableFile, UnsafePath, confined, read_json_object, scan_tree

CONVERSION_LIMITS = TreeLimits()  # an artifact folder: 8 GiB a file, 32 GiB in all
# the cleaned graph is one protobuf (2 GiB at most) and its report
GRAPH_LIMITS = TreeLimits(file_bytes=2 << 30, total_bytes=(2 << 30) + (64 << 20), entries=64)
JSON_BYTES = 64 << 20  # a manifest or a clean-up report; real ones are a few hundred kB


def take_output(folder: Path, limits: TreeLimits, what: str, image: str) -> list[Path]:
    """The regular files of `folder` once its container (of toolchain image folder `image`) is
    gone; EdgeshipError naming the first thing refused. As root, the folder becomes root's (the
    container wrote as its own user), never through a link."""
    try:
        files = scan_tree(folder, limits, what)
    except UnsafePath as error:
        raise EdgeshipError(f"{error}; none of it is kept, a toolchain that leaves links or special files is not trusted: rebuild "
                            f"its image (`invoke images.build --target {image} --rebuild`), and if it happens again, report the model "
                            f"and image") from None
    if os.getuid() == 0:
        # os.walk follows no links, and the scan found none; its folders and files are all there is
        folders = [Path(path) for path, _, _ in os.walk(folder)]
        for path in [*folders, *files]:
            os.chown(path, 0, 0, follow_symlinks=False)
    return files


def is_regular(path: Path) -> bool:
    """Whether path is a regular file itself, reached through no link (files.confined's rule)."""
    try:
        confined(path.parent, path.name, "file")
    except UnsafePath:
        return False
    return True


def read_json(folder: Path, name: str, what: str) -> dict:
    """A JSON object a container wrote as `name` in `folder`: a regular file (never followed),
    at most JSON_BYTES, an object at its top."""
    try:
        return read_json_object(confined(folder, name, what), JSON_BYTES, what)
    except UnreadableFile as error:
        if error.problem in ("unsafe", "unreadable"):
            raise EdgeshipError(f"{error}; the container's output is incomplete or not its own: convert again") from None
        if error.problem == "too big":
            raise EdgeshipError(f"{error}; refused (a real one is a few hundred kB)") from None
        raise EdgeshipError(f"{what} {folder / name} is not a JSON object ({error.problem}); the container's output is corrupt: "
                            "convert again") from None


def artifact_file(staging: Path, manifest: dict) -> tuple[Path, str]:
    """The artifact a manifest names, confined to its folder and a regular file, with its sha256."""
    entry = manifest.get("artifact")
    name, sha256 = (entry.get("file"), entry.get("sha256")) if isinstance(entry, dict) else (None, None)
    if not isinstance(sha256, str):
        raise EdgeshipError(f"the manifest in {staging} names no artifact sha256; the conversion output is corrupt: convert again")
    try:
        return confined(staging, name, "the manifest's artifact file"), sha256
    except UnsafePath as error:
        raise EdgeshipError(f"{error}; the conversion output is refused") from None
