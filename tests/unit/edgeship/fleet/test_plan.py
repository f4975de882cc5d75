"""The controller's release plan: artifact selection, deterministic bundles, release ids, summary rows."""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
from pathlib import Path

import pytest

from edgeship.errors import EdgeshipError
from edgeship.fleet.bundle import pack_bundle
from edgeship.fleet.plan import board_selection, extras_for, find_artifacts
from edgeship.report.fleet_table import rows
from tests.support import ROOT


def make_artifact(root: Path, name: str, target: str, quant: str, backend: str, mtime: float, source: str = "s1") -> Path:
    folder = root / f"{name}-{target}-{quant}-{hashlib.sha256((name + target + quant + str(mtime)).encode()).hexdigest()[:12]}"
    (folder / "reference").mkdir(parents=True)
    model = folder / ("model.tflite" if backend == "litert" else "model.onnx")
    model.write_bytes(os.urandom(64))
    (folder / "reference" / "inputs.npz").write_bytes(b"ref")
    files = {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()}
    manifest = {"model": name, "target": target, "runtime_backend": backend, "options": {"quant": quant}, "files": files,
                "source": {"sha256": source}, "artifact": {"file": model.name, "sha256": files[model.name]}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    os.utime(folder / "manifest.json", (mtime, mtime))
    return folder


BOARD = {"host": "b1", "arch": "aarch64", "python": "3.11", "target": "rk3588", "quant": "int8", "cpu_target": "tflite", "cpu_quant": "fp32"}


@pytest.fixture
def artifacts(tmp_path):
    root = tmp_path / "artifacts"
    make_artifact(root, "digits", "tflite", "fp32", "litert", 1000)
    newest = make_artifact(root, "digits", "tflite", "fp32", "litert", 2000)
    make_artifact(root, "digits", "onnx", "fp32", "onnxruntime", 1500)
    make_artifact(root, "mobilenetv2", "tflite", "fp16", "litert", 1000)
    (root / ".staging-x").mkdir()  # an unfinished conversion is never shipped
    return root, newest


def test_selection_takes_the_newest_artifact_and_labels_a_missing_target(artifacts):
    root, newest = artifacts
    found = find_artifacts(root)
    assert len(found) == 4
    selection = board_selection(BOARD, found, ["digits"])
    assert selection[0]["primary"] is None and selection[0]["cpu"]["dir"] == newest
    assert "no rk3588 int8 artifact of digits" in selection[0]["note"]
    assert extras_for(selection, None) == ("litert",)
    assert extras_for(selection, ["rknn", "litert"]) == ("litert", "rknn")
    assert extras_for(selection, None, demo=True) == ("demo", "litert")  # OpenCV for the camera demo


def test_an_artifact_that_failed_its_accuracy_check_at_conversion_is_held_back(artifacts):
    root, newest = artifacts
    failed = make_artifact(root, "digits", "rk3588", "int8", "rknn", 3000)
    manifest = json.loads((failed / "manifest.json").read_text())
    manifest["accuracy"] = {"passed": False, "failed": ["logits: cosine 0.91 < 0.99"]}
    (failed / "manifest.json").write_text(json.dumps(manifest))
    selection = board_selection(BOARD, find_artifacts(root), ["digits"])
    assert selection[0]["primary"] is None and selection[0]["cpu"]["dir"] == newest
    assert selection[0]["note"] == ("rk3588 int8 digits held back: it failed its accuracy check at conversion (logits: cosine 0.91 < 0.99); "
                                    "its CPU artifact runs, labelled as a fallback")
    manifest["accuracy"]["passed"] = True
    (failed / "manifest.json").write_text(json.dumps(manifest))
    assert board_selection(BOARD, find_artifacts(root), ["digits"])[0]["primary"]["dir"] == failed


def test_selection_without_any_artifact_names_the_fix(artifacts):
    root, _ = artifacts
    expected = r"board b1: no artifact of resnet for rk3588/int8 or tflite/fp32 under \S+/artifacts; .*`invoke convert --target tflite"
    with pytest.raises(EdgeshipError, match=expected):
        board_selection(BOARD, find_artifacts(root), ["resnet"], root)


def test_bundle_is_deterministic_and_its_sums_come_from_the_manifest(artifacts, tmp_path):
    root, newest = artifacts
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "edgeship_runtime-0.1.0-py3-none-any.whl").write_bytes(b"wheel")
    selection = board_selection(BOARD, find_artifacts(root), ["digits"])
    first = pack_bundle(BOARD, selection, wheels, ("litert",), tmp_path / "bundles")
    second = pack_bundle(BOARD, selection, wheels, ("litert",), tmp_path / "bundles")
    assert first["bundle_sha256"] == second["bundle_sha256"] and first["bundle"] == second["bundle"]
    labelled = pack_bundle(BOARD, selection, wheels, ("litert",), tmp_path / "bundles", label="v2")
    assert labelled["bundle_sha256"] != first["bundle_sha256"]
    with tarfile.open(first["bundle"]) as tar:
        names = tar.getnames()
        sums = tar.extractfile("SHA256SUMS").read().decode()
        release = json.loads(tar.extractfile("release.json").read())
    assert names[-1] == "SHA256SUMS" and names[0] == "release.json"
    assert f"{hashlib.sha256(b'ref').hexdigest()}  artifacts/{newest.name}/reference/inputs.npz" in sums
    assert release["bench"] == [{"model": "digits", "artifact": None, "backend": None, "cpu_artifact": newest.name, "note": selection[0]["note"]}]
    assert release["runtime_wheel"] == "edgeship_runtime-0.1.0-py3-none-any.whl"


