"""The board runtime as a wheel, and offline wheelhouses of it for a board's platform.

Boards install from these wheelhouses with `pip install --no-index`, so a board needs no
index (and most sites' boards have none). Wheelhouses are cached by the runtime's own
version, the pinned versions of runtime/constraints.txt, the board's platform and Python, and the extras.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

from edgeship.errors import EdgeshipError
from edgeship.paths import REPO_ROOT, cache_root
from edgeship_runtime.files import staged_dir, tree_sha256

RUNTIME_DIR = REPO_ROOT / "runtime"
CONSTRAINTS = RUNTIME_DIR / "constraints.txt"
PLATFORM_TAGS = {
    "x86_64": ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64"),
    "aarch64": ("manylinux_2_28_aarch64", "manylinux_2_27_aarch64", "manylinux_2_17_aarch64", "manylinux2014_aarch64"),
}


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
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(staging), str(RUNTIME_DIR)], check=True)
    return sorted(dest.glob("edgeship_runtime-*.whl"))[0]


def ensure_runtime_wheelhouse(arch: str, python: str, extras: tuple[str, ...] = ()) -> Path:
    """A folder with the runtime wheel and every dependency wheel for (arch, python, extras)."""
    if arch not in PLATFORM_TAGS:
        raise EdgeshipError(f"no wheel platform for board architecture {arch!r}; edgeship supports {', '.join(PLATFORM_TAGS)}")
    wheel = build_runtime_wheel()
    pins = hashlib.sha256(runtime_source_sha256().encode() + CONSTRAINTS.read_bytes()).hexdigest()[:12]
    key = f"{arch}-py{python}-{'-'.join(sorted(extras)) or 'base'}-{pins}"
    target = cache_root() / "runtime-wheelhouse" / key
    if (target / ".complete").exists():
        return target
    requirement = f"{wheel}[{','.join(sorted(extras))}]" if extras else str(wheel)
    with staged_dir(target) as staging:
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "--python-version", python,
               "--implementation", "cp", "--constraint", str(CONSTRAINTS), "--dest", str(staging), requirement, "pip"]
        for tag in PLATFORM_TAGS[arch]:
            cmd += ["--platform", tag]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise EdgeshipError(f"the runtime's wheels for {arch}/Python {python} with extras {list(extras)} cannot be resolved ({last}); "
                                "pick extras that exist for that board")
        (staging / ".complete").write_text(key + "\n")
    return target
