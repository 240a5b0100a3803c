"""``export``: run the strategies, tag the winner's ONNX model, build the tables, write the files."""
from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from os import PathLike
from pathlib import Path

import onnx_ir as ir
import torch
from torch.utils import _pytree as pytree

from . import caches, precheck, shapes, sidecar, strategies
from . import memory as failure_memory
from .attribution import complete
from .errors import Attempt, ExportError, InputsRejected, UnknownChoice, describe
from .files import EXTERNAL_DATA_THRESHOLD, check_output, publish, stage_model, staging, weight_bytes
from .fusion import refold
from .graph_io import io_frame
from .hf import example_inputs, is_hf_model
from .hf_switches import exportable
from .hierarchy import DEFAULT_TORCH_NN_EXCEPTIONS, ModuleTree, ancestors, root_label
from .inputs import normalize, tensor_leaf_names, tensor_leaves
from .preserve import DynamoCodes, ModelState, copy_inputs, unwatched
from .reference import Reference, to_numpy
from .result import ExportResult
from .runtime import OnnxModel, weights_as_inputs
from .soundness import given_tensors, is_allowed
from .strategies.base import ExportContext, Strategy, StrategyOutput
from .tables import coverage_frame, modules_frame, node_rows, nodes_frame
from .tagging import apply_tags, mark_model, module_namespace
from .validation import compare_modules, compare_outputs, mismatch_line
from .version import __version__

# Exports with more weights than this are not run in ONNX Runtime after export (time and memory);
# the warning says so.
CHECK_LIMIT_BYTES = 1024**3
# The check's ONNX Runtime session (runtime.session), built for one run: basic graph optimizations
# (constant folding; the fusions of the default level cost more than the run on BERT-base and change
# nothing the check looks at), no weight prepacking (repacking BERT-base's matrices costs 0.4-0.8 s,
# more than it saves on one run) and one thread (a single run on a shared machine loses more to
# spinning threads than it gains: BERT-base 0.36 s against 0.57-0.69 s at load 5 on 2 cores).
CHECK_SESSION = {"optimization": "basic", "prepack": False, "threads": 1}

