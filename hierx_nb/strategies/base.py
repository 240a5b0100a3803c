"""What every strategy receives and returns."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import onnx_ir as ir
import torch

from ..attribution import NodeAttribution
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
    notes: dict = field(default_factory=dict)


class StrategyFailed(Exception):
    """A strategy cannot export this model; the message is the reason shown to the user."""
