"""The command line's values, checked where argparse reads them: numbers finite and in range (a
`--min-s 1e308` would never end, `--instances 0` or `--fps nan` mean nothing), sizes bounded
before anything is allocated, output paths checked before any work is done. A bad value is one
line, exit 2, through `OneLineParser`."""

from __future__ import annotations

import argparse
import math
import os
import re
import stat
import sys
from pathlib import Path

PREFIX = "edgeship-runtime: error: "
DAY_S = 86_400.0
MAX_SIDE = 8192  # a frame side; 8192x8192x3 is 192 MiB, already more than a board's camera gives


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad command line is one line on stderr (no usage block), exit 2."""

    def error(self, message: str):
        # "argument --max-s: 0.0 must be ..." -> "--max-s 0.0 must be ...": the flag, then what is wrong with its value
        message = re.sub(r"^argument ([^:]+): ", lambda found: found.group(1).split("/")[0] + " ", message)
        print(PREFIX + " ".join(message.split()), file=sys.stderr)
        sys.exit(2)


def _number(text: str, cast):
    try:
        value = cast(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"{text!r} is not {'a whole number' if cast is int else 'a number'}") from None
    if cast is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def count(low: int = 1, high: int = 1_000_000_000, why: str = ""):
    """A whole number in [low, high]."""

    def parse(text: str) -> int:
        value = _number(text, int)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} must be from {low} to {high}{' (' + why + ')' if why else ''}")
        return value

    parse.__name__ = "count"
    return parse


def seconds(positive: bool = False, high: float = DAY_S, why: str = ""):
    """A finite number of seconds, >= 0 (or > 0), at most `high` (a day: no bound that never ends)."""

    def parse(text: str) -> float:
        value = _number(text, float)
        if positive and value <= 0:
            raise argparse.ArgumentTypeError(f"{value} must be greater than 0{' (' + why + ')' if why else ''}")
        if not 0 <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} must be from 0 to {high:g} seconds{' (' + why + ')' if why else ''}")
        return value

    parse.__name__ = "seconds"
    return parse


def rate(text: str) -> float:
    """Frames per second: finite, 0 (as fast as it goes) to 1000."""
    value = _number(text, float)
    if not 0 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"{value} must be from 0 (as fast as the pipeline takes) to 1000 frames per second")
    return value


def counts(low: int, high: int, what: str):
    """Comma-separated whole numbers, each in [low, high], e.g. 1,2,4 (empty: none)."""

    def parse(text: str) -> list[int]:
        values = []
        for part in (part.strip() for part in text.split(",")):
            if not part:
                continue
            if not part.isdigit() or not low <= int(part) <= high:
                raise argparse.ArgumentTypeError(f"{text!r}: {part!r} is not {what} from {low} to {high}; e.g. 1,2,4")
            values.append(int(part))
        if len(values) > 32:
            raise argparse.ArgumentTypeError(f"{text!r} lists {len(values)} values; at most 32")
        return values

    parse.__name__ = "counts"
    return parse


def frame_size(text: str) -> tuple[int, int]:
    """WIDTHxHEIGHT, each side 1..8192."""
    width, sep, height = text.lower().partition("x")
    if not sep or not width.isdigit() or not height.isdigit() or not int(width) or not int(height):
        raise argparse.ArgumentTypeError(f"{text!r} is not WIDTHxHEIGHT; e.g. 640x480")
    if int(width) > MAX_SIDE or int(height) > MAX_SIDE:
        raise argparse.ArgumentTypeError(f"{text} is larger than {MAX_SIDE}x{MAX_SIDE}; e.g. 640x480 or 1920x1080")
    return int(width), int(height)


def output_problem(value: str, may_create_folder: bool = False) -> str | None:
    """Why `value` cannot be written as a file (None when it can): its folder must exist (or, with
    may_create_folder, the folder's parent), and it must not be a folder, a link or a special file."""
    path = Path(value)
    folder = path.parent
    if not folder.is_dir() and not (may_create_folder and folder.parent.is_dir() and not os.path.lexists(folder)):
        return f"folder {folder} does not exist; create it or pick another path"
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return None
    except OSError as error:
        return f"cannot be examined ({error.strerror})"
    if stat.S_ISLNK(mode):
        return "is a symbolic link; edgeship-runtime does not write through links: remove it or pick another path"
    if stat.S_ISDIR(mode):
        return "is a folder; give a file name"
    if not stat.S_ISREG(mode):
        return "is a special file (a FIFO, socket or device); give a regular file's path"
    return None
