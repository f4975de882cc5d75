"""Which ONNX operators TensorRT's ONNX parser imports, for the TensorRT version a Jetson runs.

The pinned version is TensorRT 10.3, the one JetPack 6.1 and 6.2 ship for Jetson Orin. The
table is onnx-tensorrt's documented support matrix (docs/operators.md), taken from the 10.15
release and walked back to 10.3 with onnx-tensorrt's changelog (docs/Changelog.md): the
operators that changelog says were added after 10.3 are unsupported here. Only operator
names are checked; the matrix's per-operator restrictions (e.g. Resize modes) are left to
the board's parser, which the engine build on the board (or `--gpus` here) runs.
"""

from __future__ import annotations

TENSORRT_VERSION = "10.3"
JETPACK = "6.1/6.2"
# TensorRT 10.x imports opsets 9 to 20 (onnx-tensorrt operators.md of 10.0; ONNX 1.17,
# which brought opset 22, came with 10.6).
OPSET_MIN, OPSET_MAX = 9, 20

SUPPORTED = frozenset("""
Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization Cast CastLike
Ceil Celu Clip Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh CumSum DeformConv DepthToSpace
DequantizeLinear Div Dropout Einsum Elu Equal Erf Exp Expand EyeLike Flatten Floor Gather GatherElements
GatherND Gelu Gemm GlobalAveragePool GlobalLpPool GlobalMaxPool Greater GreaterOrEqual GridSample
GroupNormalization GRU HardSigmoid HardSwish Hardmax Identity If ImageScaler InstanceNormalization IsInf
IsNaN LayerNormalization LeakyRelu Less LessOrEqual Log LogSoftmax Loop LRN LSTM LpNormalization LpPool
MatMul Max MaxPool Mean MeanVarianceNormalization Min Mish Mod Mul Neg NonMaxSuppression NonZero Not OneHot
Or Pad ParametricSoftplus Pow PRelu QuantizeLinear RandomNormal RandomNormalLike RandomUniform
RandomUniformLike Range Reciprocal ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean
ReduceMin ReduceProd ReduceSum ReduceSumSquare Relu Reshape Resize ReverseSequence RNN RoiAlign Round
ScaledTanh Scan Scatter ScatterElements ScatterND Selu Shape Shrink Sigmoid Sign Sin Sinh Size Slice Softmax
Softplus Softsign SpaceToDepth Split Sqrt Squeeze Sub Sum Tan Tanh ThresholdedRelu Tile TopK Transpose
Trilu Unsqueeze Upsample Where Xor
""".split())

# Documented as unsupported ("N" in the matrix), or added only after 10.3 (with the release).
UNSUPPORTED = {name: "not supported by TensorRT's ONNX parser" for name in """
AffineGrid Bernoulli BitShift BitwiseAnd BitwiseNot BitwiseOr BitwiseXor CenterCropPad Col2Im Compress
ConcatFromSequence ConvInteger DFT Det DynamicQuantizeLinear ImageDecoder MatMulInteger MaxRoiPool MaxUnpool
MelWeightMatrix Multinomial NegativeLogLikelihoodLoss Optional OptionalGetElement OptionalHasElement
QLinearConv QLinearMatMul RegexFullMatch SequenceAt SequenceConstruct SequenceEmpty SequenceErase
SequenceInsert SequenceLength SequenceMap SoftmaxCrossEntropyLoss SplitToSequence StringConcat
StringNormalizer StringSplit TfIdfVectorizer Unique
""".split()}
UNSUPPORTED.update({name: "only from TensorRT 10.4" for name in ("BlackmanWindow", "HammingWindow", "HannWindow")})
UNSUPPORTED.update({"STFT": "only from TensorRT 10.5", "Attention": "only from TensorRT 10.14",
                    "RMSNormalization": "only from TensorRT 10.15", "RotaryEmbedding": "only from TensorRT 10.15",
                    "TensorScatter": "only from TensorRT 10.15"})


def check_model(model) -> dict:
    """The op support report of an onnx.ModelProto: every op type with its count and status,
    and the nodes TensorRT would refuse (subgraphs of If/Loop/Scan included)."""
    counts: dict[str, int] = {}
    unsupported: list[dict] = []

    def visit(graph):
        for node in graph.node:
            domain = node.domain or "ai.onnx"
            key = node.op_type if domain == "ai.onnx" else f"{domain}.{node.op_type}"
            counts[key] = counts.get(key, 0) + 1
            if domain != "ai.onnx":
                reason = f"custom domain {domain!r}: needs a TensorRT plugin registered on the board"
            elif node.op_type in SUPPORTED:
                reason = None
            else:
                reason = UNSUPPORTED.get(node.op_type, "not in TensorRT's ONNX operator support matrix")
            if reason:
                unsupported.append({"node": node.name or f"<unnamed {node.op_type}>", "op": key, "reason": reason})
            for attribute in node.attribute:
                if attribute.g.node:
                    visit(attribute.g)
                for graph_attribute in attribute.graphs:
                    visit(graph_attribute)

    visit(model.graph)
    opset = next((entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx")), None)
    problems = []
    if opset is not None and not OPSET_MIN <= opset <= OPSET_MAX:
        problems.append(f"opset {opset} is outside TensorRT {TENSORRT_VERSION}'s range {OPSET_MIN}-{OPSET_MAX}; "
                        f"export with --opset {min(max(opset, OPSET_MIN), OPSET_MAX)}")
    bad_ops = sorted({entry["op"] for entry in unsupported})
    return {
        "tensorrt": TENSORRT_VERSION,
        "jetpack": JETPACK,
        "opset": opset,
        "ops": {op: {"count": count, "supported": op not in bad_ops} for op, count in sorted(counts.items())},
        "unsupported": unsupported,
        "problems": problems,
        "supported": not unsupported and not problems,
    }


def describe_problems(report: dict, limit: int = 4) -> str:
    """One line naming what TensorRT would refuse."""
    parts = []
    by_op: dict[str, list[dict]] = {}
    for entry in report["unsupported"]:
        by_op.setdefault(entry["op"], []).append(entry)
    for op, entries in sorted(by_op.items()):
        nodes = ", ".join(repr(e["node"]) for e in entries[:limit]) + (f" and {len(entries) - limit} more" if len(entries) > limit else "")
        parts.append(f"{op} ({entries[0]['reason']}; node {nodes})")
    parts += report["problems"]
    return "; ".join(parts)