def export(model: torch.nn.Module, args=(), kwargs: dict | None = None, output: str | PathLike | None = "model.onnx",
           strategy: str = "auto", *, structure_only: bool = False, opset: int | None = None,
           dynamic_shapes=None, dynamic_axes: dict | None = None, input_names: list[str] | None = None,
           output_names: list[str] | None = None, optimize: bool = True, torch_nn_filter: bool = False, torch_nn_exceptions: Iterable[str] = DEFAULT_TORCH_NN_EXCEPTIONS,
           external_data_threshold: int = EXTERNAL_DATA_THRESHOLD, check: bool = True,
           allow_dropped_inputs: Iterable[str] = (),
           progress: Callable[[str, float | None], None] | None = None) -> ExportResult:
    """Export ``model`` to ONNX with every node tagged by the module that produced it.

    ``strategy``: ``"auto"`` (the registry's order, ``hierx_nb.strategies``) or one strategy's name.
    ``args``/``kwargs`` may be left out for HuggingFace models: inputs are generated from the config.
    ``output``: the ``.onnx`` path (a ``.hierx.json`` sidecar is written beside it), or None to keep
    everything in memory. ``structure_only``: the model is (or is moved to) the ``meta`` device and
    the file holds the graph and tags without weights — for analysis only, it cannot run.
    ``torch_nn_filter`` folds torch.nn leaves (other than ``torch_nn_exceptions``) into their
    parent in the readable ``hierx.tag``; ``hierx.module`` is always exact.

    torch.onnx.export's options, honoured by every strategy (one that cannot fails with the reason):
    ``dynamic_shapes`` (torch.export's format; strings name the dimension: ``{"input_ids": {0: "batch",
    1: "seq"}}``) or ``dynamic_axes`` (``{input_name: {axis: name} | [axes]}``, outputs too); the file's
    dimensions carry those names. ``input_names``/``output_names`` name the graph's inputs and outputs,
    ``opset`` the ONNX opset, ``optimize`` runs the exporter's graph optimisation (constant folding).

    ``allow_dropped_inputs``: names of input tensors (as in the failure's reason: ``heads``,
    ``extra.shift``; a name covers the tensors inside it) a file may drop. Without it, an attempt whose
    file has no graph input for a tensor you passed fails naming it: the graph would compute with the
    export-time value (an index read with ``.item()``, a tensor used only through a static shape);
    with it the file passes and ``result.warnings`` says which inputs it dropped. An unknown name
    raises ``UnknownChoice``.

    ``progress(step, fraction)``
    is called at each step with what is happening and an estimate in [0, 1] of how far the
    current strategy's export is (None when unknown); a fallback to the next strategy starts over.

    ``check``: run the file once in ONNX Runtime (CPU, basic graph optimizations) on the export's
    inputs against PyTorch's outputs from the export's own eager run (as torch.onnx's ``verify``); a
    mismatch becomes a warning naming the first divergent module. It costs one ORT session and run
    (BERT-base: see the README's export overhead figures).

    ``export`` never changes the model or its inputs: inputs are copied, and what running the model
    writes (parameters, buffers, ``training`` flags, the HF config) is put back (preserve.py).

    Raises ``InputError`` for bad input (before any work) and ``ExportError`` carrying every
    strategy's reason when none can export the model. A failed export leaves existing files untouched.
    """
    started = time.perf_counter()
    say = progress or (lambda step, fraction=None: None)
    candidates = strategies.resolve(strategy)
    out_path = check_output(output) if output is not None else None
    if _empty(args) and not kwargs and is_hf_model(model):
        say("generating example inputs from the model's config")
        args, kwargs = example_inputs(model, dynamic=bool(dynamic_shapes or dynamic_axes))
    if caches.holds_cache(kwargs):  # its tensors become graph inputs and outputs, never constants
        stage = caches.flat_call(model, args, kwargs, dynamic_shapes, input_names, output_names)
        model, args, kwargs = stage.module, (), stage.feeds()
        input_names, output_names = list(stage.kwargs), stage.output_names
    args, kwargs = normalize(model, args, kwargs)
    dynamic = shapes.resolve(model, args, kwargs, dynamic_shapes, dynamic_axes, input_names, output_names)
    droppable = _droppable(model, args, kwargs, allow_dropped_inputs)
    if structure_only:
        model, args, kwargs = _to_meta(model, args, kwargs)

    # The caller's inputs are never run (copies are), and what running the model writes into its
    # parameters, buffers, flags or config is put back when the block ends (preserve.py).
    args, kwargs = copy_inputs(args, kwargs)
    compiled = DynamoCodes()  # what dynamo compiles from here on is forgotten (preserve.py)
    with ModelState(model) as state:
        model.eval()
        tree = ModuleTree(model)
        ctx = ExportContext(model=model, args=args, kwargs=kwargs, tree=tree, structure_only=structure_only,
                            opset=opset, dynamic=dynamic, input_names=list(input_names) if input_names else None,
                            output_names=list(output_names) if output_names else None, optimize=optimize,
                            allow_dropped_inputs=droppable, compiled=compiled, progress=say)
        warnings: list[str] = []
        say("running the model eagerly: which modules execute", 0.0)
        eager = _EagerRun(ctx, state, real=structure_only)
        ctx.eager_output_names = tensor_leaf_names(eager.outputs) if eager.error is None else None
        output_, used, attempts = _run_strategies(ctx, candidates, strategy == strategies.AUTO, warnings,
                                                  state.restore, eager)
        say("tagging ONNX nodes", 0.9)
        attrs = refold(output_.model, complete(output_.model, output_.attributions, tree), tree, model, eager.executed)
        exceptions = frozenset(torch_nn_exceptions) if torch_nn_filter else None
        modules_used = {a.module for a in attrs.values()}
        tags = {m: tree.filtered_tag(m, exceptions) for m in modules_used}
        apply_tags(attrs, tags, {m: module_namespace(tree, m) for m in modules_used})
        mark_model(output_.model, strategy=used, version=__version__, structure_only=structure_only)
        nodes = nodes_frame(node_rows(attrs, tags, tree))
        # Modules whose hooks did not fire (inlined by symbolic tracing) but whose ops are in the graph ran too.
        infos = [{"module": i.name, "module_class": i.cls, "parent": i.parent, "depth": i.depth, "params": i.params,
                  "executed": True if i.name in eager.executed else None} for i in tree.infos.values()]
        modules = modules_frame(infos, nodes, {f: a.module for a in attrs.values() for f in a.fused})
        coverage, coverage_pct = coverage_frame(nodes)

        result = ExportResult(model_class=type(model).__name__, strategy=used, attempts=attempts, nodes=nodes,
                              modules=modules, coverage=coverage, coverage_pct=coverage_pct, seconds=0.0,
                              structure_only=structure_only, onnx_model=output_.model, warnings=warnings,
                              io=io_frame(output_.model), checked=False)
        pytorch_outputs = None
        if not structure_only:
            result.reference = Reference(model, args, kwargs)
            if check:
                # PyTorch's side of the check: the export's one run on the real weights (if a strategy
                # did not need it already), not a run of the check's own.
                def pytorch_outputs() -> list | None:
                    say("running the model in PyTorch for the check", 0.93)
                    with _threads(1):  # beside the file's writing; and as CHECK_SESSION's threads
                        eager.make_real()
                    if eager.error is not None:
                        return None
                    return [(to_numpy(t), str(t.dtype)) for t in tensor_leaves(eager.outputs)]

                if eager.writes:  # what the forward writes the file may hold: not while it is written
                    eager.make_real()
            if out_path is None and check:
                expected = pytorch_outputs()
                say("checking the model against PyTorch in ONNX Runtime", 0.95)
                result.warnings += check_file(result, OnnxModel(model=result.onnx_model), expected)
        if out_path is not None:
            say(f"writing {out_path.name} and its sidecar", 0.93)
            extra = {i.name: {"class_path": i.class_path, "signature": i.signature} for i in tree.infos.values()}
            result.seconds = time.perf_counter() - started
            _write(result, out_path, extra, external_data_threshold, say, pytorch_outputs)
    # torch.cond & co. (If/Loop/Scan bodies): the captures leave compiled calls of the higher-order ops
    # that the user's next eager run trips on; dynamo forgets them (the user's own compiled code stays).
    compiled.forget()
    result.warnings += state.warnings
    result.seconds = time.perf_counter() - started
    return result


