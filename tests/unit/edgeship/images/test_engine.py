from __future__ import annotations

import pytest

from edgeship.errors import EdgeshipError
from edgeship.images import engine


def test_no_engine_says_how_to_get_one(monkeypatch):
    # A machine with no engine cannot be made inside a test run that needs Docker for its
    # other tiers, so the probe of the socket is replaced; the decision is real.
    monkeypatch.setattr(engine, "docker_client", lambda: None)
    with pytest.raises(EdgeshipError, match=r"no Docker engine answers .*`./dev setup` as root"):
        engine.ensure_engine()
