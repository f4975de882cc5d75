"""edgeship tasks: `invoke --list` shows them; `invoke --help TASK` explains each argument."""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

from invoke import Collection, Exit, task

from edgeship.errors import EdgeshipError
from edgeship.paths import REPO_ROOT


def _one_line(text: object, limit: int = 2000) -> str:
    return " ".join(str(text).split())[:limit]


def user_errors(function):
    """Turn EdgeshipError (a user's mistake) into one line on stderr and exit code 2; anything
    else unexpected (a bug, an input nobody checks yet) into one line and exit code 3, its
    traceback shown only with EDGESHIP_DEBUG=1."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except Exit:
            raise
        except EdgeshipError as error:
            raise Exit(f"edgeship: error: {_one_line(error)}", code=2) from None
        except Exception as error:
            if os.environ.get("EDGESHIP_DEBUG"):
                raise
            raise Exit(f"edgeship: error: unexpected {type(error).__name__}: {_one_line(error, 300)} (a bug in edgeship; run again with "
                       f"EDGESHIP_DEBUG=1 for the traceback and report it)", code=3) from None

    return wrapper


def _spec_names(target: str) -> list[str]:
    from edgeship.images.locks import all_specs, load_spec

    if target == "all":
        return [spec.name for spec in all_specs()]
    return [load_spec(target).name]


@task(help={"target": "image folder under images/ to build, or 'all'", "rebuild": "build even if an image of the same key exists"})
@user_errors
def images_build(c, target="all", rebuild=False):
    """Build toolchain images (base image and wheelhouse first, then a smoke test in the image)."""
    from edgeship.images.build import build
    from edgeship.images.engine import ensure_engine
    from edgeship.images.locks import load_spec

    client = ensure_engine()
    for name in _spec_names(target):
        image = build(client, load_spec(name), rebuild=rebuild)
        print(f"{name}: {image.tags[0] if image.tags else image.id}")


@task(help={"arch": "Debian architecture (amd64, arm64); default: this machine's", "rebuild": "bootstrap again even if cached"})
@user_errors
def images_base(c, arch=None, rebuild=False):
    """Bootstrap the Debian bookworm base image from Debian's archive (debootstrap + docker import)."""
    from edgeship.images.base import ensure_base_image
    from edgeship.images.engine import ensure_engine

    print(ensure_base_image(ensure_engine(), arch=arch, rebuild=rebuild))


@task(help={"target": "image folder under images/, or 'all'"})
@user_errors
def images_lock(c, target="all"):
    """Regenerate an image's requirements.lock (pinned, hashed) from its requirements.in."""
    from edgeship.images.locks import compile_lock, load_spec

    for name in _spec_names(target):
        print(compile_lock(load_spec(name)))


@task(help={"target": "image folder under images/, or 'all'"})
@user_errors
def images_wheels(c, target="all"):
    """Fetch an image's wheelhouse into the cache (keyed by the lock file's sha256)."""
    from edgeship.images.locks import ensure_wheelhouse, load_spec

    for name in _spec_names(target):
        print(ensure_wheelhouse(load_spec(name)))


@task(help={"target": "image folder under images/, or 'all'", "out": "folder for the archives (e.g. the CI's cache folder)"})
@user_errors
def images_save(c, target="all", out="image-archives"):
    """docker save a built toolchain image and its base into OUT/<image>-<recipe>.tar, for runners that load instead of building."""
    from edgeship.images.build import save
    from edgeship.images.engine import ensure_engine
    from edgeship.images.locks import load_spec

    client = ensure_engine()
    for name in _spec_names(target):
        print(save(client, load_spec(name), out))


@task(help={"target": "image folder under images/, or 'all'", "folder": "folder `invoke images.save` wrote"})
@user_errors
def images_load(c, target="all", folder="image-archives"):
    """docker load the archive of each image's current recipe (checked against its sha256 first) instead of building it."""
    from edgeship.images.build import load
    from edgeship.images.engine import ensure_engine
    from edgeship.images.locks import load_spec

    client = ensure_engine()
    for name in _spec_names(target):
        image = load(client, load_spec(name), folder)
        print(f"{name}: {image.tags[0] if image.tags else image.id}")


@task(help={"quiet": "say nothing when everything is there"})
def setup(c, quiet=False):
    """Install and start what edgeship needs from the OS (as root on Debian/Ubuntu: Docker, debootstrap, qemu-user, Chromium)."""
    from edgeship.host import setup as host_setup

    host_setup(quiet=quiet)


