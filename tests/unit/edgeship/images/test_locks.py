from __future__ import annotations

from edgeship.images.build import image_key
from edgeship.images.locks import all_specs, load_spec, pinned_packages


def test_every_lock_pins_every_package_with_a_hash():
    for spec in all_specs():
        text = spec.lock.read_text()
        pins = pinned_packages(spec.lock)
        assert pins, spec.lock
        blocks = [block for block in text.split("\n") if "==" in block and not block.startswith("#")]
        for line in blocks:
            assert line.rstrip().endswith("\\"), f"{spec.lock}: {line} has no --hash"
        assert text.count("--hash=sha256:") >= len(pins)
        # every top-level pin of requirements.in is in the lock at that version
        for line in spec.requirements_in.read_text().splitlines():
            line = line.split("#")[0].strip()
            if line and not line.startswith("-c "):  # a constraints file (images/mcu takes tflite's lock)
                name, version = line.split("==")
                assert pins[name.lower()] == version, f"{spec.lock} pins {name} {pins.get(name.lower())}, requirements.in says {version}"


def _copy(spec, root):
    """The image's folder copied under root (same folder name), and its spec read from there."""
    import shutil

    from edgeship.images import locks

    shutil.copytree(spec.folder, root / spec.name)
    return locks.ImageSpec(**{**spec.__dict__, "folder": root / spec.name})


def test_image_key_changes_exactly_when_an_input_changes(tmp_path, monkeypatch):
    import dataclasses
    import shutil

    from edgeship.images import dockerfile

    spec = load_spec("onnx")
    key = image_key(spec, "sha256:base1")
    assert key == image_key(spec, "sha256:base1")
    assert key != image_key(spec, "sha256:base2")
    same = _copy(spec, tmp_path / "same")
    assert image_key(same, "sha256:base1") == key  # the folder's place is not an input
    (same.folder / "requirements.in").write_text("# not a build input: only the lock is\n")
    assert image_key(same, "sha256:base1") == key

    lock = _copy(spec, tmp_path / "lock")
    lock.lock.write_text(lock.lock.read_text() + "# changed\n")
    smoke = _copy(spec, tmp_path / "smoke")
    (smoke.folder / "smoke.py").write_text((smoke.folder / "smoke.py").read_text() + "\n# changed\n")
    env = dataclasses.replace(spec, env=(*spec.env, ("EXTRA", "1")))
    keys = {image_key(changed, "sha256:base1") for changed in (lock, smoke, env)}
    assert key not in keys and len(keys) == 3

    templates = tmp_path / "templates"
    shutil.copytree(dockerfile.TEMPLATES, templates)
    (templates / "Dockerfile.j2").write_text((templates / "Dockerfile.j2").read_text() + "LABEL changed=1\n")
    monkeypatch.setattr(dockerfile, "TEMPLATES", templates)
    assert image_key(spec, "sha256:base1") != key


def test_every_image_renders_one_install_stage():
    from edgeship.images.dockerfile import render

    for spec in all_specs(include_gpu_only=True):
        text = render(spec)
        # one more for an image that installs its own packages on a shared lock's environment (shares_lock)
        assert text.count("pip install --no-index --no-deps --require-hashes") == 1 + bool(spec.shares_lock), spec.name
        assert "USER edgeship" in text and "COPY smoke/ /opt/edgeship/smoke/" in text
        for key, value in spec.env:
            assert f"{key}={value}" in text
        assert not (spec.folder / "Dockerfile").exists(), f"{spec.folder}/Dockerfile: images are rendered from the template"
