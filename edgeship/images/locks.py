"""Pinned, hashed lock files per image, and the host-side wheelhouse they are installed from.

Containers here cannot reach PyPI (and air-gapped sites have no PyPI at all), so every
image installs with `pip install --no-index --require-hashes` from a wheelhouse that the
host fetched once and keeps in a cache keyed by the lock file's sha256.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import tomllib

from edgeship.errors import EdgeshipError
from edgeship.paths import REPO_ROOT, cache_root
from edgeship.waiting import run_bounded
from edgeship_runtime.files import sha256_file  # one implementation, shared with the images and boards

IMAGES_DIR = REPO_ROOT / "images"
COMPILE_TIMEOUT_S = 900  # uv resolves against the index: seconds, or minutes with an extra index
WHEELHOUSE_TIMEOUT_S = 3600  # the rk3588 lock is 3.3 GB of wheels


@dataclass(frozen=True)
class LocalDeb:
    """A Debian package that no registry edgeship reaches ships (Google's edgetpu-compiler), built
    into the image from a .deb the user gives: image.toml's [[local_debs]] names the environment
    variables that hold its path and its sha256."""

    package: str  # the .deb's Package field, checked by dpkg-deb in the build
    path: Path
    sha256: str

    @property
    def file(self) -> str:
        """Its name under local-debs/ in the build context."""
        return f"{self.package}.deb"


def given_local_debs(entries: list[dict], image: str) -> tuple[LocalDeb, ...]:
    """The local_debs of images/<image>/image.toml that the user gave (path variable set), each
    checked against the sha256 in its other variable. A package whose path variable is unset is
    left out: the image builds without it."""
    given = []
    for entry in entries:
        path = os.environ.get(entry["path_env"], "")
        if not path:
            continue
        expected = os.environ.get(entry["sha256_env"], "").strip().lower()
        if not re.fullmatch(r"[0-9a-f]{64}", expected):
            raise EdgeshipError(f"{entry['path_env']}={path}: set {entry['sha256_env']} to the .deb's sha256 (`sha256sum`, or the SHA256 "
                                f"field of its apt index) so that images/{image} can check it")
        if not Path(path).is_file():
            raise EdgeshipError(f"{entry['path_env']}={path}: no such file; point it at the {entry['package']} .deb")
        actual = sha256_file(Path(path))
        if actual != expected:
            raise EdgeshipError(f"{path} has sha256 {actual}, not {expected} ({entry['sha256_env']}); fetch the .deb again or fix the hash")
        given.append(LocalDeb(entry["package"], Path(path), actual))
    return tuple(given)


@dataclass(frozen=True)
class ImageSpec:
    """What images/<name>/image.toml says about a toolchain image's Python platform."""

    name: str
    folder: Path
    python_version: str
    uv_platform: str
    pip_platforms: tuple[str, ...]
    base_packages: tuple[str, ...] = ()  # Debian packages the base needs beyond python3 (debootstrap --include)
    extra_index_urls: tuple[str, ...] = ()  # indexes beside PyPI that the lock and wheelhouse read (e.g. NVIDIA's)
    gpu_only: bool = False  # built on demand for GPU hosts, not by `images.build --target all`
    description: str = ""  # the first comment lines of the rendered Dockerfile
    env: tuple[tuple[str, str], ...] = ()  # ENV lines of the image beyond the shared ones, in order
    smoke: tuple[str, ...] = ("smoke.py",)  # smoke tests, relative to the image folder, run in order
    local_debs: tuple[LocalDeb, ...] = ()  # the user's .debs of packages no reachable registry ships (image.toml's local_debs)
    # `pip check` lines the image build accepts, each exactly as pip prints it (image.toml's pip_check_allow): a wheel
    # whose metadata declares a package that nothing in the image imports (pnnx -> torch), dropped by overrides.txt.
    pip_check_allow: tuple[str, ...] = ()
    # Another image whose environment this one installs first, byte for byte (image.toml's shares_lock): Docker then
    # reuses that image's environment layer, and only what this lock adds goes in a small layer of its own.
    shares_lock: str = ""

    @property
    def requirements_in(self) -> Path:
        return self.folder / "requirements.in"

    @property
    def lock(self) -> Path:
        return self.folder / "requirements.lock"

    def lock_sha256(self) -> str:
        if not self.lock.exists():
            where = f" on a host that reaches {', '.join(self.extra_index_urls)}" if self.extra_index_urls else ""
            raise EdgeshipError(f"{self.lock} is missing; run `invoke images.lock --target {self.name}`{where} to create it")
        return sha256_file(self.lock)


def load_spec(name: str) -> ImageSpec:
    folder = IMAGES_DIR / name
    config_path = folder / "image.toml"
    if not config_path.exists():
        known = sorted(p.name for p in IMAGES_DIR.iterdir() if (p / "image.toml").exists())
        raise EdgeshipError(f"no image named {name!r} ({config_path} is missing); known images: {', '.join(known)}")
    with open(config_path, "rb") as handle:
        config = tomllib.load(handle)
    return ImageSpec(
        name=name,
        folder=folder,
        python_version=config["python"],
        uv_platform=config["uv_platform"],
        pip_platforms=tuple(config["pip_platforms"]),
        base_packages=tuple(config.get("base_packages", ())),
        extra_index_urls=tuple(config.get("extra_index_urls", ())),
        gpu_only=bool(config.get("gpu_only", False)),
        description=str(config.get("description", "")).strip(),
        env=tuple((str(key), str(value)) for key, value in config.get("env", {}).items()),
        smoke=tuple(config.get("smoke", ("smoke.py",))),
        local_debs=given_local_debs(config.get("local_debs", []), name),
        pip_check_allow=tuple(_pip_check_line(str(line), config_path) for line in config.get("pip_check_allow", ())),
        shares_lock=str(config.get("shares_lock", "")),
    )


def _pip_check_line(line: str, config_path: Path) -> str:
    """A pip_check_allow line, which the Dockerfile quotes in single quotes: pip's own wording only."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9 .,_+=<>!~-]{0,200}", line):
        raise EdgeshipError(f"{config_path}: pip_check_allow {line!r} is not a `pip check` line; copy the line pip printed "
                            f"(letters, digits, spaces and . , _ + = < > ! ~ - only)")
    return line


def all_specs(include_gpu_only: bool = False) -> list[ImageSpec]:
    specs = [load_spec(p.name) for p in sorted(IMAGES_DIR.iterdir()) if (p / "image.toml").exists()]
    return [spec for spec in specs if include_gpu_only or not spec.gpu_only]


def _index_arguments(spec: ImageSpec) -> list[str]:
    arguments = []
    for url in spec.extra_index_urls:
        arguments += ["--extra-index-url", url]
    return arguments


def compile_lock(spec: ImageSpec) -> Path:
    """Resolve requirements.in into requirements.lock for the image's platform, with hashes."""
    uv = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
    cmd = [
        uv, "pip", "compile", str(spec.requirements_in),
        "--generate-hashes",
        "--python-version", spec.python_version,
        "--python-platform", spec.uv_platform,
        "--custom-compile-command", f"invoke images.lock --target {spec.name}",
        "--output-file", str(spec.lock),
    ] + _index_arguments(spec) + (["--index-strategy", "unsafe-best-match"] if spec.extra_index_urls else [])
    if (spec.folder / "overrides.txt").exists():  # uv's way to drop a declared dependency (a marker that never holds)
        cmd += ["--overrides", str(spec.folder / "overrides.txt")]
    print("edgeship: " + " ".join(cmd), flush=True)
    result = run_bounded(cmd, COMPILE_TIMEOUT_S, f"uv pip compile of {spec.requirements_in}", cwd=spec.folder)
    if result.returncode != 0:
        where = f" (it reads {', '.join(spec.extra_index_urls)} as well as PyPI: is it reachable from here?)" if spec.extra_index_urls else ""
        raise EdgeshipError(f"uv could not resolve {spec.requirements_in} (exit {result.returncode}){where}; see uv's message above")
    return spec.lock


def pinned_packages(lock: Path) -> dict[str, str]:
    """name -> version for every `name==version` line of a lock file."""
    pins = {}
    for line in lock.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "-")) and "==" in line:
            name, version = line.split(" ")[0].split("==", 1)
            pins[name.lower()] = version.split(";")[0]
    return pins


