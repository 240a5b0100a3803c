"""Per-node attribution (which module produced an ONNX node) and its completion from the graph."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import onnx_ir as ir

from .hierarchy import ModuleTree, common_ancestor

EXACT, INFERRED, PATTERN = "exact", "inferred", "pattern"

# How each rule of ``infer`` places a node, and the confidence it gets: the rule's precision, i.e. how
# often the module it names equals PyTorch's record, measured on the zoo by hiding records and
# inferring them again (benchmarks/calibrate_confidence.py; the table is in the README).
CONFIDENCE = {
    "neighbours agree": 0.92,       # producers and consumers name one module (measured on 1514 nodes)
    "common ancestor": 0.26,        # they name several: their common ancestor (measured on 446 nodes)
    # No zoo export has If/Loop bodies, local functions or isolated nodes: these are not measured.
    "subgraph owner": 0.9,          # a node inside an If/Loop body: the module of the node holding it
    "function callers agree": 0.8,  # a function body: the module of its callers
    "function callers differ": 0.5,  # ... called from several modules: their common ancestor
    "no neighbour": 0.1,            # nothing placed around it: the root
}
# A record naming no module exactly: its deepest known ancestor stands in (not measurable by hiding).
RECORD_ANCESTOR_CONFIDENCE = 0.7


@dataclass
class NodeAttribution:
    """Where one ONNX node came from: its module (None: not known yet), confidence and source."""

    module: str | None
    confidence: float
    source: str
    # Other modules whose work an optimizer folded into this node (BatchNorm into a Conv): hierx.fused.
    fused: tuple[str, ...] = ()


def from_record(module: str, exact: bool) -> NodeAttribution:
    """A node placed by PyTorch's own scope record; where the record named no module exactly,
    its deepest known ancestor stands in, at lower confidence."""
    return NodeAttribution(module, 1.0 if exact else RECORD_ANCESTOR_CONFIDENCE, EXACT if exact else INFERRED)


def walk(model: ir.Model) -> list[tuple[ir.Node, ir.Node | None]]:
    """Every node of the main graph, its subgraphs and the model's functions, in a stable order
    (a node before the nodes of its subgraphs), each with the top-level node whose attribute holds
    its subgraph (None outside subgraphs). The one walk used for attribution, tagging and loading."""
    out: list[tuple[ir.Node, ir.Node | None]] = []

    def visit(graph, owner):
        for node in graph:
            out.append((node, owner))
            for attr in node.attributes.values():
                if attr.type == ir.AttributeType.GRAPH:
                    visit(attr.value, owner or node)
                elif attr.type == ir.AttributeType.GRAPHS:
                    for g in attr.value:
                        visit(g, owner or node)

    visit(model.graph, None)
    for function in model.functions.values():
        visit(function, None)
    return out


def all_nodes(model: ir.Model) -> list[ir.Node]:
    """Every node, as ``walk`` orders them."""
    return [node for node, _ in walk(model)]


def infer(model: ir.Model, attrs: dict[ir.Node, NodeAttribution], tree: ModuleTree,
          walked: list[tuple[ir.Node, ir.Node | None]] | None = None) -> dict[ir.Node, tuple[str, str]]:
    """``(module, rule)`` for every node that ``attrs`` leaves without a module; ``attrs`` is not changed.

    Subgraph nodes take their owner's module; function bodies their callers'; other nodes the module
    their producers and consumers agree on, else those neighbours' common ancestor; a node with no
    placed neighbour at all goes to the root. Rules are the keys of ``CONFIDENCE``.
    """
    walked = walk(model) if walked is None else walked
    module = {n: a.module for n, a in attrs.items() if a.module is not None}
    found: dict[ir.Node, tuple[str, str]] = {}

    def place(node, mod, rule):
        module[node] = mod
        found[node] = (mod, rule)

    for node, owner in walked:
        if node not in module and owner is not None and owner in module:
            place(node, module[owner], "subgraph owner")

    callers: dict[tuple, list[str]] = {}
    for node, _ in walked:
        if node in module:
            callers.setdefault((node.domain, node.op_type, node.overload), []).append(module[node])
    for key, function in model.functions.items():
        mods = callers.get(key)
        if mods:
            distinct = set(mods)
            common, rule = common_ancestor(distinct), "function callers agree" if len(distinct) == 1 else "function callers differ"
            for node in ir.traversal.RecursiveGraphIterator(function):
                if node not in module:
                    place(node, common, rule)

    pending = [n for n, _ in walked if n not in module]
    while pending:
        still, decided = [], {}
        for node in pending:
            mods = _neighbour_modules(node, module)
            if not mods:
                still.append(node)
            elif len(set(mods)) == 1:
                decided[node] = (mods[0], "neighbours agree")
            else:
                decided[node] = (common_ancestor(Counter(mods)), "common ancestor")
        if not decided:
            for node in still:
                place(node, "", "no neighbour")
            break
        for node, (mod, rule) in decided.items():
            place(node, mod, rule)
        pending = still
    return found


def complete(model: ir.Model, attrs: dict[ir.Node, NodeAttribution], tree: ModuleTree) -> dict[ir.Node, NodeAttribution]:
    """A new mapping with every node of ``model`` (in ``walk`` order): ``attrs``' placed nodes as they
    are, the others inferred (source ``inferred``, the confidence of their rule); ``attrs`` is not changed."""
    walked = walk(model)
    inferred = infer(model, attrs, tree, walked)
    out = {}
    for node, _ in walked:
        if node in inferred:
            mod, rule = inferred[node]
            out[node] = NodeAttribution(mod, CONFIDENCE[rule], INFERRED)
        else:
            out[node] = attrs[node]
    return out


def _neighbour_modules(node: ir.Node, module: dict[ir.Node, str]) -> list[str]:
    mods = []
    for value in node.inputs:
        if value is not None and value.producer() is not None and value.producer() in module:
            mods.append(module[value.producer()])
    for value in node.outputs:
        for use in value.uses():
            if use.node in module:
                mods.append(module[use.node])
    return mods