def check_file(result: ExportResult, onnx: OnnxModel, expected: list | None = None) -> list[str]:
    """Warnings from running ``onnx`` (the export, in memory or staged) once in ONNX Runtime on the
    export's inputs (empty when all is well).

    ``expected``: PyTorch's outputs (numpy, dtype name) if already computed. One ONNX Runtime session
    (``CHECK_SESSION``) and one run. On a mismatch, the per-module
    comparison names the first divergent module (and is kept as ``result.divergence``). Skipped,
    saying so, above ``CHECK_LIMIT_BYTES`` of weights.
    """
    size = weight_bytes(result.onnx_model)
    if size > CHECK_LIMIT_BYTES:
        return [f"not checked against PyTorch: {size / 2**20:.0f} MiB of weights is above the "
                f"{CHECK_LIMIT_BYTES / 2**20:.0f} MiB the export checks; run result.validate() to check it"]
    try:
        report = compare_outputs(onnx, result.reference, expected=expected, **CHECK_SESSION)
        result.checked = True
        if report["ok"].all():
            return []
        line = mismatch_line(report) + " on the export's inputs"
        result.divergence = compare_modules(onnx, result.reference)
        blame = result.divergence.attrs["first_divergent"]
    except ExportError as e:
        return [f"not checked against PyTorch: {e.one_line()}"]
    except Exception as e:  # ONNX Runtime rejecting the graph is itself the finding
        return [f"not checked against PyTorch: ONNX Runtime failed: {describe(e)}"]
    if blame is None:
        return [f"{line}; no single module could be blamed (see result.validate(per_module=True))"]
    cls = result.modules.set_index("module")["module_class"].get(blame, "")
    where = f"{root_label(result.model_class)} (its own forward)" if blame == "" else f"module {blame!r} ({cls})"
    return [f"{line}; first divergent: {where}"]


