"""File helpers every world shares (controller, toolchain images, boards): one sha256 of a file,
one of a folder tree, one way to write a file so that readers see all of it or none, and the
rules for paths something else made (a container's output, a manifest's file names): never
followed, kept inside their folder, regular files only."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
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


class UnsafePath(ValueError):
    """A path made by someone else (a container, a manifest, a board) that edgeship will not follow or open."""


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a folder")):
        if test(mode):
            return name
    return "a regular file" if stat.S_ISREG(mode) else "a special file"


def confined(root: Path | str, relative: object, what: str = "path") -> Path:
    """root / relative for a name someone else wrote (a manifest's file entry): refused unless it
    is a relative POSIX path without `..`, every folder on the way is a real folder inside root
    (no symbolic link) and the last part is a regular file. Checked with lstat, so nothing is
    followed; the caller opens the path it gets back."""
    root = Path(root)
    if not isinstance(relative, str) or not relative or "\0" in relative or "\\" in relative:
        raise UnsafePath(f"{what} {relative!r} is not a file name inside {root}")
    parts = relative.split("/")  # raw, not normalised: "./x" and "a//b" are refused, not tidied
    if relative.startswith("/") or any(part in ("..", ".", "") for part in parts):
        raise UnsafePath(f"{what} {relative!r} leaves {root} (absolute, or with '..'); an artifact names only its own files")
    current = root
    for index, part in enumerate(parts):
        current = current / part
        try:
            mode = os.lstat(current).st_mode
        except FileNotFoundError:
            raise UnsafePath(f"{what} {relative!r}: {current} does not exist") from None
        except OSError as error:
            raise UnsafePath(f"{what} {relative!r}: {current} cannot be read ({error.strerror})") from None
        last = index == len(parts) - 1
        if (last and not stat.S_ISREG(mode)) or (not last and not stat.S_ISDIR(mode)):
            raise UnsafePath(f"{what} {relative!r}: {current} is {_kind(mode)}, not a "
                             f"{'regular file' if last else 'folder'}; edgeship does not follow links or open special files")
    return current


@dataclass(frozen=True)
class TreeLimits:
    """What a folder someone else filled may hold: its files' and whole size, and how many entries."""

    file_bytes: int = 8 << 30
    total_bytes: int = 32 << 30
    entries: int = 100_000


def scan_tree(root: Path | str, limits: TreeLimits = TreeLimits(), what: str = "output") -> list[Path]:
    """Every regular file under root, walked with lstat and never followed; UnsafePath with one
    line naming the first symbolic link, hard link (a second name of a file outside the folder,
    perhaps), device, FIFO or socket found, or a file or tree over the limits."""
    root = Path(root)
    files: list[Path] = []
    total = entries = 0
    pending = [root]
    while pending:
        folder = pending.pop()
        try:
            listing = sorted(os.scandir(folder), key=lambda entry: entry.name)
        except OSError as error:
            raise UnsafePath(f"{what}: {folder} cannot be listed ({error.strerror})") from None
        for entry in listing:
            entries += 1
            if entries > limits.entries:
                raise UnsafePath(f"{what}: {root} holds more than {limits.entries} entries; refused")
            path = Path(entry.path)
            info = entry.stat(follow_symlinks=False)
            if stat.S_ISDIR(info.st_mode):
                pending.append(path)
                continue
            if not stat.S_ISREG(info.st_mode):
                raise UnsafePath(f"{what}: {path} is {_kind(info.st_mode)}; refused (only regular files are taken from it)")
            if info.st_nlink > 1:
                raise UnsafePath(f"{what}: {path} is a hard link ({info.st_nlink} names of one file); refused (only files of its own are taken)")
            if info.st_size > limits.file_bytes:
                raise UnsafePath(f"{what}: {path} is {info.st_size} bytes, over the {limits.file_bytes}-byte cap for one file; refused")
            total += info.st_size
            if total > limits.total_bytes:
                raise UnsafePath(f"{what}: {root} holds over {limits.total_bytes} bytes; refused")
            files.append(path)
    return files


def write_new(path: Path | str, data: bytes, mode: int = 0o644) -> Path:
    """Write a file that must not exist yet, never through a link: O_CREAT | O_EXCL | O_NOFOLLOW,
    for host writes into a folder something else could have filled."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), mode)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
    return Path(path)
