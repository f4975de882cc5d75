from __future__ import annotations

from edgeship.images.base import PACKAGES, base_tag, host_arch
from edgeship.images.build import LABEL_KEY, LABEL_LOCK, image_key, smoke_test
from edgeship.images.locks import load_spec


def test_base_image_is_labelled_with_how_it_was_made(docker_client, tflite_image):
    base = docker_client.images.get(base_tag(host_arch()))
    labels = base.labels
    assert labels["io.edgeship.base.suite"] == "bookworm"
    assert labels["io.edgeship.base.variant"] == "minbase"
    assert labels["io.edgeship.base.include"] == ",".join(PACKAGES)
    assert labels["org.opencontainers.image.base.name"] == "debootstrap:bookworm/minbase"


def test_toolchain_image_labels_match_its_lock_and_base(docker_client, tflite_image):
    spec = load_spec("tflite")
    labels = tflite_image.labels
    assert labels[LABEL_LOCK] == spec.lock_sha256()
    assert labels["org.opencontainers.image.version"]
    base_id = labels["org.opencontainers.image.base.digest"]
    assert labels[LABEL_KEY] == image_key(spec, base_id)
    assert tflite_image.tags[0] == f"edgeship/tflite:{labels[LABEL_KEY][:12]}"


def test_smoke_test_runs_offline_in_the_image(docker_client, tflite_image):
    output = smoke_test(docker_client, tflite_image.tags[0])
    assert "smoke ok" in output and "'onnx2tf': '1.29.24'" in output


def test_image_runs_as_an_unprivileged_user_without_the_wheelhouse(docker_client, tflite_image):
    output = docker_client.containers.run(
        tflite_image.tags[0], ["sh", "-c", "id -u; ls /tmp/wheelhouse 2>&1 | head -1; "
                               "python -c 'import tensorflow; print(\"tensorflow\", tensorflow.__version__)' 2>&1"],
        network_mode="none", remove=True).decode()
    lines = output.splitlines()
    assert lines[0] == "10001"
    assert "No such file" in lines[1]  # wheels were only in the build stage
    assert lines[-1] == "tensorflow 2.19.0", output  # the toolchain of the lock, importable by that user


def test_unreachable_base_image_is_one_clear_error(docker_client, monkeypatch):
    import pytest

    from edgeship.errors import EdgeshipError
    from edgeship.images.build import base_image_ref

    monkeypatch.setenv("BASE_IMAGE", "registry.invalid/edgeship/none:1")
    with pytest.raises(EdgeshipError, match=r"BASE_IMAGE=registry.invalid/edgeship/none:1 is not present and could not be pulled .*unset BASE_IMAGE"):
        base_image_ref(docker_client)


def test_base_image_override_is_used_as_is(docker_client, monkeypatch):
    from edgeship.images.build import base_image_ref

    tag = base_tag(host_arch())
    monkeypatch.setenv("BASE_IMAGE", tag)
    assert base_image_ref(docker_client) == tag
