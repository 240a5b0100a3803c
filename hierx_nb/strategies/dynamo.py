"""``dynamo``: torch.export-based ONNX export; modules read from torch's ``nn_module_stack`` record."""
from __future__ import annotations

import ast

import torch
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.nn.attention import SDPBackend, sdpa_kernel

from ..attribution import all_nodes, from_record, walk
from ..errors import first_line
from ..hf_switches import translations
from ..preserve import unwatched
from ..quiet import quiet
from ..translations import TABLE, complex_translations
from .base import ExportContext, Strategy, StrategyFailed, StrategyOutput

SCOPES_KEY = "pkg.torch.onnx.name_scopes"
_CANNOT_VIEW = "Cannot view a tensor with shape"


# torch.onnx's own step lines -> what we say.
_RELAYED = (("Obtain model graph", "capturing the graph with torch.export"),
            ("Run decomposition", "running decompositions"),
            ("Translate the graph", "translating the graph to ONNX"),
            ("Optimize the ONNX graph", "optimizing the ONNX graph"))
STEPS = ("exporting with torch.onnx (dynamo=True)", "exporting again with the math attention kernel",
         *(step for _, step in _RELAYED), "capturing the branches again with strict torch.export",
         "reading nn_module_stack scopes")
# Strict torch.export wraps the model: its module paths start with this.
_EXPORT_ROOT = "_export_root"


def run(ctx: ExportContext, say) -> StrategyOutput:
    """``say(step)`` reports one of ``STEPS``."""
    def relay(line: str) -> None:
        if line.startswith("[torch.onnx]") and not line.rstrip().endswith("✅"):
            for marker, step in _RELAYED:
                if marker in line:
                    say(step)
                    return

    try:
        # verbose=None: torch.onnx prints one line per step, relayed as progress.
        with quiet(on_line=relay):
            program = _export(ctx)
    except Exception as e:  # torch.export's failure modes are many; the first line says which
        if _CANNOT_VIEW not in _reason(e):
            raise StrategyFailed(f"{_step(e)}: {_reason(e)}") from e
        # torch.export recorded the strides of the CPU flash attention kernel's output and turned a
        # reshape after it into a view; torch.onnx's later passes run attention as math, whose output
        # cannot be viewed that way (window attention in Swin, SAM; T5 with sdpa). Captured with the
        # math kernel, the reshape stays a reshape. FakeTensorMode caches results across exports
        # without regard to the kernel choice: cleared before, so the failed capture's strides are not
        # reused, and after, so the user's own exports are not affected.
        say("exporting again with the math attention kernel")
        FakeTensorMode.cache_clear()
        try:
            with quiet(on_line=relay), sdpa_kernel(SDPBackend.MATH):
                program = _export(ctx)
        except Exception as again:
            raise StrategyFailed(f"{_step(again)}: {_reason(again)}") from again
        finally:
            FakeTensorMode.cache_clear()
    if not ctx.structure_only and _unscoped_subgraph_nodes(program.model):
        # Non-strict torch.export records no module inside the branches of torch.cond, while_loop,
        # scan, map (their nn_module_stack is empty); strict torch.export, which traces them with
        # dynamo, does. Only such models pay for a second capture.
        say(STEPS[-2])
        try:
            with quiet():
                program = _export(ctx, strict=True)
        except Exception:  # the plain graph stands; its branch nodes are inferred from their owner
            pass
    model = program.model
    say("reading nn_module_stack scopes")
    attrs = {}
    parsed: dict[str, list[str]] = {}
    for node in all_nodes(model):
        raw = node.metadata_props.get(SCOPES_KEY)
        if not raw:
            continue
        scopes = parsed.get(raw)
        if scopes is None:
            scopes = parsed[raw] = parse_scopes(raw)
        attrs[node] = from_record(*ctx.tree.resolve(_record(scopes)))
    return StrategyOutput(model, attrs)


def _record(scopes: list[str]) -> str:
    """The innermost module of a node's scopes: the one before the last (the FX node's own name)."""
    record = scopes[-2] if len(scopes) >= 2 else ""
    if record == _EXPORT_ROOT or record.startswith(_EXPORT_ROOT + "."):
        record = record[len(_EXPORT_ROOT) + 1:]
    return record


def _unscoped_subgraph_nodes(model) -> bool:
    """True when a node inside an If/Loop/Scan body has no module in its scope record."""
    return any(owner is not None and len(parse_scopes(node.metadata_props.get(SCOPES_KEY) or "[]")) < 2
               for node, owner in walk(model))


def _export(ctx: ExportContext, strict: bool = False):
    """torch.onnx's dynamo export; ``strict``: of the program strict ``torch.export`` captures."""
    dynamic = ctx.dynamic.dynamic_shapes(ctx.model, ctx.args, ctx.kwargs) if ctx.dynamic else None
    # torch.export runs the model on fake tensors (the real weights are never written) and must see
    # no Python dispatch mode: the copy-on-write watch of preserve.py is off meanwhile.
    with unwatched(), complex_translations():
        model = ctx.model
        if strict:
            with ctx.compiled.keeping_users():  # it resets dynamo: not the user's torch.compile caches
                model = torch.export.export(ctx.model, ctx.args, ctx.kwargs, strict=True, dynamic_shapes=dynamic)
            dynamic = None  # in the program already
        return torch.onnx.export(
            model, ctx.args, kwargs=ctx.kwargs or None, dynamo=True, verbose=None, report=False,
            # Constant folding needs real weights; a structure-only graph is kept as captured.
            optimize=ctx.optimize and not ctx.structure_only, opset_version=ctx.opset,
            custom_translation_table={**TABLE, **translations()}, input_names=ctx.input_names, output_names=ctx.output_names,
            dynamic_shapes=dynamic)


def parse_scopes(raw: str) -> list[str]:
    """The list that ``pkg.torch.onnx.name_scopes`` holds (a Python list literal of strings)."""
    if raw.startswith("['") and raw.endswith("']") and '"' not in raw and "\\" not in raw:
        return raw[2:-2].split("', '")  # plain names: 20x faster than literal_eval on 15k nodes
    return ast.literal_eval(raw)


def _step(e: Exception) -> str:
    """Which step of torch.onnx's dynamo export failed, from its error class."""
    kind = type(e).__name__
    if kind == "TorchExportError":
        return "torch.export could not capture the model"
    if kind == "ConversionError":
        return "translating the captured graph to ONNX failed"
    return "torch.onnx (dynamo) export failed"


def _reason(e: Exception) -> str:
    """The informative line of a torch.export failure (the wrapper's first line is generic)."""
    cause = e
    while cause.__cause__ is not None:
        cause = cause.__cause__
    lines = [line.strip() for line in f"{type(cause).__name__}: {cause}".splitlines() if line.strip()]
    reason = lines[0]
    # A first line that only announces the cause ("Got graph break/error:") takes the line naming it;
    # dynamo's "Explanation:" line says why a construct is unsupported.
    rest = lines[1:]
    while reason.endswith(":") and rest:
        reason = f"{reason} {rest.pop(0)}"
    explanation = next((line for line in rest if line.startswith("Explanation:")), None)
    if explanation:
        reason = f"{reason} ({explanation})"
    return first_line(reason, 400)


class Dynamo(Strategy):
    name = "dynamo"
    summary = "torch.export's nn_module_stack record: exact"
    steps = STEPS
    runs_model = False  # torch.export runs the forward on fake tensors

    def _capture(self, ctx: ExportContext) -> StrategyOutput:
        return run(ctx, lambda step: self._step(ctx, step))