def _droppable(model, args: tuple, kwargs: dict, names: Iterable[str]) -> frozenset[str]:
    """The input names a file may drop; ``UnknownChoice`` for a name that is no input tensor."""
    names = frozenset([names] if isinstance(names, str) else names)
    given = given_tensors(model, args, kwargs) if names else []
    for name in sorted(names):
        if not any(is_allowed(g, frozenset([name])) for g in given):
            raise UnknownChoice.of("input tensor in allow_dropped_inputs", name, given)
    return names


@contextlib.contextmanager
def _threads(n: int):
    """PyTorch's intra-op threads set to ``n`` within the block (the user's setting is put back)."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _empty(args) -> bool:
    return args is None or (isinstance(args, (tuple, list)) and len(args) == 0)


def _run_strategies(ctx: ExportContext, candidates: tuple[Strategy, ...], auto: bool, warnings: list[str],
                    restore: Callable[[], None], eager: _EagerRun) -> tuple[StrategyOutput, str, list[Attempt]]:
    """The first strategy that exports the model, its name and every attempt; ``restore()`` after each
    attempt puts back what running the model wrote. ``eager``: the eager run, made real before a
    strategy that runs the model for real (its watch keeps copies of what that run writes); should
    the model not run eagerly on its inputs, ``InputsRejected`` when no strategy exports it either.

    Under ``auto``, the pre-check first skips the strategies predicted to fail (remembered failures,
    else an FX trace attempt); should every other one fail, the skipped ones are tried after all.
    """
    attempts: list[Attempt] = []
    key = label = None
    predicted: dict[str, str] = {}
    if auto and not ctx.structure_only:  # a structure-only failure says nothing about the model
        t0 = time.perf_counter()
        key, label = failure_memory.kind_of(ctx.model, ctx.args, ctx.kwargs,
                                            ctx.dynamic.dynamic_axes() if ctx.dynamic else None)
        remembered = failure_memory.memory().failed(key, warnings)
        predicted = {name: f"it failed for this kind of model ({label}) before: {reason}" for name, reason in remembered.items()}
        if not remembered:
            predicted = precheck.predict(ctx.model, ctx.kwargs, tuple(s.name for s in candidates))
        precheck_seconds = time.perf_counter() - t0
        if all(s.name in predicted for s in candidates):
            predicted = {}  # skipping everything would decide nothing: try them all
    skipped = [s for s in candidates if s.name in predicted]
    # The skipped ones come last: a stale memory or a wrong prediction must not fail the export.
    for strategy in [*candidates, *skipped]:
        if strategy in skipped and not any(a.name == strategy.name for a in attempts):
            # The seconds of a skipped attempt are the pre-check's: what deciding to skip it cost.
            attempts.append(Attempt(strategy.name, False, predicted[strategy.name], precheck_seconds, skipped=True))
            continue
        if strategy.runs_model:
            eager.make_real()
        found = _try(strategy, ctx, attempts, warnings)
        restore()
        if found is not None:
            _remember(key, label, attempts, strategy.name, warnings)
            return found, strategy.name, attempts
    if eager.make_real().error is not None and not ctx.structure_only:  # every strategy failed: the inputs are at fault
        raise InputsRejected(f"{type(ctx.model).__name__} does not run on the given inputs: {eager.error}")
    _remember(key, label, attempts, None, warnings)
    raise ExportError(f"no strategy could export {type(ctx.model).__name__}", attempts)


def _try(strategy: Strategy, ctx: ExportContext, attempts: list[Attempt], warnings: list[str]) -> StrategyOutput | None:
    """The strategy's output if it exports the model, else None. The attempt is recorded, with the
    settings switched for it; the problems it found join ``warnings`` if it wins."""
    # HF kernels that cannot export (MoE grouped_mm, flash attention) are switched for the try.
    with exportable(ctx.model) as switched:
        tried = strategy(ctx)
    attempts.append(Attempt(strategy.name, tried.success, tried.reason, tried.seconds, switched=tuple(switched),
                            exception=tried.exception))
    if not tried.success:
        return None
    warnings.extend(tried.warnings)
    return tried.output


def _remember(key: str | None, label: str | None, attempts: list[Attempt], winner: str | None, warnings: list[str]) -> None:
    """Store the failures ``auto`` met (once the inputs are known not to be at fault); forget the winner's."""
    if key is None:
        return
    failures = {a.name: a.reason for a in attempts if not a.ok and not a.skipped}
    failure_memory.memory().remember(key, label, failures, warnings, succeeded=winner)


