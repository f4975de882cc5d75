"""The collection edgeship.fleet: assembled from playbooks/, built by the real ansible-galaxy,
installed into a collections path of its own, its playbooks resolved by their FQCN by a real
ansible-playbook, and clean under ansible-lint's production profile."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from edgeship.errors import EdgeshipError
from edgeship.fleet.collection import assemble, build, qualify, role_names, version
from edgeship.fleet.playbook import PLAYBOOKS
from tests.support import ROOT

BIN = Path(sys.executable).parent


def _clean_env(**extra) -> dict:
    """No ANSIBLE_CONFIG and no repository cwd: the collection must stand on its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    return dict(env, **extra)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("collection")
    return out, build(out)


def test_the_built_tarball_holds_every_playbook_and_role_with_fqcn_role_references(built):
    out, tarball = built
    assert tarball.name == f"edgeship-fleet-{version()}.tar.gz"
    with tarfile.open(tarball) as tar:
        names = set(tar.getnames())
        manifest = json.load(tar.extractfile("MANIFEST.json"))
        runtime = yaml.safe_load(tar.extractfile("meta/runtime.yml"))
        deploy = yaml.safe_load(tar.extractfile("playbooks/deploy.yml"))
    info = manifest["collection_info"]
    assert (info["namespace"], info["name"], info["version"]) == ("edgeship", "fleet", version())
    assert runtime["requires_ansible"].startswith(">=")
    assert {f"playbooks/{p.name}" for p in PLAYBOOKS.glob("*.yml")} <= names
    assert "roles/edgeship_release/tasks/main.yml" in names
    for role in role_names():  # every file of every role, whoever added it
        files = [p for p in (PLAYBOOKS / "roles" / role).rglob("*") if p.is_file() and "__pycache__" not in p.parts]
        assert {f"roles/{p.relative_to(PLAYBOOKS / 'roles')}" for p in files} <= names
    assert "ansible.cfg" not in {Path(n).name for n in names}  # configuration is the runner's (AWX's), not the package's
    included = [task["ansible.builtin.include_role"]["name"] for play in deploy for step in play["tasks"]
                for task in step.get("block", [step]) + step.get("rescue", []) if "ansible.builtin.include_role" in task]
    assert set(included) == {"edgeship.fleet.edgeship_release", "edgeship.fleet.edgeship_health"}
    # the repository's own playbooks keep their bare names (they run with playbooks/ansible.cfg's roles_path)
    assert "name: edgeship_release\n" in (PLAYBOOKS / "deploy.yml").read_text()


