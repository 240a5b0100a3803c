"""The explorer's data contract: what Python hands the front end (js/src/data.js reads it).

Used by the notebook widget (``widget.HierxExplorer``) and the standalone HTML report
(``report.write_html``); no Jupyter import here. Data is columnar and binary so a 15k-node /
1k-module export stays around 1 MB.

The binary parts ``tree`` (modules in pre-order), ``nodes`` (ONNX nodes) and ``graph`` (the
dataflow: values with their producer and consumers) are specified once, in ``payload_spec.json``:
``check_payload`` here and the front end's decoder (which bundles the same file) both read it.

``metrics`` (dict), per-module answers in ``tree`` order (absent keys: not measured yet):

    latency     {self_ms, total_ms, share: bytes Float64 (NaN: no row), kernel_ms, unattributed_ms: float,
                 node_ms: bytes Float64 per node (``profile``'s by_node; NaN: no kernel of its own),
                 by_op_type: {op_type: ms per run} (whole model), fused_into: list[str | None] when the
                 latency frame has that column (the module whose kernel ORT fused this one's work into)}
    divergence  {max_abs_diff: bytes Float64 (NaN: not compared), ok: bytes Uint8 (1 ok, 0 diverged,
                 255 unknown), first_divergent: str | None}
    compare     {ms_a, ms_b, time_ratio, sqnr_db, own_sqnr_db: bytes Float64 (NaN: not measured; SQNR
                 inf: equal), first_divergent: str | None, sqnr_threshold_db: float} from ``result.compare``

``header`` (dict): model_class, strategy, attempts, nodes, modules, tagged, coverage_pct (the known
share: exact + pattern), seconds, onnx_path, structure_only, warnings (``result.warnings``), io (the
model's inputs and outputs from ``result.io`` when it has them: kind, name, dtype, shape).

``check_payload`` enforces the binary layout; the front end checks it again and shows what is wrong
instead of an empty tree.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..attribution import all_nodes
from ..graph_io import _dtype, _shape
from ..hierarchy import NameTree

SPEC = json.loads((Path(__file__).parent / "payload_spec.json").read_text(encoding="utf-8"))
# Node sources, by code; 0 covers missing and unknown strings.
SOURCES = tuple(SPEC["sources"])
_DTYPES = {"int32": "<i4", "uint32": "<u4", "uint16": "<u2", "uint8": "u1", "float32": "<f4", "float64": "<f8"}

def _name(value: Any) -> str | None:
    """A module name from a table cell: None for missing (None/NaN), else str."""
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return str(value)


def _float(value: Any) -> float | None:
    """JSON-safe float (NaN/inf -> None)."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def build_tree(modules: pd.DataFrame, node_modules: list[str | None]) -> dict:
    """The ``tree`` payload: modules in pre-order with columnar binary arrays.

    Modules that nodes reference but ``modules`` lacks (and missing ancestors) are added with class
    "?" so every tagged node has a row to land in.
    """
    rows: dict[str, dict] = {}
    for r in modules.to_dict("records"):
        name = _name(r.get("module"))
        rows.setdefault("" if name is None else name, r)
    # Parent: the table's parent column when it names a known module, else the nearest ancestor by name.
    tree = NameTree([*rows, *(n for n in node_modules if n is not None)],
                    {name: _name(r.get("parent")) for name, r in rows.items()})
    for name in tree.names:
        rows.setdefault(name, {"module": name, "module_class": "?", "executed": True})
    pre, parent_of = tree.names, tree.parent

    index = {name: i for i, name in enumerate(pre)}
    n = len(pre)
    parent = np.full(n, -1, dtype="<i4")
    depth = np.zeros(n, dtype="<i4")
    for i, name in enumerate(pre):
        p = parent_of[name]
        if p is not None:
            parent[i] = index[p]
            depth[i] = depth[index[p]] + 1  # the parent precedes its children in pre-order

    size = np.ones(n, dtype="<i4")
    for i in range(n - 1, 0, -1):
        size[parent[i]] += size[i]

    own = np.zeros(n, dtype="<i4")
    for m in node_modules:
        if m is not None:
            own[index[m]] += 1
    total = own.copy()
    for i in range(n - 1, 0, -1):
        total[parent[i]] += total[i]

    params = np.array([_float(rows[name].get("params")) or 0.0 for name in pre], dtype="<f8")
    executed = np.array([1 if _truthy(rows[name].get("executed", True)) else 0 for name in pre], dtype="u1")
    classes = [str(rows[name].get("module_class") if _name(rows[name].get("module_class")) is not None else "")
               for name in pre]
    return {
        "n": n,
        "names": pre,
        "classes": classes,
        "parent": parent.tobytes(),
        "depth": depth.tobytes(),
        "size": size.tobytes(),
        "own": own.tobytes(),
        "total": total.tobytes(),
        "params": params.tobytes(),
        "executed": executed.tobytes(),
    }


