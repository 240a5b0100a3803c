"""Dynamic dimensions: the user's request in either of torch.onnx's styles, one form for every strategy,
the names written into the file, and the check that no strategy wrote a requested dimension as fixed.

``dynamic_shapes`` is torch.export's format (per forward parameter: ``{axis: Dim | "name" | None}``
or a per-axis list; a tuple in input order), with strings as names. ``dynamic_axes`` is the
TorchScript style (``{input_name: {axis: "name"} | [axes]}``, output names allowed). Both become a
``DynamicSpec``: for each flat tensor input, its dynamic axes and their names.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import onnx_ir as ir
import torch
from torch.utils import _pytree as pytree

from .attribution import all_nodes
from .errors import BadSpec, InputError, StrategyFailed, first_line
from .files import weight_bytes
from .inputs import forward_params, named_tensor_inputs
from .reference import Reference
from .runtime import OnnxModel
from .validation import compare_outputs, mismatch_line


@dataclass
class DynamicSpec:
    """Dynamic axes by flat input (``inputs[i]`` is ``{axis: name}`` for the i-th tensor input, named
    ``names[i]``) and by output name; ``dims`` keeps the user's ``torch.export.Dim`` objects (ranges)."""

    names: list[str]
    inputs: list[dict[int, str]]
    outputs: dict[str, dict[int, str]] = field(default_factory=dict)
    dims: dict[str, object] = field(default_factory=dict)

    def dynamic_shapes(self, model: torch.nn.Module, args: tuple, kwargs: dict) -> dict:
        """torch.export's ``dynamic_shapes``, keyed by forward parameter, names as strings (or the user's Dim)."""
        return _per_parameter(model, args, kwargs, [{a: self.dims.get(n, n) for a, n in axes.items()}
                                                    for axes in self.inputs])

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        """TorchScript's ``dynamic_axes``: by input name, then the requested output axes."""
        axes = {n: dict(a) for n, a in zip(self.names, self.inputs) if a}
        axes.update(self.outputs)
        return axes


SHORT_FORMS = ("batch", "seq")
DYNAMIC_GRAMMAR = ("NAME=AXIS:DIM[,AXIS:DIM...] (e.g. input_ids=0:batch,1:seq; repeat it or separate inputs "
                   "with ';'), or the short form 'batch' or 'batch,seq': axis 0 of every input is 'batch', "
                   "axis 1 of token inputs (integer ids and masks) 'seq' ('decoder_seq' for decoder_*)")


def parse_dynamic(items: list[str] | str) -> dict | str:
    """``--dynamic`` values as ``dynamic_shapes``: ``{name: {axis: dim}}``, or a short form string."""
    parts = [p.strip() for item in ([items] if isinstance(items, str) else items) for p in item.split(";") if p.strip()]
    if not parts:
        raise BadSpec(f"--dynamic needs a value: {DYNAMIC_GRAMMAR}")
    if all("=" not in p for p in parts):
        return _short_form(",".join(parts))
    shapes: dict[str, dict[int, str]] = {}
    for part in parts:
        name, eq, axes = part.partition("=")
        name = name.strip()
        if not eq or not name.isidentifier():
            raise BadSpec(f"--dynamic {part!r}: expected {DYNAMIC_GRAMMAR}")
        for item in axes.split(","):
            axis, colon, dim = item.strip().partition(":")
            try:
                axis_number = int(axis)
            except ValueError:
                axis_number = None
            if axis_number is None or not colon or not dim.strip():
                raise BadSpec(f"--dynamic {part!r}: {item.strip()!r} is not AXIS:DIM (e.g. 0:batch)")
            shapes.setdefault(name, {})[axis_number] = dim.strip()
    return shapes


def _short_form(text: str) -> str:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in SHORT_FORMS]
    if unknown or not names:
        raise BadSpec(f"dynamic short form {text!r}: use 'batch' or 'batch,seq' (or {DYNAMIC_GRAMMAR.split(' (')[0]})")
    return ",".join(names)


