"""A toolchain container that hangs is stopped at its deadline: the followed log stream ends and
the caller is told, instead of waiting until CI kills the job."""

from __future__ import annotations

import time

import docker.errors
import pytest

from edgeship.convert.container import sandbox_kwargs
from edgeship.convert.following import Deadline, follow


def test_a_hung_container_is_killed_at_its_deadline_and_removed(docker_client, onnx_image, capsys):
    script = "print('edgeship-worker: started', flush=True); import time; time.sleep(600)"
    container = docker_client.containers.run(onnx_image.id, ["python", "-c", script], detach=True, **sandbox_kwargs([]))
    began = time.monotonic()
    run = follow(container, 3)
    assert run.expired and time.monotonic() - began < 60 and run.status["StatusCode"] != 0
    assert b"started" in run.log and "started" in capsys.readouterr().out  # progress shown as it came
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(container.id)
    assert Deadline.message("the conversion", 3).startswith("the conversion ran past its 3-second limit and was stopped")


def test_a_container_that_ends_in_time_is_left_alone(docker_client, onnx_image):
    script = "import sys; print('edgeship-worker-error: a clear line', flush=True); sys.exit(3)"
    container = docker_client.containers.run(onnx_image.id, ["python", "-c", script], detach=True, **sandbox_kwargs([]))
    run = follow(container, 120)
    assert not run.expired and run.status["StatusCode"] == 3 and run.error_line == "a clear line"
