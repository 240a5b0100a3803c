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
from torch.onnx._internal.exporter._torchlib.ops.hop import higher_order_scan

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


def aten_diff(op, self, n: int = 1, dim: int = -1, prepend=None, append=None):
    """``torch.diff`` (transformers' packed-sequence check diffs position ids): ``n`` times the
    difference of neighbours along ``dim``, after ``prepend``/``append``."""
    parts = [p for p in (prepend, self, append) if p is not None]
    x = op.Concat(*parts, axis=dim) if len(parts) > 1 else self
    axis = op.Constant(value_ints=[dim])
    for _ in range(n):
        later = op.Slice(x, op.Constant(value_ints=[1]), op.Constant(value_ints=[2**63 - 1]), axis)
        earlier = op.Slice(x, op.Constant(value_ints=[0]), op.Constant(value_ints=[-1]), axis)
        x = op.Sub(later, earlier)
    return x


def aten_cumsum(op, self, dim: int, dtype=None):
    """``cumsum`` with torch's result type: integers and bool sum as int64 (ONNX CumSum takes no
    bool; transformers' masks cumsum bool tensors), floats in their own type, or ``dtype``."""
    if dtype is not None:
        x = op.Cast(self, to=op.onnx_type(dtype))
    else:
        x = self if op.is_floating(self) else op.Cast(self, to=_INT64)
    return op.CumSum(x, op.Constant(value_int=dim))


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


# torch.onnx's TorchScript exporter has no complex support at all: these give it the same real-pair
# representation (dynamo's library has its own versions of them).

def _parts(op, x):
    """``(real, imaginary)`` of a complex pair, or ``(x, None)`` for a real tensor."""
    if not op.is_complex(x):
        return x, None
    return op.Gather(x, op.Constant(value_int=0), axis=-1), op.Gather(x, op.Constant(value_int=1), axis=-1)


def _pair(op, re, im):
    return op.Concat(op.Unsqueeze(re, [-1]), op.Unsqueeze(im, [-1]), axis=-1)


def _int_scalar(op, n):
    """An int64 scalar from a Python int or a traced size."""
    if isinstance(n, int):
        return op.Constant(value_int=n)
    return op.Cast(op.Reshape(n, op.Constant(value_ints=[])), to=_INT64)


def aten_complex(op, real, imag):
    """``torch.complex(re, im)``: the pair."""
    return _pair(op, real, imag)


def aten_view_as_complex(op, self):
    """The pair already is the (..., 2) real tensor ``view_as_complex`` reads."""
    return op.Identity(self)


def aten_view_as_real(op, self):
    """A complex tensor's pair is its ``view_as_real``."""
    return op.Identity(self)


def aten_polar(op, abs, angle):
    """``torch.polar``: ``abs * (cos(angle), sin(angle))``."""
    return _pair(op, op.Mul(abs, op.Cos(angle)), op.Mul(abs, op.Sin(angle)))


def aten_mul_complex(op, self, other):
    """Complex ``mul``: ``(a + bi)(c + di) = (ac - bd) + (ad + bc)i``; a real or scalar factor scales both parts."""
    a, b = _parts(op, self)
    if not op.is_tensor(other):
        other = op.CastLike(op.Constant(value_float=float(other)), a)
    c, d = _parts(op, other)
    if b is None:
        a, b, c, d = c, d, a, b
    if d is None:
        return _pair(op, op.Mul(a, c), op.Mul(b, c))
    return _pair(op, op.Sub(op.Mul(a, c), op.Mul(b, d)), op.Add(op.Mul(a, d), op.Mul(b, c)))


def aten_matmul_complex(op, self, other):
    """Complex ``matmul`` from four real ones (a real operand has no imaginary part)."""
    a, b = _parts(op, self)
    c, d = _parts(op, other)
    if b is None:
        return _pair(op, op.MatMul(a, c), op.MatMul(a, d))
    if d is None:
        return _pair(op, op.MatMul(a, c), op.MatMul(b, c))
    return _pair(op, op.Sub(op.MatMul(a, c), op.MatMul(b, d)), op.Add(op.MatMul(a, d), op.MatMul(b, c)))


