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

from os import PathLike

import numpy as np
import onnx_ir as ir
import torch

from .divergence import boundaries, pair
from .errors import ExportError, StructureOnly
from .files import check_output, publish, stage_model, staging
from .inputs import named_tensor_inputs, tensor_leaves
from .validation import Reference, graph_of, ort_session, session_feeds, to_numpy

EXTRACTED_FROM_KEY = "hierx.extracted_from"


def extract(result, module: str, output: str | PathLike, model=None, args=None, kwargs=None,
            external_data_threshold: int | None = None):
    """See ``ExportResult.extract``."""
    from .exporter import EXTERNAL_DATA_THRESHOLD
    from .loading import load

    result.check_module(module)
    if result.structure_only:
        raise StructureOnly.for_action("extract from")
    out_path = check_output(output)
    full = graph_of(result)
    outs, ins = boundaries(full)
    if not outs.get(module):
        raise ExportError(f"module {module!r} has no ONNX node whose value is used: there is nothing to extract")
    piece_inputs, piece_outputs = ins.get(module, []), outs[module]
    graph = ir.convenience.extract(full.graph, inputs=piece_inputs, outputs=piece_outputs)
    ref = result._reference_for(model, args, kwargs) if (model is not None or result.reference is not None) else None
    sub_ref, problem = None, None
    if ref is not None or any(v.type is None for v in [*graph.inputs, *graph.outputs]):
        got, sub_ref, problem = _observe(result, ref, module, piece_inputs + piece_outputs)
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
    loaded = load(out_path)
    if problem is None and sub_ref is not None:
        loaded.reference = sub_ref[0]
    elif problem is not None:
        loaded.warnings.append(f"cannot validate against PyTorch: {problem}")
    return loaded


def _observe(result, ref, module: str, values: list[ir.Value]):
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
    from .profiling import feeds_for

    with ort_session(result, extra_outputs=[v for v in values if not v.is_graph_input()]) as (session, weights):
        named = ref.named_inputs if ref is not None else feeds_for(result, session, None,
                                                                    frozenset(n for n, _ in weights))
        feeds = session_feeds(session, named + weights)
        names = [o.name for o in session.get_outputs()]
        got = {n: np.asarray(v) for n, v in zip(names, session.run(None, feeds))}
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

