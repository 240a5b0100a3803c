"""``fx``: attribution from ``torch.fx.symbolic_trace``, projected onto the ONNX graph by values.

Symbolic tracing records, for every FX node, the module whose forward issued it — a category
(torch_modules, custom_modules, functions, methods, attributes, inputs, outputs) and a confidence
per category. The FX graph and the exported ONNX graph are then run on the same inputs; an ONNX
node whose output equals an FX node's output takes that node's module (source ``pattern``), and
the nodes of a decomposition between matched ones take the module of the matched node they feed.
It needs no scope record from the exporter, so it is an independent check on the exact strategies;
it fails fast where symbolic tracing cannot go (control flow on tensors, ``torch.eye`` or
``torch.randperm`` on traced sizes, ...).
"""
from __future__ import annotations

import dataclasses
import inspect
import operator

import numpy as np
import onnx_ir as ir
import torch
import torch.fx

from ..attribution import PATTERN, NodeAttribution
from ..errors import ExportError, describe, first_line
from ..hierarchy import common_ancestor, is_torch_nn
from ..inputs import named_tensor_inputs
from ..quiet import quiet
from ..runtime import OnnxModel, match_inputs, session
from .base import ExportContext, Strategy, StrategyFailed, StrategyOutput
from .dynamo import Dynamo
from .htp import Htp

# Confidence of an ONNX node matched to an FX node of each category.
CATEGORY_CONFIDENCE = {
    "torch_modules": 0.95, "custom_modules": 0.95, "functions": 0.9, "methods": 0.9,
    "attributes": 0.8, "inputs": 0.3, "outputs": 0.3,
}
DECOMPOSITION_CONFIDENCE = 0.75   # unmatched node feeding nodes of one module
SHARED_CONFIDENCE = 0.5           # unmatched node feeding several modules: their common ancestor
# Tiny tensors match too much to be evidence: scalars, and the small integer tensors of shape arithmetic.
_MIN_MATCH_ELEMENTS = {"f": 2, "c": 2}
_MIN_MATCH_ELEMENTS_OTHER = 4


class _ScopeTracer(torch.fx.Tracer):
    """A tracer that remembers which module's forward issued each FX node."""

    def __init__(self):
        super().__init__()
        self._hierx_stack = [""]

    def call_module(self, m, forward, args, kwargs):
        path = self.path_of_module(m)
        self._hierx_stack.append(path)
        try:
            return super().call_module(m, forward, args, kwargs)
        finally:
            self._hierx_stack.pop()

    def create_node(self, kind, target, args, kwargs, name=None, type_expr=None):
        node = super().create_node(kind, target, args, kwargs, name, type_expr)
        node.meta["hierx_scope"] = self._hierx_stack[-1]
        return node


def categorize(node: torch.fx.Node, model: torch.nn.Module, known: dict, tensors: dict) -> tuple[str, str]:
    """(category, module qualified name) of one FX node.

    ``known``: the categories of the nodes before it; ``tensors``: the nodes whose value is a tensor.
    """
    source = node.args[0] if node.args else None
    if (node.op == "call_function" and node.target is operator.getitem and isinstance(source, torch.fx.Node)
            and source not in tensors):
        return known[source]  # unpacking a module's tuple output is still that module's output
    if node.op == "call_module":
        sub = model.get_submodule(node.target)
        return ("torch_modules" if is_torch_nn(sub) else "custom_modules"), node.target
    if node.op == "call_function":
        return "functions", node.meta.get("hierx_scope", "")
    if node.op == "call_method":
        return "methods", node.meta.get("hierx_scope", "")
    if node.op == "get_attr":
        return "attributes", node.target.rpartition(".")[0]
    if node.op == "placeholder":
        return "inputs", ""
    return "outputs", ""


def trace(ctx: ExportContext) -> torch.fx.GraphModule:
    """The symbolically traced model; ``StrategyFailed`` with tracing's reason when it cannot be."""
    concrete = {k: v for k, v in ctx.kwargs.items() if not isinstance(v, torch.Tensor)}
    tracer = _ScopeTracer()
    try:
        with quiet():
            graph = tracer.trace(ctx.model, concrete_args=concrete or None)
    except Exception as e:
        raise StrategyFailed(f"symbolic tracing cannot handle this model: {describe(e)}") from e
    return torch.fx.GraphModule(tracer.root, graph, type(ctx.model).__name__)


STEPS = ("symbolic tracing", "running the traced graph", "exporting the ONNX graph",
         "projecting FX nodes onto ONNX nodes by value")


