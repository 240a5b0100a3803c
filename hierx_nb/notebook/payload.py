"""The explorer's data contract: what Python hands the front end (js/src/data.js reads it).

Used by the notebook widget (``widget.HierxExplorer``) and the standalone HTML report
(``report.write_html``); no Jupyter import here. Data is columnar and binary so a 15k-node /
1k-module export stays around 1 MB:

``tree`` (dict), one entry per module in pre-order (a parent precedes its subtree, so a module's
subtree is the contiguous index range ``[i, i + size[i])``; index 0 is the root, name ""):

    n        int     number of modules
    names    list    qualified names (str)
    classes  list    class names (str)
    parent   bytes   Int32 little-endian, parent index (-1 for the root)
    depth    bytes   Int32, 0 for the root
    size     bytes   Int32, number of modules in the subtree (itself included)
    own      bytes   Int32, nodes tagged with exactly this module
    total    bytes   Int32, nodes in the subtree
    params   bytes   Float64 (a 70B root does not fit in Int32)
    executed bytes   Uint8, 1 if the module ran during the trace

``nodes`` (dict), one entry per ONNX node in graph order:

    n            int    number of nodes
    module       bytes  Int32, index into ``tree`` (-1: untagged)
    op           bytes  Uint16, index into ``ops``
    ops          list   op-type vocabulary (str)
    confidence   bytes  Float32 (NaN when unknown)
    source       bytes  Uint8, index into ``SOURCES`` (0: none/unknown, 1 exact, 2 pattern, 3 inferred)
    names        bytes  UTF-8 node names, concatenated
    name_offsets bytes  Uint32, n + 1 byte offsets into ``names`` (name i = names[off[i]:off[i+1]])

``metrics`` (dict), per-module answers in ``tree`` order (absent keys: not measured yet):

    latency     {self_ms, total_ms, share: bytes Float64 (NaN: no row), kernel_ms, unattributed_ms: float,
                 by_op_type: {op_type: ms per run} (whole model)}
    divergence  {max_abs_diff: bytes Float64 (NaN: not compared), ok: bytes Uint8 (1 ok, 0 diverged,
                 255 unknown), first_divergent: str | None}

``header`` (dict): model_class, strategy, attempts, nodes, modules, tagged, coverage_pct (the known
share: exact + pattern), seconds, onnx_path, structure_only, warnings (``result.warnings``).

``check_payload`` enforces the binary layout; the front end checks it again and shows what is wrong
instead of an empty tree.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

# Node sources, by code; 0 covers missing and unknown strings.
SOURCES = ("", "exact", "pattern", "inferred")

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


def _parent_name(name: str) -> str:
    return name.rsplit(".", 1)[0] if "." in name else ""


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
    order: list[str] = []
    for r in modules.to_dict("records"):
        name = _name(r.get("module"))
        name = "" if name is None else name
        if name in rows:
            continue
        rows[name] = r
        order.append(name)

    def ensure(name: str) -> None:
        while name not in rows:
            rows[name] = {"module": name, "module_class": "?", "executed": True}
            order.append(name)
            if name == "":
                break
            name = _parent_name(name)

    ensure("")
    for name in list(order):
        if name:
            ensure(_parent_name(name))
    for name in set(n for n in node_modules if n is not None):
        ensure(name)

    # Parent: the table's parent column when it names a known module, else the name prefix.
    parent_of: dict[str, str | None] = {}
    for name in order:
        if name == "":
            parent_of[name] = None
            continue
        p = _name(rows[name].get("parent"))
        if p is None or p not in rows or p == name:
            p = _parent_name(name)
            while p not in rows:  # cannot loop forever: "" is always present
                p = _parent_name(p)
        parent_of[name] = p

    children: dict[str, list[str]] = {name: [] for name in order}
    for name in order:  # table order (named_modules() is already pre-order) kept among siblings
        p = parent_of[name]
        if p is not None:
            children[p].append(name)

    # Iterative DFS (a deep model must not hit the recursion limit); guards against parent cycles.
    pre: list[str] = []
    seen: set[str] = set()
    stack = [""]
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        pre.append(name)
        stack.extend(reversed(children[name]))
    for name in order:  # anything cut off by a cycle hangs off the root
        if name not in seen:
            parent_of[name] = ""
            pre.append(name)
            seen.add(name)

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
    encoded = [s.encode("utf-8", "surrogatepass") for s in names]
    offsets = np.zeros(n + 1, dtype="<u4")
    if n:
        np.cumsum([len(b) for b in encoded], out=offsets[1:])
    return {
        "n": n,
        "module": module.tobytes(),
        "op": op.tobytes(),
        "ops": ops,
        "confidence": conf.astype("<f4").tobytes(),
        "source": source.tobytes(),
        "names": b"".join(encoded),
        "name_offsets": offsets.tobytes(),
    }


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
    }


def _by_module(df: pd.DataFrame, names: list[str], column: str, dtype: str, missing) -> bytes:
    values = dict(zip(df["module"].astype(str), df[column]))
    return np.array([values.get(n, missing) for n in names], dtype=dtype).tobytes()


def build_metrics(result: Any, names: list[str]) -> dict:
    """The ``metrics`` payload: the result's latency and divergence tables aligned to ``names``."""
    out: dict[str, dict] = {}
    latency = getattr(result, "latency", None)
    if latency is not None:
        out["latency"] = {col: _by_module(latency, names, col, "<f8", np.nan) for col in ("self_ms", "total_ms", "share")}
        out["latency"]["kernel_ms"] = _float(latency.attrs.get("kernel_ms"))
        out["latency"]["unattributed_ms"] = _float(latency.attrs.get("unattributed_ms"))
        by_op = latency.attrs.get("by_op_type") or {}
        out["latency"]["by_op_type"] = {str(k): v for k, v in ((k, _float(v)) for k, v in by_op.items()) if v is not None}
    divergence = getattr(result, "divergence", None)
    if divergence is not None:
        ok = divergence.assign(ok=divergence["ok"].map(lambda v: 255 if v is None or pd.isna(v) else int(bool(v))))
        out["divergence"] = {"max_abs_diff": _by_module(divergence, names, "max_abs_diff", "<f8", np.nan),
                             "ok": _by_module(ok, names, "ok", "u1", 255),
                             "first_divergent": divergence.attrs.get("first_divergent")}
    return out


