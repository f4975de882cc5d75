"""images.load refuses an archive it cannot trust: none for this recipe, a record that is not one
or names another recipe's tags (before the engine is asked: client None), an archive of other or
more images than the one tag, or one that would replace a base this machine has (before the
engine loads anything), and bytes that do not hash to the record's or a load that tagged anything
else (the file changed while it streamed in: what it tagged is removed again). The engine is a
small stand-in here that takes the stream as `docker load` does; tests/container/images runs the
real one."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path
from types import SimpleNamespace

import docker
import pytest

from edgeship.errors import EdgeshipError
from edgeship.images.build import LABEL_KEY, archive_images, archive_name, expected_base, image_key, image_tag, load, load_tar, recipe_sha256
from edgeship.images.locks import load_spec

BASE_ID, IMAGE_ID, OTHER_ID = "sha256:" + "b" * 64, "sha256:" + "c" * 64, "sha256:" + "d" * 64


@pytest.fixture
def spec(monkeypatch):
    monkeypatch.delenv("BASE_IMAGE", raising=False)
    return load_spec("onnx")


def make_archive(path, images: list[tuple[str, list[str]]]) -> str:
    """A `docker save` archive's layout (manifest.json, one config per image); returns its sha256."""
    with tarfile.open(path, "w") as tar:
        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for image_id, _tags in images:
            add(f"{image_id.removeprefix('sha256:')}.json", b"{}")
        add("manifest.json", json.dumps([{"Config": f"{i.removeprefix('sha256:')}.json", "RepoTags": t, "Layers": []}
                                         for i, t in images]).encode())
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class Engine:
    """What load asks of Docker: images.get/remove, and api.load_image, which reads the whole
    stream and tags what the archive's manifest names (or `reports`, a load that went otherwise)."""

    def __init__(self, present: dict[str, str] | None = None, labels: dict[str, dict] | None = None, reports=None):
        self.present, self.labels, self.reports = dict(present or {}), labels or {}, reports
        self.loads: list[bytes] = []
        self.removed: list[str] = []
        self.images = SimpleNamespace(get=self.get, remove=self.remove)
        self.api = SimpleNamespace(load_image=self.load_image)

    def get(self, tag):
        if tag not in self.present:
            raise docker.errors.ImageNotFound(tag)
        return SimpleNamespace(id=self.present[tag], labels=self.labels.get(tag, {}), tags=[tag])

    def remove(self, tag):
        self.removed.append(tag)
        self.present.pop(tag, None)

    def load_image(self, data):
        received = b"".join(data)
        self.loads.append(received)
        images = archive_images(io.BytesIO(received), "stream")
        for image_id, tags in images:
            for tag in self.reports if self.reports is not None else tags:
                self.present[tag] = image_id
                yield {"stream": f"Loaded image: {tag}\n"}


def saved(spec, folder, base_tags=None, image_tags=None, base_id=BASE_ID) -> tuple[dict, str]:
    """What images.save writes for the spec: the two archives and the record."""
    stem = os.path.join(folder, archive_name(spec))
    key = image_key(spec, base_id)
    tag, base = image_tag(spec, key), expected_base(spec)
    record = {"name": spec.name, "tag": tag, "key": key, "base": base, "base_id": base_id, "recipe_sha256": recipe_sha256(spec),
              "base_sha256": make_archive(f"{stem}.base.tar", [(base_id, base_tags or [base])]),
              "sha256": make_archive(f"{stem}.tar", [(IMAGE_ID, image_tags or [tag])])}
    with open(f"{stem}.json", "w") as handle:
        json.dump(record, handle)
    return record, stem


def test_the_archive_is_named_by_the_recipe_a_checkout_computes(spec):
    assert archive_name(spec) == f"onnx-{recipe_sha256(spec)[:16]}"


def test_no_archive_for_this_recipe_is_one_line(spec, tmp_path):
    with pytest.raises(EdgeshipError, match=r"^no image archive of onnx's recipe in .* \(.*\.json: unreadable\); save it on a "
                                            r"machine that built it \(`invoke images.save --target onnx --out DIR`\) or build it here$"):
        load(None, spec, str(tmp_path))


def test_a_record_that_is_not_one_is_refused_before_the_engine(spec, tmp_path):
    record, stem = saved(spec, tmp_path)
    for text, problem in [("[]", "not an object"), (json.dumps({**record, "base_id": 1}), "TypeError"),
                          (" " * (70 << 10), "too big")]:
        with open(f"{stem}.json", "w") as handle:
            handle.write(text)
        with pytest.raises(EdgeshipError, match=rf"\(.*\.json: {problem}\)"):
            load(None, spec, str(tmp_path))
    os.replace(f"{stem}.json", f"{stem}.real.json")
    os.symlink(f"{stem}.real.json", f"{stem}.json")
    with pytest.raises(EdgeshipError, match=r"\(.*\.json: unsafe\)"):
        load(None, spec, str(tmp_path))


