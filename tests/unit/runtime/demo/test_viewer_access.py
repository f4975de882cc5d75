"""Who may watch the demo: the `Host` a request names and the token it carries (the real viewer
on loopback), the command line's one-line refusals, and accepting that backs off when the
process is out of file descriptors instead of spinning."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
import subprocess
import sys
import time

import pytest

from edgeship_runtime.demo.guard import TOKEN_ENV, access_for, host_name
from edgeship_runtime.demo.viewer import Publisher, serve
from edgeship_runtime.errors import ArtifactError
from tests.support import ROOT, tiny_cnn
from tests.support.badinput import assert_one_clean_line, runtime_cli

TOKEN = "s3cret-token-of-the-demo-0123456789"
JPEG = b"\xff\xd8\xff\xe0" + b"frame" * 100 + b"\xff\xd9"  # what a frame starts with: never sent to a refused request


@pytest.fixture
def token_file(tmp_path):
    path = tmp_path / "viewer.token"
    path.write_text(TOKEN + "\n")
    path.chmod(0o600)
    return path


@pytest.fixture
def served(request):
    """The viewer on a free loopback port with a frame published; request.param: access_for's keyword arguments."""
    publisher = Publisher()
    publisher.publish(JPEG)
    options = getattr(request, "param", {})
    server = serve("127.0.0.1:0", publisher, lambda: {"frames": 1}, "t", access=access_for("127.0.0.1:0", environ={}, **options))
    yield server
    publisher.close()
    server.shutdown()
    server.server_close()


def fetch(server, path: str, hosts: list[str] | None = None, headers: dict | None = None):
    """GET path with these Host headers (None: the viewer's own address; []: none at all); (status, body)."""
    host, port = server.server_address[:2]
    connection = http.client.HTTPConnection(host, port, timeout=5)
    connection.putrequest("GET", path, skip_host=True)
    for value in [f"{host}:{port}"] if hosts is None else hosts:
        connection.putheader("Host", value)
    for name, value in (headers or {}).items():
        connection.putheader(name, value)
    connection.endheaders()
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response.status, body


@pytest.mark.parametrize("hosts", [["evil.example"], ["evil.example:{port}"], ["127.0.0.1.evil.example"], ["localhost.evil.example:{port}"],
                                   [], ["127.0.0.1:{port}", "evil.example"], ["bad host"], ["[::1"]],
                         ids=["rebound-name", "rebound-name-port", "address-prefix", "localhost-prefix", "missing", "two", "malformed",
                              "open-bracket"])
def test_a_request_for_another_host_is_refused_without_frame_data(served, hosts):
    port = served.server_address[1]
    for path in ("/frame.jpg", "/stream.mjpg", "/stats.json", "/"):
        status, body = fetch(served, path, [host.format(port=port) for host in hosts])
        assert status == 421 and b"\xff\xd8" not in body and b"frames" not in body, (path, status, body[:100])


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "127.0.0.1", "localhost:{port}", "LOCALHOST.:9000", "[::1]:{port}"])
def test_the_viewer_answers_to_its_address_and_localhost_on_loopback(served, host):
    status, body = fetch(served, "/frame.jpg", [host.format(port=served.server_address[1])])
    assert status == 200 and body == JPEG


@pytest.mark.parametrize("served", [{"allow_hosts": ["board.local"]}], indirect=True)
def test_a_name_the_user_allows_is_answered(served):
    assert fetch(served, "/frame.jpg", ["board.local:8080"]) == (200, JPEG)
    assert fetch(served, "/frame.jpg", ["other.local:8080"])[0] == 421


@pytest.fixture
def served_with_token(token_file):
    publisher = Publisher()
    publisher.publish(JPEG)
    server = serve("127.0.0.1:0", publisher, lambda: {"frames": 1}, "t", access=access_for("127.0.0.1:0", str(token_file), environ={}))
    yield server
    publisher.close()
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("path,headers", [
    ("/frame.jpg", {}), ("/frame.jpg?token=", {}), ("/frame.jpg?token=wrong", {}), (f"/frame.jpg?token={TOKEN[:-1]}", {}),
    (f"/frame.jpg?token={TOKEN}x", {}), ("/frame.jpg", {"Authorization": "Bearer wrong"}), ("/frame.jpg", {"Authorization": f"Basic {TOKEN}"}),
    ("/stream.mjpg?token=wrong", {}), ("/stats.json", {}), ("/?token=wrong", {}),
], ids=["missing", "empty", "wrong", "short", "long", "wrong-bearer", "basic", "stream", "stats", "page"])
def test_a_missing_or_wrong_token_is_refused_without_frame_data(served_with_token, path, headers):
    status, body = fetch(served_with_token, path, headers=headers)
    assert status == 401 and b"\xff\xd8" not in body and b"frames" not in body and TOKEN.encode() not in body