def aten_transpose_complex(op, self, dim0: int, dim1: int):
    """``transpose`` of a complex tensor: the pair axis stays last."""
    rank = op.rank(self) - 1
    perm = list(range(rank + 1))
    d0, d1 = dim0 % rank, dim1 % rank
    perm[d0], perm[d1] = perm[d1], perm[d0]
    return op.Transpose(self, perm=perm)


def aten_slice_complex(op, self, dim=0, start=None, end=None, step=1):
    """``slice`` along a complex tensor's axis."""
    start = 0 if start is None else start
    end = 2**63 - 1 if end is None else end
    bounds = [op.Reshape(_int_scalar(op, v), op.Constant(value_ints=[1])) for v in (start, end, step)]
    return op.Slice(self, bounds[0], bounds[1], op.Constant(value_ints=[_pair_axis(dim)]), bounds[2])


def aten_to_complex(op, self, *args):
    """``to`` on a complex tensor (a device move, the same complex dtype): the pair unchanged."""
    return op.Identity(self)


def aten_cat_complex(op, tensors, dim: int = 0):
    """``cat`` of complex tensors along a complex axis."""
    return op.Concat(*op.unpack(tensors), axis=_pair_axis(dim))


def aten_squeeze_complex(op, self, dim: int):
    return op.Squeeze(self, op.Constant(value_ints=[_pair_axis(dim)]))


def _fft_scale(op, spectrum, n, norm, inverse: bool):
    """torch.fft's ``norm`` on top of ONNX DFT (forward unscaled, inverse scaled by 1/n)."""
    length = op.CastLike(n, spectrum)
    if norm == "ortho":
        factor = op.Sqrt(length) if inverse else op.Reciprocal(op.Sqrt(length))
    elif (norm == "forward") != inverse:  # forward with norm="forward", inverse with norm="backward"
        return spectrum if inverse else op.Div(spectrum, length)
    else:
        factor = length if inverse else None
    return spectrum if factor is None else op.Mul(spectrum, factor)


def aten_fft_rfft(op, self, n=None, dim: int = -1, norm=None):
    """``torch.fft.rfft`` of a real tensor: a one-sided ONNX DFT, the half spectrum as a pair."""
    axis = _pair_axis(dim)  # in the signal's rank (one more: the pair axis)
    signal = op.Unsqueeze(self, [-1])
    if n is None:
        length = op.Gather(op.Shape(self), op.Constant(value_int=dim))
        spectrum = op.DFT(signal, axis=axis, onesided=1)
    else:
        length = _int_scalar(op, n)
        spectrum = op.DFT(signal, op.Reshape(length, op.Constant(value_ints=[1])), axis=axis, onesided=1)
    return _fft_scale(op, spectrum, length, norm, inverse=False)


def aten_fft_irfft(op, self, n=None, dim: int = -1, norm=None):
    """``torch.fft.irfft``: the half spectrum completed by conjugate symmetry (bin k >= n//2 + 1 is
    bin n - k conjugated), a two-sided inverse DFT (ONNX Runtime refuses a one-sided inverse), the
    real part. Imaginary parts of the DC and Nyquist bins drop out, as in torch."""
    axis = _pair_axis(dim)
    shape = op.Shape(self)
    if n is None:
        bins = op.Gather(shape, op.Constant(value_int=axis))
        length = op.Mul(op.Sub(bins, op.Constant(value_int=1)), op.Constant(value_int=2))
    else:
        length = _int_scalar(op, n)
    half = op.Add(op.Div(length, op.Constant(value_int=2)), op.Constant(value_int=1))
    one = op.Constant(value_ints=[1])
    kept = op.Slice(self, op.Constant(value_ints=[0]), op.Reshape(half, one), op.Constant(value_ints=[axis]))
    mirrored = op.Gather(kept, op.Sub(length, op.Range(half, length, op.Constant(value_int=1))), axis=axis)
    conjugated = op.Mul(mirrored, op.CastLike(op.Constant(value_floats=[1.0, -1.0]), self))
    full = op.Concat(kept, conjugated, axis=axis)
    signal = op.DFT(full, axis=axis, inverse=1, onesided=0)
    real = op.Gather(signal, op.Constant(value_int=0), axis=-1)
    return _fft_scale(op, real, length, norm, inverse=True)


