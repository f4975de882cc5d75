"""Signed releases on the simulated fleet: the board verifies the controller's signature on its
bundle, with its own ssh-keygen and the allowed-signers file the simulator installed out of band,
before unpacking it. A bundle changed by one byte after signing, and an unsigned one, are refused
in one line, nothing is unpacked, and `current` (read over SSH) still points where it did.

The bad bundles reach the board as a real deploy would carry them: a plan made and signed
beforehand (edgeship_release_plan_file), then changed, deployed by deploy.yml to t-rpi alone."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.support.fleet import host

pytestmark = pytest.mark.fleet
HOST = host("rpi")


def _ssh(fleet, *command: str) -> str:
    """A command on the board over SSH (its host key checked), as the deploy reaches it; the board's
    shell reads the words joined by spaces."""
    from edgeship.fleet import sim

    board = {b.host: b for b in sim.read_inventory(fleet.inventory)}[HOST]
    result = subprocess.run(sim.ssh_command(sim.state_dir(fleet.inventory), board, *command), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def _state(fleet) -> tuple[str, str]:
    return _ssh(fleet, "readlink", "/home/edge/edgeship/current"), _ssh(fleet, "ls", "/home/edge/edgeship/releases")


def _plan(fleet, folder, signed: bool) -> tuple[dict, str]:
    """t-rpi's plan as deploy.yml would make it (its facts as the release role describes them), under
    a label of its own so that it is a new release; signed with the fleet's key, or not at all."""
    from edgeship.fleet import sim
    from edgeship.fleet.plan import make_plan

    board = {"host": HOST, "arch": "x86_64", "python": "3.11", "glibc": _ssh(fleet, "getconf", "GNU_LIBC_VERSION").split()[-1],
             "target": "tflite", "quant": "fp16", "cpu_target": "tflite", "cpu_quant": "fp16", "extras": [], "demo": True, "models": []}
    key = sim.state_dir(fleet.inventory) / "release_ed25519"
    plan = make_plan([board], fleet.artifacts, bundles=folder / "bundles", label="signature-test", signing_key=key if signed else None)
    return plan, plan["hosts"][HOST]["bundle"]


def _deploy_plan(fleet, folder, plan) -> subprocess.CompletedProcess:
    plan_file = folder / "plan.json"
    plan_file.write_text(json.dumps(plan))
    return fleet.playbook("deploy.yml", limit=HOST, edgeship_release_plan_file=str(plan_file))


def _refusal(result) -> str:
    lines = [line for line in result.stdout.splitlines() if f"was NOT activated on {HOST}" in line]
    assert result.returncode != 0 and lines, result.stdout[-3000:]
    assert "TASK [edgeship_release : Unpack the bundle" not in result.stdout
    return lines[0]


def test_a_tampered_and_an_unsigned_bundle_are_refused_before_unpacking_and_current_stays(fleet, tmp_path):
    assert fleet.playbook("deploy.yml", limit=HOST).returncode == 0  # signed by deploy.yml's own plan: it verifies
    # the allowed signers came out of band and are root's: the deploy (as edge, no become) cannot replace them
    assert _ssh(fleet, "stat -c '%U %a' /etc/edgeship/allowed_signers") == "root 644"
    before = _state(fleet)

    plan, bundle = _plan(fleet, tmp_path / "tampered", signed=True)
    assert plan["hosts"][HOST]["signature"] == bundle + ".sig"
    with open(bundle, "r+b") as handle:  # one byte of release.json (the first member), after signing
        handle.seek(600)
        byte = handle.read(1)
        handle.seek(600)
        handle.write(bytes([byte[0] ^ 0x01]))
    line = _refusal(_deploy_plan(fleet, tmp_path / "tampered", plan))
    assert "refused before unpacking: Signature verification failed: incorrect signature" in line, line
    assert _state(fleet) == before

    plan, bundle = _plan(fleet, tmp_path / "unsigned", signed=False)
    assert plan["hosts"][HOST]["signature"] is None
    line = _refusal(_deploy_plan(fleet, tmp_path / "unsigned", plan))
    assert "refused before unpacking: the bundle is unsigned (no signature came with it)" in line, line
    assert _state(fleet) == before
