"""Every toolchain image's Dockerfile, rendered from one template: the hashed, offline wheelhouse
install, the non-root user and the smoke tests are the same for all; what differs (a
description, ENV lines) comes from images/<name>/image.toml."""

from __future__ import annotations

from pathlib import Path

import jinja2

from edgeship.images.locks import ImageSpec

TEMPLATES = Path(__file__).resolve().parent / "templates"
CONTAINER_UID = 10001  # the `edgeship` user every conversion runs as


def render(spec: ImageSpec) -> str:
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), undefined=jinja2.StrictUndefined,
                                     keep_trailing_newline=True, autoescape=False)
    return environment.get_template("Dockerfile.j2").render(spec=spec, uid=CONTAINER_UID)


def smoke_files(spec: ImageSpec) -> list[tuple[str, Path]]:
    """(name in the image's smoke/ folder, source file) of each smoke test, in the order they run."""
    files = []
    for number, relative in enumerate(spec.smoke):
        path = (spec.folder / relative).resolve()
        files.append((f"{number:02d}-{path.parent.name}-{path.name}", path))
    return files