class _EagerRun:
    """The model run eagerly on the inputs, outside any capture: ``executed``, the qualified names of the
    modules whose forward runs (with their ancestors; empty: unknown), ``error``, why the model does
    not run on its inputs (None when it does), and ``outputs`` (for the names of its tensors,
    ``last_hidden_state``, ``logits``, and PyTorch's side of the check).

    Watched by forward pre-hooks in a run of its own, never while a strategy captures: hooks that
    record are side effects, which ``torch.cond`` branches reject.

    First on a weightless ``meta`` copy of the model (no arithmetic: BERT-base 0.15 s where the real
    run takes 1 s and more), which gives the modules and the output's structure. ``make_real`` runs it
    on the real weights, under ``state``'s watch (what the forward writes into parameters and buffers
    is copied then, and put back), when a later step needs it: a strategy that runs the model for
    real, the check (PyTorch's outputs), or telling whether the inputs are at fault. A model that
    cannot run on ``meta`` (values read as numbers, ``torch.cond``, tensors kept outside parameters
    and buffers, hooks of its own) runs for real at once, as does any with ``real`` (structure-only:
    the model is on ``meta`` already).
    ``writes``: the meta run wrote into a parameter or buffer in place (a KV cache kept in buffers).
    """

    def __init__(self, ctx: ExportContext, state: ModelState, real: bool):
        self.ctx, self.state = ctx, state
        self.real = False
        self.executed: set[str] = set()
        self.error: str | None = None
        self.outputs = None
        self.writes = False  # the meta run wrote a parameter or buffer in place
        if real or not self._on_meta():
            self.make_real()

    def make_real(self) -> _EagerRun:
        """Run on the real weights unless that has been done (a strategy that runs the model for real
        comes next, or every strategy failed and the reason may be the inputs)."""
        if self.real:
            return self
        self.real = True
        self.executed, self.error, self.outputs = _watched_run(self.ctx.model, self.ctx)
        if self.error is not None:
            # torch.cond & co. compile their eager call with dynamo, which refuses the watch's dispatch
            # mode (and keeps the failed compile): without the watch, after dynamo forgets it.
            self.state.stop_watching()
            self.ctx.compiled.forget()
            self.executed, self.error, self.outputs = _watched_run(self.ctx.model, self.ctx)
        self.ctx.compiled.forget()  # the run's compiled torch.cond calls would change how captures go
        self.state.restore()
        return self

    def _on_meta(self) -> bool:
        """The run on a meta copy; False (nothing learnt) when the model cannot run there."""
        model = self.ctx.model
        if any(m._forward_hooks or m._forward_pre_hooks for m in model.modules()):
            return False  # the user's hooks would see meta tensors
        fresh = self.ctx.fresh()  # cache objects the forward grows are copies
        try:
            with unwatched():  # a meta run writes no real tensor: nothing to watch
                meta_model, args, kwargs = _to_meta(model, fresh.args, fresh.kwargs)
                state = [t for t in (*meta_model.parameters(), *meta_model.buffers()) if not t.is_inference()]
                versions = [t._version for t in state]
                executed, error, outputs = _watched_run(meta_model, self.ctx, args, kwargs)
        except Exception:  # the copy itself failed (an attribute deepcopy refuses)
            return False
        if error is not None:
            self.ctx.compiled.forget()  # a torch.cond call dynamo compiled on meta tensors
            return False
        self.executed, self.outputs = executed, outputs
        self.writes = any(t._version != v for t, v in zip(state, versions))
        return True


