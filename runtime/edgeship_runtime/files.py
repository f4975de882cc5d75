"""File helpers every world shares (controller, toolchain images, boards): one sha256 of a file,
one of a folder tree, and one way to write a file so that readers see all of it or none."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
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


@contextlib.contextmanager
def staged_file(path: Path | str, suffix: str = "") -> Iterator[Path]:
    """A temporary path beside `path` to write to; renamed over `path` (atomic on POSIX) when the
    block ends normally, removed when it raises. `suffix` keeps an extension writers need
    (OpenCV picks a video container by it)."""
    path = Path(path)
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial" + suffix)
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def staged_dir(path: Path | str) -> Iterator[Path]:
    """A fresh folder beside `path` to fill; it replaces `path` when the block ends normally and
    is removed when it raises, so `path` is always either absent, the old one, or complete."""
    path = Path(path)
    staging = path.with_name(f".{path.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        yield staging
        if path.exists():
            shutil.rmtree(path)
        staging.rename(path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def atomic_write_bytes(path: Path | str, data: bytes) -> Path:
    """Write a whole file so that readers see all of it or none."""
    with staged_file(path) as temporary:
        temporary.write_bytes(data)
    return Path(path)


def atomic_write_text(path: Path | str, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())
