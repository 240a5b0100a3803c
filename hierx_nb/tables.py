"""The result tables (nodes, modules, coverage) as pandas DataFrames."""
from __future__ import annotations

import pandas as pd

from .attribution import EXACT, INFERRED, PATTERN
from .hierarchy import NameTree
from .tagging import MODULE_KEY, confidence_text, fused_modules

NODE_COLUMNS = ["node", "op_type", "module", "module_class", "tag", "confidence", "source"]
MODULE_COLUMNS = ["module", "module_class", "parent", "depth", "own_nodes", "total_nodes", "params", "executed",
                  "folded_into"]
COVERAGE_COLUMNS = ["op_type", "nodes", "exact", "pattern", "inferred", "pct"]


def node_rows(attrs: dict, tags: dict[str, str], tree) -> list[tuple]:
    """One ``NODE_COLUMNS`` row per attributed node, in the attribution's order; the confidence as
    written in the file, so an exported result and the same file loaded agree."""
    return [(node.name or "", node.op_type, a.module, tree.infos[a.module].cls, tags[a.module],
             float(confidence_text(a.confidence)), a.source) for node, a in attrs.items()]


def folded_from_props(props: list[dict[str, str]]) -> dict[str, str]:
    """The module each folded module went into, from nodes' metadata props (``hierx.fused``)."""
    return {f: p.get(MODULE_KEY, "") for p in props for f in fused_modules(p)}


def nodes_frame(rows: list[tuple]) -> pd.DataFrame:
    df = pd.DataFrame.from_records(rows, columns=NODE_COLUMNS)
    df["confidence"] = df["confidence"].astype("float64")
    for col in ("op_type", "module_class", "source"):
        df[col] = df[col].astype("category")
    return df


def modules_frame(infos: list[dict], nodes: pd.DataFrame, folded: dict[str, str] | None = None) -> pd.DataFrame:
    """``infos``: dicts with module, module_class, parent, depth, params, executed (None: unknown).

    Node counts come from ``nodes``; a module whose execution is unknown counts as executed when
    its subtree produced nodes. ``folded``: the module an optimizer folded each module into (the
    nodes' ``hierx.fused`` props), shown as ``folded_into`` ("" for the others).
    """
    own = nodes["module"].value_counts() if len(nodes) else pd.Series(dtype="int64")
    df = pd.DataFrame.from_records(infos, columns=["module", "module_class", "parent", "depth", "params", "executed"])
    df["own_nodes"] = df["module"].map(own).fillna(0).astype("int64")
    # A node's module missing from the table (a file tagged from another tree) counts for its nearest listed ancestor.
    total = NameTree(df["module"]).totals({m: int(c) for m, c in own.items()})
    df["total_nodes"] = df["module"].map(total).astype("int64")
    unknown = df["executed"].isna()
    df["executed"] = df["executed"].where(~unknown, df["total_nodes"] > 0).astype(bool)
    df["module_class"] = df["module_class"].astype("category")
    df["depth"] = df["depth"].astype("int64")
    df["params"] = df["params"].astype("int64")
    df["folded_into"] = df["module"].map(folded or {}).fillna("").astype(object)
    return df[MODULE_COLUMNS]


def coverage_frame(nodes: pd.DataFrame) -> tuple[pd.DataFrame, float]:
    """Per op type: nodes, and how many of them are ``exact`` (PyTorch's own record), ``pattern``
    (an FX match) or ``inferred`` (from graph neighbours); ``pct`` the known share (exact + pattern).
    Also the overall known percentage: inference fills in every node, so it is not counted as known."""
    source = nodes["source"].astype(str)
    by = pd.DataFrame({"op_type": nodes["op_type"].astype(str),
                       **{s: source == s for s in (EXACT, PATTERN, INFERRED)}})
    g = by.groupby("op_type", sort=True).agg(nodes=("op_type", "size"), **{s: (s, "sum") for s in (EXACT, PATTERN, INFERRED)})
    g = g.reset_index()
    g[[EXACT, PATTERN, INFERRED]] = g[[EXACT, PATTERN, INFERRED]].astype("int64")
    g["pct"] = (100.0 * (g[EXACT] + g[PATTERN]) / g["nodes"]).round(2)
    g = g.sort_values(["nodes", "op_type"], ascending=[False, True]).reset_index(drop=True)
    g["op_type"] = g["op_type"].astype("category")
    known = int(by[EXACT].sum() + by[PATTERN].sum())
    overall = 100.0 * known / len(nodes) if len(nodes) else 0.0
    return g[COVERAGE_COLUMNS], overall
