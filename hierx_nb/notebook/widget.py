"""HierxExplorer: an anywidget that explores an ExportResult (module tree, coverage, confidences, nodes).

Python -> JS data is columnar and binary so a 15k-node / 1k-module export stays around 1 MB:

``tree`` (Dict), one entry per module in pre-order (a parent precedes its subtree, so a module's
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

``nodes`` (Dict), one entry per ONNX node in graph order:

    n            int    number of nodes
    module       bytes  Int32, index into ``tree`` (-1: untagged)
    op           bytes  Uint16, index into ``ops``
    ops          list   op-type vocabulary (str)
    confidence   bytes  Float32 (NaN when unknown)
    names        bytes  UTF-8 node names, concatenated
    name_offsets bytes  Uint32, n + 1 byte offsets into ``names`` (name i = names[off[i]:off[i+1]])

``metrics`` (Dict), per-module answers in ``tree`` order (absent keys: not measured yet):

    latency     {self_ms, total_ms, share: bytes Float64 (NaN: no row), kernel_ms, unattributed_ms: float}
    divergence  {max_abs_diff: bytes Float64 (NaN: not compared), ok: bytes Uint8 (1 ok, 0 diverged,
                 255 unknown), first_divergent: str | None}

``header["warnings"]`` lists ``result.warnings``.

``selected`` (Unicode) is the selected module's qualified name ("" = the whole model); synced both
ways, Python is the source of truth (an unknown name raises ``traitlets.TraitError``).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import anywidget
import numpy as np
import pandas as pd
import traitlets

ESM_PATH = Path(__file__).parent / "static" / "widget.js"

_BUILD_HINT = (
    "the hierx_nb widget front end is not built: {path} is missing. Build it once with "
    "`cd js && npm ci && npm run build` from the hierx_nb source tree (or run the project's setup "
    "script), then restart the kernel."
)


def _esm_source() -> str:
    if not ESM_PATH.is_file():
        raise FileNotFoundError(_BUILD_HINT.format(path=ESM_PATH))
    return ESM_PATH.read_text(encoding="utf-8")


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


def _int(value: Any, default: int = 0) -> int:
    try:
        if value is None or pd.isna(value):
            return default
        return int(value)
    except (TypeError, ValueError):
        return default


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
        "names": b"".join(encoded),
        "name_offsets": offsets.tobytes(),
    }


def build_header(result: Any, n_nodes: int, n_modules: int, n_tagged: int) -> dict:
    attempts = []
    for a in getattr(result, "attempts", None) or []:
        d = a.as_dict() if hasattr(a, "as_dict") else dict(a)
        attempts.append({"name": str(d.get("name", "")), "ok": bool(d.get("ok")),
                         "reason": str(d.get("reason") or ""), "seconds": _float(d.get("seconds")),
                         "skipped": bool(d.get("skipped"))})
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
    divergence = getattr(result, "divergence", None)
    if divergence is not None:
        ok = divergence.assign(ok=divergence["ok"].map(lambda v: 255 if v is None or pd.isna(v) else int(bool(v))))
        out["divergence"] = {"max_abs_diff": _by_module(divergence, names, "max_abs_diff", "<f8", np.nan),
                             "ok": _by_module(ok, names, "ok", "u1", 255),
                             "first_divergent": divergence.attrs.get("first_divergent")}
    return out


class HierxExplorer(anywidget.AnyWidget):
    """Interactive explorer of an ``ExportResult``: module tree, coverage, confidence, node table.

    Build it with ``HierxExplorer.from_result(result)`` (or ``result.widget``). ``explorer.selected``
    is the selected module's qualified name ("" = the whole model); set it to move the selection.
    """

    header = traitlets.Dict().tag(sync=True)
    tree = traitlets.Dict().tag(sync=True)
    nodes = traitlets.Dict().tag(sync=True)
    metrics = traitlets.Dict().tag(sync=True)
    selected = traitlets.Unicode("").tag(sync=True)

    def __init__(self, **kwargs: Any) -> None:
        # The bundle is read here, not at class definition: importing this module must not fail
        # when the front end is not built; creating a widget then fails with how to build it.
        self._esm = _esm_source()
        self._module_names: set[str] | None = None
        super().__init__(**kwargs)

    @classmethod
    def from_result(cls, result: Any, selected: str = "") -> "HierxExplorer":
        nodes_df = result.nodes if result.nodes is not None else pd.DataFrame(columns=["node", "op_type", "module"])
        modules_df = result.modules if result.modules is not None else pd.DataFrame(columns=["module"])
        node_modules = [_name(m) for m in nodes_df["module"]] if "module" in nodes_df else [None] * len(nodes_df)
        tree = build_tree(modules_df, node_modules)
        index = {name: i for i, name in enumerate(tree["names"])}
        nodes = build_nodes(nodes_df, node_modules, index)
        tagged = sum(m is not None for m in node_modules)
        header = build_header(result, len(nodes_df), tree["n"], tagged)
        return cls(header=header, tree=tree, nodes=nodes, metrics=build_metrics(result, tree["names"]),
                   selected=selected or "")

    def refresh_metrics(self, result: Any) -> None:
        """Re-read ``result``'s latency, divergence and warnings (after ``profile()`` or ``validate()``)."""
        self.metrics = build_metrics(result, self.tree["names"])
        self.header = {**self.header, "warnings": [str(w) for w in getattr(result, "warnings", None) or []]}

    @traitlets.validate("tree")
    def _reset_names(self, proposal):
        self._module_names = None
        return proposal["value"]

    @traitlets.validate("selected")
    def _check_selected(self, proposal) -> str:
        value = proposal["value"]
        value = "" if value is None else str(value)
        if value == "":
            return value
        if self._module_names is None:
            self._module_names = set(self.tree.get("names", []))
        if value not in self._module_names:
            close = sorted(n for n in self._module_names if n and (value in n or n in value))[:5]
            hint = f"; did you mean one of {close}?" if close else ""
            raise traitlets.TraitError(
                f"no module named {value!r} in this model: `selected` takes a qualified name as in "
                f"model.named_modules() (see result.modules['module']), or '' for the whole model{hint}")
        return value

    @property
    def payload_bytes(self) -> int:
        """Approximate size of the synced data (binary buffers + JSON strings), for budgeting."""
        total = 0
        for trait in ("header", "tree", "nodes"):
            for v in getattr(self, trait).values():
                if isinstance(v, (bytes, bytearray, memoryview)):
                    total += len(v)
                elif isinstance(v, list):
                    total += sum(len(str(x).encode("utf-8", "surrogatepass")) + 3 for x in v)
                else:
                    total += len(str(v))
        return total
