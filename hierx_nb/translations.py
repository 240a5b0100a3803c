"""ONNX translations for ATen ops that torch.onnx has none for (passed as ``custom_translation_table``)."""
from __future__ import annotations

import torch
from onnxscript import opset18 as op

_FLOAT = 1  # onnx.TensorProto.FLOAT
_INT64 = 7


def aten_randperm(n, dtype=None, layout=None, device=None, pin_memory=None):
    """A uniformly random permutation of ``range(n)``: the TopK order of uniform noise.

    ONNX has no RNG stream shared with torch, so the permutation differs from eager's; models
    whose output depends on *which* permutation cannot match eager results anyway.
    """
    if isinstance(n, int):
        size = op.Constant(value_ints=[n])
    else:
        size = op.Reshape(op.Cast(n, to=_INT64), op.Constant(value_ints=[-1]))
    noise = op.RandomUniformLike(op.ConstantOfShape(size), dtype=_FLOAT)
    _, order = op.TopK(noise, size, largest=1, sorted=1)
    return order


TABLE = {torch.ops.aten.randperm.default: aten_randperm}
