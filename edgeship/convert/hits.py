"""A cache hit that answers at once: `invoke convert` of a request it converted (or found) before
returns the artifact without importing the model checks, onnx, numpy, the docker SDK or the
targets.

The full path (convert/run.py) computes the artifact's key from the checked plan, the images the
engine holds and the code. Once it has an artifact it writes a record here, keyed by the request
as given: every file the plan read (with its sha256), the code and image recipes it ran with, the
image ids and their bases, the artifact's key and the lines `invoke convert` prints about it. A
later identical request is a hit only when all of it still holds: the same files (hashed again),
the same calibration folder listing, the same code and recipes (hashed again), the same image id
behind each tag (one engine round trip each, over the socket, no SDK) and the artifact still there
under its key. Anything else, or anything this module cannot tell, is a miss: the full path runs,
with every check that guards a new conversion.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
import urllib.parse
from pathlib import Path

from edgeship import __version__
from edgeship.errors import EdgeshipError
from edgeship.paths import REPO_ROOT, cache_root
from edgeship_runtime.files import UnsafePath, atomic_write_text, confined, sha256_file, tree_sha256

RECORD_VERSION = 1
ENGINE_TIMEOUT_S = 5.0  # one image inspect; slower than this, the full path asks the engine itself
ENGINE_REPLY_LIMIT = 4 << 20  # an image's inspect is a few kB
DOCKER_SOCKET = "/var/run/docker.sock"
# What decides a plan, a key or an image beside the request's files: the controller, the targets,
# the board runtime they check with, and the task that builds the Request.
CODE = ("edgeship", "targets", "runtime/edgeship_runtime")
# Environment that changes which image or cache a conversion uses (BASE_IMAGE, EDGESHIP_CACHE, ...).
ENV_PREFIXES = ("EDGESHIP_", "BASE_IMAGE", "DOCKER_")


def parse_options(items) -> dict[str, str]:
    """--option KEY=VALUE items as a dict (here, not in request.py, so the hit needs no model checks)."""
    options = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise EdgeshipError(f"--option {item!r} is not KEY=VALUE; write e.g. --option io_dtype=uint8")
        options[key.strip().replace("-", "_")] = value.strip()
    return options


def cached(final: Path, key: str) -> bool:
    """Whether final holds the artifact of this key: its manifest and artifact regular files (never
    followed: a folder an older edgeship took from a container unchecked is converted again)."""
    try:
        data = json.loads(confined(final, "manifest.json", "the cached manifest").read_text())
        return isinstance(data, dict) and data.get("cache_key") == key and bool(confined(final, data["artifact"]["file"], "the cached artifact"))
    except (UnsafePath, OSError, ValueError, RecursionError, KeyError, TypeError):  # absent, a link, not a manifest of ours
        return False


def _canonical(fields: dict) -> dict:
    """The request's fields as JSON: paths absolute (the working folder is part of what they name)."""
    def value(item):
        if isinstance(item, Path):
            return os.path.abspath(item)
        if isinstance(item, dict):
            return {str(k): value(v) for k, v in sorted(item.items())}
        if isinstance(item, (list, tuple)):
            return [value(v) for v in item]
        return item
    return {name: value(item) for name, item in sorted(fields.items())}


def request_digest(fields: dict) -> str:
    env = {name: text for name, text in sorted(os.environ.items()) if name.startswith(ENV_PREFIXES)}
    material = {"request": _canonical(fields), "env": env, "version": __version__, "record": RECORD_VERSION}
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


def code_sha256() -> str:
    """The controller's, targets' and runtime's files and tasks.py (the full path hashes them before
    it plans, so a record never pairs newer code with a key older code made). os.walk, not
    pathlib's rglob: this runs on every hit, and the walk is most of its time."""
    files = [os.path.join(REPO_ROOT, "tasks.py")]
    for folder in CODE:
        for top, dirs, names in os.walk(REPO_ROOT / folder):
            dirs[:] = [name for name in dirs if name != "__pycache__"]
            files += [os.path.join(top, name) for name in names if not name.endswith(".pyc")]
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(f"{os.path.relpath(path, REPO_ROOT)}\0{sha256_file(path)}\n".encode())
    return digest.hexdigest()


def recipes_sha256(images: list[str]) -> str:
    """The image folders (image.toml, lock, smoke tests) of the images used."""
    return tree_sha256(REPO_ROOT, [path for name in images for path in (REPO_ROOT / "images" / name).rglob("*") if path.is_file()])


def record_path(digest: str) -> Path:
    return cache_root() / "hits" / f"{digest[:32]}.json"


def _listing(folder: str | None) -> list[str] | None:
    return sorted(os.listdir(folder)) if folder else None