def _standard_axes(model, args, kwargs, short: str) -> list[dict[int, str]]:
    """The short form on these inputs: batch on axis 0 of every tensor, seq on axis 1 of integer ones."""
    wanted = set(_short_form(short).split(","))
    shapes = []
    for name, tensor in named_tensor_inputs(model, args, kwargs):
        axes = {}
        if "batch" in wanted and tensor.dim() >= 1:
            axes[0] = "batch"
        if "seq" in wanted and tensor.dim() >= 2 and not tensor.is_floating_point():
            axes[1] = "decoder_seq" if name.startswith("decoder_") else "seq"
        shapes.append(axes)
    return shapes


def resolve(model: torch.nn.Module, args: tuple, kwargs: dict, dynamic_shapes=None, dynamic_axes=None,
            input_names=None, output_names=None) -> DynamicSpec | None:
    """The request as a ``DynamicSpec`` (None when nothing is dynamic); ``InputError`` when it does not
    fit the inputs. Input names in ``dynamic_axes`` are ``input_names`` if given, else the forward's.
    ``dynamic_shapes`` may also be a short form, ``"batch"`` or ``"batch,seq"``."""
    named = named_tensor_inputs(model, args, kwargs)
    if isinstance(dynamic_shapes, str):
        dynamic_shapes = _per_parameter(model, args, kwargs, _standard_axes(model, args, kwargs, dynamic_shapes))
    names = _names(named, input_names)
    if output_names is not None and (isinstance(output_names, str) or not all(isinstance(n, str) for n in output_names)):
        raise InputError("output_names must be a list of strings")
    if dynamic_shapes is not None and dynamic_axes is not None:
        raise InputError("give dynamic_shapes or dynamic_axes, not both")
    if dynamic_shapes is not None:
        spec = _from_dynamic_shapes(model, args, kwargs, dynamic_shapes, names)
    elif dynamic_axes is not None:
        spec = _from_dynamic_axes(dynamic_axes, names, list(output_names or ()))
    else:
        return None
    for (name, tensor), axes in zip(named, spec.inputs):
        for axis, dim in axes.items():
            if not -tensor.dim() <= axis < tensor.dim():
                raise InputError(f"dynamic axis {axis} ({dim}) of {name!r} is out of range: it has {tensor.dim()} dimensions")
    spec.inputs = [{a % t.dim(): d for a, d in axes.items()} for (_, t), axes in zip(named, spec.inputs)]
    return spec if any(spec.inputs) or spec.outputs else None


def _given(model, args, kwargs) -> list[tuple[str, object]]:
    """The inputs as (forward parameter name, value), positional ones first."""
    params = [p.name for p in forward_params(model).values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return [*((params[i] if i < len(params) else f"input_{i}", a) for i, a in enumerate(args)), *kwargs.items()]


def _per_parameter(model, args, kwargs, flat_axes: list) -> dict:
    """Axes given per flat tensor input, in torch.export's structure: by parameter, nested like the input."""
    flat = iter(flat_axes)
    out = {}
    for key, value in _given(model, args, kwargs):
        leaves, spec = pytree.tree_flatten(value)
        axes = [next(flat) if isinstance(leaf, torch.Tensor) else None for leaf in leaves]
        out[key] = axes[0] if isinstance(value, torch.Tensor) else pytree.tree_unflatten(axes, spec)
    return out


def _names(named, input_names) -> list[str]:
    if input_names is None:
        return [n for n, _ in named]
    if isinstance(input_names, str) or not all(isinstance(n, str) for n in input_names):
        raise InputError("input_names must be a list of strings")
    if len(input_names) != len(named):
        raise InputError(f"input_names has {len(input_names)} names but the model gets {len(named)} tensor inputs "
                         f"({', '.join(n for n, _ in named)})")
    return list(input_names)


def _axes(value, where: str, auto_name: str) -> dict[int, object]:
    """One tensor's axes spec -> {axis: name or Dim}; None and ints (static) are left out."""
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, (list, tuple)):
        items = list(enumerate(value))
    else:
        raise InputError(f"dynamic shape of {where} must be a dict {{axis: name}} or a list with one entry per axis, "
                         f"got {type(value).__name__}")
    out = {}
    for axis, dim in items:
        if not isinstance(axis, int) or isinstance(axis, bool):
            raise InputError(f"axes of {where} must be integers, got {axis!r}")
        if dim is None or isinstance(dim, int):
            continue
        if isinstance(dim, str):
            if not dim:
                raise InputError(f"axis {axis} of {where} has an empty name")
            out[axis] = dim
        elif isinstance(dim, torch.export.Dim):
            out[axis] = dim
        elif type(dim).__name__ == "_DimHint":  # Dim.DYNAMIC / Dim.AUTO: dynamic without a name
            out[axis] = f"{auto_name}_{axis}"
        else:
            raise InputError(f"axis {axis} of {where}: expected a name, a torch.export.Dim or None, got {dim!r}")
    return out


