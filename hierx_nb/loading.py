"""``load``: read a tagged ONNX file (and its sidecar, if present) back into an ExportResult."""
from __future__ import annotations

from os import PathLike
from pathlib import Path

import onnx_ir as ir
import pandas as pd

from . import sidecar
from .attribution import walk
from .errors import Attempt, NoSuchFile, NotOnnxFile, NotTagged
from .graph_io import io_frame
from .result import ExportResult
from .tables import coverage_frame, folded_from_props, modules_frame, nodes_frame
from .tagging import CONFIDENCE_KEY, FUSED_KEY, MODULE_KEY, SOURCE_KEY, STRATEGY_KEY, STRUCTURE_ONLY_KEY, TAG_KEY


def load(path: str | PathLike) -> ExportResult:
    """The tables of a file written by ``hierx_nb.export``. ``NoSuchFile``, ``NotOnnxFile`` (or an
    unreadable sidecar), ``NotTagged`` (no hierx tags).

    Node rows come from the file's own tags; the module tree (with modules that produced no node,
    parameters and classes) from the sidecar when one is beside it, else from the tags; ``latency``
    and ``divergence`` from the sidecar when they were measured on this file (or its export).
    """
    path = Path(path)
    model = read_model(path)
    side_path = sidecar.sidecar_path_for(path)
    side = None
    if side_path.is_file():
        try:
            side = sidecar.read(side_path)
        except (ValueError, OSError) as e:
            raise NotOnnxFile(f"sidecar {str(side_path)!r} is unreadable: {e}", hint="") from None
    if side is None:
        return result_of(model, path)
    m = side["modules"]
    infos = [{"module": m["module"][i], "module_class": m["module_class"][i], "parent": m["parent"][i],
              "depth": m["depth"][i], "params": m["params"][i], "executed": m["executed"][i]}
             for i in range(len(m["module"]))]
    attempts = [Attempt(**{**a, "switched": tuple(a.get("switched", ()))}) for a in side.get("attempts", [])]
    result = result_of(model, path, infos=infos, model_class=side["model_class"], attempts=attempts,
                       seconds=float(side.get("seconds", 0.0)), warnings=[str(w) for w in side.get("warnings", [])],
                       sidecar_path=side_path)
    for name, df in sidecar.metric_frames(side).items():
        setattr(result, name, df)  # profile() / validate(per_module=True) measured earlier
    return result


def read_model(path: Path) -> ir.Model:
    """The ONNX file at ``path`` through onnx-ir (external data stays on disk: only the metadata is
    read until weights are asked for). ``NoSuchFile``, ``NotOnnxFile``."""
    if not path.is_file():
        raise NoSuchFile(f"no such file: {str(path)!r}")
    try:
        model = ir.load(path)
    except Exception as e:
        raise NotOnnxFile(f"{str(path)!r} is not a readable ONNX file ({type(e).__name__})") from None
    if not len(model.graph) and not model.graph.inputs:
        raise NotOnnxFile(f"{str(path)!r} is not a readable ONNX file (no graph)")
    return model


def result_of(model: ir.Model, path: Path | None, *, infos: list[dict] | None = None, model_class: str | None = None,
              attempts: list[Attempt] = (), seconds: float = 0.0, warnings: list[str] = (),
              sidecar_path: Path | None = None) -> ExportResult:
    """The result tables of a tagged model, read from its nodes' tags (``NotTagged`` if none has
    one); the module tree from ``infos`` (module, module_class, parent, depth, params, executed)
    when given, else implied by the tags."""
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
        conf = meta.get(CONFIDENCE_KEY)
        rows.append((node.name or "", node.op_type, module, cls, tag, float(conf) if conf else 0.0, meta.get(SOURCE_KEY, "")))
    if rows and all(r[2] is None for r in rows):
        where = repr(str(path)) if path is not None else "the model"
        raise NotTagged(f"{where} has no hierx tags")
    nodes = nodes_frame(rows)
    folded = folded_from_props(fused_props)
    model_meta = model.metadata_props
    if infos is not None:
        cls_of = {i["module"]: i["module_class"] for i in infos}
        nodes["module_class"] = nodes["module"].map(cls_of).astype("category")
    else:
        infos = _infos_from_tags(nodes, classes, folded)
        model_class = classes.get("", "model")
    modules = modules_frame(infos, nodes, folded)
    coverage, pct = coverage_frame(nodes)
    return ExportResult(model_class=model_class or "model", strategy=model_meta.get(STRATEGY_KEY, "unknown"),
                        attempts=list(attempts), nodes=nodes, modules=modules, coverage=coverage, coverage_pct=pct,
                        seconds=seconds, onnx_path=path, sidecar_path=sidecar_path,
                        structure_only=model_meta.get(STRUCTURE_ONLY_KEY) == "true", warnings=list(warnings),
                        io=io_frame(model))


def _infos_from_tags(nodes: pd.DataFrame, classes: dict[str, str], folded: dict[str, str]) -> list[dict]:
    """The module tree implied by the modules named in the tags, folded into nodes (``hierx.fused``),
    and their ancestors."""
    names = {""}
    for module in [*nodes["module"].dropna().unique(), *folded]:
        parts = module.split(".") if module else []
        for i in range(len(parts) + 1):
            names.add(".".join(parts[:i]))
    infos = []
    for name in sorted(names, key=lambda n: (n.count(".") if n else -1, n)):
        infos.append({"module": name, "module_class": classes.get(name, ""),
                      "parent": None if name == "" else name.rpartition(".")[0], "depth": 0 if not name else name.count(".") + 1,
                      "params": 0, "executed": None})
    return infos
