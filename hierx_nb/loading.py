"""Reading a tagged ONNX model's tables back: nodes, modules and coverage from its tags (and its
sidecar, when one is beside the file). ``result.result_of`` and ``result.load`` wrap them in an
ExportResult; this module knows nothing of it, so the answers (profile, extract) can read any
tagged model without the result layer."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import onnx_ir as ir
import pandas as pd

from . import sidecar
from .attribution import walk
from .errors import Attempt, NoSuchFile, NotOnnxFile, NotTagged
from .graph_io import IO_COLUMNS, io_frame
from .hierarchy import NameTree
from .tables import coverage_frame, folded_from_props, modules_frame, nodes_frame
from .tagging import CONFIDENCE_KEY, FUSED_KEY, MODULE_KEY, SOURCE_KEY, STRATEGY_KEY, STRUCTURE_ONLY_KEY, TAG_KEY


@dataclass
class Tables:
    """What a tagged model says of itself: the ``ExportResult`` fields a model can give."""

    model_class: str
    strategy: str
    nodes: pd.DataFrame
    modules: pd.DataFrame
    coverage: pd.DataFrame
    coverage_pct: float
    structure_only: bool
    io: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=IO_COLUMNS))


@dataclass
class Sidecar:
    """What a file's sidecar adds to its tables (``sidecar.read``'s document, unpacked)."""

    path: Path
    infos: list[dict]
    model_class: str
    attempts: list[Attempt]
    seconds: float
    warnings: list[str]
    # Measured earlier on this file (or its export): profile(), validate(per_module=True).
    metrics: dict[str, pd.DataFrame]


def read_model(path: Path) -> ir.Model:
    """The ONNX file at ``path`` through onnx-ir (external data stays on disk: only the metadata is
    read until weights are asked for). ``NoSuchFile``, ``NotOnnxFile``."""
    path = Path(path)
    if not path.is_file():
        raise NoSuchFile(f"no such file: {str(path)!r}")
    try:
        model = ir.load(path)
    except Exception as e:
        raise NotOnnxFile(f"{str(path)!r} is not a readable ONNX file ({type(e).__name__})") from None
    if not len(model.graph) and not model.graph.inputs:
        raise NotOnnxFile(f"{str(path)!r} is not a readable ONNX file (no graph)")
    return model


def _confidence(text: str | None, node: ir.Node, path: Path | None) -> float:
    """A node's ``hierx.confidence`` as a number in [0, 1] (0 when absent); ``NotTagged`` otherwise."""
    if not text:
        return 0.0
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 <= value <= 1.0:
        where = repr(str(path)) if path is not None else "the model"
        raise NotTagged(f"{where}: node {node.name!r} has {CONFIDENCE_KEY}={text!r}, not a confidence in [0, 1]; "
                        "tag the file again with hierx_nb", hint="")
    return value


def read_sidecar(path: Path) -> Sidecar | None:
    """The sidecar beside the ONNX file at ``path`` (None when there is none); ``NotOnnxFile`` when unreadable."""
    side_path = sidecar.sidecar_path_for(Path(path))
    if not side_path.is_file():
        return None
    try:
        side = sidecar.read(side_path)
    except (ValueError, OSError) as e:
        raise NotOnnxFile(f"sidecar {str(side_path)!r} is unreadable: {e}", hint="") from None
    m = side["modules"]
    infos = [{"module": m["module"][i], "module_class": m["module_class"][i], "parent": m["parent"][i],
              "depth": m["depth"][i], "params": m["params"][i], "executed": m["executed"][i]}
             for i in range(len(m["module"]))]
    attempts = [Attempt(**{**a, "switched": tuple(a.get("switched", ()))}) for a in side.get("attempts", [])]
    return Sidecar(side_path, infos, side["model_class"], attempts, float(side.get("seconds", 0.0)),
                   [str(w) for w in side.get("warnings", [])], sidecar.metric_frames(side))


def tables(model: ir.Model, path: Path | None = None, *, infos: list[dict] | None = None,
           model_class: str | None = None) -> Tables:
    """The tables of a tagged model (any model whose nodes carry ``hierx.module``: exported, or
    tagged later), read from its nodes' tags (``NotTagged`` if none has one; ``path`` names it in
    the message); the module tree from ``infos`` (module, module_class, parent, depth, params,
    executed) when given, else implied by the tags."""
    rows = []
    classes: dict[str, str] = {}
    fused_props = []
    for node, _ in walk(model):
        meta = node.metadata_props
        if FUSED_KEY in meta:
            fused_props.append(meta)
        module = meta.get(MODULE_KEY)
        tag = meta.get(TAG_KEY, node.doc_string or None)
        cls = tag.rsplit("/", 1)[-1].split(":")[0].split(".")[0] if tag else None
        if module is not None and cls:
            classes.setdefault(module, cls)
        rows.append((node.name or "", node.op_type, module, cls, tag, _confidence(meta.get(CONFIDENCE_KEY), node, path),
                     meta.get(SOURCE_KEY, "")))
    if rows and all(r[2] is None for r in rows):
        where = repr(str(path)) if path is not None else "the model"
        raise NotTagged(f"{where} has no hierx tags")
    nodes = nodes_frame(rows)
    folded = folded_from_props(fused_props)
    if infos is not None:
        cls_of = {i["module"]: i["module_class"] for i in infos}
        nodes["module_class"] = nodes["module"].map(cls_of).astype("category")
    else:
        infos = _infos_from_tags(nodes, classes, folded)
        model_class = model_class or classes.get("", "model")
    coverage, pct = coverage_frame(nodes)
    meta = model.metadata_props
    return Tables(model_class=model_class or "model", strategy=meta.get(STRATEGY_KEY, "unknown"), nodes=nodes,
                  modules=modules_frame(infos, nodes, folded), coverage=coverage, coverage_pct=pct,
                  structure_only=meta.get(STRUCTURE_ONLY_KEY) == "true", io=io_frame(model))


def _infos_from_tags(nodes: pd.DataFrame, classes: dict[str, str], folded: dict[str, str]) -> list[dict]:
    """The module tree implied by the modules named in the tags, folded into nodes (``hierx.fused``),
    and their ancestors."""
    tree = NameTree([*nodes["module"].dropna().unique(), *folded])
    return [{"module": name, "module_class": classes.get(name, ""), "parent": tree.parent[name],
             "depth": tree.depth[name], "params": 0, "executed": None}
            for name in sorted(tree.names, key=lambda n: (tree.depth[n], n))]