def test_the_right_token_is_served_in_the_query_or_as_a_bearer(served_with_token):
    assert fetch(served_with_token, f"/frame.jpg?token={TOKEN}") == (200, JPEG)
    assert fetch(served_with_token, "/frame.jpg", headers={"Authorization": f"Bearer {TOKEN}"}) == (200, JPEG)
    assert json.loads(fetch(served_with_token, f"/stats.json?token={TOKEN}")[1]) == {"frames": 1}
    status, page = fetch(served_with_token, f"/?token={TOKEN}")
    # the page passes the token it was opened with on to the stream and the stats
    assert status == 200 and b"'stream.mjpg' + query" in page and b"'stats.json' + query" in page
    # a token does not excuse the Host
    assert fetch(served_with_token, "/frame.jpg", ["evil.example"], {"Authorization": f"Bearer {TOKEN}"})[0] == 421


@pytest.mark.parametrize("listen", ["0.0.0.0:8080", "[::]:8080", "0.0.0.0:0", "192.0.2.10:8080"])
def test_beyond_loopback_a_token_is_required(listen):
    with pytest.raises(ArtifactError, match=r"^--listen \S+ reaches beyond this board's loopback, where anyone on the network could "
                                            r"watch: give a token with --token-file FILE \(or EDGESHIP_DEMO_TOKEN\)"):
        access_for(listen, environ={})
    assert access_for(listen, environ={TOKEN_ENV: TOKEN}).token == TOKEN


def test_loopback_is_token_free_and_a_wildcard_answers_to_any_address():
    assert access_for("127.0.0.1:8080", environ={}).token is None and access_for("localhost:8080", environ={}).loopback
    wildcard = access_for("0.0.0.0:8080", environ={TOKEN_ENV: TOKEN})
    assert wildcard.host_ok("192.168.1.20:8080") and wildcard.host_ok("localhost") and not wildcard.host_ok("board.evil.example")
    assert host_name("[fe80::1]:80") == "fe80::1" and host_name("a b") is None and host_name("x:port") is None


@pytest.mark.parametrize("content,mode,message", [
    ("short\n", 0o600, r"the token must be 16-512 letters, digits"),
    ("a token with spaces in it\n", 0o600, r"the token must be 16-512"),
    (TOKEN + "\n", 0o644, r"other users can read it \(mode 0644\); chmod 600 "),
    (None, 0o600, r"cannot read it \(No such file or directory\)"),
])
def test_a_bad_token_file_is_one_line(tmp_path, content, mode, message):
    path = tmp_path / "token"
    if content is not None:
        path.write_text(content)
        path.chmod(mode)
    with pytest.raises(ArtifactError, match=rf"^--token-file {path}: {message}"):
        access_for("127.0.0.1:8080", str(path), environ={})


def test_a_bad_allowed_host_is_one_line():
    with pytest.raises(ArtifactError, match=r"^--allow-host 'evil\\nExecStartPre=\+/bin/sh' is not a host name or address"):
        access_for("127.0.0.1:8080", allow_hosts=["evil\nExecStartPre=+/bin/sh"], environ={})


