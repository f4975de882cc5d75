from __future__ import annotations

import hashlib

from edgeship.images import image_key
from edgeship.lockfile import all_specs, pinned_packages


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
            if line:
                name, version = line.split("==")
                assert pins[name.lower()] == version, f"{spec.lock} pins {name} {pins.get(name.lower())}, requirements.in says {version}"


def test_image_key_changes_with_the_lock_and_the_base(tmp_path):
    spec = all_specs()[0]
    key = image_key(spec, "sha256:base1")
    assert key == image_key(spec, "sha256:base1")
    assert key != image_key(spec, "sha256:base2")
    copy = tmp_path / spec.name
    copy.mkdir()
    for name in ("Dockerfile", "requirements.lock", "smoke.py", "image.toml", "requirements.in"):
        (copy / name).write_bytes((spec.folder / name).read_bytes())
    (copy / "requirements.lock").write_text((spec.folder / "requirements.lock").read_text() + "# changed\n")
    changed = type(spec)(spec.name, copy, spec.python_version, spec.uv_platform, spec.pip_platforms)
    assert image_key(changed, "sha256:base1") != key
    assert changed.lock_sha256() != hashlib.sha256(spec.lock.read_bytes()).hexdigest()