def test_summary_reports_a_board_without_results(tmp_path):
    run = tmp_path / "20261121T000000Z"
    run.mkdir()
    result = {"model": "digits", "note": None, "check": {"passed": True},
              "bench": {"backend": "litert", "accelerator": "cpu", "fallback": None, "steady": {"mean_ms": 1.0, "p90_ms": 1.5, "fps": 1000.0}}}
    (run / "b1.json").write_text(json.dumps({"host": "b1", "target": "tflite", "detect": {"arch": "aarch64"}, "results": [result]}))
    table = rows(run, ["b1", "b2"])
    assert table[0] == ("b1", "aarch64", "tflite", "digits", "litert", "cpu", "1.00", "1.50", "1000.0", "pass")
    assert table[1][0] == "b2" and table[1][-1].startswith("FAILED")


def test_shipped_inventory_is_the_simulated_fleet_with_host_keys_checked():
    from edgeship.fleet.sim import read_inventory

    boards = {board.host: board for board in read_inventory(ROOT / "inventory.ini")}
    assert set(boards) == {"sim-rk3588", "sim-jetson", "sim-coral", "sim-rpi", "sim-nuc"}
    assert boards["sim-rk3588"].arch == "arm64" and boards["sim-rpi"].arch == "amd64" and boards["sim-nuc"].arch == "amd64"
    assert len({board.port for board in boards.values()}) == 5
    text = (ROOT / "inventory.ini").read_text()
    assert "StrictHostKeyChecking=yes" in text and "UserKnownHostsFile={{ inventory_dir }}/.sim/known_hosts" in text
    assert "host_key_checking = True" in (ROOT / "playbooks" / "ansible.cfg").read_text()
    # what each simulated board resolves to, as Ansible merges the groups (a target group is deeper than [sim])
    import json
    import subprocess

    from edgeship.fleet.sim import _ansible_bin

    listed = subprocess.run([_ansible_bin("ansible-inventory"), "-i", str(ROOT / "inventory.ini"), "--list"], capture_output=True,
                            text=True, check=True)
    hostvars = json.loads(listed.stdout)["_meta"]["hostvars"]
    resolved = {host: (v["edgeship_target"], v["edgeship_arch"], str(v["edgeship_python"])) for host, v in hostvars.items()}
    assert resolved == {"sim-rk3588": ("rk3588", "aarch64", "3.11"), "sim-jetson": ("jetson", "x86_64", "3.11"),
                        "sim-coral": ("coral", "x86_64", "3.11"), "sim-rpi": ("tflite", "x86_64", "3.11"),
                        "sim-nuc": ("openvino", "x86_64", "3.11")}
    # the Pi compares CPU runtimes: ncnn and MNN beside LiteRT
    assert hostvars["sim-rpi"]["edgeship_extra_targets"] == [["ncnn", "fp16"], ["mnn", "fp16"]]


