"""The example models that edgeship's own conversions file names, made on this machine when they
are missing (examples/ is not committed). Here, not in edgeship.convert: the examples are built
with edgeship.convert, and the conversion code never reaches up to what it converts."""

from __future__ import annotations

from pathlib import Path

import tomllib


def make_missing_examples(config: Path) -> None:
    """edgeship's own conversions file names the example models, which each machine makes (examples/
    is not committed): `invoke verify` makes the missing or outdated ones first, so a fresh clone
    verifies with no other step. Fixed seeds and hash-pinned wheels make them the same bytes on
    every machine, which the lock's input hashes check."""
    from edgeship.paths import REPO_ROOT

    if config.resolve() != REPO_ROOT / "edgeship.toml":
        return  # a user's project: its models are theirs to make
    from edgeship.examples import BUILDERS, build_examples
    from edgeship.examples.common import current

    examples = REPO_ROOT / "examples"
    try:
        with open(config, "rb") as handle:
            models = tomllib.load(handle).get("models", {})
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, RecursionError, OSError):
        return  # load_project says what is wrong with the file
    wanted = [key for key, table in (models.items() if isinstance(models, dict) else ())
              if key in BUILDERS and isinstance(table, dict) and isinstance(table.get("path"), str)
              and (REPO_ROOT / table["path"]).resolve().is_relative_to(examples / key)]
    missing = [key for key in wanted if not current(examples / key, BUILDERS[key][1])]
    if missing:
        print(f"edgeship: making the examples {', '.join(missing)} in {examples} (fixed seeds: the lock checks their bytes)", flush=True)
        build_examples(examples, names=missing)
