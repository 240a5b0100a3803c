"""ONNX translations for ATen ops that torch.onnx has none for (or a partial one), in one table for both
exporters: dynamo takes it as ``custom_translation_table``, the TorchScript tracer (htp) as symbolics
registered around its export.

Each translation is written once against an ``op`` builder with onnxscript's call style
(``op.Add(a, b)``, attributes as keywords, Python lists and scalars as constants): for dynamo the builder
is onnxscript's opset 18 (traced), for TorchScript it emits ``g.op`` nodes.
"""
from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass

import torch

_FLOAT, _INT64, _BOOL, _DOUBLE = 1, 7, 9, 11  # onnx.TensorProto data types
_OPSET = 18  # the ONNX opset the translations are written for (ScatterElements add, Reduce* axes inputs)


def aten_randperm(op, n, dtype=None, layout=None, device=None, pin_memory=None):
    """A uniformly random permutation of ``range(n)``: the TopK order of uniform noise.

    ONNX has no RNG stream shared with torch, so the permutation differs from eager's; models
    whose output depends on *which* permutation cannot match eager results anyway.
    """
    size = op.Constant(value_ints=[n]) if isinstance(n, int) else op.Reshape(op.Cast(n, to=_INT64), [-1])
    noise = op.RandomUniformLike(op.ConstantOfShape(size), dtype=_FLOAT)
    _, order = op.TopK(noise, size, largest=1, sorted=1)
    return order


def aten_is_all_true(op, self):
    """``aten._is_all_true``: a 0-d bool, True when no element is False (an empty tensor too)."""
    falses = op.ReduceSum(op.Cast(op.Not(op.Cast(self, to=_BOOL)), to=_INT64), keepdims=0)
    return op.Equal(falses, op.Constant(value_int=0))


