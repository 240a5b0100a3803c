"""What every strategy receives and returns, and the base class of the strategies.

Modelled on torch.onnx's capture strategies (``_capture_strategies.py``): each strategy is a small
class with a name and its logic in ``_capture``, called on an ``ExportContext``; the call never
raises for the model's sake, it returns a ``StrategyResult`` that carries the output or the exception.
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import onnx_ir as ir
import torch

from .. import shapes
from ..attribution import NodeAttribution
from ..errors import StrategyFailed, describe, first_line
from ..graph_io import name_outputs, unique_value_names
from ..hierarchy import ModuleTree
from ..preserve import DynamoCodes, copy_inputs
from ..shapes import DynamicSpec
from ..soundness import Unsound, check_inputs_kept, check_valid, given_tensors

__all__ = ["ExportContext", "StrategyOutput", "StrategyFailed", "StrategyResult", "Strategy", "verify"]


@dataclass
class ExportContext:
    """The inputs of one export, shared by the strategies tried for it."""

    model: torch.nn.Module
    args: tuple
    kwargs: dict
    tree: ModuleTree
    structure_only: bool = False
    opset: int | None = None
    # torch.onnx.export's options: every strategy honours them or fails saying why.
    dynamic: DynamicSpec | None = None  # dynamic axes and their names (hierx_nb/shapes.py)
    input_names: list[str] | None = None
    output_names: list[str] | None = None
    optimize: bool = True
    # Input tensors the user lets a file drop (their names as given_tensors says them; soundness.py).
    allow_dropped_inputs: frozenset[str] = frozenset()
    progress: Callable[[str, float | None], None] = lambda step, fraction=None: None
    # The names of the model's output tensors seen in the eager run (None: the exporter's own names).
    eager_output_names: list[str] | None = None
    # The eager run's module calls in order, each as its call stack of named_modules() names
    # (outermost first; empty when the model did not run eagerly).
    module_calls: list[tuple[str, ...]] = field(default_factory=list)
    # What dynamo compiled before the export (the user's): kept through strict torch.export's reset.
    compiled: DynamoCodes = field(default_factory=DynamoCodes)

    def fresh(self) -> ExportContext:
        """This context with its own copies of the inputs: what one attempt writes (a ``DynamicCache``
        that grows) never reaches the next attempt, the check or the caller."""
        args, kwargs = copy_inputs(self.args, self.kwargs)
        return dataclasses.replace(self, args=args, kwargs=kwargs)


@dataclass
class StrategyOutput:
    """An ONNX model as the exporter made it, and what the strategy knows of each node's module.

    Nodes missing from ``attributions`` (or with ``module=None``) are completed from the graph.
    """

    model: ir.Model
    attributions: dict[ir.Node, NodeAttribution]


@dataclass
class StrategyResult:
    """One strategy's try: its output, or the exception it raised; ``warnings``: problems found in a
    file that still passed (they join the export's warnings if this strategy wins)."""

    strategy: str
    output: StrategyOutput | None
    exception: BaseException | None
    seconds: float
    warnings: list[str] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return self.output is not None

    @property
    def reason(self) -> str:
        """Why it failed, in the words shown to the user ("" when it worked)."""
        if self.exception is None:
            return ""
        if isinstance(self.exception, StrategyFailed):
            return str(self.exception)
        return f"unexpected {describe(self.exception)}"  # a strategy bug, named as such


class Strategy:
    """One way to export a model with its nodes attributed to modules, shaped as torch.onnx's capture
    strategies: the logic is in ``_capture``; ``__call__`` times it, runs the checks every file must
    pass (``_verify``) and never raises; progress goes through the ``_enter``/``_success``/``_failure``
    hooks and ``_step``, whose fraction is the step's place in ``steps``.

    ``name`` is what users choose (``strategy=``, ``--strategy``, ``-s``); ``summary`` a phrase for
    help texts; ``in_auto`` whether ``auto`` tries it (in the registry's order); ``steps`` the phrases
    of its steps, in order (the first is said on entering); ``runs_model`` whether its capture runs
    the forward on the real weights.
    """

    name: str = ""
    summary: str = ""
    in_auto: bool = True
    steps: tuple[str, ...] = ("exporting",)
    # Whether its capture runs the forward on the real weights (a tracer does; torch.export runs it on
    # fake tensors): the export's eager run then comes first, watched, so what it writes is put back.
    runs_model: bool = True

    def _capture(self, ctx: ExportContext) -> StrategyOutput:
        """The ONNX model and attributions; ``StrategyFailed`` with the reason when it cannot."""
        raise NotImplementedError

    def _verify(self, ctx: ExportContext, output: StrategyOutput) -> list[str]:
        """Checks every strategy's file passes, else ``StrategyFailed``; returns warnings."""
        return verify(ctx, output, self.name)

    def __call__(self, ctx: ExportContext) -> StrategyResult:
        ctx = ctx.fresh()
        self._enter(ctx)
        started = time.perf_counter()
        try:
            output = self._capture(ctx)
            self._step(ctx, VERIFY_STEP)
            warnings = self._verify(ctx, output)
        except Exception as e:  # a strategy bug must not hide the others' chance
            result = StrategyResult(self.name, None, e, time.perf_counter() - started)
            self._failure(ctx, result)
            return result
        result = StrategyResult(self.name, output, None, time.perf_counter() - started, warnings)
        self._success(ctx, result)
        return result

    # -- progress ---------------------------------------------------------------------------------
    def _step(self, ctx: ExportContext, step: str) -> None:
        """Report ``step`` (one of ``steps``, or ``VERIFY_STEP``): its fraction is its place in the list."""
        order = (*self.steps, VERIFY_STEP)
        ctx.progress(f"{self.name}: {step}", SHARE * order.index(step) / len(order))

    def _enter(self, ctx: ExportContext) -> None:
        self._step(ctx, self.steps[0])

    def _success(self, ctx: ExportContext, result: StrategyResult) -> None:
        ctx.progress(f"{self.name}: exported in {result.seconds:.1f} s", SHARE)

    def _failure(self, ctx: ExportContext, result: StrategyResult) -> None:
        # None: a fallback to the next strategy starts over from 0
        ctx.progress(f"{self.name}: failed: {first_line(result.reason, 120)}", None)

    def __repr__(self) -> str:
        return f"<strategy {self.name}>"


# The share of an export's progress the strategy's own steps take (tagging, checking, writing follow).
SHARE = 0.85
VERIFY_STEP = "checking the file"


def verify(ctx: ExportContext, output: StrategyOutput, strategy: str) -> list[str]:
    """The outputs named as the model names them (unless the user named them); ``StrategyFailed`` for
    a file that dropped an input tensor (unless ``ctx.allow_dropped_inputs`` names it: a warning), fails ONNX's full check or does not load in ONNX Runtime
    (soundness.py); the dynamic dimensions asked for (named as asked; ``StrategyFailed`` if a strategy
    fixed one, in the file or inside its graph at other sizes)."""
    if ctx.output_names is None and ctx.eager_output_names:  # last_hidden_state, logits
        name_outputs(output.model, ctx.eager_output_names)
    unique_value_names(output.model)  # a name asked for that an inner value also has
    warnings: list[str] = []
    try:
        if not ctx.structure_only:
            warnings += [f"{strategy}: {w}" for w in check_inputs_kept(
                output.model, given_tensors(ctx.model, ctx.args, ctx.kwargs), ctx.allow_dropped_inputs)]
        check_valid(output.model)
    except Unsound as e:
        raise StrategyFailed(f"{strategy} wrote an unsound file: {e}") from None
    if ctx.dynamic is None:
        return warnings
    shapes.apply(output.model, ctx.dynamic, strategy)
    if not ctx.structure_only:
        shapes.check_other_sizes(output.model, ctx.dynamic, ctx.model, ctx.args, ctx.kwargs, strategy)
    return warnings
