"""The board runtime as a wheel, and offline wheelhouses of it for a board's platform.

Boards install from these wheelhouses with `pip install --no-index`, so a board needs no
index (and most sites' boards have none). Wheelhouses are cached by the runtime's own
version, the pinned versions of runtime/constraints.txt, the board's platform and Python, and the extras.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from edgeship.errors import EdgeshipError
from edgeship.paths import REPO_ROOT, cache_root
from edgeship.waiting import run_bounded
from edgeship_runtime.files import staged_dir, tree_sha256

RUNTIME_DIR = REPO_ROOT / "runtime"
CONSTRAINTS = RUNTIME_DIR / "constraints.txt"
ARCHITECTURES = ("x86_64", "aarch64")
WHEEL_TIMEOUT_S = 600  # the runtime's own pure-Python wheel: seconds
WHEELHOUSE_TIMEOUT_S = 3600  # every dependency wheel of a board's platform from the index
DEFAULT_GLIBC = "2.28"  # what a board is assumed to have when it does not say (Debian 10+, Ubuntu 20.04+, JetPack 5+)


def platform_tags(arch: str, glibc: str = DEFAULT_GLIBC) -> list[str]:
    """The manylinux tags a board with this C library can install, newest first (PEP 600: a
    manylinux_2_N wheel runs on glibc >= 2.N), so each wheel is the newest build the board runs."""
    major, minor = (int(part) for part in str(glibc).split(".")[:2])
    if major != 2 or minor < 17:
        raise EdgeshipError(f"glibc {glibc} is older than any manylinux wheel (2.17); update the board's OS")
    tags = [f"manylinux_2_{version}_{arch}" for version in range(minor, 16, -1)] + [f"manylinux2014_{arch}"]
    return tags + (["manylinux1_x86_64"] if arch == "x86_64" else [])


def runtime_source_sha256() -> str:
    package = RUNTIME_DIR / "edgeship_runtime"
    sources = (path for path in package.rglob("*") if path.is_file() and path.suffix in (".py", ".html"))
    return tree_sha256(RUNTIME_DIR, [RUNTIME_DIR / "pyproject.toml", *sources])


def build_runtime_wheel(dest: Path | None = None) -> Path:
    """Build edgeship-runtime's pure-Python wheel (cached by its source hash)."""
    dest = dest or cache_root() / "runtime-wheel" / runtime_source_sha256()[:16]
    existing = sorted(dest.glob("edgeship_runtime-*.whl"))
    if existing:
        return existing[0]
    with staged_dir(dest) as staging:
        built = run_bounded([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(staging), str(RUNTIME_DIR)],
                             WHEEL_TIMEOUT_S, f"pip wheel of {RUNTIME_DIR}", "pip builds it offline: see what it printed above")
        if built.returncode != 0:
            raise EdgeshipError(f"pip could not build the runtime's wheel from {RUNTIME_DIR} (exit {built.returncode}); see pip's message above")
    return sorted(dest.glob("edgeship_runtime-*.whl"))[0]


def ensure_runtime_wheelhouse(arch: str, python: str, extras: tuple[str, ...] = (), glibc: str = DEFAULT_GLIBC) -> Path:
    """A folder with the runtime wheel and every dependency wheel for (arch, python, glibc, extras)."""
    if arch not in ARCHITECTURES:
        raise EdgeshipError(f"no wheel platform for board architecture {arch!r}; edgeship supports {', '.join(ARCHITECTURES)}")
    tags = platform_tags(arch, glibc)
    wheel = build_runtime_wheel()
    pins = hashlib.sha256(runtime_source_sha256().encode() + CONSTRAINTS.read_bytes()).hexdigest()[:12]
    key = f"{arch}-glibc{glibc}-py{python}-{'-'.join(sorted(extras)) or 'base'}-{pins}"
    target = cache_root() / "runtime-wheelhouse" / key
    if (target / ".complete").exists():
        return target
    requirement = f"{wheel}[{','.join(sorted(extras))}]" if extras else str(wheel)
    with staged_dir(target) as staging:
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "--python-version", python,
               "--implementation", "cp", "--constraint", str(CONSTRAINTS), "--dest", str(staging), requirement, "pip"]
        for tag in tags:
            cmd += ["--platform", tag]
        result = run_bounded(cmd, WHEELHOUSE_TIMEOUT_S, f"pip download of the runtime's wheels for {arch}/Python {python}",
                             capture_output=True, text=True)
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise EdgeshipError(f"the runtime's wheels for {arch}/Python {python}/glibc {glibc} with extras {list(extras)} cannot be "
                                f"resolved ({last}); pick extras that exist for that board")
        (staging / ".complete").write_text(key + "\n")
    return target
