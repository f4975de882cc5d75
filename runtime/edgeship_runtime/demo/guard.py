"""Who may watch the demo: the `Host` a request names, and the token it carries.

`Host` is checked so that DNS rebinding (a web page whose name is made to point at the board)
cannot read frames: a request must name the viewer by an address (an address cannot be
rebound), `localhost` when it listens on loopback, the name it listens on, or a name the user
allows (--allow-host). The port is not compared: an SSH forward (`ssh -L 9000:127.0.0.1:8080`)
changes it, and rebinding swaps the address behind a name, never the port.

A token is required when the viewer listens beyond loopback, where anyone on the network could
watch; it is read from --token-file or EDGESHIP_DEMO_TOKEN, never made up here: a generated
token would be printed into the journal and change on every restart. Loopback stays
token-free unless a token is given.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import re
import socket
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs

from edgeship_runtime.errors import ArtifactError

TOKEN_ENV = "EDGESHIP_DEMO_TOKEN"
# URL-safe, so the page passes it on in query strings as it is; long enough not to be guessed
_TOKEN = re.compile(r"[A-Za-z0-9._~-]{16,512}")
TOKEN_RULE = "16-512 letters, digits, '.', '_', '~' or '-'"
MAKE_TOKEN = "python3 -c 'import secrets; print(secrets.token_urlsafe(32))' > FILE; chmod 600 FILE"
# labels of letters, digits, '-' and '_' (not DNS's rule, but what hosts are named: DHCP and
# mDNS names such as my_board.local, which a browser sends as they are)
_HOST_NAME = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*")
_WILDCARDS = {"", "0.0.0.0", "::"}
LOOPBACK_NAMES = frozenset({"localhost"})


def parse_listen(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or int(port) > 65535:
        raise ArtifactError(f"--listen {address!r} is not HOST:PORT; e.g. 127.0.0.1:8080 (0.0.0.0:8080 to let other machines watch)")
    return host.strip("[]"), int(port)


def _address(text: str):
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _resolve(host: str, address: str) -> frozenset:
    """The addresses HOST stands for (a name is looked up, as binding would)."""
    if host in _WILDCARDS:
        return frozenset()
    literal = _address(host)
    if literal is not None:
        return frozenset({literal})
    try:
        found = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError as error:
        raise ArtifactError(f"--listen {address}: cannot resolve {host!r} ({error}); give an address such as 127.0.0.1:8080") from None
    return frozenset(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in found)


def host_name(header: str | None) -> str | None:
    """The name or address a `Host` header gives, lowercased, without port or brackets; None if malformed."""
    if not header:
        return None
    header = header.strip().lower()
    if header.startswith("["):
        inside, bracket, rest = header[1:].partition("]")
        if not bracket or (rest and not re.fullmatch(r":[0-9]{1,5}", rest)) or _address(inside) is None:
            return None
        return inside
    name, _, port = header.partition(":")
    if port and not port.isdigit():
        return None
    name = name.rstrip(".")
    return name if _HOST_NAME.fullmatch(name) or _address(name) is not None else None


def _allowed_name(value: str) -> str:
    text = value.strip().lower().rstrip(".")
    literal = _address(text.strip("[]"))
    if literal is not None:
        return str(literal)
    if not _HOST_NAME.fullmatch(text):
        raise ArtifactError(f"--allow-host {value!r} is not a host name or address; e.g. --allow-host board.local")
    return text


def read_token(token_file: str | None, environ: Mapping[str, str]) -> str | None:
    """The token from --token-file (the command line wins) or EDGESHIP_DEMO_TOKEN; None if neither."""
    if token_file:
        path, where = Path(token_file), f"--token-file {token_file}"
        try:
            info = path.stat()
        except OSError as error:
            raise ArtifactError(f"{where}: cannot read it ({error.strerror}); make one with: {MAKE_TOKEN}") from None
        if not stat.S_ISREG(info.st_mode) or info.st_size > 4096:
            raise ArtifactError(f"{where}: not a small regular file; put only the token in it: {MAKE_TOKEN}")
        if info.st_mode & 0o077:
            raise ArtifactError(f"{where}: other users can read it (mode {stat.S_IMODE(info.st_mode):04o}); chmod 600 {token_file}")
        try:
            value = path.read_bytes().decode("ascii").strip()
        except (OSError, UnicodeDecodeError) as error:
            raise ArtifactError(f"{where}: cannot read a token from it ({error}); make one with: {MAKE_TOKEN}") from None
    elif environ.get(TOKEN_ENV):
        where, value = TOKEN_ENV, environ[TOKEN_ENV].strip()
    else:
        return None
    if not _TOKEN.fullmatch(value):
        raise ArtifactError(f"{where}: the token must be {TOKEN_RULE} (it goes into URLs as it is); make one with: {MAKE_TOKEN}")
    return value


@dataclass(frozen=True)
class Access:
    """What a request must carry to be answered: a `Host` this viewer is reached by, and the token if there is one."""

    listen: str
    names: frozenset[str]  # host names accepted in `Host`
    addresses: frozenset  # the addresses it listens on (empty: every address, a wildcard)
    loopback: bool  # listens on loopback only
    token: str | None

    def host_ok(self, header: str | None) -> bool:
        name = host_name(header)
        if name is None:
            return False
        literal = _address(name)
        if (str(literal) if literal is not None else name) in self.names:
            return True
        if literal is None:
            return False
        # a wildcard listens on every address the board has, and an address cannot be rebound
        return not self.addresses or literal in self.addresses or (self.loopback and literal.is_loopback)

    def token_ok(self, query: str, authorization: str | None) -> bool:
        if self.token is None:
            return True
        given = parse_qs(query).get("token", [""])[-1]
        if not given and authorization and authorization.lower().startswith("bearer "):
            given = authorization[7:].strip()
        return hmac.compare_digest(given.encode("utf-8", "replace"), self.token.encode())


def access_for(listen: str, token_file: str | None = None, allow_hosts: Iterable[str] = (),
               environ: Mapping[str, str] | None = None) -> Access:
    """Check --listen, the token and --allow-host once, before the demo starts; one line on a mistake."""
    host, _ = parse_listen(listen)
    addresses = _resolve(host, listen)
    loopback = bool(addresses) and all(address.is_loopback for address in addresses)
    token = read_token(token_file, os.environ if environ is None else environ)
    if not loopback and token is None:
        raise ArtifactError(f"--listen {listen} reaches beyond this board's loopback, where anyone on the network could watch: "
                            f"give a token with --token-file FILE (or {TOKEN_ENV}); make one with: {MAKE_TOKEN}")
    names = {_allowed_name(name) for name in allow_hosts}
    if _address(host) is None and host not in _WILDCARDS:
        names.add(host.lower().rstrip("."))  # the name it was told to listen on
    if loopback or not addresses:
        names |= LOOPBACK_NAMES
    return Access(listen, frozenset(names), addresses, loopback, token)
