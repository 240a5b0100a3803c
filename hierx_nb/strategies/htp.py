"""``htp`` (trace and project): TorchScript tracing follows the executed path, so data-dependent
control flow and decompositions torch.export cannot capture still export; the tracer's module
scopes, kept in node names (``/encoder/layer.0/attention/self/query/MatMul``), are projected onto
the module tree."""
from __future__ import annotations

import re
import tempfile
from pathlib import Path

import onnx_ir as ir
import torch

from ..attribution import all_nodes, from_record
from ..errors import describe
from ..graph_io import name_outputs
from ..inputs import CallWithInputs
from ..preserve import unwatched
from ..quiet import quiet
from ..translations import torchscript_symbolics
from .base import ExportContext, Strategy, StrategyFailed, StrategyOutput

_WRAPPER_SCOPE = "model"  # CallWithInputs registers the user's model under this name


STEPS = ("tracing the executed path with the TorchScript tracer", "projecting tracer scopes onto modules")


def run(ctx: ExportContext, say) -> StrategyOutput:
    """``say(step)`` reports one of ``STEPS``."""
    if ctx.structure_only:
        raise StrategyFailed("TorchScript tracing runs the model on real data; a structure-only (meta) model cannot be traced this way")
    wrapper = CallWithInputs(ctx.model, ctx.args, ctx.kwargs)
    with tempfile.TemporaryDirectory(prefix="hierx-htp-") as tmp:
        path = Path(tmp) / "model.onnx"
        try:
            with quiet(), torch.no_grad(), torchscript_symbolics(), unwatched():
                torch.onnx.export(wrapper, wrapper.flat_inputs, str(path), dynamo=False,
                                  input_names=ctx.input_names or wrapper.input_names, output_names=ctx.output_names,
                                  dynamic_axes=ctx.dynamic.dynamic_axes() if ctx.dynamic else None,
                                  opset_version=ctx.opset or 18, do_constant_folding=ctx.optimize)
        except Exception as e:
            raise StrategyFailed(f"TorchScript tracing failed: {describe(e)}") from e
        model = ir.load(path)
        # Pull external data (models > 2 GiB) into memory before the folder goes away.
        for value in model.graph.initializers.values():
            if value.const_value is not None and isinstance(value.const_value, ir.ExternalTensor):
                value.const_value = ir.Tensor(value.const_value.numpy(), name=value.name)
    say(STEPS[1])
    attrs = {}
    scoped = {node: scopes_of(node.name) for node in all_nodes(model)}
    by_call = call_scopes(ctx.module_calls, {"/".join(s) for s in scoped.values() if s})
    for node, scopes in scoped.items():
        if scopes is None:
            continue
        called = by_call.get("/".join(scopes))
        attrs[node] = from_record(ctx.tree.canonical(called) or called, True) if called is not None else \
            from_record(*ctx.tree.resolve_scopes(scopes, wrapper=_WRAPPER_SCOPE))
    # torch.onnx deduplicates initializers of equal value and hands each duplicate to its users through
    # an Identity named after the parameter it stands for: that name is PyTorch's record of its owner.
    owners = _tensor_owners(ctx)
    for node in model.graph:
        if node not in attrs and node.op_type == "Identity":
            owner = owners.get(node.outputs[0].name)
            if owner is not None:
                attrs[node] = from_record(owner, True)
    _name_numbered_outputs(model, ctx)
    return StrategyOutput(model, attrs)


# TorchScript's name for a dimension its shape inference could not tie to an input: "Add12_dim_0".
_NUMBERED_DIM = re.compile(r"^[A-Za-z]+\d+_dim_(\d+)$")


