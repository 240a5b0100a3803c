"""Place the nodes of a file made from a tagged one (optimized, slimmed, fp16, quantized) on the
source's modules. One rule set, used by the profile (ONNX Runtime's optimized graph) and by retag.

Rules, tried in this order for each node of the derived graph (``RULES``):

- ``carried``: a source node with the node's op type made one of its outputs (same value name and,
  where both graphs know it, the same shape), or has its name: the same node, its module kept;
- ``replaced``: the node makes a value of the source graph (a fusion's last output, a
  DequantizeLinear giving back a value it stands for): it stands for the source nodes that made
  it and, walking the source graph back, for those whose values fed only nodes already found (a
  value used elsewhere too was a real tensor, made by another kernel), up to values the derived
  graph still has. Their one module; ``fused`` when they span several: their common ancestor, the
  modules named in ``hierx.fused``;
- ``inserted``: a Cast, QuantizeLinear, DequantizeLinear or DynamicQuantizeLinear that makes no
  source value works for the nodes it feeds (through other inserted nodes): their module;
- ``replaced`` / ``fused`` again for nodes whose *name* points at a source node or value: ORT and the
  quantizers name new nodes after what they replace (``node_MatMul_7/MatMulAddFusion``,
  ``relu_3_nchwc``, ``fused node_Gemm_9``, ``node_MatMul_55_quant``, ``val_57`` for onnxslim's Gemm);
- ``helper``: a node that replaced nothing (the Reshapes around a Gemm, layout reorders) works for
  the nodes it feeds: their module, else that of the nodes feeding it;
- ``subgraph owner``: a node inside an If/Loop body not carried: the module of the node holding it;
- ``no neighbour``: nothing placed around it: the root.
"""
from __future__ import annotations

import heapq
from collections import defaultdict
from dataclasses import dataclass

import onnx_ir as ir

from .attribution import walk
from .hierarchy import common_ancestor
from .tagging import MODULE_KEY

RULES = ("carried", "replaced", "fused", "inserted", "helper", "subgraph owner", "no neighbour")
# Nodes converters and quantizers insert to serve another node (they compute nothing of the model's own).
INSERTED_OPS = frozenset({"Cast", "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"})


@dataclass
class Placement:
    """Where one node of the derived graph belongs: its ``module``, the ``rule`` that placed it
    (one of ``RULES``), the source nodes it stands for (source order; empty for inserted, helper and
    unplaced nodes) and ``carrier``: the source node that carries it in per-node views (itself when
    carried, the first node it stands for, else the carrier of the node it works for; None when
    nothing traces back)."""

    module: str
    rule: str
    replaced: tuple[ir.Node, ...] = ()
    carrier: ir.Node | None = None

    @property
    def fused(self) -> list[str]:
        """The modules of the nodes it replaced other than its own (``hierx.fused``), in source order."""
        mods = dict.fromkeys(n.metadata_props.get(MODULE_KEY) for n in self.replaced)
        return [m for m in mods if m is not None and m != self.module]


def _shape_of(value: ir.Value):
    shape = value.shape
    if shape is None:
        return None
    return tuple(d if isinstance(d, int) else None for d in shape)


def same_shape(a: ir.Value, b: ir.Value) -> bool:
    """Whether two values' shapes can be the same (unknown ranks and symbolic dimensions match anything)."""
    sa, sb = _shape_of(a), _shape_of(b)
    if sa is None or sb is None:
        return True
    return len(sa) == len(sb) and all(x is None or y is None or x == y for x, y in zip(sa, sb))


class _Source:
    """Indexes of the tagged source graph (top level)."""

    def __init__(self, model: ir.Model):
        self.nodes = list(model.graph)
        self.order = {n: i for i, n in enumerate(self.nodes)}
        self.module = {n: n.metadata_props.get(MODULE_KEY) for n in self.nodes}
        self.producer: dict[str, ir.Node] = {}
        self.value: dict[str, ir.Value] = {}
        self.consumers: dict[str, set[ir.Node]] = defaultdict(set)
        for n in self.nodes:
            for v in n.outputs:
                if v.name:
                    self.producer[v.name] = n
                    self.value[v.name] = v
            for v in n.inputs:
                if v is not None and v.name:
                    self.consumers[v.name].add(n)
        self.by_name = {n.name: n for n in self.nodes if n.name}

    def stem_values(self, name: str) -> set[str]:
        """Source values a new node's name points at (the node or value it is named after)."""
        for text in (name, name.partition(" ")[2]):
            while text:
                if text in self.by_name:
                    return {v.name for v in self.by_name[text].outputs if v.name}
                if text in self.producer:
                    return {text}
                cut = max(text.rfind("/"), text.rfind("_"))
                text = text[:cut] if cut > 0 else ""
        return set()

    def twin(self, node: ir.Node) -> ir.Node | None:
        """The source node this one is: same op type, and one of its outputs (same name, and shape
        where both graphs know it) or else its name."""
        for v in node.outputs:
            p = self.producer.get(v.name) if v.name else None
            if p is not None and p.op_type == node.op_type and p.domain == node.domain and same_shape(v, self.value[v.name]):
                return p
        p = self.by_name.get(node.name) if node.name else None
        if p is not None and p.op_type == node.op_type and p.domain == node.domain:
            return p
        return None

    def replaced(self, anchors: set[str], cut: set[str]) -> list[ir.Node]:
        """Source nodes a new node stands for: those that made its anchors, and, walking back, the
        nodes whose values only fed nodes already found, up to values in ``cut``; in source order."""
        first = {self.producer[a] for a in anchors if a in self.producer}
        heap = [-self.order[p] for p in first]
        heapq.heapify(heap)
        seen: set[ir.Node] = set()
        while heap:
            node = self.nodes[-heapq.heappop(heap)]
            if node in seen:
                continue
            if node not in first and not all(self.consumers[o.name] <= seen for o in node.outputs if o.name):
                continue
            seen.add(node)
            for v in node.inputs:
                if v is not None and v.name and v.name not in cut and v.name in self.producer:
                    heapq.heappush(heap, -self.order[self.producer[v.name]])
        return sorted(seen, key=self.order.__getitem__)