def _engine_image_id(reference: str) -> str | None:
    """The id of the image `reference` names, asked over the engine's unix socket in plain HTTP/1.0
    (the docker SDK and http.client cost more to import than the whole hit); None: no answer."""
    host = os.environ.get("DOCKER_HOST", f"unix://{DOCKER_SOCKET}")
    if not host.startswith("unix://"):
        return None  # an engine over TCP/TLS: the full path asks it through the SDK
    deadline = time.monotonic() + ENGINE_TIMEOUT_S
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(ENGINE_TIMEOUT_S)
            sock.connect(host[len("unix://"):])
            sock.sendall(f"GET /images/{urllib.parse.quote(reference, safe='')}/json HTTP/1.0\r\nHost: docker\r\n\r\n".encode())
            reply = b""
            while chunk := sock.recv(1 << 16):  # HTTP/1.0: the engine closes once it has answered
                reply += chunk
                if len(reply) > ENGINE_REPLY_LIMIT or time.monotonic() > deadline:
                    return None
    except OSError:
        return None
    head, _, body = reply.partition(b"\r\n\r\n")
    if head.split(b" ", 2)[1:2] != [b"200"]:
        return None
    try:
        found = json.loads(body).get("Id")
    except (ValueError, AttributeError):
        return None
    return found if isinstance(found, str) else None


def _outputs(final: Path) -> dict:
    return {name: sha256_file(final / name) if (final / name).is_file() else None for name in ("manifest.json", "ops.json")}


def input_digests(fields: dict) -> dict[str, str]:
    """sha256 of every file the request names (model, eval, labels, preprocess, a task file, each
    calibration sample), taken before the plan reads them."""
    paths = [fields.get(name) for name in ("model", "eval", "labels", "preprocess", "task")]
    calib = fields.get("calib")
    if calib and os.path.isdir(calib):
        paths += [os.path.join(calib, name) for name in sorted(os.listdir(calib))]
    return {os.path.abspath(path): sha256_file(path) for path in map(str, filter(None, paths)) if os.path.isfile(path)}


def remember(fields: dict, code: str, files: list[Path], calib: Path | None, images: list[dict], key: str, final: Path,
             lines: list[str], before: dict[str, str] | None = None) -> None:
    """Keep what the full path proved about this request (run.py, once it has the artifact).
    code: code_sha256() from before the plan; before: input_digests() from before the plan (a file
    that changed since is not what the key was made of: no record); images: [{"name", "tag", "id",
    "base", "base_id"}] of every image the key depends on."""
    digests = {os.path.abspath(p): sha256_file(p) for p in files}
    def now(path: str) -> str | None:  # a file the plan read is hashed once: its digest is in `digests` already
        if path in digests:
            return digests[path]
        return sha256_file(path) if os.path.isfile(path) else None

    if before is not None and any(now(path) != sha for path, sha in before.items()):
        raise ValueError("an input file changed while it was converted")
    record = {"version": RECORD_VERSION, "request": _canonical(fields), "files": digests,
              "calib": _listing(os.path.abspath(calib) if calib else None), "code": code,
              "recipes": recipes_sha256([image["name"] for image in images]), "images": images,
              "key": key, "final": os.path.abspath(final), "outputs": _outputs(final), "summary": lines}
    path = record_path(request_digest(fields))
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(record, indent=1) + "\n")


def hit(fields: dict) -> tuple[Path, list[str]] | None:
    """(artifact folder, its summary lines) when the record of this very request still holds, else None."""
    try:
        record = json.loads(record_path(request_digest(fields)).read_text())
        if not (isinstance(record, dict) and record.get("version") == RECORD_VERSION and record.get("request") == _canonical(fields)):
            return None
        # cheapest first: the artifact, the calibration listing, the inputs, the code, then the engine
        final = Path(record["final"])
        if final.parent != Path(os.path.abspath(fields["out"])):
            return None
        if not cached(final, record["key"]) or _outputs(final) != record["outputs"]:
            return None
        calib = fields.get("calib")
        if _listing(os.path.abspath(calib) if calib else None) != record["calib"]:
            return None
        if any(not os.path.isfile(path) or sha256_file(path) != sha for path, sha in record["files"].items()):
            return None
        if code_sha256() != record["code"] or recipes_sha256([image["name"] for image in record["images"]]) != record["recipes"]:
            return None
        if any(_engine_image_id(image[ref]) != image[ident] for image in record["images"] for ref, ident in (("tag", "id"), ("base", "base_id"))):
            return None
        return Path(fields["out"]) / final.name, list(record["summary"])  # named as the full path names it
    except (OSError, ValueError, KeyError, TypeError, RecursionError):  # no record, or not one of ours: the full path
        return None