def payload(result: Any, selected: str = "") -> dict:
    """Everything the front end needs for ``result``: header, tree, nodes, metrics, selected."""
    nodes_df = result.nodes if result.nodes is not None else pd.DataFrame(columns=["node", "op_type", "module"])
    modules_df = result.modules if result.modules is not None else pd.DataFrame(columns=["module"])
    node_modules = [_name(m) for m in nodes_df["module"]] if "module" in nodes_df else [None] * len(nodes_df)
    tree = build_tree(modules_df, node_modules)
    index = {name: i for i, name in enumerate(tree["names"])}
    nodes = build_nodes(nodes_df, node_modules, index)
    tagged = sum(m is not None for m in node_modules)
    header = build_header(result, len(nodes_df), tree["n"], tagged)
    return {"header": header, "tree": tree, "nodes": nodes, "metrics": build_metrics(result, tree["names"]),
            "selected": selected or ""}


# (column, bytes per item) of each binary column; a column's length is n (or n + 1) items.
_TREE_COLUMNS = {"parent": 4, "depth": 4, "size": 4, "own": 4, "total": 4, "params": 8, "executed": 1}
_NODE_COLUMNS = {"module": 4, "op": 2, "confidence": 4, "source": 1}


def check_payload(tree: dict | None = None, nodes: dict | None = None) -> None:
    """``ValueError`` naming the first part of ``tree`` / ``nodes`` that breaks the contract above."""
    if tree is not None:
        n = tree.get("n")
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"tree.n must be the number of modules (>= 1, the root), got {n!r}")
        for key in ("names", "classes"):
            if len(tree.get(key) or []) != n:
                raise ValueError(f"tree.{key} has {len(tree.get(key) or [])} entries, expected tree.n = {n}")
        for key, width in _TREE_COLUMNS.items():
            _check_column("tree", tree, key, n * width)
        parent = np.frombuffer(tree["parent"], "<i4")
        if parent[0] != -1 or (n > 1 and not (parent[1:] < np.arange(1, n)).all()) or (parent[1:] < 0).any():
            raise ValueError("tree.parent must list modules in pre-order: -1 for the root, then a parent before its children")
    if nodes is not None:
        n = nodes.get("n")
        if not isinstance(n, int) or n < 0:
            raise ValueError(f"nodes.n must be the number of nodes, got {n!r}")
        for key, width in _NODE_COLUMNS.items():
            _check_column("nodes", nodes, key, n * width)
        _check_column("nodes", nodes, "name_offsets", (n + 1) * 4)
        offsets = np.frombuffer(nodes["name_offsets"], "<u4")
        if offsets[0] != 0 or (np.diff(offsets.astype(np.int64)) < 0).any() or offsets[-1] != len(nodes.get("names", b"")):
            raise ValueError("nodes.name_offsets must rise from 0 to the byte length of nodes.names")
        op = np.frombuffer(nodes["op"], "<u2")
        if n and int(op.max()) >= len(nodes.get("ops") or []):
            raise ValueError(f"nodes.op refers to op type {int(op.max())} but nodes.ops has {len(nodes.get('ops') or [])}")
        if n and int(np.frombuffer(nodes["source"], "u1").max()) >= len(SOURCES):
            raise ValueError(f"nodes.source has a code outside 0..{len(SOURCES) - 1}")
        if tree is not None and n:
            module = np.frombuffer(nodes["module"], "<i4")
            if int(module.min()) < -1 or int(module.max()) >= tree["n"]:
                raise ValueError(f"nodes.module must index tree (-1 .. {tree['n'] - 1}), "
                                 f"got {int(module.min())} .. {int(module.max())}")


def _check_column(part: str, d: dict, key: str, expected: int) -> None:
    v = d.get(key)
    if not isinstance(v, (bytes, bytearray, memoryview)):
        raise ValueError(f"{part}.{key} must be bytes, got {type(v).__name__}")
    if len(v) != expected:
        raise ValueError(f"{part}.{key} has {len(v)} bytes, expected {expected}")