def _truthy(value: Any) -> bool:
    try:
        if value is None or pd.isna(value):
            return False
    except (TypeError, ValueError):
        pass
    return bool(value)


def build_nodes(nodes: pd.DataFrame, node_modules: list[str | None], index: dict[str, int]) -> dict:
    """The ``nodes`` payload: binary columns in graph order."""
    n = len(nodes)
    module = np.array([-1 if m is None else index[m] for m in node_modules], dtype="<i4")
    ops_col = nodes["op_type"].astype(str).tolist() if "op_type" in nodes else [""] * n
    ops: list[str] = []
    op_index: dict[str, int] = {}
    op = np.empty(n, dtype="<u2")
    for i, o in enumerate(ops_col):
        j = op_index.get(o)
        if j is None:
            j = op_index[o] = len(ops)
            ops.append(o)
        op[i] = j
    if len(ops) > 65535:  # never in practice (ONNX has ~200 op types)
        raise ValueError(f"too many distinct op types ({len(ops)}) for a Uint16 index")
    if "confidence" in nodes:
        conf = pd.to_numeric(nodes["confidence"], errors="coerce").to_numpy(dtype="<f4", na_value=np.nan)
    else:
        conf = np.full(n, np.nan, dtype="<f4")
    source = np.array([SOURCES.index(s) if s in SOURCES else 0 for s in
                       (nodes["source"].tolist() if "source" in nodes else [None] * n)], dtype="u1")
    names = ["" if _name(v) is None else str(v) for v in (nodes["node"] if "node" in nodes else [""] * n)]
    blob, offsets = _utf8_column(names)
    return {
        "n": n,
        "module": module.tobytes(),
        "op": op.tobytes(),
        "ops": ops,
        "confidence": conf.astype("<f4").tobytes(),
        "source": source.tobytes(),
        "names": blob,
        "name_offsets": offsets,
    }


def _utf8_column(strings: list[str]) -> tuple[bytes, bytes]:
    """Strings as one UTF-8 blob and Uint32 offsets (n + 1): string i = blob[off[i]:off[i + 1]]."""
    encoded = [s.encode("utf-8", "surrogatepass") for s in strings]
    offsets = np.zeros(len(encoded) + 1, dtype="<u4")
    if encoded:
        np.cumsum([len(b) for b in encoded], out=offsets[1:])
    return b"".join(encoded), offsets.tobytes()


def _vocab_index(values: list[str], dtype: str) -> tuple[list[str], bytes]:
    vocab: dict[str, int] = {}
    codes = np.array([vocab.setdefault(v, len(vocab)) for v in values], dtype=dtype)
    return list(vocab), codes.tobytes()


def _shape_text(value) -> str:
    """'[batch, 128, 768]' (graph_io's axes: named dynamic axes by name); '' when the rank is unknown."""
    shape = _shape(value)
    return "" if shape is None else "[" + ", ".join(map(str, shape)) + "]"


def _graph_model(result: Any):
    """The result's onnx-ir model (in memory after an export, read from its file after ``load``), or None."""
    if getattr(result, "onnx_model", None) is None and getattr(result, "onnx_path", None) is None:
        return None
    try:
        return result.onnx().ir
    except Exception:  # an unreadable or vanished file: the explorer still shows the tree, without a graph
        return None


