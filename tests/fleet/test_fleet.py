"""Deploy, benchmark, faults and rollback on the simulated fleet, through ansible-playbook and SSH.

The tests run in file order on one fleet: the first deploy (with a board killed mid-run)
makes the release the later ones build on.
"""

from __future__ import annotations

import json
import re
import subprocess
import time

import numpy as np
import pytest

from tests.support.fleet import corrupt_copy, fleet_inventory, recap

pytestmark = pytest.mark.fleet
HOSTS = ("t-coral", "t-jetson", "t-rk3588", "t-rpi")
EVERY_BOARD = (*HOSTS, "t-nuc")  # with the x86 OpenVINO board, which the demo tests leave out


def test_board_killed_mid_deploy_others_finish_then_rerun_succeeds(fleet):
    from edgeship.fleet import sim
    from edgeship.fleet.playbook import PLAYBOOKS, playbook_command, playbook_env

    before = fleet.current("t-jetson")  # None, or a release an earlier test (the collection's) activated there
    command = playbook_command("deploy.yml", fleet.inventory, None, {"edgeship_release_artifacts_root": str(fleet.artifacts),
                                                                     "edgeship_waves": ["100%"]})  # one wave: the others go on
    process = subprocess.Popen(command, cwd=PLAYBOOKS, env=playbook_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 600
    while not fleet.releases("t-jetson") and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.3)
    assert fleet.releases("t-jetson"), "t-jetson never started receiving its release"
    subprocess.run(["docker", "kill", "edgeship-sim-t-jetson"], check=True, capture_output=True)
    output, _ = process.communicate(timeout=900)
    print(output)
    counters = recap(output)
    assert process.returncode != 0
    assert counters["t-jetson"]["unreachable"] + counters["t-jetson"]["failed"] >= 1
    for host in ("t-coral", "t-rk3588", "t-rpi"):
        assert counters[host]["failed"] == 0 and counters[host]["unreachable"] == 0, host
        assert fleet.current(host), f"{host} has no current release"

    sim.up(fleet.inventory, ["t-jetson"])  # the board comes back with the same host key
    assert fleet.current("t-jetson") == before  # the killed board activated nothing
    rerun = fleet.playbook("deploy.yml")
    assert rerun.returncode == 0
    releases = {fleet.current(host) for host in HOSTS}
    assert len(releases) == 1 and None not in releases  # one release id for the whole run
    assert releases <= set(fleet.releases("t-jetson"))


def test_a_board_another_checkout_started_is_replaced_so_this_ones_ssh_works(tmp_path_factory):
    """Two clones share one Docker engine and the board names of the inventory; each has its own
    controller key (.sim/), so a board the other one started is started again for this one."""
    from edgeship.fleet import sim

    first = fleet_inventory(tmp_path_factory.mktemp("clone-a"), prefix="k-", port_base=22500)
    second = fleet_inventory(tmp_path_factory.mktemp("clone-b"), prefix="k-", port_base=22500)
    try:
        sim.up(first, ["k-jetson"])
        sim.up(second, ["k-jetson"])
        board = {b.host: b for b in sim.read_inventory(second)}["k-jetson"]
        probe = subprocess.run(sim.ssh_command(sim.state_dir(second), board, "id -un"), capture_output=True, text=True, timeout=120)
        assert probe.returncode == 0 and probe.stdout.strip() == "edge", probe.stderr
    finally:
        sim.down(second, purge=True)
        sim.down(first, purge=True)