def _lock_entries(lock: Path) -> dict[str, tuple[str, str]]:
    """name -> (its `name==version` line, the whole entry with its hash and `# via` lines) of a uv lock."""
    entries: dict[str, tuple[str, str]] = {}
    name = ""
    for line in lock.read_text().splitlines(keepends=True):
        if line[:1].isalnum():
            pin = line.split(" ")[0].split(";")[0]
            name = pin.split("==", 1)[0].lower()
            entries[name] = (pin, line)
        elif name and line.startswith(" "):
            entries[name] = (entries[name][0], entries[name][1] + line)
    return entries


def added_lock(spec: ImageSpec, shared: ImageSpec) -> str:
    """The entries of spec's lock that the shared image's lock lacks: what the image installs on top of
    the shared environment. Every package both pin must be the same pin, or the layer could not be shared."""
    ours, theirs = _lock_entries(spec.lock), _lock_entries(shared.lock)
    differing = sorted(f"{ours[name][0] if name in ours else name + ' (missing)'} vs {pin}" for name, (pin, _) in theirs.items()
                       if name not in ours or ours[name][0] != pin)
    if differing:
        raise EdgeshipError(f"{spec.lock} must pin every package of {shared.lock} the same (shares_lock = {shared.name!r}): "
                            f"{', '.join(differing[:3])}; run `invoke images.lock --target {spec.name}` (its requirements.in "
                            f"takes {shared.name}'s lock as constraints)")
    return f"# What images/{spec.name} adds to images/{shared.name}'s environment (from {spec.lock.name}).\n" + \
        "".join(entry for name, (_, entry) in ours.items() if name not in theirs)