def empty_graph() -> dict:
    return {"n": 0, "uses": 0, "dtypes": [], "shapes": [], "names": b"", "name_offsets": np.zeros(1, "<u4").tobytes(),
            "dtype": b"", "shape": b"", "producer": b"", "output": b"",
            "consumer_offsets": np.zeros(1, "<u4").tobytes(), "consumers": b""}


def build_graph(model: Any, node_names: list[str]) -> dict:
    """The ``graph`` payload of an onnx-ir model whose walked nodes are the payload's nodes.

    Values are the graph inputs and every named node output (weights, initializers not fed as
    inputs, are left out: they would double the edges and say nothing about dataflow). A model whose
    walk does not match ``node_names`` (the table was built from another file) gets an empty graph.
    """
    if model is None:
        return empty_graph()
    walked = all_nodes(model)
    if [n.name or "" for n in walked] != node_names:
        return empty_graph()
    index = {id(node): i for i, node in enumerate(walked)}
    values: list = [v for v in model.graph.inputs]
    seen = {id(v) for v in values}
    for node in walked:
        for v in node.outputs:
            if v.name and id(v) not in seen:
                seen.add(id(v))
                values.append(v)
    outputs = {id(v) for v in model.graph.outputs}
    producer = np.empty(len(values), dtype="<i4")
    consumer_offsets = np.zeros(len(values) + 1, dtype="<u4")
    consumers: list[int] = []
    for k, v in enumerate(values):
        p = v.producer()
        producer[k] = index.get(id(p), -1) if p is not None else -1
        users = sorted({index[id(u.node)] for u in v.uses() if id(u.node) in index})
        consumers.extend(users)
        consumer_offsets[k + 1] = len(consumers)
    names_blob, name_offsets = _utf8_column([v.name or "" for v in values])
    dtype_names: dict = {}  # one numpy name per dtype, not per value
    for v in values:
        if v.dtype not in dtype_names:
            dtype_names[v.dtype] = _dtype(v)
    dtypes, dtype = _vocab_index([dtype_names[v.dtype] for v in values], "u1")
    shapes, shape = _vocab_index([_shape_text(v) for v in values], "<u4")
    return {"n": len(values), "uses": len(consumers), "dtypes": dtypes, "shapes": shapes,
            "names": names_blob, "name_offsets": name_offsets, "dtype": dtype, "shape": shape,
            "producer": producer.tobytes(), "output": np.array([id(v) in outputs for v in values], dtype="u1").tobytes(),
            "consumer_offsets": consumer_offsets.tobytes(), "consumers": np.array(consumers, dtype="<i4").tobytes()}


def build_header(result: Any, n_nodes: int, n_modules: int, n_tagged: int) -> dict:
    attempts = []
    for a in getattr(result, "attempts", None) or []:
        d = a.as_dict() if hasattr(a, "as_dict") else dict(a)
        attempts.append({"name": str(d.get("name", "")), "ok": bool(d.get("ok")),
                         "reason": str(d.get("reason") or ""), "seconds": _float(d.get("seconds")),
                         "skipped": bool(d.get("skipped")), "switched": [str(x) for x in d.get("switched") or []]})
    onnx_path = getattr(result, "onnx_path", None)
    return {
        "model_class": str(getattr(result, "model_class", "") or ""),
        "strategy": str(getattr(result, "strategy", "") or ""),
        "attempts": attempts,
        "nodes": n_nodes,
        "modules": n_modules,
        "tagged": n_tagged,
        "coverage_pct": _float(getattr(result, "coverage_pct", None)),
        "seconds": _float(getattr(result, "seconds", None)),
        "onnx_path": str(onnx_path) if onnx_path else None,
        "structure_only": bool(getattr(result, "structure_only", False)),
        "warnings": [str(w) for w in getattr(result, "warnings", None) or []],
        "io": _io_rows(getattr(result, "io", None)),
    }


