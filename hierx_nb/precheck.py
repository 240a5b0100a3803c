"""The pre-check before ``auto``'s first strategy: which strategies will fail, predicted cheaply.

Remembered failures (``memory.py``) decide first. For a kind of model seen for the first time, a
symbolic FX trace is attempted (milliseconds on models it can trace; it stops at the first
obstacle): control flow on tensor *values* is something torch.export cannot capture either, so
``dynamo`` is predicted to fail, with the line of the model's code that branches. Control flow on
shapes, or anything else symbolic tracing cannot do, predicts nothing about ``dynamo``.
"""
from __future__ import annotations

import traceback
from pathlib import Path

import torch
import torch.fx

from .quiet import quiet

# FX nodes whose value is tensor metadata (shape, rank, dtype...): torch.export specializes on those.
_METADATA_METHODS = frozenset({"size", "dim", "numel", "nelement", "ndimension", "type", "is_floating_point",
                               "is_contiguous", "get_device"})
_METADATA_ATTRS = frozenset({"shape", "dtype", "device", "ndim", "is_cuda", "layout", "requires_grad"})
_TORCH_DIR = str(Path(torch.__file__).parent)


class _ValueBranch(Exception):
    """The traced code branched on a tensor's values; ``where`` is the model's line that did."""

    def __init__(self, where: str):
        super().__init__(where)
        self.where = where


class _ProbeTracer(torch.fx.Tracer):
    def to_bool(self, obj: torch.fx.Proxy) -> bool:
        if _depends_on_values(obj.node):
            raise _ValueBranch(_user_line())
        return super().to_bool(obj)  # shape-dependent: FX's own error, which predicts nothing


def _depends_on_values(node: torch.fx.Node) -> bool:
    """True when ``node`` is computed from tensor values only, never through shapes or metadata."""
    seen, stack, reaches_data = set(), [node], False
    while stack:
        n = stack.pop()
        if n in seen:
            continue
        seen.add(n)
        if n.op == "call_method" and n.target in _METADATA_METHODS:
            return False
        if n.op == "call_function" and n.target is getattr and len(n.args) > 1 and n.args[1] in _METADATA_ATTRS:
            return False
        if n.op == "call_function" and n.target is len:
            return False
        if n.op in ("placeholder", "get_attr"):
            reaches_data = True
        stack.extend(n.all_input_nodes)
    return reaches_data


def _user_line() -> str:
    """``file.py:12`` of the innermost frame outside torch: the model's line that branched."""
    for frame in reversed(traceback.extract_stack()[:-2]):
        if not frame.filename.startswith(_TORCH_DIR) and frame.filename != __file__:
            return f"{Path(frame.filename).name}:{frame.lineno}"
    return "the model's forward"


def predict(model: torch.nn.Module, kwargs: dict, names: tuple[str, ...]) -> dict[str, str]:
    """Strategy name -> why it will fail, for the strategies among ``names`` an FX trace can rule out."""
    if "dynamo" not in names:
        return {}
    concrete = {k: v for k, v in kwargs.items() if not isinstance(v, torch.Tensor)}
    try:
        with quiet(), torch.no_grad():
            _ProbeTracer().trace(model, concrete_args=concrete or None)
    except _ValueBranch as e:
        return {"dynamo": f"predicted by the pre-check: the model branches on tensor values ({e.where}), "
                          "which torch.export cannot capture"}
    except Exception:  # anything else symbolic tracing cannot do predicts nothing
        pass
    return {}
