"""Build the per-target toolchain images from their folder, lock file and cached wheelhouse."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

from edgeship import __version__
from edgeship.errors import EdgeshipError
from edgeship.images.base import PACKAGES, ensure_base_image
from edgeship.images.dockerfile import render, smoke_files
from edgeship.images.locks import ImageSpec, added_lock, ensure_wheelhouse, load_spec

LABEL_LOCK = "io.edgeship.lock.sha256"
LABEL_KEY = "io.edgeship.image.key"
SMOKE_TIMEOUT_S = 300
# Runs the image's smoke tests in name order, each as __main__, stopping at the first failure.
SMOKE_COMMAND = ["python", "-c", "import glob, runpy\nfor path in sorted(glob.glob('/opt/edgeship/smoke/*.py')):\n"
                 "    print('smoke:', path, flush=True)\n    runpy.run_path(path, run_name='__main__')"]


def base_image_ref(client, spec: ImageSpec | None = None) -> str:
    """BASE_IMAGE (a registry image, where one is reachable) or our debootstrapped base,
    with the Debian packages the image's spec asks for."""
    override = os.environ.get("BASE_IMAGE")
    if not override:
        return ensure_base_image(client, packages=PACKAGES + (spec.base_packages if spec else ()))
    import docker

    try:
        client.images.get(override)
    except docker.errors.ImageNotFound:
        print(f"edgeship: pulling BASE_IMAGE={override}", flush=True)
        try:
            client.images.pull(override)
        except docker.errors.APIError as error:
            raise EdgeshipError(f"BASE_IMAGE={override} is not present and could not be pulled ({error.explanation}); "
                                f"unset BASE_IMAGE to bootstrap a Debian base from the archive") from None
    return override


def context_files(spec: ImageSpec) -> dict[str, bytes]:
    """The build context besides the wheelhouse: the rendered Dockerfile, the lock, the smoke tests
    and the user's local .debs (so each of them is part of the image key too)."""
    files = {"Dockerfile": render(spec).encode(), "requirements.lock": spec.lock.read_bytes()}
    if spec.shares_lock:  # the shared image's lock, byte for byte, so that Docker reuses its install stage
        shared = load_spec(spec.shares_lock)
        files["requirements.lock"] = shared.lock.read_bytes()
        files["added.lock"] = added_lock(spec, shared).encode()
    for name, path in smoke_files(spec):
        files[f"smoke/{name}"] = path.read_bytes()
    for deb in spec.local_debs:
        files[f"local-debs/{deb.file}"] = deb.path.read_bytes()
    return files


def image_key(spec: ImageSpec, base_id: str) -> str:
    """Everything a toolchain image is made of: its context files and the exact base image."""
    digest = hashlib.sha256()
    for name, data in sorted(context_files(spec).items()):
        digest.update(name.encode() + b"\0" + data + b"\0")
    digest.update(base_id.encode())
    return digest.hexdigest()


def image_tag(spec: ImageSpec, key: str) -> str:
    return f"edgeship/{spec.name}:{key[:12]}"


def resolve(client, spec: ImageSpec) -> tuple[str, str, str, str]:
    """(tag, key, base reference, base id) the image of this spec has, whether built yet or not."""
    spec.lock_sha256()  # a missing lock file is one clear line, before the base image is looked at
    base = base_image_ref(client, spec)
    base_id = client.images.get(base).id
    key = image_key(spec, base_id)
    return image_tag(spec, key), key, base, base_id


def _existing(client, tag: str):
    import docker

    try:
        return client.images.get(tag)
    except docker.errors.ImageNotFound:
        return None


def find_image(client, spec: ImageSpec):
    """The built image for the current folder contents and base, or None."""
    return _existing(client, resolve(client, spec)[0])


def _link_or_copy(source: str, dest: str) -> None:
    try:
        os.link(source, dest)
    except OSError:
        shutil.copy2(source, dest)


def _context_wheels(spec: ImageSpec, wheelhouse: Path) -> dict[str, list[Path]]:
    """The wheels of the build context's wheelhouse/ (the install stage's) and, for an image that shares
    another's lock, added-wheelhouse/: the shared image's own wheelhouse goes in wheelhouse/ unchanged (any
    other file there would miss Docker's cache), and the wheels of what this image adds in the other."""
    if not spec.shares_lock:
        return {"wheelhouse": sorted(wheelhouse.glob("*.whl"))}
    added = set(re.findall(r"^([a-z0-9][a-z0-9._-]*)==", added_lock(spec, load_spec(spec.shares_lock)), re.MULTILINE))
    mine = [wheel for wheel in sorted(wheelhouse.glob("*.whl")) if _distribution(wheel) in added]
    return {"wheelhouse": sorted(ensure_wheelhouse(load_spec(spec.shares_lock)).glob("*.whl")), "added-wheelhouse": mine}


