"""The sidecar JSON written beside the ONNX file (schema documented in the README).

Schema ``hierx_nb.sidecar`` version 3: an object with ``schema``, ``version``, ``hierx_version``,
``onnx_file``, ``model_class``, ``strategy``, ``structure_only``, ``seconds``, ``attempts`` (list of
{name, ok, reason, seconds, skipped, switched}), ``warnings`` (list of strings), ``coverage`` ({pct: the known share,
by_op_type: columnar op_type, nodes, exact, pattern, inferred, pct}), ``modules``
(columnar: module, module_class, class_path, parent, depth, params, executed, signature, own_nodes,
total_nodes, folded_into) and ``nodes`` (columnar: node, op_type, module, tag, confidence, source). Columnar
means {column: [values...]}, all lists of equal length.

Version 3 adds, when they were measured, ``latency`` (``result.profile()``) and ``divergence``
(``result.validate(per_module=True)``): each {columns: columnar frame, attrs: the frame's attrs};
and, for files written by ``hierx export``, ``model_ref`` ({model: the MODEL argument, folders and
files made absolute; inputs: the ``--inputs`` SPEC or null}) so ``hierx report --validate`` can
rebuild the PyTorch model. Version 2 files are read as they are (they hold none of these).
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pandas as pd

SCHEMA = "hierx_nb.sidecar"
SCHEMA_VERSION = 3  # 2: coverage counts the known (exact, pattern) nodes, by source; 3: latency, divergence
READABLE_VERSIONS = (2, 3)
METRICS = ("latency", "divergence")  # per-module answers kept with the file, as ExportResult attributes


def sidecar_path_for(onnx_path: Path) -> Path:
    """``model.onnx`` -> ``model.hierx.json``."""
    return onnx_path.with_name(onnx_path.stem + ".hierx.json")


def columnar(df: pd.DataFrame) -> dict[str, list]:
    out = {}
    for col in df.columns:
        series = df[col]
        if isinstance(series.dtype, pd.CategoricalDtype):
            series = series.astype(object)
        out[col] = [None if (v is None or (isinstance(v, float) and v != v)) else (v.item() if hasattr(v, "item") else v)
                    for v in series.tolist()]
    return out


def build(*, onnx_file: str, model_class: str, strategy: str, structure_only: bool, seconds: float, version: str,
          attempts: list[dict], coverage: pd.DataFrame, coverage_pct: float, modules: pd.DataFrame,
          module_extra: dict[str, dict], nodes: pd.DataFrame, warnings: list[str],
          latency: pd.DataFrame | None = None, divergence: pd.DataFrame | None = None) -> dict:
    mods = modules.copy()
    mods["class_path"] = [module_extra.get(m, {}).get("class_path", "") for m in mods["module"]]
    mods["signature"] = [module_extra.get(m, {}).get("signature", "") for m in mods["module"]]
    doc = {
        "schema": SCHEMA,
        "version": SCHEMA_VERSION,
        "hierx_version": version,
        "onnx_file": onnx_file,
        "model_class": model_class,
        "strategy": strategy,
        "structure_only": structure_only,
        "seconds": round(seconds, 4),
        "attempts": attempts,
        "warnings": list(warnings),
        "coverage": {"pct": round(coverage_pct, 4), "by_op_type": columnar(coverage)},
        "modules": columnar(mods),
        "nodes": columnar(nodes.drop(columns=["module_class"])),
    }
    doc.update(metric_entries(latency=latency, divergence=divergence))
    return doc


def metric_entries(**frames: pd.DataFrame | None) -> dict[str, dict]:
    """``{name: {columns, attrs}}`` for the frames given (None: not measured, left out)."""
    return {name: {"columns": columnar(df), "attrs": _plain(dict(df.attrs))}
            for name, df in frames.items() if df is not None}


def metric_frames(data: dict) -> dict[str, pd.DataFrame]:
    """The measured frames of a sidecar, by name (``latency``, ``divergence``), attrs restored."""
    out = {}
    for name in METRICS:
        entry = data.get(name)
        if entry:
            df = pd.DataFrame(entry["columns"])
            df.attrs.update(entry.get("attrs", {}))
            out[name] = df
    return out


def update_metrics(path: Path, **frames: pd.DataFrame | None) -> None:
    """Store ``frames`` (e.g. ``latency=df``) in the sidecar at ``path`` (see ``update``)."""
    update(path, **metric_entries(**frames))


def update(path: Path, **entries) -> None:
    """Set top-level ``entries`` in the sidecar at ``path``, written beside it and moved into place,
    so a failure leaves the old sidecar whole."""
    data = read(path)
    data.update(entries)
    data["version"] = SCHEMA_VERSION
    staged = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(data, staged)
        os.replace(staged, path)
    finally:
        staged.unlink(missing_ok=True)


def _plain(value):
    """JSON-ready: numpy scalars to Python, NaN/inf to None, keys to str."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write(data: dict, path: Path) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, separators=(",", ":"), ensure_ascii=False)


def read(path: Path) -> dict:
    """The sidecar at ``path``; ``ValueError`` if it is not one this version understands."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise ValueError(f"{path} is not a hierx_nb sidecar")
    if data.get("version") not in READABLE_VERSIONS:
        raise ValueError(f"{path} has sidecar schema version {data.get('version')}, this hierx_nb reads versions "
                         f"{', '.join(map(str, READABLE_VERSIONS))}: export the model again")
    _check_fields(data)
    return data


# The fields load() reads, with what each must be; a malformed one is named in one line.
_COLUMNS = {"modules": ("module", "module_class", "parent", "depth", "params", "executed")}


def _check_fields(data: dict) -> None:
    """``ValueError`` naming the first field that is not what the schema says."""
    if not isinstance(data.get("model_class"), str):
        raise ValueError(f"field 'model_class' is {_kind(data.get('model_class'))}, expected a string")
    for name, columns in _COLUMNS.items():
        value = data.get(name)
        if not isinstance(value, dict):
            raise ValueError(f"field {name!r} is {_kind(value)}, expected an object of columns ({', '.join(columns)})")
        lengths = set()
        for column in columns:
            if not isinstance(value.get(column), list):
                raise ValueError(f"field '{name}.{column}' is {_kind(value.get(column))}, expected a list")
            lengths.add(len(value[column]))
        if len(lengths) > 1:
            raise ValueError(f"field {name!r} has columns of different lengths {sorted(lengths)}")
    for name in ("attempts", "warnings"):
        if name in data and not isinstance(data[name], list):
            raise ValueError(f"field {name!r} is {_kind(data[name])}, expected a list")
    for i, attempt in enumerate(data.get("attempts", [])):
        if not isinstance(attempt, dict) or not isinstance(attempt.get("name"), str):
            raise ValueError(f"field 'attempts[{i}]' is {_kind(attempt)}, expected an object with a name")
    seconds = data.get("seconds", 0.0)
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise ValueError(f"field 'seconds' is {_kind(seconds)}, expected a number")


def _kind(value) -> str:
    return "null or missing" if value is None else f"a {type(value).__name__}"
