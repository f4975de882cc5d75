"""Images on many runners: a `docker save` archive written whole by edgeship and loaded back by
another engine gives the same image id under the same tag. A small image stands in for a
toolchain image (the base image, about 200 MB): the archive code does not depend on which."""

from __future__ import annotations

import uuid

import docker
import pytest

from edgeship.images.base import ensure_base_image
from edgeship.images.build import load_tar, save_tag
from edgeship_runtime.files import sha256_file


@pytest.fixture
def small_image(docker_client):
    base = docker_client.images.get(ensure_base_image(docker_client))
    repository, tag = f"edgeship-test-archive-{uuid.uuid4().hex[:8]}", "x"
    base.tag(repository, tag)
    yield f"{repository}:{tag}", base.id
    try:
        docker_client.images.remove(f"{repository}:{tag}")
    except docker.errors.ImageNotFound:
        pass


def test_a_saved_image_loads_back_under_its_tag_with_its_id(docker_client, small_image, tmp_path):
    tag, image_id = small_image
    archive = tmp_path / "image.tar"
    digest = save_tag(docker_client, tag, str(archive))
    assert digest == sha256_file(archive) and archive.stat().st_size > 10 << 20
    assert [path.name for path in tmp_path.iterdir()] == ["image.tar"]  # no temporary file left beside it
    docker_client.images.remove(tag)  # untag only: the base keeps the layers, as a runner's other images would
    with pytest.raises(docker.errors.ImageNotFound):
        docker_client.images.get(tag)
    assert load_tar(docker_client, str(archive), tag, digest) == [tag]
    assert load_tar(docker_client, str(archive), tag, digest) == []  # there with its id: not loaded again
    assert docker_client.images.get(tag).id == image_id