def aten_histc(op, self, bins=100, min=0.0, max=0.0):
    """``torch.histc`` for float and integer inputs (MoE routing counts tokens per expert on ints).

    As torch does: ``bins`` equal bins over ``[min, max]`` (the data's range when ``min == max``,
    widened by 1 each side when that is a single value), ``max`` counted in the last bin, values
    outside and NaN ignored; edges as ``torch.linspace`` computes them, so values on an edge land
    in the same bin. The result has the input's dtype.
    """
    floating = op.is_floating(self)
    flat = op.Reshape(self, [-1])
    work = flat if floating else op.Cast(flat, to=_DOUBLE)  # integers: counted on exact doubles
    if min == max:
        low, high = op.ReduceMin(work, keepdims=0), op.ReduceMax(work, keepdims=0)
        same = op.Equal(low, high)
        one = op.CastLike(op.Constant(value_float=1.0), work)
        low, high = op.Where(same, op.Sub(low, one), low), op.Where(same, op.Add(high, one), high)
    else:
        low, high = op.CastLike(op.Constant(value_float=float(min)), work), op.CastLike(
            op.Constant(value_float=float(max)), work)
    # torch.linspace: start + step * i in the first half, end - step * (steps - 1 - i) in the second.
    index = op.CastLike(op.Constant(value_floats=[float(i) for i in range(bins + 1)]), work)
    step = op.Div(op.Sub(high, low), op.CastLike(op.Constant(value_float=float(bins)), work))
    from_low = op.Add(low, op.Mul(step, index))
    from_high = op.Sub(high, op.Mul(step, op.Sub(op.CastLike(op.Constant(value_float=float(bins)), work), index)))
    first_half = op.Less(index, op.CastLike(op.Constant(value_float=float((bins + 1) // 2)), work))
    edges = op.Where(first_half, from_low, from_high)
    valid = op.And(op.And(op.GreaterOrEqual(work, low), op.LessOrEqual(work, high)), op.Not(op.IsNaN(work)))
    # at_or_above[i]: valid values >= edge i; bin i holds edge i up to edge i+1 (the last bin: up to max).
    above = op.And(op.GreaterOrEqual(op.Unsqueeze(work, [0]), op.Unsqueeze(edges, [1])), valid)
    at_or_above = op.ReduceSum(op.Cast(above, to=_INT64), [1], keepdims=0)
    starts = op.Slice(at_or_above, [0], [bins], [0])
    ends = op.Concat(op.Slice(at_or_above, [1], [bins], [0]), op.Constant(value_ints=[0]), axis=0)
    return op.CastLike(op.Sub(starts, ends), self)


# -- complex tensors as real pairs ------------------------------------------------------------------
# ONNX Runtime has no complex arithmetic; torch.onnx's dynamo exporter represents a complex tensor
# of shape S as a real one of shape (*S, 2) (real, imaginary on the last axis), and its library
# covers many complex ops that way (view_as_complex/real, mul, matmul, transpose, the FFTs). These
# fill its gaps in the same representation; ``dim`` arguments count the complex tensor's axes.


def _pair_axis(dim: int) -> int:
    """The real pair's axis for a complex tensor's axis ``dim`` (negative axes skip the pair axis)."""
    return dim if dim >= 0 else dim - 1


def aten_unsqueeze_complex(op, self, dim: int):
    """``unsqueeze`` of a complex tensor (Llama-4's ``freqs_cis[:, :, None, :]``)."""
    return op.Unsqueeze(self, [_pair_axis(dim)])


def aten_zeros_like_complex(op, self, dtype=None, layout=None, device=None, pin_memory=None, memory_format=None):
    """``zeros_like`` of a complex tensor: zero real and imaginary parts."""
    return op.Expand(op.CastLike(op.Constant(value_float=0.0), self), op.Shape(self))


@dataclass(frozen=True)
class Translation:
    """One ATen op: its dynamo overloads, its TorchScript name and the builder-style function;
    ``complex``: it translates the op on complex inputs (as real pairs), real ones keep torch.onnx's."""

    overloads: tuple
    torchscript_name: str
    fn: Callable
    complex: bool = False


TRANSLATIONS = (
    Translation((torch.ops.aten.randperm.default,), "aten::randperm", aten_randperm),
    Translation((torch.ops.aten._is_all_true.default,), "aten::_is_all_true", aten_is_all_true),
    Translation((torch.ops.aten.histc.default,), "aten::histc", aten_histc),
    Translation((torch.ops.aten.unsqueeze.default,), "aten::unsqueeze", aten_unsqueeze_complex, complex=True),
    Translation((torch.ops.aten.zeros_like.default,), "aten::zeros_like", aten_zeros_like_complex, complex=True),
)


# -- dynamo: onnxscript, traced -------------------------------------------------------------------

class _OnnxscriptOps:
    """onnxscript's opset 18 plus the type question a translation may ask."""

    def __getattr__(self, name):
        from onnxscript import opset18

        return getattr(opset18, name)

    @staticmethod
    def is_floating(value) -> bool:
        return value.dtype is not None and value.dtype.is_floating_point()


def _for_dynamo(fn: Callable) -> Callable:
    """``fn`` without its builder argument, with the signature torch.onnx reads to bind ATen arguments."""
    ops = _OnnxscriptOps()

    def translation(*args, **kwargs):
        return fn(ops, *args, **kwargs)

    sig = inspect.signature(fn)
    translation.__signature__ = sig.replace(parameters=list(sig.parameters.values())[1:])
    translation.__name__ = translation.__qualname__ = fn.__name__
    translation.__doc__ = fn.__doc__
    return translation


TABLE = {overload: _for_dynamo(t.fn) for t in TRANSLATIONS if not t.complex for overload in t.overloads}
COMPLEX_TABLE = {overload: _for_dynamo(t.fn) for t in TRANSLATIONS if t.complex for overload in t.overloads}


@contextlib.contextmanager
def complex_translations():
    """Within the block, torch.onnx's dynamo exporter also uses ``COMPLEX_TABLE`` for complex inputs.

    ``custom_translation_table`` registers every entry for real inputs only (torch.onnx 2.13: "TODO:
    Support complex inputs"), so the registry torch.onnx builds from its library gets the complex
    translations added, marked complex, for the block.
    """
    from torch.onnx._internal.exporter import _registration

    registry_class = _registration.ONNXRegistry
    original = registry_class.__dict__["from_torchlib"]

    def from_torchlib(cls, *args, **kwargs):
        registry = original.__func__(cls, *args, **kwargs)
        for overload, fn in COMPLEX_TABLE.items():
            registry.register_op(overload, fn, is_complex=True)
        return registry

    registry_class.from_torchlib = classmethod(from_torchlib)
    try:
        yield
    finally:
        registry_class.from_torchlib = original


# -- TorchScript: g.op ----------------------------------------------------------------------------

_OUTPUTS = {"TopK": 2}


class _TorchScriptOps:
    """Emits onnxscript-style calls as TorchScript ONNX nodes in graph context ``g``."""

    def __init__(self, g):
        self.g = g

    def __getattr__(self, name):
        def emit(*inputs, **attrs):
            if name == "Constant":
                return self.g.op("Constant", value_t=_constant_tensor(attrs))
            values = [i if isinstance(i, torch._C.Value) else self._const(i) for i in inputs]
            return self.g.op(name, *values, outputs=_OUTPUTS.get(name, 1),
                             **{f"{k}_{_suffix(v)}": v for k, v in attrs.items()})
        return emit

    def _const(self, value):
        return self.g.op("Constant", value_t=torch.tensor(value, dtype=torch.float32 if _floats(value) else torch.int64))

    @staticmethod
    def is_floating(value) -> bool:
        kind = value.type().scalarType() if value.type().kind() == "TensorType" else None
        return kind in ("Float", "Double", "Half", "BFloat16")


def _floats(value) -> bool:
    return isinstance(value, float) or (isinstance(value, (list, tuple)) and any(isinstance(v, float) for v in value))


def _suffix(value) -> str:
    """TorchScript's attribute type suffix for a Python attribute value."""
    if isinstance(value, str):
        return "s"
    return "f" if _floats(value) else "i"


def _constant_tensor(attrs: dict) -> torch.Tensor:
    (key, value), = attrs.items()
    if key in ("value_int", "value_ints"):
        return torch.tensor(value, dtype=torch.int64)
    if key in ("value_float", "value_floats"):
        return torch.tensor(value, dtype=torch.float32)
    raise ValueError(f"unsupported Constant attribute {key!r}")


def _python_value(value):
    """A TorchScript input as the Python value dynamo would pass: constants unwrapped, None for None."""
    if not isinstance(value, torch._C.Value) or value.node().kind() not in ("prim::Constant", "onnx::Constant"):
        return value
    node = value.node()
    if node.mustBeNone():
        return None
    constant = node.t("value") if node.kind() == "onnx::Constant" else value.toIValue()
    if isinstance(constant, torch.Tensor) and constant.dim() == 0:
        return constant.item()
    return constant


def _for_torchscript(fn: Callable) -> Callable:
    def symbolic(g, *args):
        return fn(_TorchScriptOps(g), *(_python_value(a) for a in args))

    symbolic.__name__ = fn.__name__
    return symbolic


@contextlib.contextmanager
def torchscript_symbolics():
    """Within the block, the TorchScript exporter uses the table's translations (opset 18 and up).

    Registered only for the block and removed afterwards: registration is process-wide in torch.onnx.
    """
    from torch.onnx import register_custom_op_symbolic, unregister_custom_op_symbolic
    from torch.onnx._internal.torchscript_exporter.registration import registry

    new = [t.torchscript_name for t in TRANSLATIONS if registry.get_function_group(t.torchscript_name) is None]
    for t in TRANSLATIONS:
        register_custom_op_symbolic(t.torchscript_name, _for_torchscript(t.fn), _OPSET)
    try:
        yield
    finally:
        for t in TRANSLATIONS:
            unregister_custom_op_symbolic(t.torchscript_name, _OPSET)
        for name in new:  # an emptied group would fail lookups ("min() arg is an empty sequence")
            registry._registry.pop(name, None)