def _from_dynamic_shapes(model, args, kwargs, dynamic_shapes, names) -> DynamicSpec:
    given = _given(model, args, kwargs)
    if isinstance(dynamic_shapes, dict):
        unknown = sorted(set(dynamic_shapes) - {k for k, _ in given})
        if unknown:
            raise InputError(f"dynamic_shapes names {', '.join(map(repr, unknown))}, which the model is not given; "
                             f"its inputs are {', '.join(k for k, _ in given)}")
        per_input = [dynamic_shapes.get(k) for k, _ in given]
    elif isinstance(dynamic_shapes, (list, tuple)):
        if len(dynamic_shapes) != len(given):
            raise InputError(f"dynamic_shapes has {len(dynamic_shapes)} entries but the model is given "
                             f"{len(given)} inputs ({', '.join(k for k, _ in given)})")
        per_input = list(dynamic_shapes)
    else:
        raise InputError(f"dynamic_shapes must be a dict by input name or a tuple in input order, "
                         f"got {type(dynamic_shapes).__name__}")
    inputs, dims = [], {}
    flat_names = iter(names)
    for (key, value), shape in zip(given, per_input):
        leaves = [x for x in pytree.tree_leaves(value) if isinstance(x, torch.Tensor)]
        if isinstance(value, torch.Tensor):
            shapes = [shape]
        elif shape is None:
            shapes = [None] * len(leaves)
        else:
            shapes = pytree.tree_flatten(shape, is_leaf=lambda s: s is None or _is_axes(s))[0]
            if len(shapes) != len(leaves):
                raise InputError(f"dynamic shape of {key!r} does not follow its structure: {len(shapes)} entries "
                                 f"for {len(leaves)} tensors")
        for s in shapes:
            name = next(flat_names)
            axes = {} if s is None else _axes(s, repr(name), name)
            for axis, dim in list(axes.items()):
                if isinstance(dim, torch.export.Dim):
                    dims[dim.__name__] = dim
                    axes[axis] = dim.__name__
            inputs.append(axes)
    return DynamicSpec(names=names, inputs=inputs, dims=dims)


def _is_axes(s) -> bool:
    if isinstance(s, dict):
        return all(isinstance(k, int) for k in s)
    return isinstance(s, (list, tuple)) and all(
        v is None or isinstance(v, (int, str, torch.export.Dim)) or type(v).__name__ == "_DimHint" for v in s)


def _from_dynamic_axes(dynamic_axes, names, output_names) -> DynamicSpec:
    if not isinstance(dynamic_axes, dict):
        raise InputError(f"dynamic_axes must be a dict {{input_name: {{axis: name}}}}, got {type(dynamic_axes).__name__}")
    unknown = sorted(set(dynamic_axes) - set(names) - set(output_names))
    if unknown:
        outputs = f"; outputs: {', '.join(output_names)}" if output_names else " (name outputs with output_names)"
        raise InputError(f"dynamic_axes names {', '.join(map(repr, unknown))}, which is no input or output; "
                         f"inputs: {', '.join(names)}{outputs}")

    def axes(key):
        value = dynamic_axes.get(key)
        if value is None:
            return {}
        if isinstance(value, (list, tuple)):  # [axes]: named after the tensor and axis
            value = {a: f"{key}_{a}" for a in value}
        return {a: str(d) for a, d in _axes(value, repr(key), key).items()}

    outputs = {o: axes(o) for o in output_names if o in dynamic_axes}
    return DynamicSpec(names=names, inputs=[axes(n) for n in names], outputs=outputs)


