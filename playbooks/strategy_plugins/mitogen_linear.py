"""Ansible's linear strategy run by Mitogen (ansible.cfg: strategy = mitogen_linear).

Mitogen keeps one Python interpreter per board, reached over one SSH connection (host keys
checked as ansible.cfg says), and runs every task's module inside it: a task costs the
controller and the board a message, not a new SSH session, a module upload and a fresh Python.
Measured (benchmarks/fleet_deploy.py, 8 boards): it halves the boards' CPU and cuts the deploy's
wall time by about 30 %; the controller's own CPU per board barely moves. This file only lets
Ansible find Mitogen's strategy beside the playbooks, wherever pip installed it."""

from __future__ import annotations

from ansible.errors import AnsibleError

try:
    import ansible_mitogen.affinity
    from ansible_mitogen.plugins.strategy.mitogen_linear import StrategyModule  # noqa: F401
except ImportError as error:
    raise AnsibleError(f"the playbooks run with Mitogen (playbooks/ansible.cfg: strategy = mitogen_linear), which the Python running "
                       f"ansible-playbook cannot import ({error}); install edgeship's dependencies (pip install mitogen), or run "
                       f"with ANSIBLE_STRATEGY=linear") from None

# Mitogen pins its processes to CPUs by default (ansible_mitogen/affinity.py, "tested on an otherwise
# idle 16 thread machine"): below 4 CPUs, its multiplexer gets CPU 0 and the top-level process, every
# worker and everything they start (ssh, the release planner run on the controller) share CPU 1 alone.
# A controller that shares its cores with other work (the simulated boards run on the same two here)
# is better left to the kernel's scheduler: the base Policy pins nothing.
ansible_mitogen.affinity.policy = ansible_mitogen.affinity.Policy()
