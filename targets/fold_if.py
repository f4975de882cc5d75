"""Inline the taken branch of every top-level If whose condition follows from constants alone (a frozen
input compared with a constant): the If and what computed its condition are replaced by the branch's
nodes, so the toolchains never see the branch not taken.

The graph clean-up's folders do not do it for every model: on silero_vad.onnx (sr -> Equal -> If,
whose branches hold Ifs of their own reading names of the outer graph) onnx-simplifier 0.4.36
stops at "Input .../decoder/If_output_0 is undefined" and ONNX Runtime 1.23's If inlining at "is
not If node's input or previous node output in this subgraph", and the model was kept unfolded,
which no runtime then loaded. The branch's nodes may read any name of the outer graph, which stays
defined where the If stood, so they are moved as they are (nested Ifs included).
"""

from __future__ import annotations

CONSTANT_OPS = frozenset({"Constant", "Equal", "Not", "Cast", "Greater", "Less", "And", "Or", "Identity", "Squeeze", "Unsqueeze",
                          "Reshape", "Shape", "Gather"})


def _constants(graph) -> dict:
    from onnx import numpy_helper

    return {init.name: numpy_helper.to_array(init) for init in graph.initializer}


def _evaluate(node, values: dict) -> list:
    from onnx.reference import ReferenceEvaluator

    return list(ReferenceEvaluator(node).run(None, {name: values[name] for name in node.input if name}))


def inline_constant_ifs(model) -> list[str]:
    """Inline, in place, each top-level If whose condition is computable from initializers and
    Constant nodes; the names of the Ifs inlined (and which branch)."""
    from onnx import helper

    graph = model.graph
    values = _constants(graph)
    inlined: list[str] = []
    for node in list(graph.node):
        if node.op_type == "If" and node.input[0] in values:
            taken = "then_branch" if bool(values[node.input[0]].reshape(-1)[0]) else "else_branch"
            branch = next(attribute.g for attribute in node.attribute if attribute.name == taken)
            position = list(graph.node).index(node)
            moved = list(branch.node) + [helper.make_node("Identity", [inner.name], [outer], name=f"{node.name}_{taken}_out{index}")
                                         for index, (inner, outer) in enumerate(zip(branch.output, node.output))]
            graph.node.remove(node)
            for offset, inner_node in enumerate(moved):
                graph.node.insert(position + offset, inner_node)
            graph.initializer.extend(branch.initializer)
            inlined.append(f"{node.name} ({taken})")
        elif node.op_type in CONSTANT_OPS and all(name in values for name in node.input if name) and node.output[0] not in values:
            try:
                results = _evaluate(node, values)
            except Exception:  # an op the reference evaluator cannot run: leave the If to the folders
                continue
            values.update(zip(node.output, results))
    if inlined:
        _drop_unused(graph)
    return inlined


def _drop_unused(graph) -> None:
    """Remove nodes whose outputs nothing reads any more (the condition's Equal and Constant),
    looking into subgraphs for the names they read."""
    while True:
        read = {output.name for output in graph.output}
        for node in graph.node:
            read.update(node.input)
            read.update(_subgraph_inputs(node))
        dead = [node for node in graph.node if not any(name in read for name in node.output)]
        if not dead:
            return
        for node in dead:
            graph.node.remove(node)


def _subgraph_inputs(node) -> set[str]:
    names: set[str] = set()
    for attribute in node.attribute:
        for sub in ([attribute.g] if attribute.HasField("g") else []) + list(attribute.graphs):
            for inner in sub.node:
                names.update(inner.input)
                names.update(_subgraph_inputs(inner))
    return names
