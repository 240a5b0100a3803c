"""The model's inputs and outputs as the ONNX graph declares them: names, dtypes, shapes with named
dynamic axes. A function of the graph alone, so it answers for exported and loaded files alike."""
from __future__ import annotations

import onnx_ir as ir
import pandas as pd

from .attribution import all_nodes

IO_COLUMNS = ["kind", "name", "dtype", "shape"]
UNNAMED_AXIS = "?"  # a dynamic axis the file gives no name


def io_frame(model: ir.Model) -> pd.DataFrame:
    """One row per graph input (weights stored as initializers excluded), then per graph output.

    Columns ``IO_COLUMNS``: ``kind`` (``"input"`` | ``"output"``), ``name``, ``dtype`` (numpy's name,
    e.g. ``float32``, ``int64``, ``bfloat16``; ``""`` when the file does not say), ``shape``: a list
    with one entry per axis, an int for a fixed size, a str for a dynamic axis (the name the file
    gives it, e.g. ``batch``; ``"?"`` if none), or None when the rank is unknown.
    """
    graph = model.graph
    rows = [("input", v) for v in graph.inputs if v.name not in graph.initializers]
    rows += [("output", v) for v in graph.outputs]
    return pd.DataFrame([(kind, v.name or "", _dtype(v), _shape(v)) for kind, v in rows], columns=IO_COLUMNS)


def _dtype(value: ir.Value) -> str:
    if value.dtype is None or value.dtype == ir.DataType.UNDEFINED:
        return ""
    try:
        return str(value.dtype.numpy())
    except (TypeError, ValueError):  # types numpy has no name for (string, 2-bit ints)
        return value.dtype.name.lower()


def _shape(value: ir.Value) -> list[int | str] | None:
    if value.shape is None:
        return None
    return [d if isinstance(d, int) else (d.value or UNNAMED_AXIS) for d in value.shape]


def describe_io(io: pd.DataFrame, kind: str) -> str:
    """``input_ids int64 [batch, seq], attention_mask int64 [batch, seq]`` for the rows of ``kind``."""
    parts = []
    for row in io[io["kind"] == kind].itertuples(index=False):
        shape = "[?]" if row.shape is None else "[" + ", ".join(map(str, row.shape)) + "]"
        parts.append(f"{row.name} {row.dtype or '?'} {shape}")
    return ", ".join(parts) or "(none)"


def name_outputs(model: ir.Model, names: list[str]) -> None:
    """Rename the graph's outputs to ``names`` (one per output, in order), keeping every value name
    unique: an inner value that already has one of the names is renamed aside. An output that is
    also a graph input or weight, or that appears twice, keeps its name. Nothing changes when the
    counts differ (the exporter dropped or added outputs: the structure no longer lines up)."""
    graph = model.graph
    if len(names) != len(graph.outputs):
        return
    counts: dict[int, int] = {}
    for v in graph.outputs:
        counts[id(v)] = counts.get(id(v), 0) + 1
    fixed = {v.name for v in graph.inputs} | set(graph.initializers)
    values = {v.name: v for node in all_nodes(model) for v in node.outputs if v.name}
    taken = set(values) | fixed
    for value, name in zip(graph.outputs, names):
        if value.name == name or counts[id(value)] > 1 or value.name in fixed or value.producer() is None:
            continue
        if name in fixed:
            continue
        other = values.get(name)
        if other is not None and other is not value:
            other.name = _fresh(name, taken)
            values[other.name] = other
        taken.add(name)
        values.pop(value.name, None)
        value.name = name
        values[name] = value


def _fresh(base: str, taken: set[str]) -> str:
    i = 1
    while f"{base}_{i}" in taken:
        i += 1
    taken.add(f"{base}_{i}")
    return f"{base}_{i}"


def unique_value_names(model: ir.Model) -> None:
    """One value per name (ONNX's SSA rule): where an exporter gave a graph input or output a name an
    inner value also has (torch.onnx's dynamo path applies ``input_names``/``output_names`` without
    looking: ``output_names=["relu", "linear"]`` when ``linear`` is an inner value), the inner value
    is renamed aside (``linear_1``); graph inputs, outputs and weights keep their names."""
    graph = model.graph
    kept = [*graph.inputs, *graph.outputs, *graph.initializers.values()]
    names = {v.name for v in kept}
    inner = [v for node in all_nodes(model) for v in node.outputs if v.name]
    taken = names | {v.name for v in inner}
    claimed = {id(v) for v in kept}
    for value in inner:
        if value.name in names and id(value) not in claimed:
            value.name = _fresh(value.name, taken)
