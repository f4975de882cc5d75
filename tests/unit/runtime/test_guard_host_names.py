"""The demo viewer's Host check knows host names as hosts are named: letters, digits, '-' and '_'
(a DHCP or mDNS name such as my_board.local had been refused as malformed), and still nothing else."""

from __future__ import annotations

import pytest

from edgeship_runtime.demo.guard import _allowed_name, host_name
from edgeship_runtime.errors import ArtifactError


@pytest.mark.parametrize(("header", "name"), [
    ("my_board.local:8080", "my_board.local"),
    ("Rock_5B", "rock_5b"),
    ("_gateway", "_gateway"),
    ("board-1.lan.", "board-1.lan"),
    ("[fe80::1]:8080", "fe80::1"),
])
def test_a_host_name_with_underscores_is_a_host_name(header, name):
    assert host_name(header) == name


@pytest.mark.parametrize("header", ["my board", "a/b", "x..y", "-x", "x\ny", "a:b:c", "[fe80::1"])
def test_what_is_no_host_name_is_still_refused(header):
    assert host_name(header) is None


def test_an_allowed_host_may_have_an_underscore_and_nothing_stranger():
    assert _allowed_name("My_Board.local") == "my_board.local"
    with pytest.raises(ArtifactError, match=r"--allow-host 'my board' is not a host name or address"):
        _allowed_name("my board")