def test_installed_collection_playbooks_resolve_by_fqcn(built, tmp_path):
    out, tarball = built
    collections = tmp_path / "collections"
    installed = subprocess.run([str(BIN / "ansible-galaxy"), "collection", "install", str(tarball), "-p", str(collections)],
                               cwd=tmp_path, capture_output=True, text=True, timeout=300, env=_clean_env())
    assert installed.returncode == 0, installed.stderr
    playbooks = [f"edgeship.fleet.{p.stem}" for p in sorted(PLAYBOOKS.glob("*.yml"))]
    checked = subprocess.run([str(BIN / "ansible-playbook"), *playbooks, "-i", "localhost,", "--syntax-check"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=300, env=_clean_env(ANSIBLE_COLLECTIONS_PATH=str(collections)))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    for playbook in playbooks:
        assert f"ansible_collections/edgeship/fleet/playbooks/{playbook.rsplit('.', 1)[1]}.yml" in checked.stdout
    # and a name the collection does not have is refused by the same run (the check can fail)
    missing = subprocess.run([str(BIN / "ansible-playbook"), "edgeship.fleet.nosuch", "-i", "localhost,", "--syntax-check"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=300, env=_clean_env(ANSIBLE_COLLECTIONS_PATH=str(collections)))
    assert missing.returncode != 0


def test_ansible_lint_production_profile_is_clean_on_the_collection(built):
    out, _ = built
    folder = out / "ansible_collections" / "edgeship" / "fleet"
    result = subprocess.run([str(BIN / "ansible-lint"), "--offline", "--profile", "production", "--nocolor", "--format", "codeclimate"],
                            cwd=folder, capture_output=True, text=True, timeout=600, env=_clean_env(ANSIBLE_COLLECTIONS_PATH=str(out)))
    findings = json.loads(result.stdout or "[]")
    assert findings == [], "\n".join(f"{f['location']['path']}: {f['check_name']}: {f['description']}" for f in findings)
    assert result.returncode == 0, result.stderr[-2000:]


ROLES = ["edgeship_release", "edgeship_bench"]


@pytest.mark.parametrize(("written", "qualified"), [
    ("    - role: edgeship_release\n", "    - role: edgeship.fleet.edgeship_release\n"),
    ("    - role: 'edgeship_bench'  # why\n", "    - role: edgeship.fleet.edgeship_bench  # why\n"),
    ("  roles:\n    - edgeship_release\n", "  roles:\n    - edgeship.fleet.edgeship_release\n"),
    ("    - name: Run it\n      ansible.builtin.include_role:\n        name: edgeship_bench\n",
     "    - name: Run it\n      ansible.builtin.include_role:\n        name: edgeship.fleet.edgeship_bench\n"),
    ("    - name: edgeship_bench\n      ansible.builtin.debug:\n        msg: edgeship_bench\n",  # a task's name is not a role
     "    - name: edgeship_bench\n      ansible.builtin.debug:\n        msg: edgeship_bench\n"),
    ("    - role: edgeship_other\n", "    - role: edgeship_other\n"),  # not a role of playbooks/roles/
])
def test_qualify_rewrites_role_references_and_nothing_else(written, qualified):
    assert qualify(written, ROLES) == qualified


def _source(tmp_path: Path, playbook: str) -> Path:
    source = tmp_path / "playbooks"
    (source / "roles" / "edgeship_release" / "tasks").mkdir(parents=True)
    (source / "roles" / "edgeship_release" / "tasks" / "main.yml").write_text("---\n- name: Do nothing\n  ansible.builtin.meta: noop\n")
    (source / "deploy.yml").write_text(playbook)
    return source


@pytest.mark.parametrize(("playbook", "named"), [
    ("- name: P\n  hosts: all\n  roles: [edgeship_release]\n", "edgeship_release"),  # flow style: no line to rewrite
    ("- name: P\n  hosts: all\n  roles:\n    - role: geerlingguy.docker\n", "geerlingguy.docker"),  # not ours
    ("- name: P\n  hosts: all\n  tasks:\n    - name: T\n      ansible.builtin.import_role: {name: edgeship_release}\n", "edgeship_release"),
])
def test_a_role_reference_the_assembler_cannot_qualify_is_refused_in_one_line(tmp_path, playbook, named):
    with pytest.raises(EdgeshipError, match=rf"^playbooks/deploy.yml names role '{named}', which `invoke collection` cannot make one of "
                                            r"edgeship.fleet.edgeship_release; name a role"):
        assemble(tmp_path / "out", _source(tmp_path, playbook))


def test_a_link_in_a_role_is_refused_not_followed(tmp_path):
    source = _source(tmp_path, "- name: P\n  hosts: all\n  roles:\n    - role: edgeship_release\n")
    (source / "roles" / "edgeship_release" / "files").mkdir()
    (source / "roles" / "edgeship_release" / "files" / "key").symlink_to("/etc/hostname")
    with pytest.raises(EdgeshipError, match=r"files/key is a symbolic link; a collection is packed from plain files"):
        assemble(tmp_path / "out", source)


def test_an_out_folder_that_is_not_an_earlier_build_is_left_alone(tmp_path):
    source = _source(tmp_path, "- name: P\n  hosts: all\n  roles:\n    - role: edgeship_release\n")
    precious = tmp_path / "out" / "ansible_collections" / "edgeship" / "fleet"
    precious.mkdir(parents=True)
    (precious / "notes.txt").write_text("mine")
    with pytest.raises(EdgeshipError, match=r"exists and is not a collection assembled before; remove it or pass another --out"):
        assemble(tmp_path / "out", source)
    assert (precious / "notes.txt").read_text() == "mine"


def test_galaxy_yml_is_the_collection_ansible_galaxy_reads(built):
    galaxy = yaml.safe_load((ROOT / "edgeship" / "fleet" / "collection" / "galaxy.yml").read_text())
    assert (galaxy["namespace"], galaxy["name"]) == ("edgeship", "fleet")
    assert galaxy["readme"] == "README.md"
