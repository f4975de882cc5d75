"""What a user types reaches Ansible as data, never as a template: run_playbook hands extra vars to
a real ansible-playbook (on this machine, connection local) with every string tagged !unsafe, and
the fleet tasks check each value (names by the one name rule, paths, numbers) before that."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from edgeship.errors import EdgeshipError
from edgeship.fleet.playbook import (
    cli_choice,
    cli_limit,
    cli_name,
    cli_names,
    cli_number,
    cli_path,
    cli_source,
    playbook_command,
    playbook_env,
    run_playbook,
)
from tests.support.badinput import assert_one_clean_line, invoke_cli

PROBE = """---
- name: Show what the extra vars hold
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Write the string as Ansible sees it
      ansible.builtin.copy:
        content: "{{ edgeship_probe_value }}"
        dest: "{{ edgeship_probe_out }}/value.txt"
        mode: "0644"
    - name: Pass the string as a command argument
      ansible.builtin.command:
        argv: [echo, "{{ edgeship_probe_value }}"]
      changed_when: false
    - name: Write the list and the number as Ansible sees them
      ansible.builtin.copy:
        content: "{{ {'models': edgeship_probe_models, 'count': edgeship_probe_count} | to_json }}"
        dest: "{{ edgeship_probe_out }}/rest.json"
        mode: "0644"
"""


@pytest.fixture
def probe(tmp_path):
    (tmp_path / "probe.yml").write_text(PROBE)
    inventory = tmp_path / "inventory.ini"
    inventory.write_text(f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n")
    (tmp_path / "out").mkdir()
    return tmp_path, inventory


def _templates(canary) -> dict:
    return {"edgeship_probe_value": f"{{{{ lookup('ansible.builtin.pipe', 'touch {canary}-value') }}}}",
            "edgeship_probe_models": [f"{{{{ lookup('ansible.builtin.pipe', 'touch {canary}-list') }}}}", "{% raw %}x{% endraw %}"],
            "edgeship_probe_count": 3}


def test_extra_vars_reach_ansible_as_data_and_never_run(probe):
    folder, inventory = probe
    canary = folder / "canary"
    extra = {**_templates(canary), "edgeship_probe_out": str(folder / "out")}
    result = run_playbook("probe.yml", inventory, None, extra, capture=True, playbooks=folder)
    assert result.returncode == 0, result.stdout[-3000:]
    assert list(folder.glob("canary*")) == [], "a templated extra var ran a command"
    assert (folder / "out" / "value.txt").read_text() == extra["edgeship_probe_value"]  # literally what was given
    assert json.loads((folder / "out" / "rest.json").read_text()) == {"models": extra["edgeship_probe_models"], "count": 3}


def test_the_same_vars_as_plain_json_would_run_so_the_test_can_fail(probe):
    """The control: ansible-playbook -e '<JSON>' templates the string (this is what the fleet tasks did)."""
    folder, inventory = probe
    canary = folder / "canary"
    extra = {**_templates(canary), "edgeship_probe_out": str(folder / "out")}
    command = playbook_command("probe.yml", inventory, None, None, playbooks=folder) + ["--extra-vars", json.dumps(extra)]
    subprocess.run(command, cwd=folder, env=playbook_env(), capture_output=True, text=True, timeout=300)
    assert (folder / "canary-value").exists()


def test_a_templated_name_is_refused_before_ansible_starts(tmp_path):
    canary = tmp_path / "canary"
    (tmp_path / "artifacts").mkdir()
    result = invoke_cli("fleet.deploy", "--models", f"digits,{{{{ lookup('pipe', 'touch {canary}') }}}}", "--artifacts", str(tmp_path / "artifacts"))
    assert_one_clean_line(result, "edgeship: error: ", r"--models .* is not a safe name .*; e\.g\. --models lookup-pipe$")
    assert not canary.exists() and "ansible-playbook" not in result.stdout


@pytest.mark.parametrize(("call", "message"), [
    (lambda: cli_names("ok,../x", "--models"), r"--models '\.\./x' is not a safe name"),
    (lambda: cli_name("a\nb", "--model"), r"--model 'a\\nb' is not a safe name .*; e\.g\. --model a-b$"),
    (lambda: cli_path("/nonexistent/x", "--artifacts", "folder"), r"--artifacts /nonexistent/x is not an existing folder"),
    (lambda: cli_path("/etc/hostname", "--results", "new folder"), r"--results /etc/hostname is not a folder \(it is a file now\)"),
    (lambda: cli_number("abc", "--duration", 1, 86400), r"--duration 'abc' is not a number"),
    (lambda: cli_number("nan", "--duration", 1, 86400), r"--duration 'nan' is out of range"),
    (lambda: cli_number("1e308", "--duration", 1, 86400), r"--duration '1e308' is out of range"),
    (lambda: cli_number("-5", "--duration", 1, 86400), r"--duration '-5' is out of range"),
    (lambda: cli_choice("daemon", "--mode", ("auto", "service")), r"--mode 'daemon' is not one of auto, service"),
    (lambda: cli_source("video.avi"), r"--source 'video\.avi' is not pattern, a camera number"),
    (lambda: cli_source("/dev/video0\nExecStartPre=+/bin/sh"), r"--source .* is not pattern"),
    (lambda: cli_limit("--become"), r"--limit '--become' is not an Ansible host pattern"),
])
def test_each_cli_value_is_checked_in_one_line(call, message):
    with pytest.raises(EdgeshipError, match=message) as raised:
        call()
    assert "\n" not in str(raised.value)


def test_good_values_pass():
    assert cli_names("digits,ppocr-det,", "--models") == ["digits", "ppocr-det"]
    assert cli_number("20", "--duration", 1, 86400) == 20
    assert [cli_source(s) for s in ("pattern", "0", "/dev/video2", "/home/edge/signs.avi")] == ["pattern", "0", "/dev/video2", "/home/edge/signs.avi"]
    assert cli_limit("all:!rock5b") == "all:!rock5b"