def test_a_record_naming_another_recipes_tags_is_refused_before_the_engine(spec, tmp_path):
    record, stem = saved(spec, tmp_path)
    for change in ({"tag": "edgeship/onnx:000000000000"}, {"base": "python:3"}, {"key": "0" * 64}):
        with open(f"{stem}.json", "w") as handle:
            json.dump({**record, **change}, handle)
        with pytest.raises(EdgeshipError, match=r"\.json names .*, not onnx's image of this recipe \(edgeship/onnx:[0-9a-f]{12} on "
                                                r"edgeship/base:.*\); save the image again, or build it here$"):
            load(None, spec, str(tmp_path))


def test_an_archive_of_other_or_more_images_is_refused_before_the_engine_loads(spec, tmp_path):
    record, _stem = saved(spec, tmp_path, base_tags=[expected_base(spec), "python:3"])
    engine = Engine()
    with pytest.raises(EdgeshipError, match=r"\.base\.tar holds edgeship/base:\S+ python:3, not the one image edgeship/base:\S+ its "
                                            r"record names; save the image again$"):
        load(engine, spec, str(tmp_path))
    assert engine.loads == [] and engine.present == {}
    saved(spec, tmp_path, image_tags=["edgeship/onnx:other"])
    with pytest.raises(EdgeshipError, match=r"onnx-[0-9a-f]{16}\.tar holds edgeship/onnx:other, not the one image edgeship/onnx:"):
        load(Engine(), spec, str(tmp_path))


def test_a_base_this_machine_has_is_never_replaced(spec, tmp_path):
    saved(spec, tmp_path)
    base = expected_base(spec)
    engine = Engine(present={base: OTHER_ID})
    with pytest.raises(EdgeshipError, match=rf"\.base\.tar would replace this machine's {base} \(sha256:dddddddddddd\) with another "
                                            r"image \(sha256:bbbbbbbbbbbb\); images built on it would lose their base"):
        load(engine, spec, str(tmp_path))
    assert engine.loads == [] and engine.present == {base: OTHER_ID}


def test_an_archive_is_hashed_as_it_streams_into_the_engine(spec, tmp_path):
    record, stem = saved(spec, tmp_path)
    engine = Engine(present={expected_base(spec): BASE_ID}, labels={record["tag"]: {LABEL_KEY: record["key"]}})
    image = load(engine, spec, str(tmp_path))
    assert image.id == IMAGE_ID and image.tags == [record["tag"]]
    assert engine.loads == [Path(f"{stem}.tar").read_bytes()]  # the base was there with its id: not loaded again
    # bytes that are not the record's (the file changed after the record was written, or while it was read)
    with open(f"{stem}.json", "w") as handle:
        json.dump({**record, "sha256": "0" * 64}, handle)
    engine = Engine(present={expected_base(spec): BASE_ID})
    with pytest.raises(EdgeshipError, match=r"onnx-[0-9a-f]{16}\.tar changed while it was loaded \(sha256 [0-9a-f]{16}, not "
                                            r"0000000000000000\); what it loaded is removed again: save the image again$"):
        load(engine, spec, str(tmp_path))
    assert engine.removed == [record["tag"]] and record["tag"] not in engine.present


def test_a_load_that_tagged_anything_else_is_undone(tmp_path):
    path = tmp_path / "image.tar"
    digest = make_archive(path, [(IMAGE_ID, ["edgeship/onnx:abc"])])
    engine = Engine(reports=["edgeship/onnx:abc", "python:3"])
    with pytest.raises(EdgeshipError, match=r"image.tar changed while it was loaded \(it loaded \['edgeship/onnx:abc', 'python:3'\]\)"):
        load_tar(engine, str(path), "edgeship/onnx:abc", digest)
    assert engine.removed == ["edgeship/onnx:abc", "python:3"]


def test_a_file_that_is_not_a_docker_save_archive_is_refused_before_the_engine(tmp_path):
    path = tmp_path / "image.tar"
    path.write_bytes(b"truncated")
    with pytest.raises(EdgeshipError, match=r"image.tar is not an image archive of `docker save` \(.*\); save the image again$"):
        load_tar(Engine(), str(path), "edgeship/onnx:abc", hashlib.sha256(b"truncated").hexdigest())
    with tarfile.open(path, "w"):
        pass
    with pytest.raises(EdgeshipError, match=r"is not an image archive of `docker save` \(ValueError: no manifest.json\)"):
        load_tar(Engine(), str(path), "edgeship/onnx:abc", "0" * 64)
    os.symlink(path, tmp_path / "link.tar")
    with pytest.raises(EdgeshipError, match=r"image archive .*link.tar is a symbolic link; edgeship does not follow links; save"):
        load_tar(Engine(), str(tmp_path / "link.tar"), "edgeship/onnx:abc", "0" * 64)