def _io_rows(io: Any) -> list[dict]:
    """``result.io`` (kind, name, dtype, shape: ints and named dynamic axes, None for an unknown rank) as JSON rows."""
    if not isinstance(io, pd.DataFrame) or not len(io):
        return []
    rows = []
    for r in io.to_dict("records"):
        shape = r.get("shape")
        if shape is not None and not (isinstance(shape, float) and math.isnan(shape)):
            shape = [int(d) if isinstance(d, (int, np.integer)) else str(d) for d in shape]
        else:
            shape = None  # rank unknown
        rows.append({"kind": str(r.get("kind", "")), "name": str(r.get("name", "")), "dtype": str(r.get("dtype", "") or ""),
                     "shape": shape})
    return rows


def _by_module(df: pd.DataFrame, names: list[str], column: str, dtype: str, missing) -> bytes:
    values = dict(zip(df["module"].astype(str), df[column]))
    return np.array([values.get(n, missing) for n in names], dtype=dtype).tobytes()


def build_metrics(result: Any, names: list[str]) -> dict:
    """The ``metrics`` payload: the result's latency and divergence tables aligned to ``names``
    (module names in tree order); per-node times aligned to ``result.nodes``."""
    out: dict[str, dict] = {}
    latency = getattr(result, "latency", None)
    if latency is not None:
        out["latency"] = {col: _by_module(latency, names, col, "<f8", np.nan) for col in ("self_ms", "total_ms", "share")}
        out["latency"]["kernel_ms"] = _float(latency.attrs.get("kernel_ms"))
        out["latency"]["unattributed_ms"] = _float(latency.attrs.get("unattributed_ms"))
        by_op = latency.attrs.get("by_op_type") or {}
        out["latency"]["by_op_type"] = {str(k): v for k, v in ((k, _float(v)) for k, v in by_op.items()) if v is not None}
        by_node = latency.attrs.get("by_node")
        if by_node is not None and getattr(result, "nodes", None) is not None and "node" in result.nodes:
            # Nodes without a kernel of their own (fused into another node's, or folded away): NaN.
            out["latency"]["node_ms"] = np.array([by_node.get(str(n), np.nan) for n in result.nodes["node"]], dtype="<f8").tobytes()
        if "fused_into" in latency:
            fused = dict(zip(latency["module"].astype(str), latency["fused_into"]))
            out["latency"]["fused_into"] = [_name(fused.get(n)) for n in names]
    comparison = getattr(result, "comparison", None)
    if comparison is not None:  # result.compare(other): this file (a) against another (b)
        out["compare"] = {col: _by_module(comparison, names, col, "<f8", np.nan)
                          for col in ("ms_a", "ms_b", "time_ratio", "sqnr_db", "own_sqnr_db")}
        out["compare"]["first_divergent"] = comparison.attrs.get("first_divergent")
        out["compare"]["sqnr_threshold_db"] = _float(comparison.attrs.get("sqnr_threshold_db"))
    divergence = getattr(result, "divergence", None)
    if divergence is not None:
        ok = divergence.assign(ok=divergence["ok"].map(lambda v: 255 if v is None or pd.isna(v) else int(bool(v))))
        out["divergence"] = {"max_abs_diff": _by_module(divergence, names, "max_abs_diff", "<f8", np.nan),
                             "ok": _by_module(ok, names, "ok", "u1", 255),
                             "first_divergent": divergence.attrs.get("first_divergent")}
    return out


def payload(result: Any, selected: str = "") -> dict:
    """Everything the front end needs for ``result``: header, tree, nodes, graph, metrics, selected."""
    nodes_df = result.nodes if result.nodes is not None else pd.DataFrame(columns=["node", "op_type", "module"])
    modules_df = result.modules if result.modules is not None else pd.DataFrame(columns=["module"])
    node_modules = [_name(m) for m in nodes_df["module"]] if "module" in nodes_df else [None] * len(nodes_df)
    tree = build_tree(modules_df, node_modules)
    index = {name: i for i, name in enumerate(tree["names"])}
    nodes = build_nodes(nodes_df, node_modules, index)
    tagged = sum(m is not None for m in node_modules)
    header = build_header(result, len(nodes_df), tree["n"], tagged)
    node_names = ["" if _name(v) is None else str(v) for v in nodes_df["node"]] if "node" in nodes_df else [""] * len(nodes_df)
    graph = build_graph(_graph_model(result), node_names)
    return {"header": header, "tree": tree, "nodes": nodes, "graph": graph,
            "metrics": build_metrics(result, tree["names"]), "selected": selected or ""}


