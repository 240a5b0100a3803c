"""``extract``: one module's subtree as a runnable ONNX model of its own.

The piece's inputs are the values the module's nodes take from outside it, its outputs the values
they hand outside (or return), as ``divergence.boundaries`` defines them; ``onnx_ir``'s extractor
takes the nodes between them, with the weights and constants they read and their tags. Given the
PyTorch model, the piece's inputs and outputs are paired (same rule as the per-module comparison)
with the tensors the module received and returned in a forward run (captured by hooks): they are
renamed and ordered like the module's forward, so ``piece.validate()`` runs the piece on exactly
those inputs and compares it with the module's own forward. An input the module receives in
another form (a float attention mask that the graph computed as bool) is fed the value the full
model computes for it in ONNX Runtime on the same inputs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

import onnx_ir as ir
import torch

from . import runtime
from .divergence import boundaries, pair
from .errors import ExportError, UnknownModule
from .files import EXTERNAL_DATA_THRESHOLD, check_output, publish, stage_model, staging
from .hierarchy import NameTree
from .inputs import named_tensor_inputs, tensor_leaves
from .reference import Reference, to_numpy
from .runtime import OnnxModel
from .tagging import MODULE_KEY

EXTRACTED_FROM_KEY = "hierx.extracted_from"


@dataclass
class Piece:
    """An extracted module: its file; the reference to validate it against (the module's own
    forward on the inputs it received; None without a PyTorch model, or when it cannot be paired);
    the problems that still let the file out."""

    path: Path
    reference: Reference | None
    warnings: list[str] = field(default_factory=list)


def tagged_modules(model: ir.Model) -> NameTree:
    """The module tree the graph's ``hierx.module`` tags imply."""
    return NameTree({m for n in model.graph for m in [n.metadata_props.get(MODULE_KEY)] if m is not None})


def extract(model, module: str, output: str | PathLike, reference: Reference | None = None, *,
            external_data_threshold: int | None = None) -> Piece:
    """Write ``module``'s subtree of ``model`` (an ``onnx_ir.Model``, a path or an ``OnnxModel``
    whose nodes carry ``hierx.module`` tags) as a runnable ONNX model to ``output``.

    With a ``reference`` (PyTorch's model and inputs) the piece's inputs are named and its outputs
    ordered like the module's forward, and the piece's reference is that forward on the inputs it
    received; without one, values the piece needs typed are computed on generated inputs.
    ``UnknownModule`` for a module the tags do not name, ``StructureOnly`` for a structure-only model.
    """
    model = OnnxModel.of(model)
    full = model.ir
    known = tagged_modules(full).names
    if module not in known:
        raise UnknownModule.of(module, known, file=model.path)
    runtime.require_weights(model, "extract from")
    out_path = check_output(output)
    outs, ins = boundaries(full)
    if not outs.get(module):
        raise ExportError(f"module {module!r} has no ONNX node whose value is used: there is nothing to extract")
    piece_inputs, piece_outputs = ins.get(module, []), outs[module]
    graph = ir.convenience.extract(full.graph, inputs=piece_inputs, outputs=piece_outputs)
    sub_ref, problem = None, None
    if reference is not None or any(v.type is None for v in [*graph.inputs, *graph.outputs]):
        got, sub_ref, problem = _observe(model, reference, module, piece_inputs + piece_outputs)
        _type_from(graph, got)
        if sub_ref is not None:
            problem = _align(graph, sub_ref, got)
    piece = ir.Model(graph, ir_version=full.ir_version, producer_name="hierx_nb",
                     functions=list(full.functions.values()))
    for key, value in full.metadata_props.items():
        piece.metadata_props[key] = value
    piece.metadata_props[EXTRACTED_FROM_KEY] = module
    threshold = EXTERNAL_DATA_THRESHOLD if external_data_threshold is None else external_data_threshold
    with staging(out_path.parent) as tmp:
        publish(stage_model(piece, tmp, out_path, threshold))
    if problem is not None:
        return Piece(out_path, None, [f"cannot validate against PyTorch: {problem}"])
    return Piece(out_path, sub_ref[0] if sub_ref is not None else None)