def _distribution(wheel: Path) -> str:
    """A wheel file's project name, normalized as lock files write it (PEP 503: lower case, - for _ and .)."""
    return re.sub(r"[-_.]+", "-", wheel.name.split("-")[0]).lower()


def _stream_build(client, context: str, tag: str, base: str, labels: dict[str, str]) -> None:
    started = time.monotonic()
    # network off: everything comes from the context's hashed wheelhouse (and the user's .debs)
    for chunk in client.api.build(path=context, tag=tag, buildargs={"BASE_IMAGE": base}, labels=labels,
                                  rm=True, forcerm=True, decode=True, pull=False, network_mode="none"):
        if "error" in chunk:
            raise EdgeshipError(f"docker build of {tag} failed: {chunk['error'].strip()}")
        text = chunk.get("stream", "").rstrip()
        if text:
            for line in text.splitlines():
                prefix = f"[{tag} {time.monotonic() - started:6.1f}s]"
                print(f"{prefix} {line}", flush=True)


def smoke_test(client, tag: str) -> str:
    """Run the image's smoke test with the network off; returns what it printed."""
    import requests

    container = client.containers.run(tag, SMOKE_COMMAND, detach=True, network_mode="none")
    try:
        status = container.wait(timeout=SMOKE_TIMEOUT_S)
        output = container.logs(tail=200).decode(errors="replace")
    except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):  # docker-py's wait time-out
        raise EdgeshipError(f"the smoke test of {tag} did not finish within {SMOKE_TIMEOUT_S} s and was stopped; an import in the "
                            f"image hangs, or the machine is too loaded: build it again (`invoke images.build --rebuild`)") from None
    finally:
        container.remove(force=True)
    if status.get("StatusCode") != 0:
        last = output.strip().splitlines()[-1] if output.strip() else "no output"
        raise EdgeshipError(f"smoke test of {tag} failed (exit {status.get('StatusCode')}): {last}")
    return output


def build(client, spec: ImageSpec, rebuild: bool = False):
    """Return the image for `spec`, building it (and its base and wheelhouse) when needed."""
    tag, key, base, base_id = resolve(client, spec)
    if not rebuild:
        existing = _existing(client, tag)
        if existing is not None:
            print(f"edgeship: {tag} is up to date", flush=True)
            return existing
    wheelhouse = ensure_wheelhouse(spec)
    lock_sha = spec.lock_sha256()
    labels = {
        LABEL_LOCK: lock_sha,
        LABEL_KEY: key,
        "io.edgeship.image.name": spec.name,
        "org.opencontainers.image.base.name": base,
        "org.opencontainers.image.base.digest": base_id,
        "org.opencontainers.image.version": __version__,
        "org.opencontainers.image.title": f"edgeship {spec.name} toolchain",
    }
    with tempfile.TemporaryDirectory(prefix=f"edgeship-ctx-{spec.name}-") as context:
        for name, data in context_files(spec).items():
            os.makedirs(os.path.dirname(os.path.join(context, name)), exist_ok=True)
            with open(os.path.join(context, name), "wb") as handle:
                handle.write(data)
        for folder, wheels in _context_wheels(spec, wheelhouse).items():
            os.mkdir(os.path.join(context, folder))
            for wheel in wheels:
                _link_or_copy(str(wheel), os.path.join(context, folder, wheel.name))
        print(f"edgeship: building {tag} from {spec.folder} on {base} (lock {lock_sha[:12]})", flush=True)
        _stream_build(client, context, tag, base, labels)
    output = smoke_test(client, tag)
    print(f"edgeship: {tag} smoke test passed: {output.strip().splitlines()[-1]}", flush=True)
    return client.images.get(tag)


# Images on many runners: an archive per image recipe (`invoke images.save` / `images.load`), for a
# CI cache keyed by the image folder's files. The archive is named by the recipe (the context
# files, as conversions.lock records it), which a runner computes from its checkout before it has
# any image; the base goes beside it, so that the loaded image's key (recipe + base id) and tag are
# the saving machine's and `build` finds it up to date.

def recipe_sha256(spec: ImageSpec) -> str:
    """An image's recipe: its context files (rendered Dockerfile, lock, smoke tests) without the base."""
    digest = hashlib.sha256()
    for name, data in sorted(context_files(spec).items()):
        digest.update(name.encode() + b"\0" + data + b"\0")
    return digest.hexdigest()


def archive_name(spec: ImageSpec) -> str:
    return f"{spec.name}-{recipe_sha256(spec)[:16]}"