def check_payload(tree: dict | None = None, nodes: dict | None = None, graph: dict | None = None) -> None:
    """``ValueError`` naming the first part of ``tree`` / ``nodes`` / ``graph`` that breaks ``payload_spec.json``."""
    parts = {"tree": tree, "nodes": nodes, "graph": graph}
    for part, d in parts.items():
        if d is not None:
            _check_part(part, d, parts)
    if tree is not None:
        n = tree["n"]
        if n < 1:
            raise ValueError(f"tree.n must be the number of modules (>= 1, the root), got {n!r}")
        parent = np.frombuffer(tree["parent"], "<i4")
        if parent[0] != -1 or (n > 1 and not (parent[1:] < np.arange(1, n)).all()) or (parent[1:] < 0).any():
            raise ValueError("tree.parent must list modules in pre-order: -1 for the root, then a parent before its children")


def _check_part(part: str, d: dict, parts: dict) -> None:
    spec = SPEC["parts"][part]
    if not isinstance(d, dict):
        raise ValueError(f"{part} must be a dict, got {type(d).__name__}")
    counts = {}
    for key in spec["counts"]:
        v = d.get(key)
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise ValueError(f"{part}.{key} must be the {spec['counts'][key]}, got {v!r}")
        counts[key] = v
    for key, ls in spec["lists"].items():
        v = d.get(key)
        if not isinstance(v, list):
            raise ValueError(f"{part}.{key} must be a list ({ls['about']}), got {type(v).__name__}")
        if "length" in ls and len(v) != counts[ls["length"]]:
            raise ValueError(f"{part}.{key} has {len(v)} entries, expected {part}.{ls['length']} = {counts[ls['length']]}")
    for key, col in spec["columns"].items():
        v = d.get(key)
        if not isinstance(v, (bytes, bytearray, memoryview)):
            raise ValueError(f"{part}.{key} must be bytes, got {type(v).__name__}")
        if col["type"] == "bytes":
            continue
        dtype = np.dtype(_DTYPES[col["type"]])
        length = col["length"]
        items = counts["n"] + 1 if length == "n+1" else counts[length]
        if len(v) != items * dtype.itemsize:
            raise ValueError(f"{part}.{key} has {len(v)} bytes, expected {items * dtype.itemsize}")
        a = np.frombuffer(v, dtype)
        if not len(a):
            continue
        if "offsets" in col:
            blob = d.get(col["offsets"], b"")
            if a[0] != 0 or (np.diff(a.astype(np.int64)) < 0).any() or a[-1] != len(blob):
                raise ValueError(f"{part}.{key} must rise from 0 to the byte length of {part}.{col['offsets']}")
        if "vocab" in col:
            vocab = SPEC["sources"] if col["vocab"] == "sources" else d.get(col["vocab"]) or []
            if int(a.max()) >= len(vocab):
                raise ValueError(f"{part}.{key} refers to entry {int(a.max())} but {col['vocab']} has {len(vocab)}")
        if "index" in col and parts.get(col["index"]) is not None:
            size = parts[col["index"]]["n"]
            if int(a.min()) < -1 or int(a.max()) >= size:
                raise ValueError(f"{part}.{key} must index {col['index']} (-1 .. {size - 1}), "
                                 f"got {int(a.min())} .. {int(a.max())}")
    if "consumer_offsets" in spec["columns"]:
        off = np.frombuffer(d["consumer_offsets"], "<u4")
        if off[0] != 0 or (np.diff(off.astype(np.int64)) < 0).any() or off[-1] != counts["uses"]:
            raise ValueError(f"{part}.consumer_offsets must rise from 0 to {part}.uses")
