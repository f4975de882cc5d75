"""What the `mcu` target knows about microcontrollers, without TensorFlow: the ops TFLite Micro's
MicroMutableOpResolver registers, the boards' memory, whether a model fits one, and the C files a
firmware project includes (the model as a byte array, a header with its arena size and op list).

Plain functions on plain values, so the unit tier tests them without the toolchain image.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# TFLite builtin op name -> the MicroMutableOpResolver method that registers its kernel: the
# builtins tflite-micro's PythonOpsResolver adds (python/tflite_micro/python_ops_resolver.cc, the
# resolver the tflite-micro wheel's interpreter runs with), by the method names of
# tensorflow/lite/micro/micro_mutable_op_resolver.h. An op not here has no TFLM kernel.
MICRO_OPS: dict[str, str] = {
    "ABS": "AddAbs", "ADD": "AddAdd", "ADD_N": "AddAddN", "ARG_MAX": "AddArgMax", "ARG_MIN": "AddArgMin",
    "ASSIGN_VARIABLE": "AddAssignVariable", "AVERAGE_POOL_2D": "AddAveragePool2D", "BATCH_TO_SPACE_ND": "AddBatchToSpaceNd",
    "BROADCAST_ARGS": "AddBroadcastArgs", "BROADCAST_TO": "AddBroadcastTo", "CALL_ONCE": "AddCallOnce", "CAST": "AddCast",
    "CEIL": "AddCeil", "CONCATENATION": "AddConcatenation", "CONV_2D": "AddConv2D", "COS": "AddCos", "CUMSUM": "AddCumSum",
    "DEPTH_TO_SPACE": "AddDepthToSpace", "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D", "DEQUANTIZE": "AddDequantize", "DIV": "AddDiv",
    "ELU": "AddElu", "EQUAL": "AddEqual", "EXP": "AddExp", "EXPAND_DIMS": "AddExpandDims", "FILL": "AddFill", "FLOOR": "AddFloor",
    "FLOOR_DIV": "AddFloorDiv", "FLOOR_MOD": "AddFloorMod", "FULLY_CONNECTED": "AddFullyConnected", "GATHER": "AddGather",
    "GATHER_ND": "AddGatherNd", "GREATER": "AddGreater", "GREATER_EQUAL": "AddGreaterEqual", "HARD_SWISH": "AddHardSwish",
    "IF": "AddIf", "L2_NORMALIZATION": "AddL2Normalization", "L2_POOL_2D": "AddL2Pool2D", "LEAKY_RELU": "AddLeakyRelu",
    "LESS": "AddLess", "LESS_EQUAL": "AddLessEqual", "LOG": "AddLog", "LOGICAL_AND": "AddLogicalAnd", "LOGICAL_NOT": "AddLogicalNot",
    "LOGICAL_OR": "AddLogicalOr", "LOGISTIC": "AddLogistic", "LOG_SOFTMAX": "AddLogSoftmax", "MAX_POOL_2D": "AddMaxPool2D",
    "MAXIMUM": "AddMaximum", "MEAN": "AddMean", "MINIMUM": "AddMinimum", "MIRROR_PAD": "AddMirrorPad", "MUL": "AddMul", "NEG": "AddNeg",
    "NOT_EQUAL": "AddNotEqual", "PACK": "AddPack", "PAD": "AddPad", "PADV2": "AddPadV2", "PRELU": "AddPrelu", "QUANTIZE": "AddQuantize",
    "READ_VARIABLE": "AddReadVariable", "REDUCE_MAX": "AddReduceMax", "RELU": "AddRelu", "RELU6": "AddRelu6", "RESHAPE": "AddReshape",
    "RESIZE_BILINEAR": "AddResizeBilinear", "RESIZE_NEAREST_NEIGHBOR": "AddResizeNearestNeighbor", "ROUND": "AddRound",
    "RSQRT": "AddRsqrt", "SELECT_V2": "AddSelectV2", "SHAPE": "AddShape", "SIN": "AddSin", "SLICE": "AddSlice", "SOFTMAX": "AddSoftmax",
    "SPACE_TO_BATCH_ND": "AddSpaceToBatchNd", "SPACE_TO_DEPTH": "AddSpaceToDepth", "SPLIT": "AddSplit", "SPLIT_V": "AddSplitV",
    "SQRT": "AddSqrt", "SQUARE": "AddSquare", "SQUARED_DIFFERENCE": "AddSquaredDifference", "SQUEEZE": "AddSqueeze",
    "STRIDED_SLICE": "AddStridedSlice", "SUB": "AddSub", "SUM": "AddSum", "SVDF": "AddSvdf", "TANH": "AddTanh",
    "TRANSPOSE": "AddTranspose", "TRANSPOSE_CONV": "AddTransposeConv", "UNIDIRECTIONAL_SEQUENCE_LSTM": "AddUnidirectionalSequenceLSTM",
    "UNPACK": "AddUnpack", "VAR_HANDLE": "AddVarHandle", "WHILE": "AddWhile", "ZEROS_LIKE": "AddZerosLike",
}


@dataclass(frozen=True)
class Board:
    """A microcontroller's on-chip memory, from ST's datasheet for the part (KB = 1024 bytes).

    `arena_kb` is the largest block of SRAM at contiguous addresses: TFLite Micro's tensor arena
    is one array, so it must fit in one block, whatever the chip's total."""

    name: str
    part: str
    core: str
    ram_kb: int
    arena_kb: int
    flash_kb: int
    source: str