@task
@user_errors
def engine(c):
    """Show the Docker engine edgeship uses (`./dev setup` starts one)."""
    from edgeship.images.engine import ensure_engine

    info = ensure_engine().info()
    print(f"docker engine {info.get('ServerVersion')} ({info.get('Driver')}, cgroup v{info.get('CgroupVersion', '?')})")


@task(help={"force": "rebuild the examples even if they exist", "out": "folder to write them into"})
@user_errors
def examples(c, force=False, out="examples"):
    """Make the example models (digits CNN, PP-OCR det/cls/rec, random-weight MobileNetV2 and YOLO) without downloads from model hubs."""
    from edgeship.examples import build_examples

    for folder in build_examples(Path(out), force=force):
        print(folder)


@task
def targets(c):
    """List the targets, their quantization modes and options."""
    import targets as target_table

    for target in target_table.TARGETS.values():
        print(f"{target.name}: {target.description}")
        backend = target.runtime_backend or "none (a firmware build runs it)"
        print(f"  image images/{target.image}, sources {', '.join(target.source_formats)}, runtime backend {backend}")
        print(f"  --quant {'|'.join(target.quantizations)} (default {target.default_quant}; calibration for {', '.join(target.needs_calibration)})")
        for option in target.options:
            scope = f" [{'/'.join(option.applies_to)}]" if option.applies_to else ""
            print(f"  --option {option.name}={'|'.join(option.choices)} (default {option.default}){scope}: {option.help}")


@task(
    iterable=["input_shape", "option", "input_value", "batch_axis", "state"],
    help={
        "target": "target name (see `invoke targets`)",
        "model": "source model: .onnx file (tflite also: .keras/.h5 file or SavedModel directory)",
        "quant": "quantization mode offered by the target (default: the target's)",
        "calib": "calibration directory: one .npy sample per file (or .npz by input name); needed for int8",
        "eval": "evaluation set .npz: inputs stacked on axis 0, optional `labels` for labelled accuracy",
        "labels": "class names: text file, one per line (or a JSON list)",
        "preprocess": "JSON file: how a camera frame becomes the model input (color, invert, scale, mean, std, resize, layout); the demo reads it",
        "task": "what the model is for: classify, detect, segment, ocr-rec, generic, or a JSON file with the task and its decoder "
                "(accuracy is judged by it; default classify with --labels, else generic)",
        "input_shape": "NAME:D0,D1,... static shape for a dynamic input (repeatable)",
        "input_value": "NAME=VALUE[,VALUE...]: freeze an ONNX input to this constant before the graph clean-up, which folds away "
                       "the branches it decides; the artifact no longer takes it (repeatable), e.g. sr=16000",
        "batch_axis": "NAME:AXIS (or NAME:none): the axis an input's samples are stacked on in --calib/--eval files and "
                      "references (default: a dimension the model names batch, else axis 0 when it is 1, else none) (repeatable)",
        "state": "OUTPUT:INPUT: the output that feeds an input at the next step, e.g. stateN:state (default: found by name); "
                 "the eval set may then hold sequences, carried step to step (repeatable)",
        "option": "target option KEY=VALUE (repeatable), e.g. io_dtype=uint8",
        "out": "artifacts root folder (default: artifacts/)",
        "name": "artifact name prefix (default: the model file's stem, or its folder for model.onnx)",
        "rebuild_image": "rebuild the target's image before converting",
        "fresh": "convert again in a new container, even when the same request has an artifact or failed before",
        "gpus": "jetson: also build a test engine on this host's NVIDIA GPU (docker --gpus all) and write the int8 calibration cache",
    },
)
@user_errors
def convert(c, target, model, quant=None, calib=None, eval=None, labels=None, input_shape=None, option=None,
            out=None, name=None, rebuild_image=False, gpus=False, preprocess=None, task=None, fresh=False, input_value=None,
            batch_axis=None, state=None):
    """Convert a model for a target inside its toolchain image; prints the artifact directory last."""
    from edgeship.convert import hits  # a hit imports nothing heavier (convert/hits.py)

    out = out or c.config.get("edgeship", {}).get("artifacts", "artifacts")
    # every field of edgeship.convert.Request: the hit is keyed by what the full path is given
    fields = dict(
        target=target, model=Path(model), quant=quant, calib=Path(calib) if calib else None,
        eval=Path(eval) if eval else None, labels=Path(labels) if labels else None,
        input_shapes=list(input_shape or []), options=hits.parse_options(option), out=Path(out), name=name, gpus=gpus,
        preprocess=Path(preprocess) if preprocess else None, task=task, input_values=list(input_value or []),
        batch_axes=list(batch_axis or []), state=list(state or []),
    )
    found = None if rebuild_image or fresh else hits.hit(fields)
    if found:
        artifact, lines = found
    else:
        from edgeship.convert import Request, summary
        from edgeship.convert import convert as run_convert

        artifact = run_convert(Request(**fields), rebuild_image=rebuild_image, fresh=fresh)
        lines = summary(artifact)
    for line in lines:
        print("edgeship: " + line)
    print(artifact)


