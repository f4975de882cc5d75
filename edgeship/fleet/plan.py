"""The controller's side of a fleet deploy: what goes to each board, packed once, named by content.

`deploy.yml` calls `python -m edgeship.fleet plan` once per run (on the controller) with every
board's gathered facts. For each board it picks the artifacts of the board's target (and a
CPU artifact of the same model for the labelled fallback), builds or reuses the offline
wheelhouse for the board's architecture and Python, and packs both into one deterministic
tar with a SHA256SUMS file whose artifact lines come from the artifacts' own manifests.
Manifests are input: the names they give pass the one name rule, and only the files they
list, confined to their folders, are packed, each hashed as it is packed and refused unless
it is the file listed (bundle.py). The board checks the sums again before anything is
installed or activated, so a file damaged on the way is caught there.

The release id is the hash of every board's bundle: the same artifacts and runtime give the
same id, which is what makes a second identical deploy a no-op (`changed=0`).
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

from edgeship.errors import EdgeshipError
from edgeship.fleet.bundle import pack_bundle
from edgeship.paths import cache_root
from edgeship_runtime import names
from edgeship_runtime.files import UnreadableFile, confined, read_json_object

BOARD_ARCH = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}


MAX_MANIFEST_BYTES = 16 << 20


def _manifest(folder: Path) -> dict | None:
    """The folder's manifest, or None where there is none to read (an unfinished or foreign folder,
    or one that is not a JSON object); a manifest that is a link or a special file is refused (it
    is never followed or waited on)."""
    path = folder / "manifest.json"
    if not os.path.lexists(path):
        return None
    try:
        confined(folder, "manifest.json", "the manifest")
        return read_json_object(path, MAX_MANIFEST_BYTES, "the manifest")
    except UnreadableFile as error:
        if error.problem == "unsafe":
            raise EdgeshipError(f"{error}; convert the artifact again") from None
        return None


def _named(folder: Path, manifest: dict) -> dict | None:
    """The artifact's model, target and quant, each checked by the one name rule (they become
    folders and words on the boards): EdgeshipError naming the manifest; None for a manifest
    made before manifests named their model (convert it again)."""
    where = folder / "manifest.json"
    options = manifest.get("options")
    if not manifest.get("model"):
        return None
    if not isinstance(options, dict) or not isinstance(manifest.get("runtime_backend"), str):
        raise EdgeshipError(f"{where}: options must be an object and runtime_backend a backend name; convert the artifact again")
    fix = "convert the artifact again"
    try:
        found = {"model": names.check(manifest["model"], f"{where}: model", fix), "target": names.check(manifest["target"], f"{where}: target", fix),
                 "quant": options.get("quant") and names.check(options["quant"], f"{where}: options.quant", fix)}
        names.check(folder.name, f"artifact folder {folder}", "rename it, or convert the model again")
    except names.UnsafeName as error:
        raise EdgeshipError(str(error)) from None
    return found


def find_artifacts(root: Path) -> list[dict]:
    """Every finished artifact under root: model name, target, quant, folder, manifest. A folder
    whose own name breaks the one name rule (it names a folder on the boards too) is left out
    with a note on stderr naming it and the fix, and the plan goes on with the others: such a
    folder came from an edgeship that let a long --name through, or was renamed by hand."""
    found: list[dict] = []
    if not root.is_dir():
        return found
    for folder in sorted(root.iterdir()):
        if not folder.is_dir() or folder.name.startswith("."):
            continue
        manifest = _manifest(folder)
        if manifest is None or "target" not in manifest:
            continue
        if not names.is_safe(folder.name):
            print(f"edgeship: note: {_left_out(folder, manifest)}", file=sys.stderr)
            continue
        named = _named(folder, manifest)
        if named is None:
            continue  # made by an edgeship before manifests named their model: convert it again
        found.append({**named, "dir": folder, "manifest": manifest, "mtime": (folder / "manifest.json").stat().st_mtime})
    return found


def _left_out(folder: Path, manifest: dict) -> str:
    """Why an artifact folder with a name against the rule is not shipped, and what to do."""
    from edgeship.convert.request import longest_name

    shown = folder.name if len(folder.name) <= 80 else folder.name[:77] + "..."
    options = manifest.get("options")
    model, target, quant = manifest.get("model"), manifest.get("target"), options.get("quant") if isinstance(options, dict) else None
    fix = "rename it to a safe name, or convert the model again"
    if isinstance(target, str) and isinstance(quant, str) and all(names.is_safe(value) for value in (model, target, quant)):
        fix = f"convert {model} again with --name of at most {longest_name(target, quant)} characters (target {target} --quant {quant})"
    return (f"left out {folder.parent}/{shown!r}: its name ({len(folder.name)} characters) is not a safe name for the boards "
            f"({names.NAME_RULE}); {fix}")


def _newest(artifacts: list[dict], model: str, target: str, quant: str) -> dict | None:
    matches = [a for a in artifacts if (a["model"], a["target"], a["quant"]) == (model, target, quant)]
    return max(matches, key=lambda a: (a["mtime"], a["dir"].name)) if matches else None


def _failed_at_conversion(artifact: dict) -> str:
    """What the artifact's conversion-time accuracy check failed on ("" when it passed, or when the
    manifest has no verdict). Such an artifact is not shipped: it would fail the board's check too."""
    accuracy = artifact["manifest"].get("accuracy") or {}
    if accuracy.get("passed", True):
        return ""
    failed = accuracy.get("failed") or []
    return "; ".join(str(item) for item in failed[:2]) or "below its tolerances"