def wheelhouse_dir(spec: ImageSpec) -> Path:
    return cache_root() / "wheelhouse" / f"{spec.name}-{spec.lock_sha256()[:16]}"


def locked_hashes(lock: Path) -> set[str]:
    """Every sha256 a lock file allows."""
    return set(re.findall(r"--hash=sha256:([0-9a-f]{64})", lock.read_text()))


def _reuse_wheels(spec: ImageSpec, staging: Path) -> int:
    """Link wheels of earlier wheelhouses whose sha256 the new lock allows into the staging
    folder; pip download finds them there (and checks their hashes) instead of fetching them
    again, so changing one pin of a 3 GB lock does not download the other wheels again."""
    wanted = locked_hashes(spec.lock)
    reused = 0
    for other in sorted((cache_root() / "wheelhouse").glob("*/.complete")):
        for wheel in other.parent.glob("*.whl"):
            destination = staging / wheel.name
            if destination.exists() or sha256_file(wheel) not in wanted:
                continue
            try:
                os.link(wheel, destination)
            except OSError:
                shutil.copy2(wheel, destination)
            reused += 1
    return reused


def ensure_wheelhouse(spec: ImageSpec) -> Path:
    """Download every wheel of the lock (hash-checked by pip) into a cache keyed by the lock hash."""
    target = wheelhouse_dir(spec)
    if (target / ".complete").exists():
        return target
    staging = target.with_name(target.name + ".partial")
    staging.mkdir(parents=True, exist_ok=True)
    reused = _reuse_wheels(spec, staging)
    if reused:
        print(f"edgeship: {reused} wheels of {spec.name} reused from earlier wheelhouses (same sha256)", flush=True)
    cmd = [
        sys.executable, "-m", "pip", "download",
        "--require-hashes", "--no-deps", "--only-binary=:all:",
        "--python-version", spec.python_version, "--implementation", "cp",
        "--dest", str(staging), "--requirement", str(spec.lock),
        "--progress-bar", "off",
    ] + _index_arguments(spec)
    for platform_tag in spec.pip_platforms:
        cmd += ["--platform", platform_tag]
    print(f"edgeship: fetching the wheelhouse of {spec.name} into {target}", flush=True)
    result = run_bounded(cmd, WHEELHOUSE_TIMEOUT_S, f"pip download of the wheelhouse of {spec.name} (into {staging})")
    if result.returncode != 0:
        raise EdgeshipError(f"pip could not fetch every wheel of {spec.lock} (exit {result.returncode}); see pip's message above, "
                            f"then fix the pin or run `invoke images.lock --target {spec.name}`")
    (staging / ".complete").write_text(spec.lock_sha256() + "\n")
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)
    return target
