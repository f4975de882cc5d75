"""A toolchain container that hangs is stopped at its deadline: the followed log stream ends and
the caller is told, instead of waiting until CI kills the job."""

from __future__ import annotations

import time

from edgeship.convert.container import Deadline, sandbox_kwargs


def test_a_hung_container_is_killed_at_its_deadline_and_says_so(docker_client, onnx_image):
    container = docker_client.containers.run(onnx_image.id, ["python", "-c", "print('started', flush=True); import time; time.sleep(600)"],
                                             detach=True, **sandbox_kwargs([]))
    began = time.monotonic()
    try:
        with Deadline(container, 3) as deadline:
            lines = [chunk.decode() for chunk in container.logs(stream=True, follow=True)]
            status = container.wait()
    finally:
        container.remove(force=True)
    assert deadline.expired and time.monotonic() - began < 60
    assert "started" in "".join(lines) and status["StatusCode"] != 0
    assert deadline.message("the conversion").startswith("the conversion ran past its 3-second limit and was stopped")


def test_a_container_that_ends_in_time_is_left_alone(docker_client, onnx_image):
    container = docker_client.containers.run(onnx_image.id, ["python", "-c", "print('done')"], detach=True, **sandbox_kwargs([]))
    try:
        with Deadline(container, 120) as deadline:
            list(container.logs(stream=True, follow=True))
            status = container.wait()
    finally:
        container.remove(force=True)
    assert not deadline.expired and status["StatusCode"] == 0