def apply(model: ir.Model, spec: DynamicSpec, strategy: str) -> None:
    """Give the requested axes the user's names throughout ``model`` (torch names them ``s72``), or
    fail with the reason if a strategy wrote one of them as a fixed size."""
    inputs = _match_inputs(model, spec)
    rename: dict[str, str] = {}
    fixed = []
    for value, axes in inputs:
        for axis, name in axes.items():
            dim = value.shape[axis] if value.shape is not None and axis < len(value.shape) else None
            if isinstance(dim, int):
                fixed.append(f"{value.name} axis {axis} ({name}) is fixed at {dim}")
            elif isinstance(dim, ir.SymbolicDim) and dim.value is not None and dim.value != name:
                rename.setdefault(dim.value, name)
    outputs = {v.name: v for v in model.graph.outputs}
    for name, axes in spec.outputs.items():
        value = outputs.get(name)
        if value is None or value.shape is None:
            continue
        for axis, dim_name in axes.items():
            if axis < len(value.shape) and isinstance(value.shape[axis], int):
                fixed.append(f"output {name} axis {axis} ({dim_name}) is fixed at {value.shape[axis]}")
    if fixed:
        hint = (" (torch.export fixes a dimension whose example size is 0 or 1: export with a larger example)"
                if any(s.endswith((" at 0", " at 1")) for s in fixed) else "")
        raise StrategyFailed(f"{strategy} wrote fixed sizes where dynamic ones were asked for: {'; '.join(fixed)}{hint}")
    if rename:
        _rename_dims(model, rename)
    for name, axes in spec.outputs.items():  # output axes the user named: that name on that output
        value = outputs.get(name)
        if value is not None and value.shape is not None:
            dims = list(value.shape)
            for axis, dim_name in axes.items():
                if axis < len(dims):
                    dims[axis] = ir.SymbolicDim(dim_name)
            value.shape = ir.Shape(dims)
    _name_output_dims(model, {d for axes in spec.inputs for d in axes.values()}, set(spec.outputs))


# Symbolic shape inference serializes the graph (a copy of the weights): skipped above this size.
_INFER_LIMIT_BYTES = 1024**3
_LARGE_ELEMENTS = 1024  # weights with more elements go without their data (only their shape matters)


def _name_output_dims(model: ir.Model, names: set[str], named_outputs: set[str]) -> None:
    """Outputs' dynamic axes the exporter named itself (TorchScript: ``LayerNormalizationonnx::Gather_270_dim_0``)
    get the user's names where ONNX Runtime's symbolic shape inference traces them back to the
    inputs' (``batch``, ``seq``). Left as they are when it cannot tell, or the model is too large."""
    import re

    if not names:
        return
    word = re.compile(r"\b(" + "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True)) + r")\b")

    def foreign(dim) -> bool:
        return isinstance(dim, ir.SymbolicDim) and not (dim.value and word.search(dim.value))

    todo = [v for v in model.graph.outputs if v.name not in named_outputs and v.shape is not None
            and any(foreign(d) for d in v.shape)]
    if not todo or weight_bytes(model) > _INFER_LIMIT_BYTES:
        return
    try:
        from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

        proto = ir.serde.serialize_model(model)
        for init in proto.graph.initializer:
            if init.raw_data and len(init.raw_data) > _LARGE_ELEMENTS * 8:
                init.ClearField("raw_data")
        del proto.graph.value_info[:]
        for out in proto.graph.output:
            out.type.tensor_type.ClearField("shape")
        inferred = SymbolicShapeInference.infer_shapes(proto, auto_merge=True)
    except Exception:  # ops it does not know, custom domains: the exporter's names stay
        return
    found = {o.name: [d.dim_param if d.HasField("dim_param") else d.dim_value
                      for d in o.type.tensor_type.shape.dim] for o in inferred.graph.output}
    for value in todo:
        dims = found.get(value.name)
        if dims is None or len(dims) != len(value.shape):
            continue
        value.shape = ir.Shape([ir.SymbolicDim(new) if foreign(old) and isinstance(new, str) and word.search(new)
                                else old for old, new in zip(value.shape, dims)])


