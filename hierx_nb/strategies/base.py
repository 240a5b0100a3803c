"""What every strategy receives and returns, and the base class of the strategies.

Modelled on torch.onnx's capture strategies: each strategy is a small class with a name, called
on an ``ExportContext``; the call never raises for the model's sake, it returns a
``StrategyResult`` that carries the output or the exception.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import onnx_ir as ir
import torch

from ..attribution import NodeAttribution
from ..errors import describe
from ..hierarchy import ModuleTree
from ..shapes import DynamicSpec


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
    progress: Callable[[str, float | None], None] = lambda step, fraction=None: None


@dataclass
class StrategyOutput:
    """An ONNX model as the exporter made it, and what the strategy knows of each node's module.

    Nodes missing from ``attributions`` (or with ``module=None``) are completed from the graph.
    """

    model: ir.Model
    attributions: dict[ir.Node, NodeAttribution]


class StrategyFailed(Exception):
    """A strategy cannot export this model; the message is the reason shown to the user."""


@dataclass
class StrategyResult:
    """One strategy's try: its output, or the exception it raised."""

    strategy: str
    output: StrategyOutput | None
    exception: BaseException | None
    seconds: float

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
    """One way to export a model with its nodes attributed to modules.

    ``name`` is what users choose (``strategy=``, ``--strategy``, ``-s``); ``summary`` a phrase for
    help texts; ``in_auto`` whether ``auto`` tries it (in the registry's order).
    """

    name: str = ""
    summary: str = ""
    in_auto: bool = True

    def export(self, ctx: ExportContext) -> StrategyOutput:
        """The ONNX model and attributions; ``StrategyFailed`` with the reason when it cannot."""
        raise NotImplementedError

    def __call__(self, ctx: ExportContext) -> StrategyResult:
        started = time.perf_counter()
        try:
            output = self.export(ctx)
        except Exception as e:  # a strategy bug must not hide the others' chance
            return StrategyResult(self.name, None, e, time.perf_counter() - started)
        return StrategyResult(self.name, output, None, time.perf_counter() - started)

    def __repr__(self) -> str:
        return f"<strategy {self.name}>"