STORE_HELP = "results store: postgresql://USER@HOST[:PORT]/DATABASE shared by many runners (default: results/edgeship.db, SQLite)"


def _use_store(store: str, config: Path = Path("edgeship.toml")) -> None:
    """--store, else the conversions file's [project] store, else SQLite in the results folder."""
    from edgeship.report import store as results_store

    if not store and config.is_file():
        from edgeship.convert.project import project_store

        store = project_store(config) or ""
    results_store.use(store or None)


@task(help={"out": "results folder for the report (default: results/)",
            "quick": "only the real models (digits, PP-OCR det and rec): no random-weight speed models",
            "full": "the real models in every mode every target offers (PP-OCR cls too)",
            "inventory": "inventory whose [sim] boards are started and deployed to (default: inventory.ini)",
            "no_fleet": "stop after the conversions (no simulated fleet)", "store": STORE_HELP})
@user_errors
def main(c, out="results", quick=False, full=False, inventory="inventory.ini", no_fleet=False, store=""):
    """The main job: images, examples, conversions, the simulated fleet (deploy, bench, text-reading demo), store, report, compare."""
    from edgeship.main_job import run_main

    _use_store(store)
    run_main(Path(out), quick=quick, full=full, inventory=None if no_fleet else Path(inventory))


LINTERS = (("ruff", "check", "."), ("mypy",), ("lint-imports",))


def _lint(c) -> None:
    """ruff, mypy and import-linter over the code, as configured in pyproject.toml: zero findings."""
    binaries = Path(sys.executable).parent
    for command in LINTERS:
        print(f"=== edgeship tests: {' '.join(command)} ===", flush=True)
        result = c.run(" ".join([str(binaries / command[0]), *command[1:]]), warn=True, pty=False)
        if result.exited != 0:
            raise Exit(f"edgeship: {command[0]} found problems (exit {result.exited}); fix them, the tests do not start otherwise",
                       code=result.exited)


@task(help={"tier": "lint, unit, container, fleet or all", "pytest_args": "extra arguments for pytest"})
def test(c, tier="all", pytest_args=""):
    """Run the tests in tiers: linters and types, unit tests, container tests (real Docker), fleet tests (simulated boards, real SSH)."""
    from concurrent.futures import Future, ThreadPoolExecutor

    tiers = ["lint", "unit", "container", "fleet"] if tier == "all" else [tier]
    prepared = False
    boards: Future | None = None  # the simulated boards' images, when the fleet tier is to run
    for name in tiers:
        if name == "lint":
            _lint(c)
            continue
        if name in ("container", "fleet") and not prepared:
            if "fleet" in tiers:
                from edgeship.fleet.sim import board_images

                # debootstrap and qemu, mostly waiting: made beside the toolchain images and the container tier
                boards = ThreadPoolExecutor(1, thread_name_prefix="board-images").submit(board_images, REPO_ROOT / "inventory.ini")
            # Bring up what these tiers use first, with its progress on screen (inside
            # pytest's fixtures it would be captured) and its failures told apart.
            print("=== edgeship tests: preparing engine, images and examples ===", flush=True)
            images_build(c, target="all")
            examples(c)
            prepared = True
        if name == "fleet" and boards is not None:  # always set by then: the fleet tier made the preparation start them
            print("=== edgeship tests: preparing the simulated boards' images ===", flush=True)
            boards.result()
        print(f"=== edgeship tests: {name} tier ===", flush=True)
        # unbuffered: through a pipe, pytest's progress would show up only in 8 kB blocks
        result = c.run(f"{sys.executable} -u -m pytest tests/{name} -ra --durations=8 {pytest_args}", warn=True, pty=False)
        if result.exited == 5:
            print(f"edgeship: no tests collected in the {name} tier", flush=True)
        elif result.exited != 0:
            raise Exit(f"edgeship: the {name} tier failed (pytest exit {result.exited})", code=result.exited)


