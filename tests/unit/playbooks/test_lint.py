"""The playbooks pass ansible-lint's production profile (FQCN, names, prefixed role vars, ...)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support import ROOT


def test_ansible_lint_production_profile_is_clean():
    lint = Path(sys.executable).parent / "ansible-lint"
    result = subprocess.run([str(lint), "--offline", "--profile", "production", "--nocolor"], cwd=ROOT / "playbooks",
                            capture_output=True, text=True, timeout=600, env=dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "playbooks" / "ansible.cfg")))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Passed" in result.stdout + result.stderr