# ST's datasheets (the "Memories" line of each one's features page; the block layout from the
# memory map of the part's reference manual).
BOARDS: dict[str, Board] = {board.name: board for board in (
    Board("stm32h747", "STM32H747xI", "Cortex-M7 + Cortex-M4", 1024, 512, 2048,
          "ST datasheet DS12930 (STM32H747xI/G): 2 MB flash, 1 MB RAM; the largest block is the 512 KB AXI SRAM (RM0399)"),
    Board("stm32f746", "STM32F746xG", "Cortex-M7", 320, 320, 1024,
          "ST datasheet DS10916 (STM32F745xx/STM32F746xx): 1 MB flash, 320 KB SRAM (DTCM 64 KB + SRAM1 240 KB + SRAM2 16 KB, "
          "one address range)"),
    Board("stm32l4r9", "STM32L4R9xI", "Cortex-M4", 640, 640, 2048,
          "ST datasheet DS12023 (STM32L4R5xx/L4R7xx/L4R9xx): 2 MB flash, 640 KB SRAM (SRAM1 192 KB + SRAM2 64 KB + SRAM3 384 KB, "
          "one address range)"),
    Board("stm32f411", "STM32F411xE", "Cortex-M4", 128, 128, 512,
          "ST datasheet DS10314 (STM32F411xC/xE): 512 KB flash, 128 KB SRAM"),
    Board("stm32l412", "STM32L412xB", "Cortex-M4", 40, 40, 128,
          "ST datasheet DS12469 (STM32L412xx): 128 KB flash, 40 KB SRAM (SRAM1 32 KB + SRAM2 8 KB, one address range)"),
)}
DEFAULT_BOARD = "stm32h747"
ARENA_ALIGNMENT = 16  # TFLite Micro aligns its arena's buffers to 16 bytes; the header rounds up to it


def micro_ops(op_counts: dict[str, int]) -> list[str]:
    """The MicroMutableOpResolver methods a model's ops need, in op-name order; RequestError-worthy
    ValueError naming the ops TFLite Micro has no kernel for."""
    missing = sorted(name for name in op_counts if name not in MICRO_OPS)
    if missing:
        raise ValueError(f"TFLite Micro has no kernel for {', '.join(missing)} (its MicroMutableOpResolver registers "
                         f"{len(MICRO_OPS)} builtins); change the model so TensorFlow's int8 converter does not emit them")
    return [MICRO_OPS[name] for name in sorted(op_counts)]


def arena_bytes(allocations: str) -> int:
    """The tensor arena TFLite Micro used, from the RecordingMicroAllocator's print_allocations()."""
    found = re.search(r"Arena allocation total (\d+) bytes", allocations)
    if found is None:
        first = (allocations.strip().splitlines() or ["nothing"])[0][:200]
        raise RuntimeError(f"TFLite Micro's print_allocations() gave no 'Arena allocation total' line (it printed: {first})")
    return int(found.group(1))


