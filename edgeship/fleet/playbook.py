"""Run the fleet playbooks the way a user does (`cd playbooks && ansible-playbook ...`).

What a user types reaches Ansible as extra vars, and Ansible renders every trusted string it is
given as a Jinja template: a `--models "{{ lookup('pipe', ...) }}"` would run on the controller.
So each value is checked first (`cli_names`, `cli_path`, ... below: names by the one name rule,
paths as existing paths, numbers as numbers), and then handed over as YAML with every string
tagged `!unsafe`, which Ansible never templates (its documented mechanism for data that must
stay data; the same values as JSON, `-e '{"key": ...}'`, would be templated).
"""

from __future__ import annotations

import math
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

from edgeship.errors import EdgeshipError
from edgeship.paths import REPO_ROOT
from edgeship.waiting import run_bounded
from edgeship_runtime import names

PLAYBOOKS = REPO_ROOT / "playbooks"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


# --- what a user typed, checked before Ansible sees it ----------------------------------------


def cli_name(value: str, flag: str) -> str:
    try:
        return names.check(value, flag, f"e.g. {flag} {names.suggest(str(value))}")
    except names.UnsafeName as error:
        raise EdgeshipError(str(error)) from None


def cli_names(value: str, flag: str) -> list[str]:
    """A comma-separated list of names (`--models a,b`), each by the one name rule."""
    return [cli_name(item, flag) for item in value.split(",") if item]


def cli_path(value: str, flag: str, kind: str) -> str:
    """An existing file or folder on this machine (kind "file", "folder" or "either"), absolute;
    for kind "new folder", a folder that may not exist yet but is not a file."""
    path = Path(value).expanduser()
    if _CONTROL.search(value):
        raise EdgeshipError(f"{flag} {value!r} has a control character; give a plain path")
    exists = {"file": path.is_file(), "folder": path.is_dir(), "either": path.exists(), "new folder": not path.exists() or path.is_dir()}[kind]
    if not exists:
        wanted = {"file": "an existing file", "folder": "an existing folder", "either": "an existing file or folder",
                  "new folder": "a folder (it is a file now)"}[kind]
        raise EdgeshipError(f"{flag} {value} is not {wanted}; check the path")
    return str(path.resolve())


def cli_number(value: object, flag: str, low: float, high: float) -> int:
    try:
        number = float(str(value))
    except ValueError:
        raise EdgeshipError(f"{flag} {value!r} is not a number; give a whole number from {low:g} to {high:g}") from None
    if not math.isfinite(number) or number != int(number) or not low <= number <= high:
        raise EdgeshipError(f"{flag} {value!r} is out of range; give a whole number from {low:g} to {high:g}")
    return int(number)


def cli_choice(value: str, flag: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise EdgeshipError(f"{flag} {value!r} is not one of {', '.join(choices)}; choose one")
    return value


def cli_source(value: str) -> str:
    """What a board's demo reads: `pattern`, a camera number, /dev/videoN, or a video or folder on the board (absolute)."""
    if value == "pattern" or value.isdigit() or (value.startswith("/") and not _CONTROL.search(value) and "/../" not in f"{value}/"):
        return value
    raise EdgeshipError(f"--source {value!r} is not pattern, a camera number, /dev/videoN or an absolute path on the board; "
                        f"give one of those (--video copies a file from this machine)")


def cli_limit(value: str) -> str:
    """An Ansible host pattern (`jetson`, `sim-rpi:sim-jetson`, `all:!rock5b`): one word, no option."""
    if _CONTROL.search(value) or value.startswith("-") or " " in value:
        raise EdgeshipError(f"--limit {value!r} is not an Ansible host pattern; give e.g. --limit jetson or --limit 'sim-rpi:sim-jetson'")
    return value


# --- running ansible-playbook -----------------------------------------------------------------


class _UnsafeDumper(yaml.SafeDumper):
    """YAML whose every string value is tagged !unsafe (mappings' keys stay plain: they are variable names)."""

    def represent_mapping(self, tag, mapping, flow_style=None):
        node = super().represent_mapping(tag, mapping, flow_style)
        for key, _ in node.value:
            key.tag = "tag:yaml.org,2002:str"
        return node


_UnsafeDumper.add_representer(str, lambda dumper, value: dumper.represent_scalar("!unsafe", value, style='"'))


def unsafe_extra_vars(extra_vars: dict) -> str:
    """extra_vars as one `--extra-vars` argument that Ansible parses as YAML (a value starting with
    `{`) and whose strings it never templates. Non-strings (numbers, booleans) pass as they are."""
    for key in extra_vars:
        if not isinstance(key, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise EdgeshipError(f"extra var {key!r} is not a variable name")
    return yaml.dump(extra_vars, Dumper=_UnsafeDumper, default_flow_style=True, allow_unicode=False, width=1 << 30).strip()


def playbook_command(playbook: str, inventory: Path | None = None, limit: str | None = None, extra_vars: dict | None = None,
                     playbooks: Path = PLAYBOOKS) -> list[str]:
    path = playbooks / playbook
    if not path.is_file():
        raise EdgeshipError(f"no playbook {path}; the playbooks are {', '.join(p.name for p in sorted(playbooks.glob('*.yml')))}")
    binary = Path(sys.executable).parent / "ansible-playbook"
    command = [str(binary) if binary.exists() else "ansible-playbook", path.name]
    if inventory is not None:
        command += ["-i", str(Path(inventory).resolve())]
    if limit:
        command.append(f"--limit={cli_limit(limit)}")  # one argument: a pattern never reads as an option
    if extra_vars:
        command += ["--extra-vars", unsafe_extra_vars(extra_vars)]
    return command


def playbook_env() -> dict:
    return dict(os.environ, ANSIBLE_CONFIG=str(PLAYBOOKS / "ansible.cfg"), ANSIBLE_FORCE_COLOR="0", PYTHONUNBUFFERED="1")


def run_playbook(playbook: str, inventory: Path | None = None, limit: str | None = None, extra_vars: dict | None = None,
                 capture: bool = False, playbooks: Path = PLAYBOOKS) -> subprocess.CompletedProcess:
    """ansible-playbook in playbooks/ (its ansible.cfg), output streamed unless captured."""
    command = playbook_command(playbook, inventory, limit, extra_vars, playbooks)
    print("edgeship: (cd playbooks && " + shlex.join(command) + ")", flush=True)
    return run_bounded(command, playbook_timeout_s(), f"ansible-playbook {playbook}",
                       "each task has its own bound; raise EDGESHIP_PLAYBOOK_TIMEOUT_S (seconds) for a larger fleet",
                       cwd=playbooks, env=playbook_env(), text=True,
                       stdout=subprocess.PIPE if capture else None, stderr=subprocess.STDOUT if capture else None)


def playbook_timeout_s() -> float:
    """The whole run's bound, past every task's own (a playbook whose SSH session hangs between
    tasks would otherwise hold the controller for ever): EDGESHIP_PLAYBOOK_TIMEOUT_S, default 6 h."""
    text = os.environ.get("EDGESHIP_PLAYBOOK_TIMEOUT_S", "21600")
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise EdgeshipError(f"EDGESHIP_PLAYBOOK_TIMEOUT_S={text!r} is not a positive number of seconds; unset it or give e.g. 21600")
    return value