@task(help={"boards": "comma-separated hosts of the inventory's [sim] group (default: all)", "inventory": "inventory file (default: inventory.ini)",
            "light": "also run N light boards (x86_64, sshd only, tflite) beside the named ones, in .sim/light.ini; 0 removes them",
            "light_prefix": "light boards' name prefix (default: sim-l, so sim-l01, sim-l02, ...)",
            "light_port": "light boards' port base (default: 22400, so sim-l01 listens on 127.0.0.1:22401)"})
@user_errors
def sim_up(c, boards="", inventory="inventory.ini", light="", light_prefix="sim-l", light_port="22400"):
    """Start the simulated boards (containers with sshd on 127.0.0.1 ports; arm64 ones under qemu)."""
    from edgeship.fleet import sim
    from edgeship.fleet.playbook import cli_number
    from edgeship.fleet.sim import light as light_boards

    count = cli_number(light, "--light", 0, light_boards.MAX_BOARDS) if light != "" else None
    port = cli_number(light_port, "--light-port", 1024, 65535)
    for board in sim.up(Path(inventory), [b for b in boards.split(",") if b], count, light_prefix, port):
        print(f"{board.host}: {board.arch}, ssh edge@127.0.0.1 -p {board.port}, '{board.model}'")
    print(f"controller key and known_hosts: {sim.state_dir(Path(inventory))}")
    if (sim.state_dir(Path(inventory)) / light_boards.FILE).is_file():
        print(f"light boards' inventory: {sim.state_dir(Path(inventory)) / light_boards.FILE} (deploy with --inventory this file)")


@task(help={"inventory": "inventory file (default: inventory.ini)"})
@user_errors
def sim_status(c, inventory="inventory.ini"):
    """Show each simulated board: container state, port, architecture, model, SSH answer."""
    from edgeship.fleet import sim

    for row in sim.status(Path(inventory)):
        print(f"{row['host']:<14} {row['state']:<8} 127.0.0.1:{row['port']:<6} {row['arch']:<6} ssh: {row['ssh']:<10} {row['model']}")


@task(help={"boards": "comma-separated hosts (default: all)", "inventory": "inventory file (default: inventory.ini)",
            "purge": "also delete the controller key and known_hosts"})
@user_errors
def sim_down(c, boards="", inventory="inventory.ini", purge=False):
    """Remove the simulated boards' containers (and with --purge their keys)."""
    from edgeship.fleet import sim

    removed = sim.down(Path(inventory), [b for b in boards.split(",") if b], purge=purge)
    print("removed: " + (", ".join(removed) or "nothing"))


@task(help={"out": "folder for the assembled collection and its tarball (default: build/collection)"})
@user_errors
def collection(c, out="build/collection"):
    """Build the Ansible collection edgeship.fleet (playbooks and roles, FQCN) with ansible-galaxy, for AWX."""
    from edgeship.fleet.collection import build as build_collection
    from edgeship.fleet.playbook import cli_path

    tarball = build_collection(Path(cli_path(out, "--out", "new folder")))
    print(f"{tarball}\ninstall: ansible-galaxy collection install {tarball} -p COLLECTIONS_PATH; "
          f"run: ansible-playbook edgeship.fleet.deploy -i INVENTORY (docs/awx.md)")


def _playbook(playbook, inventory, limit, extra_vars):
    from edgeship.fleet.playbook import cli_path, run_playbook

    result = run_playbook(playbook, Path(cli_path(inventory, "--inventory", "either")), limit or None, extra_vars)
    if result.returncode != 0:
        raise Exit(f"edgeship: {playbook} failed on some boards (ansible-playbook exit {result.returncode}); "
                   f"see the recap above", code=result.returncode)


# Every value below reaches Ansible as an extra var: each is checked first (edgeship.fleet.playbook's
# cli_* helpers), and run_playbook passes them so that Ansible never templates them.
@task(help={"limit": "Ansible host pattern, e.g. jetson or sim-rpi", "inventory": "inventory file", "models": "comma-separated models (default: all)",
            "artifacts": "artifacts root (default: artifacts/)"})
