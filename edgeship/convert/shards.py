"""A conversions file fanned out over CI runners: the plan (its entries as JSON for a CI matrix,
grouped into N balanced shards), a shard's share, its partial lock, and the merge of the parts
into the one conversions.lock a single `invoke build` would have written.

Balance: each entry weighs its last measured conversion time (<artifacts>/build-times.json,
written by `invoke build`), or an estimate from the measured entries of its target; each image a
shard needs costs `image_cost` seconds more (building or loading it), so a shard takes whole
image groups first and single entries move only where that shortens the longest shard.
The plan is a pure function of the conversions file, the times and N: every runner that reads
the same ones computes the same shares, and a part records the plan's digest so that the merge
refuses parts of different plans.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
from collections import defaultdict
from pathlib import Path

from edgeship.convert.clean import CLEAN_IMAGE
from edgeship.convert.lockfile import LOCK_SCHEMA, write_lock
from edgeship.errors import EdgeshipError
from edgeship_runtime.files import UnreadableFile, atomic_write_text, read_json_object, sha256_file

TIMES_NAME = "build-times.json"  # under the artifacts root: entry -> seconds of its last conversion
DEFAULT_ENTRY_S = 60.0  # an entry's weight when no entry of its target was ever timed
IMAGE_COST_S = 60.0  # what one more image costs a runner (a `docker load` of a toolchain image)
MAX_SHARDS = 256
SHARD_PATTERN = re.compile(r"([1-9][0-9]{0,2})/([1-9][0-9]{0,2})")
# What the shards read from CI caches and artifacts, bounded (a lock of thousands of entries is a few MiB)
TIMES_BYTES = 4 << 20
PLAN_BYTES = 16 << 20
PART_BYTES = 64 << 20


def parse_shard(text: str) -> tuple[int, int]:
    """"K/N" -> (K, N) with 1 <= K <= N."""
    match = SHARD_PATTERN.fullmatch(text.strip())
    if not match or not 1 <= int(match[1]) <= int(match[2]) <= MAX_SHARDS:
        raise EdgeshipError(f"--shard {text!r} is not K/N with 1 <= K <= N <= {MAX_SHARDS}; write e.g. --shard 2/3")
    return int(match[1]), int(match[2])


def entry_images(entry) -> list[str]:
    """The toolchain images an entry's conversion runs in: its target's, and the graph clean-up's
    for an ONNX source."""
    from targets import get

    image = get(entry.target).image
    return sorted({image} | ({CLEAN_IMAGE} if entry.model.path.suffix.lower() == ".onnx" else set()))


def read_times(path: Path) -> dict[str, float]:
    """The measured seconds of each entry; none when the file is absent."""
    if not os.path.lexists(path):
        return {}
    try:
        data = read_json_object(path, TIMES_BYTES, "times file")
    except (OSError, UnreadableFile) as error:
        raise EdgeshipError(f"{path} is not a times file of `invoke build` ({_problem(error)}); delete it, and the next "
                            f"build writes it again") from None
    if not isinstance(data, dict) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in data.values()):
        raise EdgeshipError(f"{path} is not a times file of `invoke build` (entry names to seconds); delete it, and the next build "
                            f"writes it again")
    return {str(name): float(seconds) for name, seconds in data.items()}


def _problem(error: Exception) -> str:
    """What is wrong with a file read_json_object refused, in a few words."""
    return error.problem if isinstance(error, UnreadableFile) else type(error).__name__


def record_times(path: Path, measured: dict[str, float]) -> None:
    """Add this build's conversion times to the file (a cached entry keeps its earlier time)."""
    if not measured:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    # shards sharing an artifacts folder finish at the same time: read, add and write under one lock
    with open(path.with_name(f".{path.name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            times = read_times(path)
        except EdgeshipError:
            times = {}  # a broken file is replaced by what was measured now
        times.update({name: round(seconds, 1) for name, seconds in measured.items()})
        atomic_write_text(path, json.dumps(dict(sorted(times.items())), indent=1) + "\n")


def _weights(project, times: dict[str, float]) -> dict[str, tuple[float, bool]]:
    """(seconds, measured?) of every entry: measured, else its target's mean, else everyone's."""
    by_target = defaultdict(list)
    for name, entry in project.entries.items():
        if name in times:
            by_target[entry.target].append(times[name])
    known = [seconds for values in by_target.values() for seconds in values]
    fallback = sum(known) / len(known) if known else DEFAULT_ENTRY_S
    weights = {}
    for name, entry in project.entries.items():
        if name in times:
            weights[name] = (times[name], True)
        else:
            same = by_target.get(entry.target)
            weights[name] = (sum(same) / len(same) if same else fallback, False)
    return weights


class _Shard:
    def __init__(self, index: int):
        self.index = index
        self.entries: list[str] = []

    def images(self, images_of: dict[str, list[str]]) -> set[str]:
        return {image for name in self.entries for image in images_of[name]}

    def load(self, weight: dict[str, float], images_of: dict[str, list[str]], image_cost: float, entries: list[str] | None = None) -> float:
        names = self.entries if entries is None else entries
        images = {image for name in names for image in images_of[name]}
        return sum(weight[name] for name in names) + image_cost * len(images)


def balance(weight: dict[str, float], images_of: dict[str, list[str]], shards: int, image_cost: float) -> list[list[str]]:
    """Entries (in the order given) into `shards` lists: whole image groups by descending weight onto
    the shard that ends lightest, then single entries moved off the longest shard while that
    shortens it. Deterministic: ties go to the lower shard index and the earlier entry."""
    order = {name: number for number, name in enumerate(weight)}
    groups: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for name in weight:
        groups[tuple(images_of[name])].append(name)
    buckets = [_Shard(index) for index in range(shards)]

    def load(shard: _Shard, entries: list[str] | None = None) -> float:
        return shard.load(weight, images_of, image_cost, entries)

    for _images, members in sorted(groups.items(), key=lambda item: (-sum(weight[n] for n in item[1]), item[0])):
        target = min(buckets, key=lambda shard: (load(shard, shard.entries + members), shard.index))
        target.entries += members
    for _ in range(len(weight) * shards):  # each move shortens the longest shard: bounded
        longest = max(buckets, key=lambda shard: (load(shard), -shard.index))
        before = load(longest)
        best: tuple[float, int, int, str] | None = None
        for name in longest.entries:
            rest = load(longest, [n for n in longest.entries if n != name])
            for other in buckets:
                if other is longest:
                    continue
                worst = max(rest, load(other, other.entries + [name]))
                if worst < before - 1e-9 and (best is None or (worst, other.index, order[name]) < best[:3]):
                    best = (worst, other.index, order[name], name)
        if best is None:
            break
        _worst, index, _order, name = best
        longest.entries.remove(name)
        buckets[index].entries.append(name)
    return [sorted(shard.entries, key=order.__getitem__) for shard in buckets]


def make_plan(project, shards: int | None, times: dict[str, float], image_cost: float = IMAGE_COST_S) -> dict:
    """The plan as JSON: every entry (model, target, quant, images, seconds), and `include`, the CI
    matrix: one row per entry, or with `shards` one row per shard (its entries, images, estimate)."""
    if shards is not None and not 1 <= shards <= min(MAX_SHARDS, len(project.entries)):
        raise EdgeshipError(f"--shards {shards}: {project.config} has {len(project.entries)} entries; choose 1 to "
                            f"{min(MAX_SHARDS, len(project.entries))} shards")
    weights = _weights(project, times)
    images_of = {name: entry_images(entry) for name, entry in project.entries.items()}
    entries = [{"entry": name, "model": entry.model.key, "target": entry.target, "quant": entry.quant, "images": images_of[name],
                "seconds": round(weights[name][0], 1), "measured": weights[name][1]} for name, entry in project.entries.items()]
    plan = {"config": project.config.name, "config_sha256": sha256_file(project.config), "entries": entries}
    if shards is None:
        plan["include"] = [{"entry": item["entry"], "target": item["target"], "quant": item["quant"], "images": " ".join(item["images"])}
                           for item in entries]
        return plan
    weight = {name: seconds for name, (seconds, _measured) in weights.items()}
    rows = []
    for index, names in enumerate(balance(weight, images_of, shards, image_cost), start=1):
        images = sorted({image for name in names for image in images_of[name]})
        rows.append({"shard": f"{index}/{shards}", "index": index, "of": shards, "entries": ",".join(names), "images": " ".join(images),
                     "estimated_s": round(sum(weight[name] for name in names) + image_cost * len(images), 1)})
    plan.update({"shards": shards, "image_cost_s": image_cost, "include": rows, "plan_sha256": plan_digest(plan["config_sha256"], rows)})
    return plan


def plan_digest(config_sha256: str, rows: list[dict]) -> str:
    """What every part of one plan shares: the conversions file and who converts what."""
    material = {"config_sha256": config_sha256, "shares": [row["entries"] for row in rows]}
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


def read_plan(path: Path, project, shards: int) -> dict:
    """A plan file `invoke plan --shards N --out FILE` wrote, checked against this conversions file."""
    try:
        plan = read_json_object(path, PLAN_BYTES, "plan")
        rows, config_sha256 = plan["include"], plan["config_sha256"]
        if not (isinstance(rows, list) and all(isinstance(row["entries"], str) for row in rows) and plan.get("shards") == len(rows)):
            raise TypeError("no shards")
    except (OSError, ValueError, KeyError, TypeError) as error:  # UnreadableFile is a ValueError
        raise EdgeshipError(f"{path} is not a plan of `invoke plan --shards N` ({_problem(error)}: {error}); write it again with "
                            f"`invoke plan --shards N --out {path.name}`") from None
    if config_sha256 != sha256_file(project.config):
        raise EdgeshipError(f"{path} was planned from another {project.config.name} (sha256 {str(config_sha256)[:16]}, now "
                            f"{sha256_file(project.config)[:16]}); plan again with `invoke plan --shards {shards} --out {path.name}`")
    if len(rows) != shards:
        raise EdgeshipError(f"{path} plans {len(rows)} shards, not {shards}; use --shard K/{len(rows)} or plan again")
    known = set(project.entries)
    for row in rows:
        for name in filter(None, row["entries"].split(",")):
            if name not in known:
                raise EdgeshipError(f"{path} names entry {name!r}, which {project.config.name} does not make; plan again")
    plan["plan_sha256"] = plan_digest(config_sha256, rows)
    return plan


def share(plan: dict, index: int) -> list[str]:
    """The entry names shard `index` (1-based) converts."""
    return [name for name in plan["include"][index - 1]["entries"].split(",") if name]


def part_path(lock: Path, index: int, shards: int) -> Path:
    return lock.with_name(f"{lock.name}.part-{index}-of-{shards}")


def part_record(plan: dict, index: int) -> dict:
    return {"shard": index, "of": plan["shards"], "plan_sha256": plan["plan_sha256"], "config_sha256": plan["config_sha256"],
            "entries": share(plan, index)}


def write_part(path: Path, config: Path, entries: dict, made_on: dict, part: dict) -> Path:
    """A shard's lock: the lock's own layout (write_lock) and what the merge checks it against."""
    write_lock(path, config, entries, made_on)
    lock = read_json_object(path, PART_BYTES, "partial lock")
    lock["part"] = part
    return atomic_write_text(path, json.dumps(lock, indent=2, sort_keys=True) + "\n")


def _read_part(path: Path) -> dict:
    try:
        lock = read_json_object(path, PART_BYTES, "partial lock")
        part = lock["part"]
        if not (lock.get("schema") == LOCK_SCHEMA and isinstance(lock.get("entries"), dict) and isinstance(lock.get("made_on"), dict)
                and isinstance(lock["config"], str) and isinstance(part, dict)
                and all(isinstance(part[key], int) and not isinstance(part[key], bool) for key in ("shard", "of"))
                and isinstance(part["entries"], list) and all(isinstance(name, str) for name in part["entries"])
                and isinstance(part["plan_sha256"], str) and isinstance(part["config_sha256"], str)):
            raise TypeError("not a part")
    except (OSError, ValueError, KeyError, TypeError) as error:  # UnreadableFile is a ValueError
        raise EdgeshipError(f"{path} is not a partial lock of `invoke build --shard K/N` ({_problem(error)}); "
                            f"build that shard again") from None
    shard, of = part["shard"], part["of"]
    if not 1 <= shard <= of <= MAX_SHARDS:
        raise EdgeshipError(f"{path} claims to be shard {shard} of {of}, not K/N with 1 <= K <= N <= {MAX_SHARDS}; build that "
                            f"shard again with `invoke build --shard K/N`")
    return lock


def merge_parts(project, paths: list[Path], out: Path) -> Path:
    """The parts of one plan of the project's conversions file combined into `out`, byte for byte
    the lock one build of all its entries writes: the same entries, and each entry's made_on from
    the runner that converted it. Refused in one line: no parts, a part twice or missing, parts of
    different plans or N, parts of another conversions file than the project's, an entry in two
    parts, a planned entry absent from its part, or parts that do not cover the project's entries."""
    if not paths:
        raise EdgeshipError(f"no partial locks to merge into {out}; pass the parts `invoke build --shard K/N` wrote "
                            f"({out.name}.part-K-of-N)")
    parts = [(path, _read_part(path)) for path in paths]
    first_path, first = parts[0]
    shards = first["part"]["of"]
    config_sha256 = sha256_file(project.config)
    seen: dict[int, Path] = {}
    entries: dict[str, dict] = {}
    made_on: dict[str, dict] = {}
    owner: dict[str, Path] = {}
    for path, lock in parts:
        part = lock["part"]
        if part["config_sha256"] != config_sha256:
            raise EdgeshipError(f"{path} was built from another {project.config.name} than {project.config} (sha256 "
                                f"{part['config_sha256'][:16]}, now {config_sha256[:16]}); plan and build the shards again from this one")
        if lock["config"] != project.config.name:
            raise EdgeshipError(f"{path} locks {lock['config']}, not {project.config.name}; merge the parts of {project.config}")
        if part["of"] != shards:
            raise EdgeshipError(f"{path} is shard {part['shard']}/{part['of']}, {first_path} is of {shards} shards; build every "
                                f"shard from one `invoke plan`")
        if part["plan_sha256"] != first["part"]["plan_sha256"]:
            raise EdgeshipError(f"{path} was made from another plan than {first_path} ({part['plan_sha256'][:16]} against "
                                f"{first['part']['plan_sha256'][:16]}); build every shard from one `invoke plan`")
        if part["shard"] in seen:
            raise EdgeshipError(f"{path} and {seen[part['shard']]} are both shard {part['shard']}/{shards}; pass each part once")
        seen[part["shard"]] = path
        for name in part["entries"]:
            if name not in lock["entries"]:
                raise EdgeshipError(f"{path}: entry {name} of shard {part['shard']}/{shards} is not in it (it did not convert); "
                                    f"build that shard again")
        for name, record in lock["entries"].items():
            if name in entries:
                if entries[name] != record:
                    raise EdgeshipError(f"entry {name} is in {owner[name]} and in {path}, and they disagree; build it in one shard only")
                raise EdgeshipError(f"entry {name} is in {owner[name]} and in {path}; each entry belongs to one shard: plan again")
            if name not in part["entries"]:
                raise EdgeshipError(f"{path} holds entry {name}, which its plan gives another shard; build every shard from one plan")
            entries[name], owner[name] = record, path
            if name in lock["made_on"]:
                made_on[name] = lock["made_on"][name]
    missing = sorted(set(range(1, shards + 1)) - set(seen))
    if missing:
        raise EdgeshipError(f"shard {', '.join(f'{k}/{shards}' for k in missing)} is missing (passed: "
                            f"{', '.join(str(path) for path, _ in parts)}); pass every part of the plan")
    unknown, absent = sorted(set(entries) - set(project.entries)), sorted(set(project.entries) - set(entries))
    if unknown:
        raise EdgeshipError(f"{owner[unknown[0]]} holds entry {unknown[0]}, which {project.config} does not make; plan and build "
                            f"the shards again from this {project.config.name}")
    if absent:
        raise EdgeshipError(f"no part holds entry {absent[0]} of {project.config}"
                            f"{f' (and {len(absent) - 1} more)' if len(absent) > 1 else ''}; plan and build the shards again "
                            f"from this {project.config.name}")
    return write_lock(out, project.config, entries, made_on)