def test_arm64_board_installed_aarch64_wheels_offline(fleet):
    from edgeship.fleet import sim

    boards = {board.host: board for board in sim.read_inventory(fleet.inventory)}
    for host, machine in (("t-rk3588", "aarch64"), ("t-rpi", "x86_64")):
        # over real SSH with the host key checked: the board's user is unprivileged and may sudo
        probe = subprocess.run(sim.ssh_command(sim.state_dir(fleet.inventory), boards[host], "uname -m; id -u; sudo -n id -u"),
                               capture_output=True, text=True, timeout=120)
        assert probe.returncode == 0, probe.stderr
        assert probe.stdout.split() == [machine, "1000", "0"]
    wheels = fleet.board("t-rk3588", "ls", "/home/edge/edgeship/current/wheels").stdout.split()
    assert any(re.search(r"ai_edge_litert-.*aarch64\.whl$", w) for w in wheels), wheels
    assert not any("x86_64" in w for w in wheels)
    assert any(re.search(r"rknn_toolkit_lite2-2\.5\.0-.*aarch64\.whl$", w) for w in wheels), wheels
    probe = fleet.board("t-rk3588", "/home/edge/edgeship/current/venv/bin/python", "-c",
                        "import platform, ai_edge_litert, numpy, importlib.metadata as m; "
                        "print(platform.machine(), numpy.__version__, m.version('rknn-toolkit-lite2'))")
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split()[0] == "aarch64" and probe.stdout.split()[2] == "2.5.0"


def test_bench_brings_results_home_and_prints_summary(fleet):
    before = set(fleet.results.iterdir()) if fleet.results.is_dir() else set()  # other tests' runs (coral's) share the folder
    result = fleet.playbook("bench.yml")
    assert result.returncode == 0
    runs = [p for p in set(fleet.results.iterdir()) - before if p.is_dir()]
    assert len(runs) == 1, runs
    run = runs[0]
    for host in HOSTS:
        document = json.loads((run / f"{host}.json").read_text())
        assert document["host"] == host
        assert document["results"][0]["check"]["passed"] is True
        assert document["results"][0]["bench"]["steady"]["mean_ms"] > 0
    rk = json.loads((run / "t-rk3588.json").read_text())
    assert rk["detect"]["board"]["model"].startswith("Radxa ROCK 5B")
    assert "rockchip,rk3588" in rk["detect"]["board"]["compatible"]
    assert rk["detect"]["arch"] == "aarch64"
    assert rk["detect"]["accelerators"]["rknpu"]["present"] is False
    assert rk["detect"]["accelerators"]["rknpu"]["librknnrt"] is None
    # the board asked for the .rknn model; without an NPU it ran the CPU artifact and says so
    fallback = rk["results"][0]["bench"]["fallback"]
    assert fallback["cpu_fallback"] is True and fallback["requested"]["backend"] == "rknnlite"
    assert "rknpu" in fallback["reason"]
    jetson = json.loads((run / "t-jetson.json").read_text())
    assert jetson["detect"]["accelerators"]["nvidia_gpu"]["jetson"] is True
    assert jetson["detect"]["accelerators"]["nvidia_gpu"]["present"] is False
    assert jetson["results"][0]["bench"]["backend"] == "onnxruntime"
    # the board asked for the TensorRT artifact; without a GPU its own ONNX ran on ONNX Runtime's CPU provider
    jetson_fallback = jetson["results"][0]["bench"]["fallback"]
    assert jetson_fallback["requested"]["backend"] == "tensorrt" and jetson_fallback["used"]["target"] == "jetson"
    assert jetson_fallback["used"]["artifact_sha256"] == jetson_fallback["requested"]["artifact_sha256"]
    assert "CPU provider" in jetson_fallback["reason"]
    assert jetson["results"][0]["check"]["passed"] is True
    summary = (run / "summary.md").read_text()
    for host in HOSTS:
        assert f"| {host} |" in summary
    assert re.search(r"\| t-rk3588 \| aarch64 \| rk3588 \| digits \| litert \| CPU fallback", summary)
    assert re.search(r"\| t-rpi \| x86_64 \| tflite \| digits \| litert \| cpu \|", summary)
    assert "| t-rpi |" in result.stdout  # printed by the play too


def test_second_identical_deploy_changes_nothing(fleet):
    result = fleet.playbook("deploy.yml")
    assert result.returncode == 0
    counters = recap(result.stdout)
    assert set(counters) == set(EVERY_BOARD)
    assert all(c["changed"] == 0 and c["failed"] == 0 for c in counters.values()), counters
    # every board runs the planned release already: nothing installed, checked or gated again
    for host in EVERY_BOARD:
        assert re.search(rf"{host}: {fleet.current(host)} was current already \(its files verified\)", result.stdout), host
    assert "Check every artifact's accuracy on the board" not in result.stdout