@user_errors
def fleet_deploy(c, limit="", inventory="inventory.ini", models="", artifacts="artifacts"):
    """Deploy artifacts and the runtime to the boards (playbooks/deploy.yml)."""
    from edgeship.fleet.playbook import cli_names, cli_path

    extra: dict[str, object] = {"edgeship_release_artifacts_root": cli_path(artifacts, "--artifacts", "folder")}
    chosen = cli_names(models, "--models")
    if chosen:
        extra["edgeship_release_models"] = chosen
    _playbook("deploy.yml", inventory, limit, extra)


@task(help={"limit": "Ansible host pattern", "inventory": "inventory file", "results": "results root (default: results/)"})
@user_errors
def fleet_bench(c, limit="", inventory="inventory.ini", results="results"):
    """Benchmark the active release on the boards; results/<run-id>/<host>.json and a summary table."""
    from edgeship.fleet.playbook import cli_path

    _playbook("bench.yml", inventory, limit, {"edgeship_bench_results_dir": cli_path(results, "--results", "new folder")})


@task(help={"limit": "Ansible host pattern", "inventory": "inventory file", "to": "release id to go back to (default: the previous one)"})
@user_errors
def fleet_rollback(c, limit="", inventory="inventory.ini", to=""):
    """Switch boards back one release, or to a named one (playbooks/rollback.yml)."""
    from edgeship.fleet.playbook import cli_name

    _playbook("rollback.yml", inventory, limit, {"edgeship_rollback_to": cli_name(to, "--to")} if to else None)


@task(help={"limit": "Ansible host pattern", "inventory": "inventory file", "results": "results root (default: results/)",
            "source": "what the boards' demo reads: pattern, /dev/videoN, or a video/folder on the board (default: the inventory's)",
            "video": "a video on this machine to copy to the boards and play", "model": "model to show (default: the release's first)",
            "duration": "seconds the demo runs before its stats are taken (default 20)", "mode": "auto, service or foreground (default auto)"})
@user_errors
def fleet_demo(c, limit="", inventory="inventory.ini", results="results", source="", video="", model="", duration="", mode=""):
    """Run the camera demo on the boards (playbooks/demo.yml); stats and frames in results/<run-id>/demo/<host>/."""
    from edgeship.fleet.playbook import cli_choice, cli_name, cli_number, cli_path, cli_source

    extra: dict[str, object] = {"edgeship_demo_results_dir": cli_path(results, "--results", "new folder")}
    checked = {"source": source and cli_source(source), "video": video and cli_path(video, "--video", "file"),
               "model": model and cli_name(model, "--model"), "duration_s": duration and cli_number(duration, "--duration", 1, 86400),
               "mode": mode and cli_choice(mode, "--mode", ("auto", "service", "foreground"))}
    extra.update({f"edgeship_demo_{key}": value for key, value in checked.items() if value})
    _playbook("demo.yml", inventory, limit, extra)


@task(help={"run": "run id under results/ (default: the newest)", "results": "results root (default: results/)", "store": STORE_HELP})
@user_errors
def report(c, run="", results="results", store=""):
    """Write results/<run>/report.html and report.md from the results store (tables, plots, published figures)."""
    from edgeship.report.publish import write_report

    _use_store(store)
    for path in write_report(Path(results), run or None):
        print(path)


@task(help={"base": "run id (or a tag set with --tag) to compare against", "new": "run id to judge (default: the newest)",
            "results": "results root (default: results/)", "tag": "name this NEW run as a baseline tag instead of comparing",
            "threshold": "KEY=VALUE thresholds, e.g. latency_pct=5 size_pct=2 accuracy_points=1 (repeatable)", "store": STORE_HELP},
      iterable=["threshold"])
@user_errors
def compare(c, base="", new="", results="results", tag="", threshold=None, store=""):
    """Compare two runs: what got slower, bigger or less accurate; exit 1 on a regression."""
    from edgeship.report.regressions import compare_runs

    _use_store(store)
    code = compare_runs(Path(results), base or None, new or None, tag=tag or None, thresholds=list(threshold or []))
    if code:
        raise Exit(code=code)


SHARD_HELP = "K/N: only shard K of the plan's N (`invoke plan --shards N`); build writes a partial lock for `invoke lock.merge`"
PLAN_FILE_HELP = "the plan file `invoke plan --shards N --out FILE` wrote (default: plan again here from the same file and times)"


@task(help={"config": "the conversions file (default: edgeship.toml)", "out": "artifacts root (default: the file's, else artifacts/)",
            "entries": "comma-separated entry names (default: all)", "shard": SHARD_HELP, "plan": PLAN_FILE_HELP,
            "lock_out": "where to write the lock (default: the file's lock; with --shard its .part-K-of-N beside it)"})
