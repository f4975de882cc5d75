"""mcu target in its image: digits becomes the same full-int8 model the tflite target makes, run by
TFLite Micro's own interpreter (top-1 against the labels equal to tflite int8's on LiteRT), with
the arena TFLite Micro measured in the manifest, mcu.json and model_data.h; the C files compile
and register the model's ops; a board too small for a model is refused in one line with the
shortfall, before anything is kept."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from edgeship.errors import EdgeshipError
from targets.mcu_firmware import BOARDS, MICRO_OPS, arena_size
from tests.support import tiny_cnn


@pytest.fixture(scope="session")
def mcu_image(docker_client):
    from edgeship.images.build import build
    from edgeship.images.locks import load_spec

    return build(docker_client, load_spec("mcu"))


def read(folder: Path, name: str) -> dict:
    return json.loads((folder / name).read_text())


def test_digits_int8_runs_in_tflite_micro_as_tflite_int8_runs_in_litert(mcu_image, convert_example, conversions):
    # tflite int8 digits as the runtime tests convert it (one conversion per session for all of them)
    mcu, tflite = convert_example("digits", "mcu", "int8"), conversions("digits", "int8")
    manifest, reference = read(mcu, "manifest.json"), read(tflite, "manifest.json")
    labelled, theirs = manifest["accuracy"]["labelled"], reference["accuracy"]["labelled"]
    firmware = manifest["firmware"]
    print(f"digits mcu int8: arena {firmware['arena_bytes']} bytes, model {firmware['model_bytes']} bytes, {firmware['resolver']}; "
          f"labelled {labelled['fp32']['accuracy']:.2%} -> {labelled['converted']['accuracy']:.2%} (tflite int8: "
          f"{theirs['converted']['accuracy']:.2%}); same model.tflite as tflite's: "
          f"{manifest['artifact']['sha256'] == reference['artifact']['sha256']}")

    assert (manifest["target"], manifest["runtime_backend"], manifest["artifact"]["file"]) == ("mcu", "", "model.tflite")
    assert {"model_data.cc", "model_data.h", "mcu.json"} <= set(manifest["files"])
    assert "no microcontroller" in manifest["accuracy"]["measured_with"] and "no microcontroller here" in firmware["runs_here"]
    # the same int8 model (the tflite target's conversion, byte for byte) judged the same way: top-1
    # against the labels equal, TFLite Micro against LiteRT
    assert manifest["artifact"]["sha256"] == reference["artifact"]["sha256"]
    assert labelled["converted"]["accuracy"] == theirs["converted"]["accuracy"]
    assert labelled["samples"] == theirs["samples"] > 0 and manifest["accuracy"]["passed"]
    assert all(t["dtype"] == "int8" for t in manifest["artifact_io"]["tensors"]["inputs"] + manifest["artifact_io"]["tensors"]["outputs"])

    # the arena TFLite Micro measured, the same in the manifest, mcu.json and the header
    arena = firmware["arena_bytes"]
    assert 0 < arena < 64 * 1024 and read(mcu, "mcu.json")["arena_bytes"] == arena
    header = (mcu / "model_data.h").read_text()
    assert f"constexpr size_t kTensorArenaUsedBytes = {arena};" in header and f"kTensorArenaSize = {arena_size(arena)};" in header
    assert firmware["board"]["board"] == "stm32h747" and firmware["board"]["ram_left_bytes"] == 512 * 1024 - arena
    # one Add call per op type the model runs, as the manifest's op table lists them
    assert firmware["resolver"] == [MICRO_OPS[op] for op in sorted(manifest["ops"])]
    assert re.findall(r"resolver\.(Add\w+)\(\);", header) == firmware["resolver"]
    # the array is the model file, byte for byte
    source = (mcu / "model_data.cc").read_text()
    values = re.search(r"g_model\[\] = \{(.*?)\};", source, re.S).group(1)
    assert bytes(int(value, 16) for value in values.replace("\n", " ").split(",")) == (mcu / "model.tflite").read_bytes()


@pytest.mark.skipif(shutil.which("g++") is None, reason="no g++ here to compile the emitted files")
def test_the_digits_c_files_compile_with_the_ops_their_header_names(mcu_image, convert_example, tmp_path):
    mcu = convert_example("digits", "mcu", "int8")
    for name in ("model_data.cc", "model_data.h"):
        shutil.copyfile(mcu / name, tmp_path / name)
    resolver = read(mcu, "manifest.json")["firmware"]["resolver"]
    methods = " ".join(f"void {method}() {{ calls += 1; }}" for method in resolver)
    (tmp_path / "main.cc").write_text(f"""#include <cstdio>
#include "model_data.h"
struct Resolver {{ unsigned calls = 0; {methods} }};
int main() {{
  Resolver resolver;
  EDGESHIP_ADD_OPS(resolver);
  std::printf("%u %u %u\\n", resolver.calls, kOpCount, g_model_len);
  return 0;
}}
""")
    subprocess.run(["g++", "-std=c++17", "-Wall", "-Werror", "-o", str(tmp_path / "main"), str(tmp_path / "main.cc"),
                    str(tmp_path / "model_data.cc")], check=True, timeout=120)
    result = subprocess.run([str(tmp_path / "main")], capture_output=True, text=True, timeout=30, check=True)
    size = (mcu / "model.tflite").stat().st_size
    assert result.stdout.split() == [str(len(resolver)), str(len(resolver)), str(size)]


def test_a_board_too_small_for_the_arena_is_refused_in_one_line_with_the_shortfall(mcu_image, docker_client, tmp_path):
    """A conv net on a 96x96 RGB input needs far more arena than the 40 KB of an STM32L412: refused
    by the worker once TFLite Micro has measured it, nothing kept."""
    from edgeship.convert import Request, convert

    model = tiny_cnn(tmp_path / "wide.onnx", channels=3, size=96)
    calib = tmp_path / "calib"
    calib.mkdir()
    rng = np.random.default_rng(0)
    for index in range(4):
        np.save(calib / f"{index:03d}.npy", rng.uniform(0, 1, (1, 3, 96, 96)).astype(np.float32))
    out = tmp_path / "out"
    request = Request(target="mcu", model=model, quant="int8", calib=calib, options={"board": "stm32l412"}, out=out)
    with pytest.raises(EdgeshipError) as refused:
        convert(request, client=docker_client)
    line = str(refused.value)
    print(line)
    assert "\n" not in line and "Traceback" not in line
    shortfall = re.search(r"wide does not fit stm32l412 \(STM32L412xB\): ([0-9.]+) KB of RAM short: it needs ([0-9.]+) KB for its "
                          r"tensor arena, stm32l412 has 40 KB \(before the firmware's own code and data\); choose --option board=(\w+)", line)
    assert shortfall, line
    assert float(shortfall.group(1)) == pytest.approx(float(shortfall.group(2)) - BOARDS["stm32l412"].arena_kb, abs=0.11)
    assert shortfall.group(3) in BOARDS
    assert not any(path.name.startswith("wide-mcu") for path in out.glob("*"))  # nothing kept