def test_a_changed_file_in_the_release_a_board_runs_fails_the_unchanged_deploy(fleet):
    """The unchanged deploy still verifies what the board runs against its SHA256SUMS: a file
    changed on the board fails it, naming the file; `current` stays (the fix is the board's)."""
    release = f"/home/edge/edgeship/releases/{fleet.current('t-nuc')}"
    listed = fleet.board("t-nuc", "sh", "-c", f"cd {release} && grep -m1 'manifest.json' SHA256SUMS").stdout.split()
    assert len(listed) == 2, listed
    manifest = listed[1].lstrip("*")
    original = fleet.board("t-nuc", "cat", f"{release}/{manifest}").stdout
    assert fleet.board("t-nuc", "sh", "-c", f"chmod u+w {release}/{manifest} && echo ' ' >> {release}/{manifest}").returncode == 0
    try:
        result = fleet.playbook("deploy.yml")  # every board: a deploy limited to one plans a release of its own
        assert result.returncode != 0
        assert recap(result.stdout)["t-nuc"]["failed"] == 1 and recap(result.stdout)["t-rpi"]["failed"] == 0
        assert re.search(rf"{release} on t-nuc is not as it was installed \(.*{re.escape(manifest)}: FAILED", result.stdout)
        assert fleet.current("t-nuc") == release.rsplit("/", 1)[1]  # still the release it ran
    finally:
        restore = subprocess.run(["docker", "exec", "-i", "-u", "edge", "edgeship-sim-t-nuc", "sh", "-c", f"cat > {release}/{manifest}"],
                                 input=original, text=True, capture_output=True)
        assert restore.returncode == 0, restore.stderr
    assert fleet.playbook("deploy.yml").returncode == 0


def test_artifact_changed_after_conversion_never_leaves_the_controller(fleet, tmp_path):
    """The bundle hashes each file as it packs it against its manifest's sha256: a model changed
    after conversion is refused before anything reaches the board (the board checks SHA256SUMS
    again after unpacking, against what travels)."""
    before, releases = fleet.current("t-rpi"), fleet.releases("t-rpi")
    artifact = corrupt_copy(fleet.artifacts, tmp_path / "artifacts", r"digits-tflite-fp16-")
    model = artifact / "model.tflite"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    result = fleet.playbook("deploy.yml", limit="t-rpi", edgeship_release_artifacts_root=str(tmp_path / "artifacts"))
    assert result.returncode != 0
    output = (result.stdout or "") + (result.stderr or "")  # the playbook's stderr goes to its stdout
    assert re.search(r"model\.tflite: its sha256 [0-9a-f]{12}\.\.\. is not the [0-9a-f]{12}\.\.\. its manifest lists", output)
    assert fleet.current("t-rpi") == before
    assert fleet.releases("t-rpi") == releases