@user_errors
def build(c, config="edgeship.toml", out="", entries="", shard="", plan="", lock_out=""):
    """Convert every entry of the conversions file (models x targets x modes) and write conversions.lock."""
    from edgeship.convert.project import build_all
    from edgeship.examples.project import make_missing_examples

    make_missing_examples(Path(config))
    build_all(Path(config), Path(out) if out else None, [e for e in entries.split(",") if e], shard=shard,
              plan_file=Path(plan) if plan else None, lock_out=Path(lock_out) if lock_out else None)


@task(help={"config": "the conversions file (default: edgeship.toml)", "entries": "comma-separated entry names (default: all)",
            "shard": "K/N: verify only shard K of the plan's N", "plan": PLAN_FILE_HELP})
@user_errors
def verify(c, config="edgeship.toml", entries="", shard="", plan=""):
    """Reconvert every locked entry in clean containers (cache bypassed); exit 1 naming any byte that drifted and why."""
    from edgeship.convert.project import verify_all
    from edgeship.examples.project import make_missing_examples

    make_missing_examples(Path(config))
    code = verify_all(Path(config), [e for e in entries.split(",") if e], shard=shard, plan_file=Path(plan) if plan else None)
    if code:
        raise Exit(code=code)


@task(help={"config": "the conversions file (default: edgeship.toml)",
            "shards": "group the entries into N balanced jobs (default: one row per entry)",
            "out": "also write the plan to this file (for `invoke build --shard K/N --plan FILE`)",
            "times": "build times file (default: <artifacts>/build-times.json, which `invoke build` writes)",
            "image_cost": "seconds one more image costs a job (building or loading it; default 60)"})
@user_errors
def plan(c, config="edgeship.toml", shards=0, out="", times="", image_cost=-1.0):
    """Print the conversions file's entries as JSON for a CI matrix; --shards N: N jobs balanced by image and measured time."""
    import json

    from edgeship.convert import shards as sharding
    from edgeship.convert.project import load_project
    from edgeship_runtime.files import atomic_write_text

    project = load_project(Path(config), check_sha=False)
    measured = sharding.read_times(Path(times) if times else project.artifacts / sharding.TIMES_NAME)
    cost = sharding.IMAGE_COST_S if image_cost < 0 else image_cost
    text = json.dumps(sharding.make_plan(project, shards or None, measured, cost), sort_keys=True) + "\n"
    if out:
        atomic_write_text(out, text)
    sys.stdout.write(text)


@task(iterable=["part"], help={"part": "a partial lock `invoke build --shard K/N` wrote (repeatable; default: every "
                                        "<lock>.part-K-of-N beside the conversions file's lock)",
                               "config": "the conversions file (default: edgeship.toml)", "out": "the merged lock (default: the file's lock)"})
@user_errors
def lock_merge(c, part=None, config="edgeship.toml", out=""):
    """Combine the shards' partial locks into conversions.lock (refusing overlaps, gaps and parts of other plans)."""
    from edgeship.convert.project import load_project
    from edgeship.convert.shards import merge_parts

    project = load_project(Path(config), check_sha=False)
    parts = [Path(p) for p in part] if part else sorted(project.lock.parent.glob(f"{project.lock.name}.part-*-of-*"))
    merged = merge_parts(project, parts, Path(out) if out else project.lock)
    print(f"edgeship: merged {len(parts)} partial locks into {merged}")


images = Collection("images")
images.add_task(images_build, "build")
images.add_task(images_base, "base")
images.add_task(images_lock, "lock")
images.add_task(images_wheels, "wheels")
images.add_task(images_save, "save")
images.add_task(images_load, "load")

lock = Collection("lock")
lock.add_task(lock_merge, "merge")

sim = Collection("sim")
sim.add_task(sim_up, "up")
sim.add_task(sim_status, "status")
sim.add_task(sim_down, "down")

fleet = Collection("fleet")
fleet.add_task(fleet_deploy, "deploy")
fleet.add_task(fleet_bench, "bench")
fleet.add_task(fleet_rollback, "rollback")
fleet.add_task(fleet_demo, "demo")

ns = Collection(setup, engine, examples, targets, convert, build, verify, plan, main, report, compare, test, images, sim, fleet, collection, lock)
ns.configure({"edgeship": {"artifacts": os.environ.get("EDGESHIP_ARTIFACTS", "artifacts")}})
