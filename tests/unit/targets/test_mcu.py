"""The mcu target without its image: the board table, the fit check's one line, TFLite Micro's op
table, the arena figure read from the RecordingMicroAllocator, and the C files (compiled by g++
where it is installed)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

import targets
from edgeship.convert.request import resolve_options
from edgeship.errors import EdgeshipError
from targets.mcu_firmware import (
    BOARDS,
    DEFAULT_BOARD,
    MICRO_OPS,
    arena_bytes,
    arena_size,
    c_identifier,
    fit,
    micro_ops,
    model_header,
    model_source,
)

RECORDED = """[RecordingMicroAllocator] Arena allocation total 1544 bytes
[RecordingMicroAllocator] Arena allocation head 128 bytes
[RecordingMicroAllocator] Arena allocation tail 1416 bytes
"""
IO = {"inputs": [{"name": "input", "dtype": "int8", "shape": [1, 8, 8, 1], "quantization": [0.0039215, -128]}],
      "outputs": [{"name": "logits\nevil", "dtype": "int8", "shape": [1, 10], "quantization": [0.1, 3]}]}


def test_every_board_has_its_memory_and_the_st_datasheet_it_comes_from():
    assert {"stm32h747", "stm32f746", "stm32l4r9"} <= set(BOARDS) and DEFAULT_BOARD in BOARDS
    for name, board in BOARDS.items():
        assert board.name == name and name.startswith("stm32")
        assert re.match(r"ST datasheet DS\d{5} \(STM32", board.source), board.source
        assert 0 < board.arena_kb <= board.ram_kb and board.flash_kb > 0
    assert (BOARDS["stm32h747"].ram_kb, BOARDS["stm32h747"].arena_kb, BOARDS["stm32h747"].flash_kb) == (1024, 512, 2048)
    assert (BOARDS["stm32f746"].ram_kb, BOARDS["stm32f746"].flash_kb) == (320, 1024)
    assert (BOARDS["stm32l4r9"].ram_kb, BOARDS["stm32l4r9"].flash_kb) == (640, 2048)


def test_the_target_offers_the_boards_and_names_no_board_runtime():
    mcu = targets.get("mcu")
    assert (mcu.quantizations, mcu.default_quant, mcu.runtime_backend, mcu.image) == (("int8",), "int8", "", "mcu")
    assert mcu.option("board").choices == tuple(BOARDS)
    assert resolve_options(mcu, "int8", {})["board"] == DEFAULT_BOARD
    assert resolve_options(mcu, "int8", {"board": "stm32l412"})["board"] == "stm32l412"
    with pytest.raises(EdgeshipError, match="stm32f999"):
        resolve_options(mcu, "int8", {"board": "stm32f999"})


def test_a_model_that_fits_gets_what_is_left_of_ram_and_flash():
    record = fit(BOARDS["stm32f746"], arena=20_000, model=150_000, model_name="digits")
    assert record["ram_left_bytes"] == 320 * 1024 - 20_000 and record["flash_left_bytes"] == 1024 * 1024 - 150_000
    assert record["board"] == "stm32f746" and "DS10916" in record["source"]
    fit(BOARDS["stm32l412"], arena=40 * 1024, model=128 * 1024)  # exactly full fits


def test_a_model_short_of_ram_is_refused_in_one_line_with_the_shortfall_and_a_board_that_holds_it():
    with pytest.raises(ValueError) as refused:
        fit(BOARDS["stm32l412"], arena=412 * 1024, model=100 * 1024, model_name="digits")
    line = str(refused.value)
    assert "\n" not in line
    assert line.startswith("digits does not fit stm32l412 (STM32L412xB): 372.0 KB of RAM short: it needs 412.0 KB for its tensor arena, "
                           "stm32l412 has 40 KB"), line
    assert line.endswith("choose --option board=stm32h747"), line  # the first board in the table with room for both


def test_the_shortfall_counts_the_largest_ram_block_and_flash_too():
    with pytest.raises(ValueError, match=r"88\.0 KB of RAM short: it needs 600\.0 KB for its tensor arena in one block \(its largest SRAM "
                                         r"block is 512 KB of 1024 KB\), stm32h747 has 512 KB.*choose --option board=stm32l4r9"):
        fit(BOARDS["stm32h747"], arena=600 * 1024, model=100 * 1024)
    with pytest.raises(ValueError, match=r"stm32f411 \(STM32F411xE\): 88\.0 KB of flash short: the model is 600\.0 KB, stm32f411 has "
                                         r"512 KB \(before the firmware's own code and data\); choose --option board=stm32h747"):
        fit(BOARDS["stm32f411"], arena=10 * 1024, model=600 * 1024)
    with pytest.raises(ValueError, match=r"of RAM short.*; .*of flash short.*no board in the table holds it: make the model smaller"):
        fit(BOARDS["stm32l412"], arena=4 << 20, model=8 << 20)


def test_the_resolver_lists_an_add_call_per_op_type_and_refuses_ops_tflm_lacks():
    assert micro_ops({"FULLY_CONNECTED": 2, "CONV_2D": 3, "SOFTMAX": 1}) == ["AddConv2D", "AddFullyConnected", "AddSoftmax"]
    assert MICRO_OPS["DEPTHWISE_CONV_2D"] == "AddDepthwiseConv2D" and MICRO_OPS["UNIDIRECTIONAL_SEQUENCE_LSTM"] == "AddUnidirectionalSequenceLSTM"
    assert all(re.fullmatch(r"Add[A-Z][A-Za-z0-9]*", method) for method in MICRO_OPS.values())
    with pytest.raises(ValueError, match=r"TFLite Micro has no kernel for BATCH_MATMUL, GELU \(its MicroMutableOpResolver"):
        micro_ops({"CONV_2D": 1, "GELU": 1, "BATCH_MATMUL": 2})


def test_the_arena_is_read_from_the_recording_allocator_and_rounded_to_its_alignment():
    assert arena_bytes(RECORDED) == 1544
    with pytest.raises(RuntimeError, match="no 'Arena allocation total' line .*printed: oops"):
        arena_bytes("oops\n")
    assert (arena_size(1544), arena_size(1536), arena_size(1)) == (1552, 1536, 16)


def test_the_model_array_holds_the_models_bytes_exactly():
    model = bytes(range(256)) * 3 + b"\x07"
    source = model_source(model, "model_data.h")
    values = re.search(r"g_model\[\] = \{(.*?)\};", source, re.S).group(1)
    assert bytes(int(value, 16) for value in values.replace("\n", " ").split(",")) == model
    assert "alignas(16) const unsigned char g_model[]" in source and f"g_model_len = {len(model)};" in source
    assert '#include "model_data.h"' in source


def test_the_header_carries_the_measured_arena_and_the_resolver_calls():
    board = fit(BOARDS["stm32f746"], arena=1544, model=775)
    header = model_header("digits-embed", 775, 1544, ["AddConv2D", "AddSoftmax"], board, IO)
    assert "constexpr size_t kTensorArenaSize = 1552;" in header and "constexpr size_t kTensorArenaUsedBytes = 1544;" in header
    assert "constexpr unsigned int kOpCount = 2;" in header and "resolver.AddConv2D();" in header and "resolver.AddSoftmax();" in header
    assert "No microcontroller ran this here" in header and "stm32f746 (STM32F746xG)" in header
    assert "#ifndef EDGESHIP_DIGITS_EMBED_MODEL_DATA_H_" in header
    assert "logits evil" in header  # a tensor name's line break cannot end its comment
    assert c_identifier("2nd.model-v1") == "m_2nd_model_v1"


@pytest.mark.skipif(shutil.which("g++") is None, reason="no g++ here to compile the emitted files")
def test_the_emitted_files_compile_and_register_their_ops(tmp_path):
    board = fit(BOARDS["stm32h747"], arena=1544, model=5)
    (tmp_path / "model_data.h").write_text(model_header("digits", 5, 1544, ["AddConv2D", "AddSoftmax"], board, IO))
    (tmp_path / "model_data.cc").write_text(model_source(b"\x1c\x00\x00\x00T", "model_data.h"))
    # a stand-in resolver with TFLite Micro's method names: it records what the macro calls
    (tmp_path / "main.cc").write_text("""#include <cstdio>