def arena_size(used: int) -> int:
    """The kTensorArenaSize the header declares: the bytes used, rounded up to the arena's alignment."""
    return -(-used // ARENA_ALIGNMENT) * ARENA_ALIGNMENT


def _kb(size: int) -> str:
    return f"{size / 1024:.1f} KB"


def fit(board: Board, arena: int, model: int, model_name: str = "the model") -> dict:
    """How the model fits the board: RAM for its arena (in the largest SRAM block), flash for the
    model's bytes. Raises ValueError with one line naming the shortfall when it does not."""
    ram_free, flash_free = board.arena_kb * 1024 - arena, board.flash_kb * 1024 - model
    record = {"board": board.name, "part": board.part, "arena_bytes": arena, "model_bytes": model, "ram_kb": board.ram_kb,
              "arena_block_kb": board.arena_kb, "flash_kb": board.flash_kb, "ram_left_bytes": ram_free, "flash_left_bytes": flash_free,
              "source": board.source}
    short = []
    if ram_free < 0:
        block = "" if board.arena_kb == board.ram_kb else f" in one block (its largest SRAM block is {board.arena_kb} KB of {board.ram_kb} KB)"
        short.append(f"{_kb(-ram_free)} of RAM short: it needs {_kb(arena)} for its tensor arena{block}, {board.name} has {board.arena_kb} KB")
    if flash_free < 0:
        short.append(f"{_kb(-flash_free)} of flash short: the model is {_kb(model)}, {board.name} has {board.flash_kb} KB")
    if short:
        bigger = [b.name for b in BOARDS.values() if b.arena_kb * 1024 >= arena and b.flash_kb * 1024 >= model]
        fix = f"choose --option board={bigger[0]}" if bigger else "no board in the table holds it: make the model smaller"
        raise ValueError(f"{model_name} does not fit {board.name} ({board.part}): {'; '.join(short)} (before the firmware's own "
                         f"code and data); {fix}")
    return record


def _comment(text: str) -> str:
    """Text safe inside a // comment: a tensor name is the model's, and a line break would end the comment."""
    return "".join(char if char.isprintable() else " " for char in str(text))[:120]


def c_identifier(name: str) -> str:
    """A C identifier from a model name (the one name rule allows '.' and '-', C does not)."""
    cleaned = re.sub(r"[^A-Za-z0-9_]", "_", name)
    return cleaned if cleaned[:1].isalpha() or cleaned[:1] == "_" else f"m_{cleaned}"


def model_source(model: bytes, header: str, symbol: str = "g_model") -> str:
    """model_data.cc: the flatbuffer as a 16-byte-aligned const array (flash on a Cortex-M; TFLM
    reads it in place, and its flatbuffers need the alignment)."""
    rows = [", ".join(f"0x{byte:02x}" for byte in model[start:start + 12]) for start in range(0, len(model), 12)]
    body = ",\n    ".join(rows)
    return (f"// The model as TFLite Micro reads it (written by edgeship; do not edit).\n#include \"{header}\"\n\n"
            f"alignas(16) const unsigned char {symbol}[] = {{\n    {body}\n}};\n"
            f"const unsigned int {symbol}_len = {len(model)};\n")


def model_header(model_name: str, model_len: int, arena_used: int, ops: list[str], board: dict, io: dict, symbol: str = "g_model") -> str:
    """model_data.h: the model's symbols, the arena size measured by TFLite Micro, and the
    resolver a firmware builds (a MicroMutableOpResolver<N> with these Add calls)."""
    guard = f"EDGESHIP_{c_identifier(model_name).upper()}_MODEL_DATA_H_"
    adds = "".join(f"  resolver.{op}();  \\\n" for op in ops)
    tensors = "\n".join(f"//   {kind} {_comment(t['name'])}: {t['dtype']} {t['shape']}, scale {t['quantization'][0]:.9g}, "
                        f"zero point {t['quantization'][1]}" for kind, key in (("input", "inputs"), ("output", "outputs")) for t in io[key])
    return f"""// {model_name} for TFLite Micro (written by edgeship; do not edit).
//
// No microcontroller ran this here: edgeship ran the model in TFLite Micro's reference kernels on
// x86_64 (the tflite-micro Python interpreter), which measured the arena below. A 32-bit Cortex-M
// build keeps the same tensor plan with smaller bookkeeping (4-byte pointers), so the figure is an
// upper bound there; optimized kernels (CMSIS-NN) may ask for scratch buffers of their own.
// Checked against {board['board']} ({board['part']}): {board['arena_block_kb']} KB RAM block, {board['flash_kb']} KB flash.
//
{tensors}
#ifndef {guard}
#define {guard}

#include <cstddef>

extern const unsigned char {symbol}[];
extern const unsigned int {symbol}_len;  // {model_len} bytes

// The tensor arena TFLite Micro allocated ({arena_used} bytes), rounded up to 16:
//   alignas(16) static uint8_t tensor_arena[kTensorArenaSize];
constexpr size_t kTensorArenaSize = {arena_size(arena_used)};
constexpr size_t kTensorArenaUsedBytes = {arena_used};

// The ops the model runs: `EDGESHIP_ADD_OPS(resolver)` on a tflite::MicroMutableOpResolver<kOpCount>.
constexpr unsigned int kOpCount = {len(ops)};
#define EDGESHIP_ADD_OPS(resolver) \\
{adds}  do {{}} while (0)

#endif  // {guard}
"""
