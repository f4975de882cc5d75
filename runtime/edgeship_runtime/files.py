"""File helpers every world shares (controller, toolchain images, boards): one sha256 of a file,
one of a folder tree, and one way to write a file so that readers see all of it or none."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


def sha256_file(path: Path | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tree_sha256(root: Path, paths=None) -> str:
    """sha256 over the relative names and contents of files under root (all files, or the given
    ones), in sorted order: a folder's identity, independent of time stamps and owners."""
    root = Path(root)
    files = sorted(Path(p) for p in paths) if paths is not None else sorted(p for p in root.rglob("*") if p.is_file())
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + sha256_file(path).encode() + b"\n")
    return digest.hexdigest()


def atomic_write_bytes(path: Path | str, data: bytes) -> Path:
    """Write to a temporary file beside `path`, then rename it over `path` (atomic on POSIX)."""
    path = Path(path)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: Path | str, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())