def save_tag(client, tag: str, path: str) -> str:
    """`docker save` of one tag into path (written whole or not at all); returns its sha256."""
    from edgeship_runtime.files import staged_file

    digest = hashlib.sha256()
    with staged_file(path) as temporary, open(temporary, "wb") as handle:
        for chunk in client.api.get_image(tag):
            handle.write(chunk)
            digest.update(chunk)
        handle.flush()
        os.fsync(handle.fileno())
    return digest.hexdigest()


ARCHIVE_BYTES = 64 << 30  # an image archive (a toolchain image with its layers is a few GiB)
RECORD_BYTES = 64 << 10  # the .json beside the archives
MANIFEST_BYTES = 1 << 20  # the archive's manifest.json
ARCHIVE_MEMBERS = 100_000  # tar headers walked to find it
CHUNK_BYTES = 1 << 20


def archive_images(handle, path: str) -> list[tuple[str, list[str]]]:
    """(image id, tags) of each image a `docker save` archive holds, from its manifest.json, read
    from the open handle (bounded: headers walked, manifest size); the handle is left at its start."""
    import json
    import tarfile

    handle.seek(0)
    try:
        with tarfile.open(fileobj=handle, mode="r:") as tar:
            for count, member in enumerate(iter(tar.next, None)):
                if count >= ARCHIVE_MEMBERS:
                    raise ValueError(f"no manifest.json in its first {ARCHIVE_MEMBERS} members")
                if member.name in ("manifest.json", "./manifest.json"):
                    if not member.isreg() or member.size > MANIFEST_BYTES:
                        raise ValueError("its manifest.json is not a regular file of at most 1 MiB")
                    extracted = tar.extractfile(member)
                    manifest = json.loads(extracted.read(MANIFEST_BYTES) if extracted else b"")
                    break
            else:
                raise ValueError("no manifest.json")
        images = []
        for item in manifest:
            tags, digest = item.get("RepoTags") or [], os.path.basename(item["Config"]).removesuffix(".json")
            if not (isinstance(tags, list) and all(isinstance(tag, str) for tag in tags) and re.fullmatch(r"[0-9a-f]{64}", digest)):
                raise TypeError("a manifest item without a config digest or tags")
            images.append((f"sha256:{digest}", tags))
    except (tarfile.TarError, OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as error:
        raise EdgeshipError(f"{path} is not an image archive of `docker save` ({type(error).__name__}: {error}); save the image "
                            f"again") from None
    finally:
        handle.seek(0)
    return images


def _hashed_chunks(handle, digest, path: str):
    """The handle's bytes for the engine, hashed as they go: what is checked is what was loaded."""
    total = 0
    while chunk := handle.read(CHUNK_BYTES):
        total += len(chunk)
        if total > ARCHIVE_BYTES:
            raise EdgeshipError(f"{path} grew past {ARCHIVE_BYTES >> 30} GiB while it was loaded; save the image again")
        digest.update(chunk)
        yield chunk


def _untag(client, tags: list[str]) -> None:
    import docker

    for tag in tags:
        if tag.startswith("sha256:"):  # an untagged image: its id, which is not removed (another tag may name it)
            continue
        try:
            client.images.remove(tag)  # the tag only: an image another tag names keeps its layers
        except docker.errors.APIError:
            pass


def load_tar(client, path: str, tag: str, sha256: str) -> list[str]:
    """`docker load` of an archive of the one image `tag`, whose bytes must hash to `sha256`; returns
    the tags it loaded ([tag], or [] when this machine has that very image under it already).
    Refused before the engine sees it: an archive of other or more images, and a tag this machine
    has for another image (a shared base that other images were built on is never replaced).
    Refused after: a hash that is not `sha256` or a load that tagged anything else (the file
    changed while it was read), and then what it tagged is removed again."""
    import docker

    from edgeship_runtime.files import UnreadableFile, open_regular

    loaded: list[str] = []
    digest = hashlib.sha256()
    try:
        with open_regular(path, ARCHIVE_BYTES, "image archive") as handle:
            images = archive_images(handle, path)
            if [tags for _id, tags in images] != [[tag]]:
                found = ", ".join(" ".join(tags) or image_id for image_id, tags in images) or "no image"
                raise EdgeshipError(f"{path} holds {found}, not the one image {tag} its record names; save the image again")
            (archive_id, _tags), = images
            local = _existing(client, tag)
            if local is not None and local.id == archive_id:
                return []
            if local is not None:
                raise EdgeshipError(f"{path} would replace this machine's {tag} ({local.id[:19]}) with another image "
                                    f"({archive_id[:19]}); images built on it would lose their base: remove the archive folder, "
                                    f"or `docker rmi {tag}` if it is not needed, and load again")
            for status in client.api.load_image(_hashed_chunks(handle, digest, path)):
                if "error" in status:
                    raise EdgeshipError(f"docker load of {path} failed: {str(status['error']).strip()}; save the image again")
                text = str(status.get("stream", ""))
                for prefix in ("Loaded image: ", "Loaded image ID: "):
                    if text.startswith(prefix):
                        loaded.append(text[len(prefix):].strip())
    except UnreadableFile as error:
        raise EdgeshipError(f"{error}; save the image again") from None
    except docker.errors.APIError as error:
        _untag(client, loaded)
        raise EdgeshipError(f"docker load of {path} failed ({error.explanation}); save the image again") from None
    if loaded != [tag] or digest.hexdigest() != sha256:
        _untag(client, loaded)
        what = f"sha256 {digest.hexdigest()[:16]}, not {sha256[:16]}" if digest.hexdigest() != sha256 else f"it loaded {loaded or 'nothing'}"
        raise EdgeshipError(f"{path} changed while it was loaded ({what}); what it loaded is removed again: save the image again")
    return loaded


def save(client, spec: ImageSpec, out: str) -> str:
    """The built image of `spec` and its base into out/<name>-<recipe>.tar (+ .base.tar, .json)."""
    import json

    tag, key, base, base_id = resolve(client, spec)
    if _existing(client, tag) is None:
        raise EdgeshipError(f"{tag} is not built on this machine; build it first (`invoke images.build --target {spec.name}`)")
    os.makedirs(out, exist_ok=True)
    stem = os.path.join(out, archive_name(spec))
    print(f"edgeship: saving {tag} and its base {base} into {stem}.tar", flush=True)
    record = {"name": spec.name, "tag": tag, "key": key, "base": base, "base_id": base_id, "recipe_sha256": recipe_sha256(spec),
              "sha256": save_tag(client, tag, f"{stem}.tar"), "base_sha256": save_tag(client, base, f"{stem}.base.tar")}
    from edgeship_runtime.files import atomic_write_text

    atomic_write_text(f"{stem}.json", json.dumps(record, indent=1, sort_keys=True) + "\n")  # last: it marks the pair complete
    return f"{stem}.tar"


def expected_base(spec: ImageSpec) -> str:
    """The base tag this machine builds the spec's image on (as base_image_ref, without making it)."""
    from edgeship.images.base import base_tag, host_arch

    return os.environ.get("BASE_IMAGE") or base_tag(host_arch(), PACKAGES + spec.base_packages)


def load(client, spec: ImageSpec, folder: str):
    """Load the archive `save` wrote for this recipe (each tar hashed as it streams into the engine
    and checked against its record; only this recipe's image and its base tag are loaded, and a
    base this machine has already is never replaced); returns the image."""
    from edgeship_runtime.files import UnreadableFile, read_json_object

    stem = os.path.join(folder, archive_name(spec))
    try:
        record = read_json_object(f"{stem}.json", RECORD_BYTES, "image archive record")
        expected = {name: record[name] for name in ("tag", "key", "base", "base_id", "sha256", "base_sha256")}
        if not all(isinstance(value, str) for value in expected.values()):
            raise TypeError("a field that is not text")
        problem = None
    except UnreadableFile as error:
        problem = error.problem
    except (KeyError, TypeError) as error:
        problem = type(error).__name__
    if problem:
        raise EdgeshipError(f"no image archive of {spec.name}'s recipe in {folder} ({stem}.json: {problem}); save it on a "
                            f"machine that built it (`invoke images.save --target {spec.name} --out DIR`) or build it here")
    # the tags are the ones this checkout gives the recipe, never the record's word alone
    key = image_key(spec, expected["base_id"])
    base = expected_base(spec)
    if (expected["tag"], expected["key"], expected["base"]) != (image_tag(spec, key), key, base):
        raise EdgeshipError(f"{stem}.json names {expected['tag']} on {expected['base']}, not {spec.name}'s image of this recipe "
                            f"({image_tag(spec, key)} on {base}); save the image again, or build it here")
    print(f"edgeship: loading {expected['tag']} and its base {base} from {stem}.tar", flush=True)
    load_tar(client, f"{stem}.base.tar", base, expected["base_sha256"])
    load_tar(client, f"{stem}.tar", expected["tag"], expected["sha256"])
    tag, key, _base, _base_id = resolve(client, spec)
    image = _existing(client, tag)
    if image is None or (image.labels or {}).get(LABEL_KEY) != key:
        raise EdgeshipError(f"the archive's {expected['tag']} is not this machine's {spec.name} image ({tag}): its base differs "
                            f"(BASE_IMAGE, or another base of the same name); build it here instead")
    return image