def _watched_run(model: torch.nn.Module, ctx: ExportContext, args: tuple | None = None,
                 kwargs: dict | None = None) -> tuple[set[str], str | None, object]:
    """``model`` (the user's, or its meta copy) run on ``args``/``kwargs`` (default: fresh copies of the
    export's inputs) with forward pre-hooks recording which modules run: ``(executed, error, output)``."""
    executed: set[str] = set()
    hooks = []
    # The call stack (module names as named_modules() gives them) at each module call, in call order:
    # htp names each call's TorchScript scope from it (ctx.module_calls).
    stack: list[str] = []
    ctx.module_calls = calls = []

    def enter(name: str, canonical: str) -> None:
        executed.add(canonical)
        stack.append(name)
        calls.append(tuple(stack))

    def leave(module, args, output) -> None:  # returns None: the output stays the module's
        stack.pop()

    for name, module in model.named_modules():
        canonical = ctx.tree.canonical(name)
        hooks.append(module.register_forward_pre_hook(lambda mod, inp, _n=name, _c=canonical: enter(_n, _c)))
        hooks.append(module.register_forward_hook(leave, always_call=True))
    if args is None:
        fresh = ctx.fresh()
        args, kwargs = fresh.args, fresh.kwargs
    try:
        with torch.no_grad(), exportable(model):
            output = model(*args, **kwargs)
    except Exception as e:
        ctx.module_calls = []
        return set(), describe(e), None
    finally:
        for h in hooks:
            h.remove()
    for name in list(executed):
        executed.update(ancestors(name))
    return executed, None, output


def _to_meta(model, args, kwargs):
    """The model and inputs on the ``meta`` device, weights never copied; the caller's model is untouched."""
    def meta(x):
        return x.to("meta") if isinstance(x, torch.Tensor) else x

    tensors = [*model.parameters(), *model.buffers()]
    if any(t.device.type != "meta" for t in tensors):
        # deepcopy with every weight pre-mapped to an empty meta twin: structure copied, data not.
        memo = {id(t): (torch.nn.Parameter(torch.empty_like(t, device="meta"), t.requires_grad)
                        if isinstance(t, torch.nn.Parameter) else torch.empty_like(t, device="meta"))
                for t in tensors}
        model = copy.deepcopy(model, memo)
    return model, *pytree.tree_map(meta, (tuple(args), dict(kwargs)))


def _write(result: ExportResult, out_path: Path, module_extra: dict, external_data_threshold: int, say,
           pytorch_outputs: Callable[[], list | None] | None = None) -> None:
    """Stage the ONNX file, check the staged file in ONNX Runtime against ``pytorch_outputs()``
    (PyTorch's outputs, computed while the file is written; None: no check) (its warnings go into the
    sidecar: the weights are written once), stage the sidecar, then move all into place."""
    model = result.onnx_model
    side_path = sidecar.sidecar_path_for(out_path)
    with staging(out_path.parent) as tmp:
        if result.structure_only:
            staged = [(tmp / out_path.name, out_path)]
            with weights_as_inputs(model):
                ir.save(model, staged[0][0])
        else:
            # Writing hundreds of MiB waits on the disk more than it computes: PyTorch's run for the
            # check goes on meanwhile. Nothing touches the ONNX model while it is saved, and the run
            # writes none of the weights the file holds (else it ran before: _EagerRun.writes).
            with ThreadPoolExecutor(1, thread_name_prefix="hierx-save") as pool:
                saving = pool.submit(stage_model, model, tmp, out_path, external_data_threshold)
                expected = pytorch_outputs() if pytorch_outputs is not None else None
                staged = saving.result()
            if pytorch_outputs is not None:
                say("checking the file against PyTorch in ONNX Runtime", 0.95)
                result.warnings += check_file(result, OnnxModel(staged[0][0], model), expected)
            say(f"writing {out_path.name} and its sidecar", 0.97)
        doc = sidecar.build(
            onnx_file=out_path.name, model_class=result.model_class, strategy=result.strategy,
            structure_only=result.structure_only, seconds=result.seconds, version=__version__,
            attempts=[a.as_dict() for a in result.attempts], coverage=result.coverage,
            coverage_pct=result.coverage_pct, modules=result.modules, module_extra=module_extra, nodes=result.nodes,
            warnings=result.warnings, latency=result.latency, divergence=result.divergence)
        sidecar.write(doc, tmp / side_path.name)
        staged.append((tmp / side_path.name, side_path))
        publish(staged)
    result.onnx_path = out_path
    result.sidecar_path = side_path
