"""``result.figure(kind)``: plotly figures of the explorer's charts, for reports and ``write_html``.

Built from the result's own tables (the nodes' sources and confidences, ``result.latency``,
``result.divergence``), so they show the same numbers as the explorer for the whole model. They take
plotly's default template (``plotly.io.templates.default``: set it to ``plotly_dark`` in a dark
notebook) unless ``theme`` says ``dark``, ``light`` or names a template; node counts tick in integers.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..errors import MissingDependency, NotComputed, UnknownChoice
from ..hierarchy import module_label

KINDS = ("coverage", "confidence", "latency", "divergence", "compare")
_SOURCE_ORDER = ["exact", "pattern", "inferred", "unknown", "untagged"]
_COLORS = {"exact": "#1976d2", "pattern": "#2e9e5b", "inferred": "#f0a020", "unknown": "#8a8a8a",
           "untagged": "#e4572e"}
TOP_MODULES = 30
THEMES = {"dark": "plotly_dark", "light": "plotly_white"}
# Up to this many, count axes tick every 1; above it plotly's own steps are whole numbers already.
_UNIT_TICKS_UP_TO = 10


def figure(result: Any, kind: str = "coverage", theme: str | None = None):
    """See ``ExportResult.figure``."""
    try:
        import plotly.graph_objects as go
        import plotly.io as pio
    except ImportError:  # plotly comes with the notebook extra
        raise MissingDependency.of("result.figure", "plotly", "notebook") from None
    if kind not in KINDS:
        raise UnknownChoice.of("figure kind", kind, KINDS)
    template = THEMES.get(theme, theme)
    if template is not None and template not in pio.templates:
        raise UnknownChoice.of("figure theme", theme, [*THEMES, *pio.templates])
    fig = {"coverage": _coverage, "confidence": _confidence, "latency": _latency,
           "divergence": _divergence, "compare": _compare}[kind](result, go)
    if template is not None:  # else plotly's default template, applied when the figure was made
        fig.update_layout(template=template)
    return fig


def _sources(nodes: pd.DataFrame) -> pd.Series:
    src = nodes["source"].astype(object) if "source" in nodes else pd.Series(None, index=nodes.index, dtype=object)
    src = src.where(src.isin(["exact", "pattern", "inferred"]), "unknown")
    return src.where(nodes["module"].notna(), "untagged")


def _layout(fig, title: str, **kw):
    fig.update_layout(title=title, margin={"l": 60, "r": 20, "t": 50, "b": 60}, **kw)
    return fig


def _count_axis(title: str, largest: float) -> dict:
    """An axis of node counts: whole numbers only (no 0.5 ticks), thousands separated."""
    axis = {"title": title, "tickformat": ",d", "rangemode": "tozero"}
    if largest <= _UNIT_TICKS_UP_TO:
        axis.update(tick0=0, dtick=1)
    return axis


def _coverage(result, go):
    nodes = result.nodes
    table = pd.crosstab(nodes["op_type"].astype(str), _sources(nodes))
    table = table.reindex(columns=[c for c in _SOURCE_ORDER if c in table.columns])
    table = table.loc[table.sum(axis=1).sort_values(ascending=False).index]
    fig = go.Figure([go.Bar(name=c, x=list(table.index), y=table[c].tolist(), marker_color=_COLORS[c])
                     for c in table.columns])
    return _layout(fig, f"Nodes by op type and source (known {result.coverage_pct:.1f}%)", barmode="stack",
                   xaxis_title="op type", yaxis=_count_axis("nodes", table.sum(axis=1).max() if len(table) else 0))


def _confidence(result, go):
    conf = pd.to_numeric(result.nodes["confidence"], errors="coerce").dropna()
    if len(conf) and len(conf) == len(result.nodes) and (conf == 1.0).all() and \
            (result.nodes["source"].astype(str) == "exact").all():
        # One bar at 1.0 says less than a sentence: every node is PyTorch's own record.
        fig = go.Figure()
        fig.add_annotation(text=f"all {len(conf):,d} nodes exact (confidence 1.0)", showarrow=False,
                           xref="paper", yref="paper", x=0.5, y=0.5, font={"size": 16})
        return _layout(fig, "Tag confidence", xaxis={"visible": False}, yaxis={"visible": False})
    counts, edges = np.histogram(conf.clip(0, 1), bins=20, range=(0, 1))
    fig = go.Figure(go.Bar(x=(edges[:-1] + edges[1:]) / 2, y=counts, width=0.048, marker_color=_COLORS["exact"]))
    missing = int(result.nodes["confidence"].isna().sum())
    return _layout(fig, "Tag confidence" + (f" ({missing} nodes without)" if missing else ""),
                   xaxis={"title": "confidence", "range": [0, 1]}, yaxis=_count_axis("nodes", counts.max(initial=0)))


def _needs(result, attr: str) -> pd.DataFrame:
    df = getattr(result, attr, None)
    if df is None or len(df) == 0:
        raise NotComputed.of(attr)
    return df


def _latency(result, go):
    df = _needs(result, "latency")
    top = df.dropna(subset=["self_ms"]).sort_values("self_ms", ascending=False).head(TOP_MODULES)
    labels = [module_label(m, result.model_class) for m in top["module"].astype(str)]
    fig = go.Figure(go.Bar(x=top["self_ms"].tolist()[::-1], y=labels[::-1], orientation="h",
                           marker_color=_COLORS["exact"], customdata=top["module_class"].astype(str).tolist()[::-1],
                           hovertemplate="%{y} (%{customdata}): %{x:.3f} ms<extra></extra>"))
    kernel = df.attrs.get("kernel_ms")
    title = f"Kernel time by module (self, ms per run; top {len(top)})"
    if kernel:
        title += f", total {kernel:.2f} ms"
    return _layout(fig, title, xaxis_title="ms per run", height=max(300, 22 * len(top) + 120))


def _divergence(result, go):
    df = _needs(result, "divergence").dropna(subset=["max_abs_diff"])
    labels = [module_label(m, result.model_class) for m in df["module"].astype(str)]
    colors = [_COLORS["untagged"] if ok is False or ok == 0 else _COLORS["exact"] for ok in df["ok"]]
    fig = go.Figure(go.Bar(x=labels, y=df["max_abs_diff"].tolist(), marker_color=colors))
    first = df.attrs.get("first_divergent") or getattr(result.divergence, "attrs", {}).get("first_divergent")
    title = "Max abs diff by module (execution order)" + (f"; first divergent: {first}" if first else "")
    return _layout(fig, title, yaxis={"title": "max abs diff", "type": "log"}, xaxis_title="module")


def _compare(result, go):
    """Two panels by module (execution order, the TOP_MODULES slowest in a): kernel ms of a and b side
    by side, and b's own SQNR (dB) with the threshold; the first divergent module in red."""
    from plotly.subplots import make_subplots

    df = _needs(result, "comparison")
    top = df.nlargest(TOP_MODULES, "ms_a").sort_index() if len(df) > TOP_MODULES else df
    labels = [module_label(m, result.model_class) for m in top["module"].astype(str)]
    first = df.attrs.get("first_divergent")
    threshold = df.attrs.get("sqnr_threshold_db")
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=("kernel ms per run (subtree)", "own SQNR, dB (higher is closer to a)"))
    fig.add_trace(go.Bar(name="a", x=labels, y=top["ms_a"].tolist(), marker_color=_COLORS["exact"]), row=1, col=1)
    fig.add_trace(go.Bar(name="b", x=labels, y=top["ms_b"].tolist(), marker_color=_COLORS["inferred"]), row=1, col=1)
    own = top["own_sqnr_db"].replace([np.inf], np.nan)
    colors = [_COLORS["untagged"] if m == first else _COLORS["pattern"] for m in top["module"]]
    fig.add_trace(go.Bar(name="own SQNR", x=labels, y=own.tolist(), marker_color=colors, showlegend=False), row=2, col=1)
    if threshold is not None:
        fig.add_hline(y=threshold, line_dash="dash", row=2, col=1)
    title = "a vs b by module" + (f"; first divergent: {first}" if first else "; no module below the SQNR threshold")
    return _layout(fig, title, barmode="group", height=600)