def _observe(model: OnnxModel, ref: Reference | None, module: str, values: list[ir.Value]):
    """ONNX Runtime's values of ``values`` on the full model, and (with a reference) the module's
    captured call: ``(got, (Reference of the module on its inputs, its outputs) | None, problem)``."""
    captured: list = []
    sub_ref, problem = None, None
    if ref is not None:
        sub = ref.model.get_submodule(module) if module else ref.model

        def hook(mod, a, kw, out):
            if not captured:  # the first call; a module called again makes one piece of all calls
                clone = lambda t: t.detach().clone() if isinstance(t, torch.Tensor) else t  # noqa: E731
                captured.append((torch.utils._pytree.tree_map(clone, a), torch.utils._pytree.tree_map(clone, kw),
                                 [(to_numpy(t), str(t.dtype)) for t in tensor_leaves(out)]))

        handle = sub.register_forward_hook(hook, with_kwargs=True)
        try:
            with ref.evaluating():
                ref.model(*ref.args, **ref.kwargs)
        finally:
            handle.remove()
        if not captured:
            problem = f"module {module!r} did not run in the model's forward"
        else:
            a, kw, outs = captured[0]
            sub_ref = (Reference(sub, a, kw), outs)
    with runtime.session(model, extra_outputs=[v for v in values if not v.is_graph_input()]) as run:
        feeds = run.feeds(reference=ref)
        got = run.run(feeds)
    got.update(feeds)
    return got, sub_ref, problem


def _type_from(graph: ir.Graph, got: dict) -> None:
    """Give the piece's untyped inputs and outputs the dtype and shape ONNX Runtime computed."""
    for value in [*graph.inputs, *graph.outputs]:
        arr = got.get(value.name)
        if arr is not None and (value.type is None or value.shape is None):
            value.type = ir.TensorType(ir.DataType.from_numpy(arr.dtype))
            value.shape = ir.Shape(arr.shape)


def _align(graph: ir.Graph, sub_ref, got: dict) -> str | None:
    """Name the piece's inputs after the module's forward parameters and order its outputs like the
    module's; the reason when they cannot be paired (then the piece is left as extracted)."""
    ref, torch_outputs = sub_ref
    named = named_tensor_inputs(ref.model, ref.args, ref.kwargs)
    tensors = [(to_numpy(t), str(t.dtype)) for _, t in named]
    pairs, _ = pair(tensors, list(graph.inputs), got)
    paired = {name for name, *_ in pairs}
    # An input the module receives in another form (a mask the exporter computed as bool): fed the
    # value the full model computes for it in ONNX Runtime on the same run.
    ref.named_inputs = ref.named_inputs + [(v.name, got[v.name]) for v in graph.inputs
                                           if v.name not in paired and v.name in got]
    out_pairs, unpaired = pair(torch_outputs, list(graph.outputs), got)
    if unpaired:
        return f"{unpaired} of the module's output tensors pair with none of the piece's outputs"
    by_id = {id(arr): i for i, (arr, _) in enumerate(tensors)}
    value_of = {v.name: v for v in graph.inputs}
    taken = {v.name for v in graph.inputs} | {o.name for n in graph for o in n.outputs} | set(graph.initializers)
    renames = {}
    for name, _, torch_arr, _ in pairs:
        wanted = named[by_id[id(torch_arr)]][0]
        if wanted != name and wanted in taken:
            return f"the forward parameter name {wanted!r} is already a value name in the piece"
        renames[name] = wanted
    for old, new in renames.items():
        value_of[old].name = new
    # The module's outputs first, in its order; values the graph shares beyond them (a mask the
    # exporter computed once for every layer) stay outputs after them and are not compared.
    order = {id(arr): i for i, (arr, _) in enumerate(torch_outputs)}
    ranked = [name for name, *_ in sorted(out_pairs, key=lambda p: order[id(p[2])])]
    by_name = {v.name: v for v in graph.outputs}
    rest = [v for v in graph.outputs if v.name not in set(ranked)]
    graph.outputs.clear()
    graph.outputs.extend([by_name[n] for n in ranked] + rest)
    ref.output_names = ranked
    return None

