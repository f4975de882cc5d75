"""The fleet playbooks and roles as the Ansible collection `edgeship.fleet` (for AWX / Automation Platform).

The repository keeps its own layout: playbooks/*.yml beside playbooks/roles/, run as
`cd playbooks && ansible-playbook deploy.yml` with bare role names found through ansible.cfg's
roles_path. A collection wants the playbooks in a playbooks/ folder of their own, next to roles/,
and its playbooks name roles fully qualified (edgeship.fleet.edgeship_release). So the collection
is assembled, not kept: `assemble` copies galaxy.yml, meta/runtime.yml, README.md and CHANGELOG.md
(beside this module) with playbooks/roles/ and playbooks/*.yml into a build folder, qualifying every role
reference on the way, and `build` runs `ansible-galaxy collection build` on it. The playbooks
stay one copy that every helper edits; the collection can never drift from them.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import yaml

from edgeship.errors import EdgeshipError
from edgeship.fleet.playbook import PLAYBOOKS
from edgeship.waiting import run_bounded

HERE = Path(__file__).resolve().parent
NAMESPACE, NAME = "edgeship", "fleet"
BUILD_TIMEOUT_S = 300  # ansible-galaxy packs a few hundred kB locally; minutes mean something is stuck
_ROLE_ACTIONS = {f"{prefix}{verb}_role" for prefix in ("", "ansible.builtin.", "ansible.legacy.") for verb in ("include", "import")}
_TASK_LISTS = ("tasks", "pre_tasks", "post_tasks", "handlers", "block", "rescue", "always")


def version() -> str:
    return str(yaml.safe_load((HERE / "galaxy.yml").read_text())["version"])


def role_names(source: Path = PLAYBOOKS) -> list[str]:
    return sorted(p.name for p in (source / "roles").iterdir() if p.is_dir() and not p.name.startswith("."))


def qualify(text: str, roles: list[str]) -> str:
    """Role references of a playbook or task file made fully qualified: `role: edgeship_x`,
    a bare `- edgeship_x` in a play's roles list, and `name: edgeship_x` right under
    include_role/import_role. Line by line, so the file's comments stay as they are."""
    known = "|".join(re.escape(r) for r in roles)
    role_line = re.compile(rf"^(\s*(?:-\s+)?role:\s*)([\"']?)({known})\2(\s*(?:#.*)?)$")
    bare_item = re.compile(rf"^(\s*-\s+)([\"']?)({known})\2(\s*(?:#.*)?)$")
    name_line = re.compile(rf"^(\s*name:\s*)([\"']?)({known})\2(\s*(?:#.*)?)$")
    action_line = re.compile(r"^\s*(?:-\s+)?(?:ansible\.(?:builtin|legacy)\.)?(?:include|import)_role:\s*$")
    lines, after_action = [], False
    for line in text.splitlines(keepends=True):
        body, end = line.rstrip("\r\n"), line[len(line.rstrip("\r\n")):]
        pattern = name_line if after_action else None
        for candidate in filter(None, (role_line, bare_item, pattern)):
            match = candidate.match(body)
            if match:
                body = f"{match[1]}{NAMESPACE}.{NAME}.{match[3]}{match[4]}"
                break
        if body.strip():
            after_action = bool(action_line.match(body)) or (after_action and not body.strip().startswith("- "))
        lines.append(body + end)
    return "".join(lines)


def _role_references(node, in_roles_list: bool = False):
    """Every role a parsed playbook or task file names: roles lists and include/import_role tasks."""
    if isinstance(node, list):
        for item in node:
            if in_roles_list:
                yield item if isinstance(item, str) else (item.get("role") or item.get("name")) if isinstance(item, dict) else item
            else:
                yield from _role_references(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key == "roles":
                yield from _role_references(value or [], in_roles_list=True)
            elif key in _ROLE_ACTIONS:
                yield value.get("name") if isinstance(value, dict) else value
            elif key in _TASK_LISTS:
                yield from _role_references(value or [])


def check_qualified(path: Path, roles: list[str], shown: str) -> None:
    """Refuse a file whose role references `qualify` could not rewrite (flow style, templated, another role)."""
    try:
        document = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise EdgeshipError(f"{shown} is not YAML ({str(error).splitlines()[0]}); fix it before building the collection") from None
    wanted = {f"{NAMESPACE}.{NAME}.{role}" for role in roles}
    for reference in _role_references(document):
        if reference not in wanted:
            raise EdgeshipError(f"{shown} names role {reference!r}, which `invoke collection` cannot make one of {', '.join(sorted(wanted))}; "
                                f"name a role of playbooks/roles/ on a line of its own (`- role: {roles[0]}`)")


def _copy_tree(source: Path, destination: Path) -> None:
    """A role folder copied as plain files: a link in it would pull whatever it points at into the package."""
    for path in sorted(source.rglob("*")):
        if path.is_symlink():
            raise EdgeshipError(f"{path} is a symbolic link; a collection is packed from plain files: replace it with the file")
    shutil.copytree(source, destination, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.retry"))


def assemble(out: Path, source: Path = PLAYBOOKS) -> Path:
    """The collection's folder (out/ansible_collections/edgeship/fleet), made afresh from source."""
    folder = out / "ansible_collections" / NAMESPACE / NAME
    if folder.is_symlink() or (folder.exists() and not (folder / "galaxy.yml").is_file()):
        raise EdgeshipError(f"{folder} exists and is not a collection assembled before; remove it or pass another --out")
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "meta").mkdir(parents=True)
    for name in ("galaxy.yml", "README.md", "CHANGELOG.md", "meta/runtime.yml"):
        shutil.copyfile(HERE / name, folder / name)
    roles = role_names(source)
    if not roles:
        raise EdgeshipError(f"{source / 'roles'} has no roles; the collection would be empty")
    for role in roles:
        _copy_tree(source / "roles" / role, folder / "roles" / role)
    for path in sorted((folder / "roles").rglob("*.yml")):
        path.write_text(qualify(path.read_text(), roles))
        if path.parent.name in ("tasks", "handlers"):
            check_qualified(path, roles, f"playbooks/roles/{path.relative_to(folder / 'roles')}")
    (folder / "playbooks").mkdir()
    for playbook in sorted(source.glob("*.yml")):
        target = folder / "playbooks" / playbook.name
        target.write_text(qualify(playbook.read_text(), roles))
        check_qualified(target, roles, f"playbooks/{playbook.name}")
    return folder


def build(out: Path, source: Path = PLAYBOOKS) -> Path:
    """Assemble the collection under out/ and pack it with ansible-galaxy: out/edgeship-fleet-<version>.tar.gz."""
    folder = assemble(out, source)
    binary = Path(sys.executable).parent / "ansible-galaxy"
    command = [str(binary) if binary.exists() else "ansible-galaxy", "collection", "build", str(folder), "--output-path", str(out), "--force"]
    result = run_bounded(command, BUILD_TIMEOUT_S, "ansible-galaxy collection build", f"run `{' '.join(command)}` by hand to see where it stops",
                         capture_output=True, text=True)
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        raise EdgeshipError(f"ansible-galaxy could not build {folder} (exit {result.returncode}): {lines[-1] if lines else 'no message'}")
    tarball = out / f"{NAMESPACE}-{NAME}-{version()}.tar.gz"
    if not tarball.is_file():
        raise EdgeshipError(f"ansible-galaxy said it built the collection but {tarball} is not there: {result.stdout.strip()[-300:]}")
    return tarball
