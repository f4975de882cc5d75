from __future__ import annotations

import pytest

import edgeship.engine as engine
from edgeship.errors import EdgeshipError


def test_no_engine_and_no_root_says_what_to_install(monkeypatch):
    # The machine state "no engine, not root" cannot be made inside a test run that needs
    # Docker for its other tiers, so the two probes are replaced; the decision logic is real.
    monkeypatch.setattr(engine, "_ping", lambda: None)
    monkeypatch.setattr(engine.os, "geteuid", lambda: 1000)
    with pytest.raises(EdgeshipError, match=r"no Docker engine answers .*apt-get install docker.io"):
        engine.ensure_engine()