@dataclass(frozen=True)
class Translation:
    """One ATen op: its dynamo overloads, its TorchScript name and the builder-style function;
    ``complex``: it translates the op on complex inputs (as real pairs), real ones keep torch.onnx's."""

    overloads: tuple
    torchscript_name: str | None  # None: the TorchScript tracer runs the op and records what it did
    fn: Callable
    complex: bool = False
    dynamo: bool = True  # False: torch.onnx's dynamo library already translates it


def higher_order_map(op, body, xs, pos_args):
    """``torch._higher_order_ops.map`` (``map_impl``): ``body`` on each slice of ``xs`` along axis 0,
    with ``pos_args`` whole, and the results stacked: an ONNX ``Scan`` that carries no state, built
    as torch.onnx builds ``torch.scan``'s (``body``: the branch as an ONNX function). torch.onnx 2.13
    has no translation for it ("No ONNX function found for MapImpl"). The TorchScript tracer runs
    ``map`` eagerly and records each slice's ops: unrolled over the export's length."""
    return higher_order_scan(body, [], xs, pos_args)


TRANSLATIONS = (
    Translation((torch.ops.aten.randperm.default,), "aten::randperm", aten_randperm),
    Translation((torch.ops.aten._is_all_true.default,), "aten::_is_all_true", aten_is_all_true),
    Translation((torch.ops.aten.histc.default,), "aten::histc", aten_histc),
    Translation((torch.ops.higher_order.map_impl,), None, higher_order_map),
    Translation((), "aten::diff", aten_diff, dynamo=False),  # dynamo decomposes it
    Translation((), "aten::cumsum", aten_cumsum, dynamo=False),  # dynamo's casts bool itself
    Translation((torch.ops.aten.unsqueeze.default,), "aten::unsqueeze", aten_unsqueeze_complex, complex=True),
    Translation((torch.ops.aten.zeros_like.default,), "aten::zeros_like", aten_zeros_like_complex, complex=True),
    *(Translation((), f"aten::{name}", fn, complex=True, dynamo=False) for name, fn in (
        ("complex", aten_complex), ("view_as_complex", aten_view_as_complex), ("view_as_real", aten_view_as_real),
        ("polar", aten_polar), ("mul", aten_mul_complex), ("matmul", aten_matmul_complex),
        ("transpose", aten_transpose_complex), ("slice", aten_slice_complex), ("cat", aten_cat_complex),
        ("to", aten_to_complex),
        ("squeeze", aten_squeeze_complex),
        ("fft_rfft", aten_fft_rfft), ("fft_irfft", aten_fft_irfft))),
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
COMPLEX_TABLE = {overload: _for_dynamo(t.fn) for t in TRANSLATIONS if t.complex and t.dynamo for overload in t.overloads}


@contextlib.contextmanager
def complex_translations():
    """Within the block, torch.onnx's dynamo exporter also uses ``COMPLEX_TABLE`` for complex inputs.

    ``custom_translation_table`` registers every entry for real inputs only (torch.onnx 2.13: "TODO:
    Support complex inputs"), so the registry torch.onnx builds from its library gets the complex
    translations added, marked complex, for the block.
    """
    from torch.onnx._internal.exporter import _registration

    registry_class = getattr(_registration, "ONNXRegistry", None)
    original = getattr(registry_class, "__dict__", {}).get("from_torchlib")
    if not isinstance(original, classmethod):  # another torch.onnx: export as it is, without them
        yield
        return

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


_COMPLEX_TYPES = ("ComplexFloat", "ComplexDouble", "ComplexHalf")


def _traced_complex(value) -> bool:
    """Whether a value of the traced TorchScript graph holds a complex tensor."""
    t = value.type()
    return t.kind() == "TensorType" and t.scalarType() in _COMPLEX_TYPES


class _TorchScriptOps:
    """Emits onnxscript-style calls as TorchScript ONNX nodes in graph context ``g``.

    ``originals``: the traced values the symbolic's inputs stand for (by the new value's ``unique()``),
    which still carry torch's types: complex, rank.
    """

    def __init__(self, g, originals: dict | None = None):
        self.g = g
        self._originals = originals or {}

    @staticmethod
    def is_tensor(value) -> bool:
        return isinstance(value, torch._C.Value)

    def is_complex(self, value) -> bool:
        original = self._originals.get(value.unique()) if isinstance(value, torch._C.Value) else None
        return original is not None and _traced_complex(original)

    @staticmethod
    def onnx_type(dtype: int) -> int:
        """The ONNX type of a torch dtype given as TorchScript passes it (its ScalarType number)."""
        from torch.onnx._internal.torchscript_exporter import _type_utils

        return int(_type_utils.JitScalarType(dtype).onnx_type())

    @staticmethod
    def unpack(value) -> list:
        """The tensors of a TorchScript list value (``cat``'s input)."""
        from torch.onnx import symbolic_helper

        return symbolic_helper._unpack_list(value)

    def rank(self, value) -> int:
        """The rank of the value in the ONNX graph (a complex pair's includes the pair axis)."""
        original = self._originals.get(value.unique())
        return original.type().dim() + (1 if _traced_complex(original) else 0)

    def __getattr__(self, name):
        def emit(*inputs, **attrs):
            if name == "Constant":
                return self.g.op("Constant", value_t=_constant_tensor(attrs))
            values = [i if isinstance(i, torch._C.Value) else self._const(i) for i in inputs]
            return self.g.op(name, *values, outputs=_OUTPUTS.get(name, 1),
                             **{f"{k}_{_suffix(v)}": v for k, v in attrs.items()})
        return emit

    def _const(self, value):
        if isinstance(value, torch.Tensor):  # a constant tensor input, unwrapped by _python_value
            return self.g.op("Constant", value_t=value)
        return self.g.op("Constant", value_t=torch.tensor(value, dtype=torch.float32 if _floats(value) else torch.int64))

    @staticmethod
    def is_floating(value) -> bool:
        if isinstance(value, torch.Tensor):
            return value.is_floating_point()
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
    if node.kind() == "onnx::Constant":  # a tensor, or a string attribute (torch.fft's norm)
        name = node.attributeNames()[0]
        kind = node.kindOf(name)
        constant = getattr(node, "is_" if kind == "is" else kind)(name)
    else:
        constant = value.toIValue()
    if isinstance(constant, torch.Tensor) and constant.dim() == 0:
        return constant.item()
    return constant


def _for_torchscript(fn: Callable, complex_only: bool = False, original: Callable | None = None) -> Callable:
    """The TorchScript symbolic. ``complex_only``: inputs none of which is complex go to ``original``
    (torch.onnx's own symbolic), so the op's real translation is untouched."""
    def symbolic(g, *args):
        if g.original_node is None:  # no traced node to ask for types: torch.onnx's own translation
            return original(g, *args) if original is not None else fn(_TorchScriptOps(g), *map(_python_value, args))
        traced = list(g.original_node.inputs())
        complex_io = any(map(_traced_complex, [*traced, *g.original_node.outputs()]))
        if complex_only and original is not None and not complex_io:
            return original(g, *args)
        originals = {a.unique(): t for a, t in zip(args, traced) if isinstance(a, torch._C.Value)}
        return fn(_TorchScriptOps(g, originals), *(_python_value(a) for a in args))

    symbolic.__name__ = fn.__name__
    return symbolic


@contextlib.contextmanager
def torchscript_symbolics():
    """Within the block, the TorchScript exporter uses the table's translations (opset 18 and up).

    Registered only for the block and removed afterwards: registration is process-wide in torch.onnx.
    """
    from torch.onnx import register_custom_op_symbolic, unregister_custom_op_symbolic
    from torch.onnx._internal.torchscript_exporter.registration import registry

    symbolics = [t for t in TRANSLATIONS if t.torchscript_name is not None]
    new = [t.torchscript_name for t in symbolics if registry.get_function_group(t.torchscript_name) is None]
    originals = {name: registry.get_function_group(name).get(_OPSET) for name in
                 {t.torchscript_name for t in symbolics if t.complex} - set(new)}
    for t in symbolics:
        register_custom_op_symbolic(t.torchscript_name,
                                    _for_torchscript(t.fn, t.complex, originals.get(t.torchscript_name)), _OPSET)
    try:
        yield
    finally:
        for t in symbolics:
            unregister_custom_op_symbolic(t.torchscript_name, _OPSET)
        for name in new:  # an emptied group would fail lookups ("min() arg is an empty sequence")
            registry._registry.pop(name, None)
