"""The playbooks pass ansible-lint's production profile (FQCN, names, prefixed role vars, ...)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support import ROOT


def test_ansible_lint_production_profile_is_clean():
    """ansible-lint's own findings, read from its machine-readable report (codeclimate JSON),
    so the test does not hang on the wording of its summary line."""
    lint = Path(sys.executable).parent / "ansible-lint"
    result = subprocess.run([str(lint), "--offline", "--profile", "production", "--nocolor", "--format", "codeclimate"],
                            cwd=ROOT / "playbooks", capture_output=True, text=True, timeout=600,
                            env=dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "playbooks" / "ansible.cfg")))
    findings = json.loads(result.stdout or "[]")
    assert findings == [], "\n".join(f"{f['location']['path']}:{f['location'].get('lines', {}).get('begin')}: {f['check_name']}: "
                                       f"{f['description']}" for f in findings)
    assert result.returncode == 0, result.stderr[-2000:]
