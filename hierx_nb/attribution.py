"""Per-node attribution (which module produced an ONNX node) and its completion from the graph."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import onnx_ir as ir

from .hierarchy import ModuleTree

EXACT, INFERRED, PATTERN = "exact", "inferred", "pattern"


@dataclass
class NodeAttribution:
    """Where one ONNX node came from: its module (None: not known yet), confidence and source."""

    module: str | None
    confidence: float
    source: str


def from_record(module: str, exact: bool) -> NodeAttribution:
    """A node placed by PyTorch's own scope record; where the record named no module exactly,
    its deepest known ancestor stands in, at lower confidence."""
    return NodeAttribution(module, 1.0 if exact else 0.7, EXACT if exact else INFERRED)


def all_nodes(model: ir.Model) -> list[ir.Node]:
    """Every node of the main graph, its subgraphs and the model's functions, in a stable order."""
    nodes = list(ir.traversal.RecursiveGraphIterator(model.graph))
    for function in model.functions.values():
        nodes.extend(ir.traversal.RecursiveGraphIterator(function))
    return nodes


def _owners(model: ir.Model) -> dict[ir.Node, ir.Node]:
    """Subgraph node -> the node whose attribute holds that subgraph."""
    owner: dict[ir.Node, ir.Node] = {}

    def visit(graph, parent):
        for node in graph:
            if parent is not None:
                owner[node] = parent
            for attr in node.attributes.values():
                if attr.type == ir.AttributeType.GRAPH:
                    visit(attr.value, node if parent is None else parent)
                elif attr.type == ir.AttributeType.GRAPHS:
                    for g in attr.value:
                        visit(g, node if parent is None else parent)

    visit(model.graph, None)
    for function in model.functions.values():
        visit(function, None)
    return owner


def complete(model: ir.Model, attrs: dict[ir.Node, NodeAttribution], tree: ModuleTree) -> dict[ir.Node, NodeAttribution]:
    """Attribute every node without a module from its neighbourhood (confidence < 1, ``inferred``).

    Subgraph nodes take their owner's module; function bodies their callers'; other nodes the module
    their producers and consumers agree on (0.9), else those neighbours' common ancestor (0.6);
    a node with no attributed neighbour at all goes to the root (0.1).
    """
    nodes = all_nodes(model)
    owner = _owners(model)
    for node in nodes:
        attrs.setdefault(node, NodeAttribution(None, 0.0, INFERRED))

    for node, parent in owner.items():
        if attrs[node].module is None and attrs[parent].module is not None:
            attrs[node] = NodeAttribution(attrs[parent].module, min(attrs[parent].confidence, 0.9), INFERRED)

    callers: dict[tuple, list[str]] = {}
    for node in nodes:
        if attrs[node].module is not None:
            callers.setdefault((node.domain, node.op_type, node.overload), []).append(attrs[node].module)
    for key, function in model.functions.items():
        mods = callers.get(key)
        if mods:
            common = tree.common_ancestor(set(mods))
            for node in ir.traversal.RecursiveGraphIterator(function):
                if attrs[node].module is None:
                    attrs[node] = NodeAttribution(common, 0.8 if len(set(mods)) == 1 else 0.5, INFERRED)

    pending = [n for n in nodes if attrs[n].module is None]
    while pending:
        still = []
        decided = {}
        for node in pending:
            mods = _neighbour_modules(node, attrs)
            if not mods:
                still.append(node)
                continue
            counts = Counter(mods)
            if len(counts) == 1:
                decided[node] = NodeAttribution(mods[0], 0.9, INFERRED)
            else:
                decided[node] = NodeAttribution(tree.common_ancestor(counts), 0.6, INFERRED)
        if not decided:
            for node in still:
                attrs[node] = NodeAttribution("", 0.1, INFERRED)
            break
        attrs.update(decided)
        pending = still
    return attrs


def _neighbour_modules(node: ir.Node, attrs: dict[ir.Node, NodeAttribution]) -> list[str]:
    mods = []
    for value in node.inputs:
        if value is not None and value.producer() is not None:
            a = attrs.get(value.producer())
            if a is not None and a.module is not None:
                mods.append(a.module)
    for value in node.outputs:
        for use in value.uses():
            a = attrs.get(use.node)
            if a is not None and a.module is not None:
                mods.append(a.module)
    return mods