def _name_numbered_outputs(model: ir.Model, ctx: ExportContext) -> None:
    """Outputs the tracer left with its value numbers (``12``: a bare tensor output, which has no name in
    the model's structure) named ``output`` (``output_0``, ... for several), and their dimensions it
    named after an op (``Add12_dim_0``) after the output (``output_dim_0``), as the output names the
    model's structure gives (``logits``) are. Names the user asked for (``output_names``, dynamic
    dimensions) are applied after this, in ``verify``."""
    outputs = model.graph.outputs
    if ctx.output_names is None and not ctx.eager_output_names and all(v.name.isdigit() for v in outputs):
        name_outputs(model, ["output"] if len(outputs) == 1 else [f"output_{i}" for i in range(len(outputs))])
    final = ctx.output_names or ctx.eager_output_names or []
    for i, value in enumerate(outputs):
        name = final[i] if len(final) == len(outputs) else value.name
        if value.shape is None:
            continue
        dims = [f"{name}_dim_{m.group(1)}" if isinstance(d, ir.SymbolicDim) and d.value
                and (m := _NUMBERED_DIM.match(d.value)) else d for d in value.shape]
        value.shape = ir.Shape(dims)


def _tensor_owners(ctx: ExportContext) -> dict[str, str]:
    """The module owning each parameter and buffer, keyed by the name the tracer gives the tensor."""
    owners = {}
    for name, _ in [*ctx.model.named_parameters(remove_duplicate=False), *ctx.model.named_buffers(remove_duplicate=False)]:
        owner = ctx.tree.canonical(name.rpartition(".")[0])
        if owner is not None:
            owners[f"{_WRAPPER_SCOPE}.{name}"] = owner
    return owners


def call_scopes(calls: list[tuple[str, ...]], in_graph: set[str]) -> dict[str, str]:
    """The module each TorchScript scope in the graph stands for, from the eager run's module calls
    (``ExportContext.module_calls``): ``{"proj_1": "dec.proj"}``.

    The tracer names a call's scope by the unqualified names of the modules on its call stack
    (``enc.proj`` and ``dec.proj``, picked from ModuleDicts never called as a whole, are both ``proj``)
    and tells repeated paths apart by the order their first nodes appear: ``proj``, ``proj_1``, ...
    The graph's order is the calls' order, so the N-th call with a path is ``path_N``. A path is
    used only when the graph holds exactly its calls' names (a call that left no node of its own
    shifts the numbering: such a path, and a name two paths claim, is left to the tree's resolution).
    """
    by_path: dict[str, list[str]] = {}
    for stack in calls:
        if stack[-1] == "":
            continue  # the model itself: the wrapper's scope
        path = "/".join(_scope_name(n) for n in stack if n)
        by_path.setdefault(path, []).append(stack[-1])
    claims: dict[str, list[str | None]] = {}
    for path, called in by_path.items():
        names = [path if i == 0 else f"{path}_{i}" for i in range(len(called))]
        counted = all(n in in_graph for n in names) and f"{path}_{len(called)}" not in in_graph
        for n, module in zip(names, called):
            claims.setdefault(n, []).append(module if counted else None)
    return {n: c[0] for n, c in claims.items() if len(c) == 1 and c[0] is not None}


def _scope_name(name: str) -> str:
    """The tracer's scope for the module ``model.<name>`` (torch.onnx's ``_unqualified_variable_name``:
    from the last name part that is not a number)."""
    parts = f"{_WRAPPER_SCOPE}.{name}".split(".")
    last = max(i for i, p in enumerate(parts) if not p.isnumeric())
    return ".".join(parts[last:])


def scopes_of(node_name: str | None) -> list[str] | None:
    """The tracer scopes in a TorchScript node name (outermost first), or None for a node without."""
    if not node_name or not node_name.startswith("/"):
        return None
    parts = node_name.split("/")[1:-1]
    if not parts or parts[0] != _WRAPPER_SCOPE:
        return None
    return parts[1:]


class Htp(Strategy):
    name = "htp"
    summary = "the TorchScript tracer's scopes: exact"
    steps = STEPS

    def _capture(self, ctx: ExportContext) -> StrategyOutput:
        return run(ctx, lambda step: self._step(ctx, step))
