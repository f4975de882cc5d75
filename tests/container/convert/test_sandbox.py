"""The conversion container runs the way the security rules say: checked from inside it."""

from __future__ import annotations

from docker.types import Mount

from edgeship.convert.container import sandbox_kwargs

PROBE = r"""
import os, socket
print("uid", os.getuid())
print("interfaces", sorted(os.listdir("/sys/class/net")))
for path in ("/in/model/tiny.onnx", "/opt/edgeship/src/probe.txt", "/etc/probe.txt"):
    try:
        open(path, "ab").close(); print("writable", path)
    except OSError as error:
        print("readonly", path, error.errno)
open("/out/ok.txt", "w").write("ok"); print("out writable")
try:
    socket.create_connection(("pypi.org", 443), timeout=3); print("network up")
except OSError:
    print("network down")
"""


def test_conversion_sandbox(docker_client, tflite_image, tiny_model, tmp_path):
    import os

    out = tmp_path / "out"
    out.mkdir()
    os.chown(out, 10001, 10001) if os.getuid() == 0 else None
    mounts = [
        Mount("/in/model/tiny.onnx", str(tiny_model), type="bind", read_only=True),
        Mount("/opt/edgeship/src", str(tmp_path), type="bind", read_only=True),
        Mount("/out", str(out), type="bind", read_only=False),
    ]
    output = docker_client.containers.run(tflite_image.tags[0], ["python", "-c", PROBE], remove=True, **sandbox_kwargs(mounts)).decode()
    expected_uid = 10001 if os.getuid() == 0 else os.getuid()
    assert f"uid {expected_uid}\n" in output and expected_uid != 0
    assert "interfaces ['lo']" in output
    assert "readonly /in/model/tiny.onnx" in output
    assert "readonly /opt/edgeship/src/probe.txt" in output
    assert "readonly /etc/probe.txt" in output
    assert "out writable" in output and (out / "ok.txt").read_text() == "ok"
    assert "network down" in output


LIMITS_PROBE = r"""
import os
for v1, v2 in (("memory/memory.limit_in_bytes", "memory.max"), ("pids/pids.max", "pids.max")):
    for path in ("/sys/fs/cgroup/" + v1, "/sys/fs/cgroup/" + v2):
        if os.path.exists(path):
            print(path.rsplit("/", 1)[-1].split(".")[0], open(path).read().strip())
            break
"""


def test_a_conversion_container_runs_within_the_memory_and_process_limits_set(docker_client, onnx_image, monkeypatch):
    monkeypatch.setenv("EDGESHIP_CONTAINER_MEMORY", "1g")
    monkeypatch.setenv("EDGESHIP_CONTAINER_PIDS", "300")
    output = docker_client.containers.run(onnx_image.id, ["python", "-c", LIMITS_PROBE], remove=True, **sandbox_kwargs([])).decode()
    assert output.split() == ["memory", str(1 << 30), "pids", "300"]
