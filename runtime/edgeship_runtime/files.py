"""File helpers every world shares (controller, toolchain images, boards): one sha256 of a file,
one of a folder tree, one way to write a file so that readers see all of it or none, and the
rules for paths something else made (a container's output, a manifest's file names): never
followed, kept inside their folder, regular files only."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO


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


class UnreadableFile(ValueError):
    """A file made by someone else that edgeship will not read, or whose content is not what it must be
    (too big, not UTF-8, not JSON, not an object); its message names the file and why, in one line,
    and `problem` says which, for callers that word it their own way."""

    def __init__(self, message: str, problem: str = "unsafe", cause: BaseException | None = None):
        super().__init__(message)
        self.problem = problem  # "unsafe" (a link, a special file), "unreadable", "too big", "not UTF-8", "not JSON", "too deep", "not an object"
        self.cause = cause  # the decoder's own error, where there was one


class UnsafePath(UnreadableFile):
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
    # a file with other names: refused where edgeship takes ownership of the files (a container's
    # output); allowed where every file read is listed and hashed first (an artifact), since a
    # second name is the same bytes, never a path followed elsewhere
    hard_links: bool = False


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
            if info.st_nlink > 1 and not limits.hard_links:
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


@contextlib.contextmanager
def open_regular(path: Path | str, limit: int, what: str = "file") -> Iterator[BinaryIO]:
    """`path` open for reading when it is a regular file of at most `limit` bytes: never through a
    link in its last part (O_NOFOLLOW; the caller confines the folders on the way), never waiting
    on a FIFO (O_NONBLOCK), checked on the open descriptor (fstat), so what is checked is what is
    read. UnsafePath otherwise, one line naming `what`, the path and why."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as error:
        if error.errno == getattr(os, "ELOOP", None) or os.path.islink(path):
            raise UnsafePath(f"{what} {path} is a symbolic link; edgeship does not follow links") from None
        raise UnsafePath(f"{what} {path} cannot be read ({error.strerror})", "unreadable", error) from None
    with os.fdopen(descriptor, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise UnsafePath(f"{what} {path} is {_kind(info.st_mode)}, not a regular file; edgeship does not open special files")
        if info.st_size > limit:
            raise UnsafePath(f"{what} {path} is {info.st_size} bytes, over the {_size(limit)} it may have", "too big")
        yield handle


def _size(count: int) -> str:
    return f"{count >> 20} MiB" if count >= 1 << 20 else f"{count} bytes"


def read_bounded(path: Path | str, limit: int, what: str = "file") -> bytes:
    """The bytes of a regular file someone else made (see open_regular), at most `limit`: a file
    that grows while it is read is refused too, never read past the bound."""
    with open_regular(path, limit, what) as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise UnsafePath(f"{what} {path} grew past the {_size(limit)} it may have while it was read", "too big")
    return data


def _no_constant(name: str):
    raise ValueError(f"holds {name}, which is not a JSON number")


def read_json_object(path: Path | str, limit: int, what: str = "file", constants: bool = True) -> dict:
    """The JSON object in a file someone else made: read as read_bounded does, UTF-8, whole JSON,
    not nested past Python's parser, an object at its top (and without NaN or Infinity, which
    JSON does not have, when `constants` is False). UnreadableFile otherwise, one line naming the
    file and what is wrong with it."""
    data = read_bounded(path, limit, what)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise UnreadableFile(f"{what} {path} is not UTF-8 text (byte {data[error.start]:#04x} at offset {error.start})", "not UTF-8",
                             error) from None
    try:
        value = json.loads(text) if constants else json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as error:
        raise UnreadableFile(f"{what} {path} is not whole JSON ({error})", "not JSON", error) from None
    except RecursionError:
        raise UnreadableFile(f"{what} {path} is JSON nested too deeply to read", "too deep") from None
    except ValueError as error:  # NaN or Infinity refused
        raise UnreadableFile(f"{what} {path} {error}", "not JSON", error) from None
    if not isinstance(value, dict):
        kind = {list: "a list", str: "a string", bool: "true or false", type(None): "null"}.get(type(value), "a number")
        raise UnreadableFile(f"{what} {path} holds {kind}, not a JSON object", "not an object")
    return value
