"""Run the fleet playbooks the way a user does (`cd playbooks && ansible-playbook ...`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from edgeship.errors import EdgeshipError
from edgeship.paths import REPO_ROOT

PLAYBOOKS = REPO_ROOT / "playbooks"


def playbook_command(playbook: str, inventory: Path | None = None, limit: str | None = None, extra_vars: dict | None = None) -> list[str]:
    path = PLAYBOOKS / playbook
    if not path.is_file():
        raise EdgeshipError(f"no playbook {path}; the playbooks are {', '.join(p.name for p in sorted(PLAYBOOKS.glob('*.yml')))}")
    binary = Path(sys.executable).parent / "ansible-playbook"
    command = [str(binary) if binary.exists() else "ansible-playbook", path.name]
    if inventory is not None:
        command += ["-i", str(Path(inventory).resolve())]
    if limit:
        command += ["--limit", limit]
    if extra_vars:
        command += ["--extra-vars", json.dumps(extra_vars)]
    return command


def playbook_env() -> dict:
    return dict(os.environ, ANSIBLE_CONFIG=str(PLAYBOOKS / "ansible.cfg"), ANSIBLE_FORCE_COLOR="0", PYTHONUNBUFFERED="1")


def run_playbook(playbook: str, inventory: Path | None = None, limit: str | None = None, extra_vars: dict | None = None,
                 capture: bool = False) -> subprocess.CompletedProcess:
    """ansible-playbook in playbooks/ (its ansible.cfg), output streamed unless captured."""
    command = playbook_command(playbook, inventory, limit, extra_vars)
    print("edgeship: (cd playbooks && " + " ".join(command) + ")", flush=True)
    return subprocess.run(command, cwd=PLAYBOOKS, env=playbook_env(), text=True,
                          stdout=subprocess.PIPE if capture else None, stderr=subprocess.STDOUT if capture else None)