#include "model_data.h"
struct Resolver { int calls = 0; void AddConv2D() { calls += 1; } void AddSoftmax() { calls += 10; } };
int main() {
  Resolver resolver;
  EDGESHIP_ADD_OPS(resolver);
  alignas(16) static unsigned char tensor_arena[kTensorArenaSize];
  std::printf("%d %u %u %zu\\n", resolver.calls, kOpCount, g_model_len, sizeof(tensor_arena));
  return g_model[0] == 0x1c ? 0 : 1;
}
""")
    subprocess.run(["g++", "-std=c++17", "-Wall", "-Werror", "-o", str(tmp_path / "main"), str(tmp_path / "main.cc"),
                    str(tmp_path / "model_data.cc")], check=True, timeout=120)
    result = subprocess.run([str(tmp_path / "main")], capture_output=True, text=True, timeout=30, check=True)
    assert result.stdout.split() == ["11", "2", "5", "1552"]


def test_the_board_runtime_refuses_an_mcu_artifact_saying_what_it_is():
    from edgeship_runtime.backends import backend_class
    from edgeship_runtime.errors import ArtifactError

    with pytest.raises(ArtifactError, match=r"names no runtime backend: it is for a microcontroller's firmware build \(model_data\.cc"):
        backend_class(targets.get("mcu").runtime_backend)