def extra_targets(board: dict) -> list[tuple[str, str]]:
    """The board's edgeship_extra_targets: [target, quant] pairs it runs beside its own target
    (a Pi's ncnn and MNN beside LiteRT); EdgeshipError naming the setting and the fix."""
    from edgeship.convert.request import find_target

    value = board.get("extra_targets") or []
    fix = 'give a list of [target, quant] pairs, e.g. edgeship_extra_targets=[["ncnn", "fp16"], ["mnn", "fp16"]]'
    if not isinstance(value, list) or not all(isinstance(pair, list) and len(pair) == 2 and all(isinstance(v, str) for v in pair) for pair in value):
        raise EdgeshipError(f"board {board['host']}: edgeship_extra_targets is {str(value)[:80]!r}, not a list of [target, quant] pairs; {fix}")
    pairs = []
    for target_name, quant in value:
        target = find_target(target_name)  # an unknown target: one line naming the known ones
        if quant not in target.quantizations or not target.runtime_backend:
            raise EdgeshipError(f"board {board['host']}: edgeship_extra_targets names {target_name} {quant!r}, which no board runs "
                                f"({target_name} takes {', '.join(target.quantizations)}"
                                f"{'' if target.runtime_backend else ' and has no board runtime'}); {fix}")
        if (target_name, quant) not in pairs and (target_name, quant) != (board["target"], board["quant"]):
            pairs.append((target_name, quant))
    return pairs


def extra_selection(board: dict, artifacts: list[dict], models: list[str]) -> list[dict]:
    """One entry per model and extra target that has an artifact (no CPU fallback: the entry is the
    runtime itself). One that is missing or failed at conversion is left out with a note on stderr."""
    chosen = []
    for target, quant in extra_targets(board):
        for model in models:
            artifact = _newest(artifacts, model, target, quant)
            held = artifact is not None and _failed_at_conversion(artifact)
            if artifact is None or held:
                why = f"it failed its accuracy check at conversion ({held})" if held else "there is no such artifact"
                print(f"edgeship: note: board {board['host']}: {target} {quant} {model} left out of its extra targets: {why}", file=sys.stderr)
                continue
            chosen.append({"model": model, "primary": artifact, "cpu": None, "note": None})
    return chosen


def board_selection(board: dict, artifacts: list[dict], models: list[str] | None, root: Path | str = "the artifacts root") -> list[dict]:
    """Per model: the board's own artifact (or None when its target has none yet) and a CPU one."""
    models = models or sorted({a["model"] for a in artifacts})
    selection: list[dict] = []
    extras = extra_selection(board, artifacts, models)
    for model in models:
        primary = _newest(artifacts, model, board["target"], board["quant"])
        cpu = None
        if board.get("cpu_target") and board["cpu_target"] != board["target"]:
            cpu = _newest(artifacts, model, board["cpu_target"], board["cpu_quant"])
        held = primary is not None and _failed_at_conversion(primary)
        if held:
            primary = None  # the board's own check would refuse it, and with it the whole release
        if primary is None and cpu is None:
            continue
        note = None if primary else (
            f"{board['target']} {board['quant']} {model} held back: it failed its accuracy check at conversion ({held}); "
            f"its CPU artifact runs, labelled as a fallback" if held else
            f"no {board['target']} {board['quant']} artifact of {model}; its CPU artifact runs, labelled as a fallback")
        # the board's own target first (the demo shows a model's first entry), then its other runtimes
        selection.append({"model": model, "primary": primary, "cpu": cpu, "note": note})
        selection += [extra for extra in extras if extra["model"] == model]
    if not selection:
        wanted = f"{board['target']}/{board['quant']}" + (f" or {board['cpu_target']}/{board['cpu_quant']}" if board.get("cpu_target") else "")
        raise EdgeshipError(f"board {board['host']}: no artifact of {', '.join(models) or 'any model'} for {wanted} under {root}; "
                            f"convert one first, e.g. `invoke convert --target {board['cpu_target'] or board['target']} --model MODEL.onnx`")
    return selection


