"""Ansible's linear strategy run by Mitogen (ansible.cfg: strategy = mitogen_linear).

Mitogen keeps one Python interpreter per board, reached over one SSH connection (host keys
checked as ansible.cfg says), and runs every task's module inside it: a task costs the
controller and the board a message, not a new SSH session, a module upload and a fresh Python.
On a fleet that is most of the controller's CPU (benchmarks/fleet_deploy.py). This file only
lets Ansible find Mitogen's strategy beside the playbooks, wherever pip installed it."""

from __future__ import annotations

from ansible.errors import AnsibleError

try:
    from ansible_mitogen.plugins.strategy.mitogen_linear import StrategyModule  # noqa: F401
except ImportError as error:
    raise AnsibleError(f"the playbooks run with Mitogen (playbooks/ansible.cfg: strategy = mitogen_linear), which the Python running "
                       f"ansible-playbook cannot import ({error}); install edgeship's dependencies (pip install mitogen), or run "
                       f"with ANSIBLE_STRATEGY=linear") from None