def _match_inputs(model: ir.Model, spec: DynamicSpec) -> list[tuple[ir.Value, dict[int, str]]]:
    """Graph inputs with the axes asked for them: by name, else by position (exporters may rename)."""
    graph_inputs = [v for v in model.graph.inputs if v.name not in model.graph.initializers]
    by_name = {v.name: v for v in graph_inputs}
    wanted = [(n, a) for n, a in zip(spec.names, spec.inputs) if a]
    if all(n in by_name for n, _ in wanted):
        return [(by_name[n], a) for n, a in wanted]
    if len(graph_inputs) == len(spec.names):
        return [(v, a) for v, a in zip(graph_inputs, spec.inputs) if a]
    missing = [n for n, _ in wanted if n not in by_name]
    raise StrategyFailed(f"the exported graph has no input {missing[0]!r} to make dynamic (its inputs: "
                     f"{', '.join(by_name)}); an input the model does not use cannot have dynamic axes")


def _rename_dims(model: ir.Model, rename: dict[str, str]) -> None:
    """Rename symbolic dims (whole symbols, also inside expressions such as ``2*s72``) on every value."""
    pattern = re.compile(r"\b(" + "|".join(re.escape(k) for k in sorted(rename, key=len, reverse=True)) + r")\b")

    def fix(value: ir.Value) -> None:
        shape = value.shape
        if shape is None or not any(isinstance(d, ir.SymbolicDim) and d.value for d in shape):
            return
        dims = [ir.SymbolicDim(pattern.sub(lambda m: rename[m.group(1)], d.value))
                if isinstance(d, ir.SymbolicDim) and d.value else d for d in shape]
        value.shape = ir.Shape(dims)

    for v in [*model.graph.inputs, *model.graph.outputs]:
        fix(v)
    for node in all_nodes(model):
        for v in node.outputs:
            fix(v)


def check_other_sizes(model: ir.Model, spec: DynamicSpec, torch_model: torch.nn.Module, args: tuple, kwargs: dict,
                      strategy: str) -> None:
    """Run the file at other sizes (every dynamic input dimension doubled, by repeating the inputs) against PyTorch.

    A file that cannot run there, or gives other shapes or numbers than PyTorch, has a dimension fixed
    inside its graph (a traced constant, an unrolled loop): the strategy fails. Nothing is checked
    when PyTorch itself cannot run at those sizes.
    """
    leaves, tree = pytree.tree_flatten((args, kwargs))
    flat = iter(spec.inputs)
    resized = []
    for leaf in leaves:
        if isinstance(leaf, torch.Tensor):
            for axis in next(flat):
                leaf = torch.cat([leaf, leaf], dim=axis)
        resized.append(leaf)
    new_args, new_kwargs = pytree.tree_unflatten(resized, tree)
    ref = Reference(torch_model, new_args, new_kwargs)
    try:
        ref.outputs()
    except Exception:
        return  # PyTorch cannot run there either (a fixed-size table, a divisibility rule): nothing to say
    sizes = ", ".join(f"{n} {'x'.join(map(str, a.shape))}" for n, a in ref.named_inputs)
    try:
        report = compare_outputs(OnnxModel(model=model), ref)
    except Exception as e:
        raise StrategyFailed(f"{strategy} fixed a dynamic dimension inside the graph: its file does not run at other "
                             f"sizes ({sizes}): {first_line(str(e))}") from None
    bad_shapes = report[report["max_abs_diff"] == float("inf")]
    if len(bad_shapes):
        raise StrategyFailed(f"{strategy} fixed a dynamic dimension inside the graph: at other sizes ({sizes}) "
                             f"output {bad_shapes.iloc[0].output!r} has another shape than PyTorch's (or non-finite "
                             "values where PyTorch has numbers)")
    if not report["ok"].all():  # a traced loop or a size read as a number: the file is right at one size only
        raise StrategyFailed(f"{strategy} fixed a dynamic dimension inside the graph: at other sizes ({sizes}) "
                             f"{mismatch_line(report)}")
