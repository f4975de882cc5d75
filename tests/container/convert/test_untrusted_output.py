"""What a conversion container leaves is untrusted input: a compromised toolchain plants links,
hard links and FIFOs from inside a real conversion container (the onnx image, started by the
controller with its sandbox and mounts, the real worker or clean-up run first), and the
controller refuses each in one line, keeps nothing of it and changes no file outside the
staging folder: the planted links point at a canary host file, hashed and stat'ed before and
after."""

from __future__ import annotations

import hashlib
import os
import shlex
from pathlib import Path

import pytest

from edgeship.convert import Request, convert
from edgeship.convert.container import Toolchain
from edgeship.errors import EdgeshipError
from tests.support import tiny_cnn

CANARY_UID = 4242  # a chown through a planted link would make it root's


@pytest.fixture
def canary(tmp_path) -> Path:
    """A host file outside every staging folder, as precious as root's authorized_keys."""
    path = tmp_path / "host" / "authorized_keys"
    path.parent.mkdir()
    path.write_text("ssh-ed25519 AAAA the owner's only key\n")
    if os.getuid() == 0:
        os.chown(path, CANARY_UID, CANARY_UID)
    return path


def fingerprint(path: Path) -> tuple:
    info = os.lstat(path)
    return hashlib.sha256(path.read_bytes()).hexdigest(), info.st_uid, info.st_gid, info.st_mode, info.st_mtime_ns


@pytest.fixture
def hostile_toolchain_command():
    """Stands in for a hostile (compromised) toolchain: in the real image, the real worker or graph
    clean-up runs, then a shell command plants what an attacker would in /out. Returns the
    Toolchain (the commands the controller's containers run) for the plants given."""

    def hostile(convert_plant: str = "", clean_up_plant: str = "") -> Toolchain:
        real = Toolchain()

        def planting(command: tuple[str, ...], plant: str) -> tuple[str, ...]:
            return ("sh", "-c", f"{shlex.join(command)} && {plant}") if plant else command

        return Toolchain(convert=planting(real.convert, convert_plant), clean_up=planting(real.clean_up, clean_up_plant))

    return hostile


@pytest.fixture
def onnx_request(tmp_path, monkeypatch) -> Request:
    """A conversion with a cache and an output folder of its own (the hostile commands are in no key)."""
    monkeypatch.setenv("EDGESHIP_CACHE", str(tmp_path / "cache"))
    return Request(target="onnx", model=tiny_cnn(tmp_path / "tiny.onnx"), quant="fp32", out=tmp_path / "artifacts")


PLANTS = {
    "a symlinked convert.log in /out": (
        {"convert_plant": "ln -s {canary} /out/convert.log"}, r"the conversion's output: .*/\.staging-[^ ]*/convert\.log is a symbolic link"),
    "a symlinked model.onnx from the clean-up": (
        {"clean_up_plant": "rm /out/model.onnx && ln -s {canary} /out/model.onnx"},
        r"the graph clean-up's output: .*/model\.onnx is a symbolic link"),
    "a convert.log of its own": ({"convert_plant": "echo 'all fine' > /out/convert.log"}, r"the toolchain wrote .*/convert\.log itself"),
    "a hard link": ({"convert_plant": "ln /out/manifest.json /out/manifest-copy.json"}, r"/manifest-copy\.json is a hard link"),
    "a FIFO as the artifact": ({"convert_plant": "rm /out/model.onnx && mkfifo /out/model.onnx"}, r"/\.staging-[^ ]*/model\.onnx is a FIFO"),
    "a symlink, then the toolchain's exit 3": (
        {"convert_plant": "ln -s {canary} /out/convert.log && exit 3"}, r"convert\.log is a symbolic link"),
}


@pytest.mark.parametrize("planted", sorted(PLANTS))
def test_what_a_hostile_toolchain_plants_is_refused_in_one_line_and_nothing_outside_staging_changes(
        docker_client, onnx_image, hostile_toolchain_command, onnx_request, canary, tmp_path, planted):
    plants, message = PLANTS[planted]
    toolchain = hostile_toolchain_command(**{where: plant.format(canary=shlex.quote(str(canary))) for where, plant in plants.items()})
    before = fingerprint(canary)
    with pytest.raises(EdgeshipError, match=message) as refused:
        convert(onnx_request, client=docker_client, toolchain=toolchain)
    line = str(refused.value)
    assert "\n" not in line and "none of it is kept" in line
    assert fingerprint(canary) == before
    # no artifact, no staging, no remembered failure (.failed) in the output folder; no half-made graph in the cache
    assert not onnx_request.out.exists() or [path.name for path in onnx_request.out.iterdir()] == []
    assert not list((tmp_path / "cache").glob("graphs/.*.partial"))


def test_the_same_request_converts_with_the_real_toolchain(docker_client, onnx_image, onnx_request):
    """The check passes what a real worker leaves (so the refusals above are the plants')."""
    artifact = convert(onnx_request, client=docker_client)
    log = artifact / "convert.log"
    assert os.path.isfile(log) and not os.path.islink(log) and b"edgeship-worker" in log.read_bytes()
    if os.getuid() == 0:
        assert {os.lstat(path).st_uid for path in [artifact, *artifact.rglob("*")]} == {0}


def test_a_toolchain_past_its_memory_limit_is_stopped_and_said_so(docker_client, onnx_image, onnx_request, monkeypatch):
    monkeypatch.setenv("EDGESHIP_CONTAINER_MEMORY", "768m")  # room for the real clean-up of a tiny model, not for 4 GiB
    memory_hog = Toolchain(convert=("python", "-c", "blocks = [b'x' * (1 << 26) for _ in range(64)]"))  # a toolchain gone wild
    # the engine's OOMKilled where it reports one, else the SIGKILL it did report (this VM's Docker never sets OOMKilled)
    with pytest.raises(EdgeshipError, match=r"(was stopped: |was killed \(exit 137, SIGKILL; the engine did not say why\): most likely )"
                                            r"it ran out of its memory limit \(EDGESHIP_CONTAINER_MEMORY=768m\)"):
        convert(onnx_request, client=docker_client, toolchain=memory_hog)
    assert not (onnx_request.out / ".failed").exists()  # a kill may not happen twice: not remembered
