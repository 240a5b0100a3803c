"""Google Model Explorer: node-data overlays (its ``GraphNodeData`` JSON, keyed by node name).

Model Explorer's ONNX adapter names each node by its ONNX name and nests nodes by their
``namespace`` metadata prop, which every strategy writes (``tagging.module_namespace``); an
overlay colours the nodes by a value and sums it up the namespace groups.
"""
from __future__ import annotations

import json
import math
from os import PathLike

from .errors import NotComputed, UnknownChoice
from .files import check_output, publish, staging

METRICS = ("latency", "divergence")
# Low values pale, high values red.
_GRADIENT = [{"stop": 0, "bgColor": "#fff7ec"}, {"stop": 0.5, "bgColor": "#fc8d59"}, {"stop": 1, "bgColor": "#b30000"}]


def overlay(result, metric: str) -> dict:
    """The ``GraphNodeData`` document for ``metric``: ``latency`` (kernel ms per run carried by each
    exported node, from ``result.profile()``) or ``divergence`` (each node's module's max abs diff,
    from ``result.validate(per_module=True)``)."""
    if metric == "latency":
        if result.latency is None:
            raise NotComputed.of("latency")
        values = result.latency.attrs.get("by_node", {})
    elif metric == "divergence":
        if result.divergence is None:
            raise NotComputed.of("divergence")
        diff = dict(zip(result.divergence["module"], result.divergence["max_abs_diff"]))
        values = {str(node): diff.get(module) for node, module in zip(result.nodes["node"], result.nodes["module"])}
    else:
        raise UnknownChoice.of("metric", metric, METRICS)
    results = {node: {"value": float(v)} for node, v in values.items()
               if node and v is not None and not math.isnan(float(v))}
    return {"results": results, "gradient": _GRADIENT}


def write_overlay(result, metric: str, path: str | PathLike) -> dict:
    """Write ``overlay(result, metric)`` to ``path`` (staged beside it, then moved into place)."""
    doc = overlay(result, metric)
    out = check_output(path)
    with staging(out.parent) as tmp:
        staged = tmp / out.name
        staged.write_text(json.dumps(doc), encoding="utf-8")
        publish([(staged, out)])
    return doc