def place(source: ir.Model, derived: ir.Model) -> dict[ir.Node, Placement]:
    """A ``Placement`` for every node of ``derived`` (all graphs, in ``attribution.walk`` order),
    placed on the modules tagged in ``source`` by the rules above. Neither model is changed."""
    src = _Source(source)
    walked = walk(derived)
    top = [n for n, owner in walked if owner is None and n.graph is derived.graph]
    present = {v.name for v in derived.graph.inputs} | set(derived.graph.initializers)
    present |= {v.name for n in top for v in n.outputs if v.name}

    out: dict[ir.Node, Placement] = {}
    pending: list[ir.Node] = []
    for n in top:
        twin = src.twin(n)
        if twin is not None and src.module[twin] is not None:
            out[n] = Placement(src.module[twin], "carried", (twin,), twin)
        else:
            pending.append(n)

    def stand_for(n, anchors, cut):
        replaced = [p for p in src.replaced(anchors, cut) if src.module[p] is not None]
        if not replaced:
            return False
        modules = list(dict.fromkeys(src.module[p] for p in replaced))
        module = common_ancestor(modules)
        out[n] = Placement(module, "fused" if len(modules) > 1 else "replaced", tuple(replaced), replaced[0])
        return True

    # The walk back stops at values the derived graph has or another node stands for.
    by_output = {n: {v.name for v in n.outputs if v.name in src.producer} for n in pending}
    by_stem = {n: set() if n.op_type in INSERTED_OPS else src.stem_values(n.name or "") for n in pending}
    cut = present.union(*by_output.values(), *by_stem.values())
    inserted, named = [], []
    for n in pending:
        if by_output[n] and stand_for(n, by_output[n] | by_stem[n], cut):
            continue
        (inserted if n.op_type in INSERTED_OPS else named).append(n)
    loose = [n for n in named if not (by_stem[n] and stand_for(n, by_stem[n], cut))]

    users: dict[ir.Node, list[ir.Node]] = {n: [u.node for v in n.outputs for u in v.uses()] for n in top}
    makers: dict[ir.Node, list[ir.Node]] = {
        n: [v.producer() for v in n.inputs if v is not None and v.producer() is not None] for n in top}

    # Inserted nodes work for the nodes they feed, through chains of inserted nodes (Q -> DQ -> MatMul).
    def served(n, seen):
        found = []
        for u in users.get(n, []):
            if u in seen:
                continue
            seen.add(u)
            if u in out and out[u].rule != "inserted":
                found.append(u)
            elif u.op_type in INSERTED_OPS and u not in out:
                found += served(u, seen)
            elif u in out:
                found.append(u)
        return found

    waiting = []
    for n in inserted:
        targets = served(n, {n})
        if targets:
            mods = {out[t].module for t in targets}
            out[n] = Placement(common_ancestor(mods), "inserted", (), out[targets[0]].carrier)
        else:
            waiting.append(n)
    loose = waiting + loose
    # Nodes that replaced nothing work for the nodes they feed, else those feeding them.
    changed = True
    while changed and loose:
        changed, still = False, []
        for n in loose:
            neighbours = [u for u in users.get(n, []) if u in out] or [p for p in makers.get(n, []) if p in out]
            if neighbours:
                rule = "inserted" if n.op_type in INSERTED_OPS else "helper"
                out[n] = Placement(common_ancestor({out[x].module for x in neighbours}), rule, (), out[neighbours[0]].carrier)
                changed = True
            else:
                still.append(n)
        loose = still
    for n in loose:
        out[n] = Placement("", "no neighbour")

    # Subgraph bodies and functions: carried where they survive, else their owner's module.
    for n, owner in walked:
        if n in out:
            continue
        twin = src.twin(n)
        if twin is not None and src.module[twin] is not None:
            out[n] = Placement(src.module[twin], "carried", (twin,), twin)
        elif owner is not None and owner in out:
            out[n] = Placement(out[owner].module, "subgraph owner", (), out[owner].carrier)
        else:
            out[n] = Placement("", "no neighbour")
    return {n: out[n] for n, _ in walked}