def test_wheel_tags_follow_the_boards_c_library():
    from edgeship.fleet.wheels import platform_tags

    bookworm = platform_tags("aarch64", "2.36")
    assert bookworm[0] == "manylinux_2_36_aarch64" and "manylinux_2_35_aarch64" in bookworm and bookworm[-1] == "manylinux2014_aarch64"
    focal = platform_tags("x86_64", "2.31")
    assert "manylinux_2_35_x86_64" not in focal and focal[0] == "manylinux_2_31_x86_64" and "manylinux1_x86_64" in focal
    with pytest.raises(EdgeshipError, match=r"glibc 2\.12 is older than any manylinux wheel"):
        platform_tags("x86_64", "2.12")


def test_a_folder_whose_name_breaks_the_rule_is_left_out_with_a_note_and_the_rest_plan(artifacts, capsys):
    """A model name of 35-64 characters once converted into a folder over 64 characters, which the
    planner refused, aborting every deploy, even of other models."""
    root, newest = artifacts
    long = make_artifact(root, "m" * 45, "tflite", "fp32", "litert", 3000)
    assert len(long.name) == 45 + len("-tflite-fp32-") + 12
    found = find_artifacts(root)
    assert long not in [a["dir"] for a in found] and len(found) == 4
    assert board_selection(BOARD, found, ["digits"])[0]["cpu"]["dir"] == newest
    note = capsys.readouterr().err
    assert note == (f"edgeship: note: left out {root}/{long.name!r}: its name (70 characters) is not a safe name for the boards "
                    f"(1-64 letters, digits, '.', '_' or '-', starting with a letter or digit); convert {'m' * 45} again with --name of at "
                    f"most 39 characters (target tflite --quant fp32)\n")


def test_a_board_whose_target_has_no_board_runtime_is_skipped_with_one_line(artifacts, tmp_path, capsys):
    from edgeship.fleet.plan import make_plan

    root, _ = artifacts
    board = {**BOARD, "host": "stm32-bench", "arch": "x86_64", "target": "mcu", "cpu_target": None}
    plan = make_plan([board], root, bundles=tmp_path / "bundles")
    line = ("board stm32-bench skipped: target mcu has no board runtime (its artifacts are C source for a firmware build, which no "
            "Linux board runs); give the board a target with a runtime in the inventory (edgeship_target)")
    assert plan["hosts"] == {"stm32-bench": {"skipped": line}}
    assert capsys.readouterr().err == f"edgeship: note: {line}\n"
    assert not (tmp_path / "bundles").exists()  # nothing packed for it


def test_boards_alike_share_one_bundle_packed_and_signed_once(artifacts, tmp_path, monkeypatch):
    """24 boards of one platform and selection once meant 24 bundles of the same files, each packed,
    hashed and signed on the controller (20 s of a 24-board deploy) because release.json named its
    board. A bundle names none now: boards alike get the one bundle and its one signature; a board
    that differs gets its own, and the release id still names which board runs what."""
    import subprocess

    from edgeship.fleet import plan as plan_module

    root, _ = artifacts
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "edgeship_runtime-0.1.0-py3-none-any.whl").write_bytes(b"wheel")
    # the runtime's wheelhouse is built or fetched by ensure_runtime_wheelhouse (container and fleet tiers); here a stand-in folder
    monkeypatch.setattr("edgeship.fleet.wheels.ensure_runtime_wheelhouse", lambda *args: wheels)
    key = tmp_path / "release_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "test", "-f", str(key)], check=True)
    signed: list[str] = []
    from edgeship.fleet import signing

    real_sign = signing.sign

    def counting_sign(bundle, signing_key):
        signed.append(str(bundle))
        return real_sign(bundle, signing_key)

    monkeypatch.setattr(signing, "sign", counting_sign)
    boards = [{**BOARD, "host": f"b{n}"} for n in range(1, 4)] + [{**BOARD, "host": "other", "python": "3.10"}]  # another platform
    plan = plan_module.make_plan(boards, root, models=["digits"], bundles=tmp_path / "bundles", signing_key=key)
    hosts = plan["hosts"]
    assert hosts["b1"]["bundle"] == hosts["b2"]["bundle"] == hosts["b3"]["bundle"]
    assert hosts["b1"]["signature"] == hosts["b3"]["signature"] == hosts["b1"]["bundle"] + ".sig"
    assert "host" not in hosts["b1"]["release"]
    assert hosts["other"]["bundle"] != hosts["b1"]["bundle"] and hosts["other"]["signature"] == hosts["other"]["bundle"] + ".sig"
    assert sorted(signed) == sorted({hosts["b1"]["bundle"], hosts["other"]["bundle"]})  # each bundle signed once
    assert len(list((tmp_path / "bundles").glob("*.tar"))) == 2