def tiny_artifact(folder):
    """An ONNX artifact of the tiny CNN, with the manifest keys the board runtime reads."""
    folder.mkdir()
    model = tiny_cnn(folder / "model.onnx")
    digest = hashlib.sha256(model.read_bytes()).hexdigest()
    manifest = {"schema": 1, "model": "tiny", "target": "onnx", "runtime_backend": "onnxruntime", "options": {"quant": "fp32"},
                "source": {"file": "tiny.onnx", "format": "onnx", "sha256": digest},
                "artifact": {"file": "model.onnx", "sha256": digest, "size": model.stat().st_size},
                "inputs": [{"name": "input", "shape": [1, 1, 8, 8]}], "outputs": [{"name": "logits", "shape": [1, 4]}],
                "labels": ["a", "b", "c", "d"], "task": {"name": "classify"}, "files": {"model.onnx": digest},
                "accuracy": {"passed": True, "tolerances": {"min_cosine": 0.99}}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


# The demo command's refusals, in the bad-input corpus's terms (tests/unit/test_bad_input_corpus.py
# counts KINDS): (kind, arguments, environment, what the one line says). WORLD and DIRECTORY are made
# in the test's folder.
CLI_CASES = [
    ("listen-wildcard-without-token", ["--listen", "0.0.0.0:8080"], {},
     r"--listen 0\.0\.0\.0:8080 reaches beyond this board's loopback.*--token-file FILE"),
    ("listen-wildcard6-without-token", ["--listen", "[::]:8080"], {}, r"--listen \[::\]:8080 reaches beyond this board's loopback"),
    ("token-file-missing", ["--listen", "0.0.0.0:8080", "--token-file", "/nonexistent/token"], {},
     r"--token-file /nonexistent/token: cannot read it"),
    ("token-file-world-readable", ["--listen", "0.0.0.0:8080", "--token-file", "WORLD"], {}, r"other users can read it \(mode 0644\); chmod 600"),
    ("token-file-directory", ["--listen", "0.0.0.0:8080", "--token-file", "DIRECTORY"], {}, r"not a small regular file"),
    ("token-env-short", ["--listen", "0.0.0.0:8080"], {TOKEN_ENV: "short"}, r"EDGESHIP_DEMO_TOKEN: the token must be 16-512"),
    ("token-env-spaces", ["--listen", "0.0.0.0:8080"], {TOKEN_ENV: "a token with spaces in it"}, r"EDGESHIP_DEMO_TOKEN: the token must be"),
    ("allow-host-slash", ["--allow-host", "a/b"], {}, r"--allow-host 'a/b' is not a host name or address"),
    ("allow-host-newline", ["--allow-host", "a\nExecStartPre=+/bin/sh"], {}, r"--allow-host 'a\\nExecStartPre=\+/bin/sh' is not a host name"),
    ("listen-not-host-port", ["--listen", "nowhere"], {}, r"--listen 'nowhere' is not HOST:PORT"),
]
KINDS = [("demo-viewer", kind) for kind, *_ in CLI_CASES]


@pytest.mark.parametrize("kind,args,env,pattern", CLI_CASES, ids=[case[0] for case in CLI_CASES])
def test_the_demo_command_refuses_in_one_line(tmp_path, kind, args, env, pattern):
    artifact = tiny_artifact(tmp_path / "tiny-onnx")
    (tmp_path / "world").write_text(TOKEN)
    (tmp_path / "world").chmod(0o644)
    (tmp_path / "directory").mkdir(mode=0o700)
    args = [{"WORLD": str(tmp_path / "world"), "DIRECTORY": str(tmp_path / "directory")}.get(arg, arg) for arg in args]
    environment = {key: value for key, value in os.environ.items() if key != TOKEN_ENV}
    result = runtime_cli("demo", str(artifact), "--source", "pattern", "--duration", "1", *args, env={**environment, **env}, bound_s=60)
    assert_one_clean_line(result, "edgeship-runtime: error: ", pattern)


EXHAUSTED = """
import os, resource, sys
from edgeship_runtime.demo.viewer import Publisher, serve
resource.setrlimit(resource.RLIMIT_NOFILE, (64, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
server = serve("127.0.0.1:0", Publisher(), lambda: {"served": True}, "t")
filler = []
try:
    while True:
        filler.append(os.open("/dev/null", os.O_RDONLY))
except OSError:
    pass
print(server.server_address[1], flush=True)
sys.stdin.readline()
for descriptor in filler:
    os.close(descriptor)
sys.stdin.readline()
"""


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="reads a process's CPU time from /proc")
def test_out_of_file_descriptors_the_viewer_backs_off_instead_of_spinning_and_serves_once_they_are_back():
    process = subprocess.Popen([sys.executable, "-c", EXHAUSTED], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    clients = []
    try:
        assert process.stdout is not None and process.stdin is not None
        port = int(process.stdout.readline())
        for _ in range(5):  # waiting in the kernel's backlog: the viewer cannot accept them
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.sendall(f"GET /stats.json HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
            clients.append(sock)
        time.sleep(0.5)
        before, began = _cpu_s(process.pid), time.monotonic()
        time.sleep(3)
        busy = (_cpu_s(process.pid) - before) / (time.monotonic() - began)
        assert busy < 0.2, f"the viewer used {busy:.0%} of a CPU while it could not accept"
        process.stdin.write("\n")
        process.stdin.flush()
        for sock in clients:  # served once descriptors are free again (the back-off is at most 1 s)
            answer = b""
            while b'{"served": true}' not in answer and (part := sock.recv(4096)):
                answer += part
            assert answer.startswith(b"HTTP/1.1 200 OK") and answer.endswith(b'{"served": true}')
        print(f"out of descriptors: {busy:.1%} of a CPU, then served")
    finally:
        for sock in clients:
            sock.close()
        process.kill()
        process.wait(10)
