"""The sidecar JSON written beside the ONNX file (schema documented in the README).

Schema ``hierx_nb.sidecar`` version 2: an object with ``schema``, ``version``, ``hierx_version``,
``onnx_file``, ``model_class``, ``strategy``, ``structure_only``, ``seconds``, ``attempts`` (list of
{name, ok, reason, seconds, skipped, switched}), ``warnings`` (list of strings), ``coverage`` ({pct: the known share,
by_op_type: columnar op_type, nodes, exact, pattern, inferred, pct}), ``modules``
(columnar: module, module_class, class_path, parent, depth, params, executed, signature, own_nodes,
total_nodes) and ``nodes`` (columnar: node, op_type, module, tag, confidence, source). Columnar
means {column: [values...]}, all lists of equal length.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

SCHEMA = "hierx_nb.sidecar"
SCHEMA_VERSION = 2  # 2: coverage counts the known (exact, pattern) nodes, by source


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
          module_extra: dict[str, dict], nodes: pd.DataFrame, warnings: list[str]) -> dict:
    mods = modules.copy()
    mods["class_path"] = [module_extra.get(m, {}).get("class_path", "") for m in mods["module"]]
    mods["signature"] = [module_extra.get(m, {}).get("signature", "") for m in mods["module"]]
    return {
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


def write(data: dict, path: Path) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, separators=(",", ":"), ensure_ascii=False)


def read(path: Path) -> dict:
    """The sidecar at ``path``; ``ValueError`` if it is not one this version understands."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise ValueError(f"{path} is not a hierx_nb sidecar")
    if data.get("version") != SCHEMA_VERSION:
        raise ValueError(f"{path} has sidecar schema version {data.get('version')}, this hierx_nb reads {SCHEMA_VERSION}: "
                         "export the model again")
    return data