def extras_for(selection: list[dict], configured: list[str] | None, demo: bool = False) -> tuple[str, ...]:
    """The runtime extras a board installs: as configured, or its artifacts' backends (plus
    `demo`, OpenCV for the camera demo, when the board shows it)."""
    if configured:
        extras = set(configured)
    else:
        from edgeship_runtime.backends import backend_class
        from edgeship_runtime.errors import ArtifactError
        from edgeship_runtime.tasks import extra_of

        manifests = [a["manifest"] for entry in selection for a in (entry["primary"], entry["cpu"]) if a]
        try:
            extras = {extra for extra in (backend_class(m["runtime_backend"]).extra for m in manifests) if extra}
        except ArtifactError as error:
            raise EdgeshipError(str(error)) from None
        # what the board's check needs to judge the models by their task (a detector's boxes, OCR's text)
        tasks = [m.get("task") for m in manifests]
        extras |= {extra for task in tasks if isinstance(task, dict) and (extra := extra_of(str(task.get("name")))) is not None}
    return tuple(sorted(extras | ({"demo"} if demo else set())))


def no_board_runtime(board: dict) -> str:
    """Why a board is not deployed to, when its target's artifacts have no board runtime (mcu: C
    source for a firmware build); "" for every other board."""
    from edgeship.convert.request import find_target

    target = find_target(board["target"])
    if target.runtime_backend:
        return ""
    return (f"board {board['host']} skipped: target {target.name} has no board runtime (its artifacts are C source for a firmware "
            f"build, which no Linux board runs); give the board a target with a runtime in the inventory (edgeship_target)")


def make_plan(boards: list[dict], artifacts_root: Path, models: list[str] | None = None, bundles: Path | None = None, label: str = "",
              signing_key: Path | None = None) -> dict:
    """Each board's bundle, packed and (given a signing key) signed: the board refuses an unsigned one."""
    from edgeship.convert.request import find_target
    from edgeship.fleet.signing import check_key, sign
    from edgeship.fleet.wheels import DEFAULT_GLIBC, ensure_runtime_wheelhouse

    bundles = bundles or cache_root() / "bundles"
    if signing_key is not None:
        check_key(signing_key)  # before anything is packed
    artifacts = find_artifacts(artifacts_root)
    if not artifacts:
        raise EdgeshipError(f"no artifacts under {artifacts_root}; run `invoke convert ...` (or `./dev main`) first, "
                            "or point edgeship_deploy_artifacts_root at the folder that holds them")
    plans = {}
    packed_once: dict = {}  # boards whose bundles are the same bytes share one bundle and its one signature
    signatures: dict[str, str] = {}
    for board in sorted(boards, key=lambda b: b["host"]):
        arch = BOARD_ARCH.get(board["arch"])
        if arch is None:
            raise EdgeshipError(f"board {board['host']}: architecture {board['arch']!r} has no wheels; edgeship supports x86_64 and aarch64 boards")
        board = dict(board, arch=arch, python=".".join(str(board["python"]).split(".")[:2]))
        skipped = no_board_runtime(board)
        if skipped:
            print(f"edgeship: note: {skipped}", file=sys.stderr)
            plans[board["host"]] = {"skipped": skipped}
            continue
        selection = board_selection(board, artifacts, list(board.get("models") or []) or models, artifacts_root)
        extras = extras_for(selection, board.get("extras"), str(board.get("demo", False)).lower() in ("true", "1", "yes"))
        wheelhouse = ensure_runtime_wheelhouse(arch, board["python"], extras, str(board.get("glibc") or DEFAULT_GLIBC))
        device_nodes = find_target(board["target"]).device_nodes
        packed = pack_bundle(board, selection, wheelhouse, extras, bundles, label, device_nodes, packed=packed_once)
        # the bundle's <name>.sig, or None: the board refuses an unsigned bundle before unpacking it
        if signing_key is not None and packed["bundle"] not in signatures:
            signatures[packed["bundle"]] = str(sign(Path(packed["bundle"]), signing_key))
        packed["signature"] = signatures.get(packed["bundle"])
        plans[board["host"]] = packed
    bundles_packed = "".join(f"{h}:{p['bundle_sha256']}\n" for h, p in sorted(plans.items()) if "skipped" not in p)
    release_id = hashlib.sha256(bundles_packed.encode()).hexdigest()[:16]
    return {"release_id": release_id, "hosts": plans}