def run(ctx: ExportContext, say) -> StrategyOutput:
    """``say(step)`` reports one of ``STEPS``."""
    if ctx.structure_only:
        raise StrategyFailed("the fx strategy matches values computed on real weights; a structure-only model has none")
    gm = trace(ctx)
    say(STEPS[1])
    fx_values = _fx_values(gm, ctx)
    fx_nodes = list(gm.graph.nodes)
    owner: dict[torch.fx.Node, tuple[str, str]] = {}
    for node in fx_nodes:
        owner[node] = categorize(node, ctx.model, owner, fx_values)
    say(STEPS[2])
    model = _export_graph(ctx)
    say(STEPS[3])
    onnx_values = _onnx_values(model, ctx)

    index: dict[tuple, list[tuple[int, torch.fx.Node, np.ndarray]]] = {}
    for i, node in enumerate(fx_nodes):
        arr = fx_values.get(node)
        if arr is not None and _is_evidence(arr):
            index.setdefault((arr.shape, arr.dtype.kind), []).append((i, node, arr))

    attrs: dict[ir.Node, NodeAttribution] = {}
    position: dict[ir.Node, int] = {}
    nodes = list(model.graph)
    for onnx_node in nodes:
        floor = max((position.get(v.producer(), -1) for v in onnx_node.inputs if v is not None and v.producer() is not None),
                    default=-1)
        for out in onnx_node.outputs:
            arr = onnx_values.get(out.name)
            if arr is None or not _is_evidence(arr):
                continue
            hit = _match(arr, index.get((arr.shape, arr.dtype.kind), ()), floor)
            if hit is not None:
                i, fx_node = hit
                category, module = owner[fx_node]
                attrs[onnx_node] = NodeAttribution(module, CATEGORY_CONFIDENCE[category], PATTERN)
                position[onnx_node] = i
                break

    # Decomposition nodes (MatMul before a Linear's Add, Erf inside a GELU...) feed a matched node.
    for onnx_node in reversed(nodes):
        if onnx_node in attrs:
            continue
        mods = [attrs[u.node].module for out in onnx_node.outputs for u in out.uses() if u.node in attrs]
        if mods:
            distinct = set(mods)
            if len(distinct) == 1:
                attrs[onnx_node] = NodeAttribution(mods[0], DECOMPOSITION_CONFIDENCE, PATTERN)
            else:
                attrs[onnx_node] = NodeAttribution(common_ancestor(distinct), SHARED_CONFIDENCE, PATTERN)
    return StrategyOutput(model, attrs)


def _is_evidence(arr: np.ndarray) -> bool:
    return arr.size >= _MIN_MATCH_ELEMENTS.get(arr.dtype.kind, _MIN_MATCH_ELEMENTS_OTHER)


def _match(arr: np.ndarray, candidates, floor: int):
    """The first FX node after ``floor`` whose value equals ``arr`` (else the last equal one before)."""
    best = None
    for i, node, ref in candidates:
        if _equal(arr, ref):
            if i > floor:
                return i, node
            best = (i, node)
    return best


def _equal(a: np.ndarray, b: np.ndarray) -> bool:
    if a.dtype.kind == "f":
        return bool(np.allclose(a, b, atol=1e-5, rtol=1e-4))
    return bool(np.array_equal(a, b))


def _fx_values(gm: torch.fx.GraphModule, ctx: ExportContext) -> dict[torch.fx.Node, np.ndarray]:
    values: dict[torch.fx.Node, np.ndarray] = {}

    class Recorder(torch.fx.Interpreter):
        def run_node(self, n):
            out = super().run_node(n)
            if isinstance(out, torch.Tensor):
                values[n] = out.detach().cpu().numpy()
            return out

    bound = inspect.signature(ctx.model.forward).bind(*ctx.args, **ctx.kwargs)
    bound.apply_defaults()
    feeds = [bound.arguments.get(n.target) for n in gm.graph.nodes if n.op == "placeholder"]
    try:
        with torch.no_grad():
            Recorder(gm).run(*feeds)
    except Exception as e:
        raise StrategyFailed(f"the traced FX graph does not run: {describe(e)}") from e
    return values


def _export_graph(ctx: ExportContext) -> ir.Model:
    """The ONNX graph to tag: the exact exporters' graph (through their wrapper, so it passed their
    checks), without using their scope records."""
    # The exporters' own steps would run fx's progress backwards: they report within fx's.
    ctx = dataclasses.replace(ctx, progress=lambda step, fraction=None: None)
    tried = Dynamo()(ctx)
    if tried.success:
        return tried.output.model
    again = Htp()(ctx)
    if again.success:
        return again.output.model
    raise StrategyFailed(f"symbolic tracing worked, but no exporter gave an ONNX graph to project onto "
                         f"(dynamo: {first_line(tried.reason, 100)}; htp: {first_line(again.reason, 100)})") from again.exception


def _onnx_values(model: ir.Model, ctx: ExportContext) -> dict[str, np.ndarray]:
    """Every typed intermediate value of the ONNX graph, computed by ONNX Runtime (unoptimized: the values are the graph's own)."""
    typed = [v for node in model.graph for v in node.outputs if v.name and v.type is not None and not v.is_graph_output()]
    named = [(n, t.detach().cpu().numpy()) for n, t in named_tensor_inputs(ctx.model, ctx.args, ctx.kwargs)]
    try:
        with session(OnnxModel(model=model), extra_outputs=typed, optimization="none") as run:
            feeds = {**match_inputs(run.inputs, named), **dict(run.weights)}
            return run.run(feeds)
    except ExportError as e:
        raise StrategyFailed(f"ONNX Runtime cannot run the graph to match values: {e.message}") from None


class Fx(Strategy):
    name = "fx"
    summary = "symbolic tracing, projected onto the ONNX graph by value: pattern"
    # It tags the graph dynamo or htp makes, so it cannot succeed where both failed (README: "Why fx
    # is not in auto"): an explicit cross-check of the exact strategies, not a fallback.
    in_auto = False
    steps = STEPS

    def _capture(self, ctx: ExportContext) -> StrategyOutput:
        return run(ctx, lambda step: self._step(ctx, step))