def test_release_failing_the_accuracy_check_is_not_activated(fleet, tmp_path):
    from edgeship_runtime.artifact import sha256_file

    before, releases = fleet.current("t-rpi"), fleet.releases("t-rpi")
    artifact = corrupt_copy(fleet.artifacts, tmp_path / "artifacts", r"digits-tflite-fp16-")
    # A reference that the model does not reproduce, with the manifest updated to match it:
    # every sha256 checks out, so only the board's accuracy check can stop it.
    outputs = artifact / "reference" / "outputs.npz"
    with np.load(outputs) as reference:
        wrong = {name: -reference[name][::-1] for name in reference.files}
    np.savez(outputs, **wrong)
    manifest = json.loads((artifact / "manifest.json").read_text())
    manifest["files"]["reference/outputs.npz"] = sha256_file(outputs)
    (artifact / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    result = fleet.playbook("deploy.yml", limit="t-rpi", edgeship_release_artifacts_root=str(tmp_path / "artifacts"))
    assert result.returncode != 0
    assert "Check every artifact's accuracy on the board" in result.stdout
    assert "was NOT activated on t-rpi" in result.stdout
    assert fleet.current("t-rpi") == before
    assert fleet.releases("t-rpi") == releases


def test_full_disk_fails_clearly_keeps_previous_release_then_rollback(fleet, tmp_path_factory):
    """A board with a 1.5 GB deploy disk (two releases with the demo's OpenCV and the ncnn/MNN wheels fit): fill it,
    deploy, fail cleanly; free it, deploy; roll back."""
    from edgeship.fleet import sim
    from tests.support.fleet import Fleet

    folder = tmp_path_factory.mktemp("tiny")
    inventory = fleet_inventory(folder, prefix="d-", port_base=22400)
    inventory.write_text(re.sub(r"^(d-rpi ansible_port=\d+)", r"\1 edgeship_sim_disk_mb=1536", inventory.read_text(), flags=re.MULTILINE))
    sim.up(inventory, ["d-rpi"])
    tiny = Fleet(inventory=inventory, artifacts=fleet.artifacts, results=folder / "results")
    try:
        assert tiny.playbook("deploy.yml", limit="d-rpi", edgeship_release_label="A").returncode == 0
        release_a = tiny.current("d-rpi")
        free_kb = int(tiny.board("d-rpi", "df", "--output=avail", "-k", "/home/edge/edgeship").stdout.split()[-1])
        filler = tiny.board("d-rpi", "fallocate", "-l", f"{max(free_kb - 4096, 0)}k", "/home/edge/edgeship/filler")
        assert filler.returncode == 0, filler.stderr

        full = tiny.playbook("deploy.yml", limit="d-rpi", edgeship_release_label="B")
        assert full.returncode != 0
        assert "No space left on device" in full.stdout
        assert "was NOT activated on d-rpi" in full.stdout
        assert tiny.current("d-rpi") == release_a
        assert tiny.releases("d-rpi") == [release_a]
        release = json.loads(tiny.board("d-rpi", "cat", "/home/edge/edgeship/current/release.json").stdout)
        assert tiny.board("d-rpi", "/home/edge/edgeship/current/venv/bin/edgeship-runtime", "check",
                          f"/home/edge/edgeship/current/artifacts/{release['bench'][0]['artifact']}").returncode == 0

        tiny.board("d-rpi", "rm", "/home/edge/edgeship/filler")
        assert tiny.playbook("deploy.yml", limit="d-rpi", edgeship_release_label="B").returncode == 0
        release_b = tiny.current("d-rpi")
        assert release_b != release_a and tiny.releases("d-rpi") == sorted([release_a, release_b])

        back = tiny.playbook("rollback.yml", limit="d-rpi")
        assert back.returncode == 0
        assert tiny.current("d-rpi") == release_a
        again = tiny.playbook("rollback.yml", limit="d-rpi")  # nothing activated before A
        assert again.returncode != 0 and "has no earlier activated release" in again.stdout
        assert tiny.current("d-rpi") == release_a
        named = tiny.playbook("rollback.yml", limit="d-rpi", edgeship_rollback_to=release_b)
        assert named.returncode == 0 and tiny.current("d-rpi") == release_b

        pruned = tiny.playbook("deploy.yml", limit="d-rpi", edgeship_release_label="C", edgeship_release_keep=1)
        assert pruned.returncode == 0
        assert tiny.releases("d-rpi") == [tiny.current("d-rpi")]
    finally:
        sim.down(inventory, purge=True)


def test_librknnrt_older_than_the_toolkit_is_refused_before_activation(fleet):
    """A board whose librknnrt predates the rknn-toolkit2 that built the model: the deploy's
    check refuses the release with the classic "Invalid RKNN model version" explanation.
    The library here is a stand-in file carrying the version string the real one embeds
    (Rockchip's librknnrt is not on any package registry we can reach)."""
    before, releases = fleet.current("t-rk3588"), fleet.releases("t-rk3588")
    library = "/usr/lib/librknnrt.so"
    stub = subprocess.run(["docker", "exec", "edgeship-sim-t-rk3588", "sh", "-c",
                           f"printf '\\177ELF librknnrt version: 1.6.0 (9a7b5d24c@2023-12-13T17:31:11)\\0' > {library}"],
                          capture_output=True, text=True)
    assert stub.returncode == 0, stub.stderr
    try:
        result = fleet.playbook("deploy.yml", limit="t-rk3588", edgeship_release_label="old-librknnrt")
    finally:
        subprocess.run(["docker", "exec", "edgeship-sim-t-rk3588", "rm", "-f", library], check=True)
    assert result.returncode != 0
    assert "Invalid RKNN model version" in result.stdout
    assert re.search(r"built by rknn-toolkit2 2\.5\.0 but this board's /usr/lib/librknnrt\.so is version 1\.6\.0", result.stdout)
    assert "was NOT activated on t-rk3588" in result.stdout
    assert fleet.current("t-rk3588") == before
    assert fleet.releases("t-rk3588") == releases


def test_jetson_deploy_prepares_its_artifacts_as_a_polled_background_task(fleet):
    """deploy.yml -l jetson: the prepare step (TensorRT's engine build) runs async (no SSH session
    held); the simulated board has no GPU, so it reports that and the release is checked on the
    CPU fallback."""
    result = fleet.playbook("deploy.yml", limit="t-jetson", edgeship_release_label="jetson-prepare-step")
    assert result.returncode == 0, result.stdout[-3000:]
    assert "Start preparing the artifacts for this board" in result.stdout
    assert "Wait for the preparation" in result.stdout
    artifacts = fleet.board("t-jetson", "ls", "/home/edge/edgeship/current/artifacts").stdout.split()
    jetson = next(name for name in artifacts if "-jetson-fp16-" in name)
    files = fleet.board("t-jetson", "ls", f"/home/edge/edgeship/current/artifacts/{jetson}").stdout.split()
    assert {"model.onnx", "tensorrt.json", "sanitize.json", "ops.json"} <= set(files)
    cli = "/home/edge/edgeship/current/venv/bin/edgeship-runtime"
    prepared = fleet.board("t-jetson", cli, "prepare", "--allow-cpu-fallback", f"/home/edge/edgeship/current/artifacts/{jetson}")
    assert prepared.returncode == 0, prepared.stderr
    document = json.loads(prepared.stdout)
    assert document["prepared"] == 0 and document["artifacts"][0]["cpu_fallback"] is True
    assert "no NVIDIA GPU" in document["artifacts"][0]["skipped"]
    refused = fleet.board("t-jetson", cli, "prepare", f"/home/edge/edgeship/current/artifacts/{jetson}")
    assert refused.returncode == 2 and "no NVIDIA GPU" in refused.stderr


def test_demo_runs_on_every_board_and_its_stats_come_home(fleet, tmp_path):
    """demo.yml with a video made from scikit-image photos: t-rpi boots systemd, so the demo
    becomes a hardened service there (left running, stats by SIGUSR1, frame over HTTP); the
    other boards run it bounded in the foreground. Every board's stats and frame come home."""
    import cv2

    from edgeship.report.media import photo_video
    from edgeship_runtime.demo import BANNER_PX

    video = photo_video(tmp_path / "photos.avi", width=320, height=240, frames_per_photo=8)
    results = tmp_path / "results"
    result = fleet.playbook("demo.yml", edgeship_demo_video=str(video), edgeship_demo_duration_s=6,
                            edgeship_demo_results_dir=str(results), edgeship_demo_run_id="demo-test")
    assert result.returncode == 0, result.stdout[-3000:]
    assert "(foreground run)" in result.stdout and "(service edgeship-demo)" in result.stdout
    boards = _board_targets(fleet.inventory)
    for host in HOSTS:
        folder = results / "demo-test" / "demo" / host
        stats = json.loads((folder / "stats.json").read_text())
        service = host == "t-rpi"
        assert stats["error"] is None and stats["final"] is not service, host  # the service's is a SIGUSR1 snapshot
        # the emulated board ([emulated] edgeship_demo_frames=1) stops after its one frame
        bounded = "frame limit" if int(boards[host].get("edgeship_demo_frames", 0)) else "duration"
        assert stats["stopped_by"] == (None if service else bounded), host
        assert stats["source"]["kind"] == "video" and stats["source"]["live"] and stats["source"]["path"].endswith("/demo/source.avi")
        assert stats["frames"]["processed"] > 0 and stats["preprocess"]["color"] == "gray" and stats["preprocess"]["invert"]
        for stage in ("capture", "preprocess", "infer", "postprocess", "render"):
            assert stats["stages"][stage]["mean_ms"] > 0, (host, stage)
        release = json.loads(fleet.board(host, "cat", "/home/edge/edgeship/current/release.json").stdout)
        entry = release["bench"][0]
        assert "demo" in release["extras"]
        assert stats["artifact"]["path"].rsplit("/", 1)[1] in (entry["artifact"], entry["cpu_artifact"]), host
        if not service:
            predictions = (folder / "predictions.jsonl").read_text().splitlines()
            assert len(predictions) == stats["frames"]["processed"]
        frame = cv2.imread(str(folder / "frame.jpg"))
        assert frame.shape == (240 + BANNER_PX, 320, 3), host
    rk3588 = json.loads((results / "demo-test" / "demo" / "t-rk3588" / "stats.json").read_text())
    assert rk3588["fallback"]["cpu_fallback"] is True and "rknpu" in rk3588["fallback"]["reason"]  # labelled, no NPU here

    # the service on t-rpi is still running, sandboxed: the deploy user, no capabilities, no new
    # privileges, a syscall filter, a read-only root with only the demo's folder writable
    pid = fleet.board("t-rpi", "systemctl", "show", "-p", "MainPID", "--value", "edgeship-demo").stdout.strip()
    assert pid not in ("", "0")
    status = dict(line.split(":", 1) for line in fleet.board("t-rpi", "cat", f"/proc/{pid}/status").stdout.splitlines() if ":" in line)
    assert status["Uid"].split()[0] == "1000" and status["NoNewPrivs"].strip() == "1" and status["Seccomp"].strip() == "2"
    assert int(status["CapEff"].strip(), 16) == 0
    mounts = {fields[4]: fields[5] for fields in (line.split() for line in fleet.board("t-rpi", "cat", f"/proc/{pid}/mountinfo").stdout.splitlines())}
    assert mounts["/"].startswith("ro") and mounts["/home/edge/edgeship/demo"].startswith("rw") and "/tmp" in mounts

    # stopped by the play: SIGTERM, and the final stats, frame and predictions come home
    stopped = fleet.playbook("demo.yml", limit="t-rpi", edgeship_demo_video=str(video), edgeship_demo_duration_s=4,
                             edgeship_demo_keep_running=False, edgeship_demo_results_dir=str(results), edgeship_demo_run_id="demo-stop")
    assert stopped.returncode == 0, stopped.stdout[-3000:]
    final = json.loads((results / "demo-stop" / "demo" / "t-rpi" / "stats.json").read_text())
    assert final["final"] and final["stopped_by"] == "signal SIGTERM" and final["error"] is None
    assert len((results / "demo-stop" / "demo" / "t-rpi" / "predictions.jsonl").read_text().splitlines()) == final["frames"]["processed"]
    assert fleet.board("t-rpi", "systemctl", "is-active", "edgeship-demo").stdout.strip() == "inactive"


def _board_targets(inventory) -> dict[str, dict]:
    """Each host's target/quant and CPU target/quant, as the inventory gives them."""
    from edgeship.fleet.sim import _ansible_bin

    data = json.loads(subprocess.run([_ansible_bin("ansible-inventory"), "-i", str(inventory), "--list"], capture_output=True, text=True,
                                     check=True).stdout)
    return {host: data["_meta"]["hostvars"][host] for host in HOSTS}


def test_every_board_reads_text_with_a_real_detector_and_recognizer(fleet, tmp_path):
    """PP-OCRv4 det + rec for t-rpi's own target and every board's CPU fallback (the others'
    accelerator conversions take minutes each, and every board here computes on this machine's
    CPU anyway): deploy installs the `vision` extra their checks need and each board judges them
    by their task (detection F1, character agreement: never top-1 over a probability map); then
    demo.yml reads a video of moving signs on all four boards, their stats come home with
    detections, and a board that runs a CPU artifact in place of its own says so."""
    import targets
    from edgeship.convert import convert
    from edgeship.examples import build_examples, example_request
    from edgeship.images.engine import ensure_engine
    from edgeship.report.media import text_video
    from edgeship.report.ocr import score_text_predictions
    from tests.support import ROOT

    folders = {folder.name: folder for folder in build_examples(ROOT / "examples", names=("ppocr-det", "ppocr-rec"))}
    root = tmp_path / "ocr-artifacts"
    root.mkdir()
    cache = ROOT / "artifacts" / "tests"
    boards = _board_targets(fleet.inventory)
    wanted = {(boards["t-rpi"]["edgeship_target"], boards["t-rpi"]["edgeship_quant"])}
    wanted |= {(variables["edgeship_cpu_target"], variables["edgeship_cpu_quant"]) for variables in boards.values()}
    for folder in folders.values():
        for target, quant in sorted(wanted):
            request = example_request(folder, target, quant, cache, quant in targets.get(target).needs_calibration)
            artifact = convert(request, client=ensure_engine())
            (root / artifact.name).symlink_to(artifact.resolve(), target_is_directory=True)
    result = fleet.playbook("deploy.yml", edgeship_release_artifacts_root=str(root), edgeship_release_label="text-reading")
    assert result.returncode == 0, result.stdout[-3000:]
    for host in HOSTS:
        release = json.loads(fleet.board(host, "cat", "/home/edge/edgeship/current/release.json").stdout)
        assert "vision" in release["extras"] and {entry["model"] for entry in release["bench"]} == {"ppocr-det", "ppocr-rec"}, host
    # the board's own check judges a detector by its boxes (the deploy ran it before activation too)
    entry = next(e for e in json.loads(fleet.board("t-rpi", "cat", "/home/edge/edgeship/current/release.json").stdout)["bench"]
                 if e["model"] == "ppocr-det")
    check = fleet.board("t-rpi", "/home/edge/edgeship/current/venv/bin/edgeship-runtime", "check",
                        f"/home/edge/edgeship/current/artifacts/{entry['artifact'] or entry['cpu_artifact']}")
    assert check.returncode == 0, check.stderr
    report = json.loads(check.stdout)
    assert report["passed"] and report["task"] == "detect" and report["metrics"]["f1"] >= 0.97 and report["metrics"]["reference_boxes"] > 0
    assert all("top1_agreement" not in figures for figures in report["outputs"].values())

    video, truth = text_video(tmp_path / "signs.avi", frames=45)
    results = tmp_path / "results"
    shown = fleet.playbook("demo.yml", edgeship_demo_results_dir=str(results), edgeship_demo_run_id="ocr", edgeship_demo_video=str(video),
                           edgeship_demo_model="ppocr-det", edgeship_demo_text_model="ppocr-rec", edgeship_demo_keep_running=False,
                           edgeship_demo_duration_s=15)
    assert shown.returncode == 0, shown.stdout[-3000:]
    for host in HOSTS:
        stats = json.loads((results / "ocr" / "demo" / host / "stats.json").read_text())
        assert stats["error"] is None and stats["task"] == "detect" and stats["text_model"] is not None, host
        assert stats["frames"]["processed"] > 0 and stats["detections"]["boxes"] > 0, (host, stats["frames"], stats["detections"])
        assert "recognize" in stats["stages"]
        own = (boards[host]["edgeship_target"], boards[host]["edgeship_quant"])
        if own in wanted:
            assert stats["fallback"] is None and stats["text_model"]["fallback"] is None, host
        else:  # the plan sent the CPU artifacts alone; the demo labels them (--fallback-for)
            assert stats["fallback"]["reason"].startswith(f"no {own[0]} {own[1]} artifact of ppocr-det"), (host, stats["fallback"])
            assert stats["text_model"]["fallback"]["reason"].startswith(f"no {own[0]} {own[1]} artifact of ppocr-rec"), host
        scores = score_text_predictions(results / "ocr" / "demo" / host / "predictions.jsonl", truth)
        print(f"{host}: {stats['frames']['processed']} frames at {stats['fps'] or 0:.1f} FPS, {stats['detections']['boxes']} boxes, "
              f"detection F1 {scores['f1']:.3f}, characters {scores['char_accuracy']}")


def test_mediapipe_models_are_judged_by_their_task_and_drawn_on_the_cpu_boards(fleet, tmp_path):
    """MediaPipe's BlazeFace and hand landmarks (TFLite sources) as the boards without their
    accelerator here run them: the tflite target's fp32 (t-coral's CPU fallback) and fp16 (t-rpi's
    own mode) artifacts. The board's check judges the face detector by F1 and the hand model by PCK,
    and demo.yml draws the face boxes and the hand skeleton on the frames that come home."""
    import cv2

    from edgeship.convert import convert
    from edgeship.examples import build_examples, example_request
    from edgeship.images.engine import ensure_engine
    from edgeship.report.media import BOX_AMBER, SKELETON_BLUE, colour_share, face_video, hand_video
    from tests.support import ROOT

    hosts = ("t-coral", "t-rpi")
    folders = {folder.name: folder for folder in build_examples(ROOT / "examples", names=("face-detection", "hand-landmark"))}
    root = tmp_path / "mediapipe-artifacts"
    root.mkdir()
    for folder in folders.values():
        for quant in ("fp32", "fp16"):
            artifact = convert(example_request(folder, "tflite", quant, ROOT / "artifacts" / "tests", False), client=ensure_engine())
            (root / artifact.name).symlink_to(artifact.resolve(), target_is_directory=True)
    result = fleet.playbook("deploy.yml", limit=",".join(hosts), edgeship_release_artifacts_root=str(root), edgeship_release_label="mediapipe")
    assert result.returncode == 0, result.stdout[-3000:]
    release = json.loads(fleet.board("t-rpi", "cat", "/home/edge/edgeship/current/release.json").stdout)
    entries = {entry["model"]: entry for entry in release["bench"]}
    assert set(entries) == {"face-detection", "hand-landmark"}
    for model, task, figure, floor in (("face-detection", "detect", "f1", 0.97), ("hand-landmark", "keypoints", "pck", 0.99)):
        check = fleet.board("t-rpi", "/home/edge/edgeship/current/venv/bin/edgeship-runtime", "check",
                            f"/home/edge/edgeship/current/artifacts/{entries[model]['artifact']}")
        assert check.returncode == 0, check.stderr
        report = json.loads(check.stdout)
        print(f"t-rpi check of {model}: {figure} {report['metrics'][figure]}")
        assert report["passed"] and report["task"] == task and report["metrics"][figure] >= floor, report["metrics"]
        assert report["metrics"].get("reference_boxes", 1) > 0  # F1 over boxes fp32 found, not over nothing

    results = tmp_path / "results"
    for model, (video, frames), colour in (("face-detection", face_video(tmp_path / "faces.avi"), BOX_AMBER),
                                           ("hand-landmark", hand_video(tmp_path / "hands.avi"), SKELETON_BLUE)):
        shown = fleet.playbook("demo.yml", limit=",".join(hosts), edgeship_demo_results_dir=str(results), edgeship_demo_run_id=model,
                               edgeship_demo_video=str(video), edgeship_demo_model=model, edgeship_demo_keep_running=False,
                               edgeship_demo_duration_s=8)
        assert shown.returncode == 0, shown.stdout[-3000:]
        source = max(colour_share(frame, *colour) for frame in frames)
        for host in hosts:
            folder = results / model / "demo" / host
            stats = json.loads((folder / "stats.json").read_text())
            assert stats["error"] is None and stats["frames"]["processed"] > 0, (host, stats)
            drawn = colour_share(cv2.imread(str(folder / "frame.jpg")), *colour)
            print(f"{host} {model}: {drawn:.4f} of its frame in the overlay's colour (at most {source:.4f} of a source frame)")
            assert drawn > 3 * source + 0.001, (host, model)
