"""deploy.yml's waves, run by the real ansible-playbook on local hosts: the real deploy.yml and the real
wave summary (edgeship_health's wave.yml), with stand-ins for what needs a board (the release role and
the gate's before/main tasks: a board named in `fail_boards` fails, every other one is healthy).
Ansible cuts the waves; the summary must name the same boards, and the rollout must stop where
max_fail_percentage says."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support import ROOT

PLAYBOOKS = ROOT / "playbooks"
STAND_IN_RELEASE = """---
- name: Stand-in for a planning that fails (the real role's planner, run once for every board)
  ansible.builtin.fail:
    msg: the planner failed
  run_once: true
  when: edgeship_release_plan_only | length > 0 and fail_planning | default(false)

- name: Stand-in for the planning play (the real role plans and keeps the plan in edgeship_release_plan_only)
  ansible.builtin.meta: end_host
  when: edgeship_release_plan_only | length > 0

- name: Show which boards deploy together (Ansible's own batch)
  ansible.builtin.debug:
    msg: "batch {{ ansible_play_batch | join(',') }}"
  run_once: true

- name: Reach the board (a board that is gone is unreachable here)
  ansible.builtin.ping:
  when: reach | default(false)

- name: Stand-in for the release role (a board named in fail_boards fails as the real role does)
  ansible.builtin.fail:
    msg: "release R was NOT activated on {{ inventory_hostname }} (task \\"Check\\" failed: wrong outputs)"
  when: inventory_hostname in fail_boards | default([])
"""
STAND_IN_GATE = """---
- name: Stand-in gate
  ansible.builtin.set_fact:
    edgeship_health_outcome: healthy on R
"""


def run_waves(tmp_path: Path, boards: int, fail: list[str], lost: str = "", **extra) -> subprocess.CompletedProcess:
    # deploy.yml as it is, but for its facts: the stand-ins need none, and gathering them on every local host is slow
    tmp_path.mkdir(parents=True, exist_ok=True)
    plays = yaml.safe_load((PLAYBOOKS / "deploy.yml").read_text())
    for play in plays:
        play.update(gather_facts=False)
    (tmp_path / "deploy.yml").write_text(yaml.safe_dump(plays, sort_keys=False))
    shutil.copytree(PLAYBOOKS / "roles" / "edgeship_health", tmp_path / "roles" / "edgeship_health")
    for name in ("before.yml", "main.yml"):
        (tmp_path / "roles" / "edgeship_health" / "tasks" / name).write_text(STAND_IN_GATE if name == "main.yml" else "---\n[]\n")
    (tmp_path / "roles" / "edgeship_release" / "tasks").mkdir(parents=True)
    (tmp_path / "roles" / "edgeship_release" / "tasks" / "main.yml").write_text(STAND_IN_RELEASE)
    # a lost board: SSH to a port nothing listens on
    hosts = "\n".join(f"b{n:02d}" + (" ansible_connection=ssh ansible_host=127.0.0.1 ansible_port=9" if f"b{n:02d}" == lost else "")
                      for n in range(1, boards + 1))
    (tmp_path / "inventory.ini").write_text(f"[edgeship_boards]\n{hosts}\n[edgeship_boards:vars]\nansible_connection=local\n"
                                            f"ansible_python_interpreter={sys.executable}\n")
    extra_vars = yaml.safe_dump({"fail_boards": fail, **extra}, default_flow_style=True)
    (tmp_path / "tmp").mkdir()
    (tmp_path / "roles" / "edgeship_release" / "defaults").mkdir()
    (tmp_path / "roles" / "edgeship_release" / "defaults" / "main.yml").write_text('---\nedgeship_release_plan_only: ""\n')
    env = dict(os.environ, ANSIBLE_ROLES_PATH=str(tmp_path / "roles"), ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1",
               ANSIBLE_RETRY_FILES_ENABLED="0", TMPDIR=str(tmp_path / "tmp"))
    env.pop("ANSIBLE_CONFIG", None)
    return subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", "inventory.ini", "deploy.yml",
                           "--extra-vars", extra_vars], cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)


def summaries(output: str) -> list[list[str]]:
    return [json_lines.split('",\n') for json_lines in re.findall(r'"msg": \[\n(.*?)\n\s*\]', output, re.DOTALL)]


def clean(lines: list[str]) -> list[str]:
    return [line.strip().strip('"').strip() for line in lines]


def test_the_play_rolls_out_in_waves_with_a_failure_budget_and_gates_after_the_release():
    planning, play = yaml.safe_load((PLAYBOOKS / "deploy.yml").read_text())
    assert "serial" not in planning  # one plan, so one release id, for every board of the run
    steps = planning["tasks"][0]["block"]
    assert steps[1]["ansible.builtin.include_role"] == {"name": "edgeship_release"}
    assert steps[1]["vars"] == {"edgeship_release_plan_only": "{{ edgeship_waves_plan.path }}"}
    assert play["vars"]["edgeship_release_plan_file"] == "{{ edgeship_waves_plan.path | default('') }}"
    assert play["vars"]["edgeship_waves"] == [1, "10%", "100%"] and play["vars"]["edgeship_waves_max_fail_percentage"] == 0
    assert play["serial"] == "{{ edgeship_waves }}"
    # judged after every task, either would stop a wave's other boards wherever they are (activated, not yet gated)
    assert "any_errors_fatal" not in play and "max_fail_percentage" not in play
    # the planning play's facts serve the whole run: gathering again would drop a lost board before its wave's summary
    assert planning["gather_facts"] is True and play["gather_facts"] is False
    assert play["tasks"][0]["ignore_unreachable"] is True
    steps = [t["ansible.builtin.include_role"] for t in play["tasks"][2]["block"] if "ansible.builtin.include_role" in t]
    assert steps == [{"name": "edgeship_health", "tasks_from": "before.yml"}, {"name": "edgeship_release"}, {"name": "edgeship_health"}]
    # a board that runs the planned release already is verified, not deployed or gated again
    skipped = [t.get("when") for t in play["tasks"][2]["block"] if t.get("ansible.builtin.include_role", {}).get("tasks_from") is None
               and "ansible.builtin.include_role" in t]
    assert skipped == ["not edgeship_waves_current | bool"] * 2
    assert play["tasks"][3]["ansible.builtin.include_role"] == {"name": "edgeship_health", "tasks_from": "wave.yml"}


def test_a_failed_canary_stops_the_rollout_after_wave_1_and_the_summary_says_why(tmp_path):
    result = run_waves(tmp_path, 12, ["b01"])
    assert result.returncode == 2, result.stdout[-3000:]
    assert clean(summaries(result.stdout)[0]) == [
        "wave 1 of 3: b01",
        'b01: FAILED: release R was NOT activated on b01 (task \\"Check\\" failed: wrong outputs)',
        "the rollout stops after wave 1: 1 of 1 boards failed or were lost, above the failure budget of 0 % (edgeship_waves_max_fail_percentage); "
        "not deployed: b02, b03, b04, b05, b06, b07, b08, b09, b10, b11, b12"]
    assert re.findall(r'"msg": "batch (\S+)"', result.stdout) == ["b01"]
    # no other board was deployed (the planning play touched them all), and the run's plan file is gone
    deploying = result.stdout.split("PLAY [Deploy the edgeship release to the boards, wave by wave]")[1].split("PLAY RECAP")[0]
    assert set(re.findall(r"\[(b\d\d)\]", deploying)) == {"b01"}
    assert list((tmp_path / "tmp").iterdir()) == []


def test_healthy_waves_follow_ansibles_own_batches_and_the_summary_names_them(tmp_path):
    result = run_waves(tmp_path, 12, [])
    assert result.returncode == 0, result.stdout[-3000:]
    # Ansible's cut of 12 boards by [1, "10%", "100%"]: 1, int(1.2) = 1, then the other 10
    assert re.findall(r'"msg": "batch (\S+)"', result.stdout) == ["b01", "b02", ",".join(f"b{n:02d}" for n in range(3, 13))]
    waves = [clean(s) for s in summaries(result.stdout)]
    assert [w[0] for w in waves] == ["wave 1 of 3: b01", "wave 2 of 3: b02", "wave 3 of 3: " + ", ".join(f"b{n:02d}" for n in range(3, 13))]
    assert waves[0][1:] == ["b01: healthy on R", "wave 1 passed; next: " + ", ".join(f"b{n:02d}" for n in range(2, 13))]
    assert waves[2][-1] == "wave 3 passed; the rollout is complete"
    assert list((tmp_path / "tmp").iterdir()) == []


@pytest.mark.parametrize(("budget", "fail", "stops"), [(10, ["b05"], True), (25, ["b05"], False), (25, ["b05", "b06", "b07"], True)])
def test_the_failure_budget_is_a_share_of_the_wave_as_ansible_counts_it(tmp_path, budget, fail, stops):
    # 10 boards in waves [2, "50%"]: b01-b02, then 5 (b03-b07), then the 3 left
    result = run_waves(tmp_path, 10, fail, edgeship_waves=[2, "50%"], edgeship_waves_max_fail_percentage=budget)
    batches = re.findall(r'"msg": "batch (\S+)"', result.stdout)
    waves = [clean(s) for s in summaries(result.stdout)]
    assert waves[1][0] == "wave 2 of 3: b03, b04, b05, b06, b07"
    if stops:
        assert len(batches) == 2 and result.returncode == 2
        assert waves[1][-1].startswith(f"the rollout stops after wave 2: {len(fail)} of 5 boards failed or were lost, "
                                       f"above the failure budget of {budget} %")
        assert waves[1][-1].endswith("not deployed: b08, b09, b10")
    else:  # one of five is 20 %, not above 25 %: Ansible goes on, and so does the summary
        assert len(batches) == 3 and result.returncode == 2  # the failed board still fails the run
        assert waves[1][-1] == "wave 2 passed (1 failed, within the budget of 25 %); next: b08, b09, b10"


def unreachable(line: str) -> bool:
    return line.startswith("b04: FAILED: b04 was unreachable at the start of its wave: ") and "Failed to connect to the host via ssh" in line


def test_a_board_lost_before_its_wave_counts_as_failed_after_its_wave_mates_finished_their_gate(tmp_path):
    result = run_waves(tmp_path, 10, [], lost="b04", edgeship_waves=[2, "50%"], edgeship_waves_max_fail_percentage=25, reach=True)
    waves = [clean(s) for s in summaries(result.stdout)]
    assert result.returncode == 2, result.stdout[-3000:]  # failed by the wave's summary, as every failed board is
    assert waves[1][0] == "wave 2 of 3: b03, b04, b05, b06, b07" and waves[1][1] == "b03: healthy on R"
    assert unreachable(waves[1][2]), waves[1][2]
    assert waves[1][3:] == ["b05: healthy on R", "b06: healthy on R", "b07: healthy on R",
                            "wave 2 passed (1 failed, within the budget of 25 %); next: b08, b09, b10"]
    result = run_waves(tmp_path / "again", 10, [], lost="b04", edgeship_waves=[2, "50%"], reach=True)
    assert result.returncode == 2, result.stdout[-3000:]
    waves = [clean(s) for s in summaries(result.stdout)]
    assert unreachable(waves[1][2]) and waves[1][-1].endswith("not deployed: b08, b09, b10") and len(waves) == 2
    assert list((tmp_path / "again" / "tmp").iterdir()) == []


def test_a_canary_gone_before_its_wave_stops_the_rollout_with_its_summary_and_leaves_no_plan(tmp_path):
    # a wave whose boards are all gone before any task would end the run (Ansible stops at a batch that all failed)
    result = run_waves(tmp_path, 4, [], lost="b01", reach=True)
    assert result.returncode == 2, result.stdout[-3000:]
    waves = [clean(s) for s in summaries(result.stdout)]
    assert len(waves) == 1 and waves[0][0] == "wave 1 of 3: b01"
    assert waves[0][1].startswith("b01: FAILED: b01 was unreachable at the start of its wave: ")
    assert waves[0][2].startswith("the rollout stops after wave 1: 1 of 1 boards failed or were lost")
    assert list((tmp_path / "tmp").iterdir()) == []


def test_a_planning_that_fails_ends_the_run_and_leaves_no_plan_file(tmp_path):
    result = run_waves(tmp_path, 3, [], fail_planning=True)
    assert result.returncode == 2, result.stdout[-3000:]
    assert "the planner failed" in result.stdout and "PLAY [Deploy the edgeship release" not in result.stdout
    assert list((tmp_path / "tmp").iterdir()) == []
