"""``retag``: module tags carried onto a file made from a tagged one (ORT-optimized, slimmed,
simplified, fp16, quantized), by the rules of ``placement``; only metadata is added."""
from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import onnx
import onnx_ir as ir

from . import files, sidecar
from .errors import NotMadeFrom, UnloadableModel, UntaggedSource
from .files import EXTERNAL_DATA_THRESHOLD
from .loading import read_model
from .placement import INSERTED_OPS, RULES, place, same_shape
from .runtime import load_error, weights_as_inputs
from .tagging import (
    CONFIDENCE_KEY,
    FUSED_KEY,
    MODULE_KEY,
    NAMESPACE_KEY,
    RULE_KEY,
    SOURCE_KEY,
    STRATEGY_KEY,
    STRUCTURE_ONLY_KEY,
    TAG_KEY,
    VERSION_KEY,
    confidence_text,
    fused_text,
)
from .version import __version__

# Precision of each rule: how often the module it names is the one the transform itself kept on the
# node (measured by benchmarks/retag_precision.py: tiny BERT, ViT and CNN through every transform of
# the README's table, the kept tags hidden before retagging; the README gives the counts). A fused
# node is right when the kept module is one of those it names; an inserted node when the kept module
# of the node it serves is its module. Rules with too few nodes to measure are marked so.
CONFIDENCE = {
    "carried": 1.0,          # 3276 nodes
    "replaced": 1.0,         # 361 nodes
    "fused": 1.0,            # 47 nodes
    "inserted": 0.64,        # 455 nodes: judged against the tensor a Q/DQ is named after (its producer's module)
    "helper": 1.0,           # 8 nodes only
    "subgraph owner": 0.9,   # not measured: no transform of the table leaves If/Loop bodies
    "no neighbour": 0.1,     # not measured: the root, for nodes with nothing placed around them
}
# Below this share of the transformed file's own nodes (inserted Cast/Q/DQ aside) traced back to the
# source (carried, replaced or fused), the source is not the file it was made from (README: measured
# shares of real transforms and of wrong pairings).
MIN_TRACED = 0.7
_PROPS = (MODULE_KEY, TAG_KEY, CONFIDENCE_KEY, SOURCE_KEY, NAMESPACE_KEY, FUSED_KEY, RULE_KEY)


def tag_from(model: ir.Model, path: Path | None, src_model: ir.Model, src) -> None:
    """Tag ``model`` (read from ``path``, or in memory when None) in place from the tagged
    ``src_model`` (``src``: its result, named in messages), by the rules of ``placement``: metadata
    only. ``UntaggedSource``, ``NotMadeFrom``, ``UnloadableModel`` (see ``hierx_nb.retag``)."""
    if not any(MODULE_KEY in n.metadata_props for n in src_model.graph):
        raise UntaggedSource(f"the source {_where(src)} has no hierx tags", hint="give the tagged file hierx_nb.export wrote",
                             shell_hint="give --from the tagged file hierx export wrote")
    check_loads(model, path)
    placements = place(src_model, model)
    _check_made_from(src_model, model, placements, src)
    _write_tags(model, src_model, placements)
    for key in (STRATEGY_KEY, VERSION_KEY, STRUCTURE_ONLY_KEY):
        if key in src_model.metadata_props:
            model.metadata_props[key] = src_model.metadata_props[key]


def untagged_source(path) -> UntaggedSource:
    """The error for a source file without hierx tags."""
    return UntaggedSource(f"the source {str(path)!r} has no hierx tags", hint="give the tagged file hierx_nb.export wrote",
                          shell_hint="give --from the tagged file hierx export wrote")


def check_loads(model: ir.Model, path: Path | None) -> None:
    """``UnloadableModel`` when ONNX Runtime cannot load the model (no graph optimization: only
    loading). First its structure alone, weights taken as typed inputs (ORT checks the graph's types
    and finds a kernel for every node without reading the weights); only when that fails, the whole
    file, so a kernel that needs a constant weight is not taken for a broken file."""
    with weights_as_inputs(model):
        structure = ir.serde.serialize_model(model).SerializeToString()
    if load_error(structure) is None:
        return
    first = load_error(str(path) if path is not None else ir.serde.serialize_model(model).SerializeToString())
    if first is not None:
        where = repr(str(path)) if path is not None else "the transformed model"
        raise UnloadableModel(f"ONNX Runtime cannot load {where} ({first})",
                              hint="give a file ONNX Runtime runs (the transform that wrote it broke it)")


def _where(result) -> str:
    return repr(str(result.onnx_path)) if result.onnx_path is not None else "(in memory)"


def transformed_model(transformed) -> tuple[ir.Model, Path | None]:
    """``transformed`` (a path, ``onnx.ModelProto`` or ``onnx_ir.Model``) as an onnx-ir model and its path."""
    if isinstance(transformed, ir.Model):
        return transformed, None
    if isinstance(transformed, onnx.ModelProto):
        return ir.serde.deserialize_model(transformed), None
    if isinstance(transformed, (str, os.PathLike)):
        path = Path(transformed)
        return read_model(path), path
    raise TypeError(f"transformed must be a path, onnx.ModelProto or onnx_ir.Model, got {type(transformed).__name__}")


def traced_share(placements) -> float:
    """Share of the nodes (inserted Cast/Q/DQ aside) placed through the source's values or names."""
    own = [p for n, p in placements.items() if n.op_type not in INSERTED_OPS]
    if not own:
        return 1.0
    return sum(p.rule in ("carried", "replaced", "fused") for p in own) / len(own)


def _check_made_from(src_model: ir.Model, model: ir.Model, placements, src) -> None:
    """``NotMadeFrom`` unless the file looks made from the source: its inputs and outputs are the
    source's (by name, with compatible shapes; transforms may drop an unused input or change a
    dtype), weights it shares by name have the source's shapes, and enough of its nodes trace back."""
    where = _where(src)

    def fail(why: str):
        raise NotMadeFrom(f"the file was not made from the source {where}: {why}",
                          hint="give the tagged file it was made from", shell_hint="give --from the tagged file it was made from")

    src_io = {v.name: v for v in (*src_model.graph.inputs, *src_model.graph.outputs)}
    for v in (*model.graph.inputs, *model.graph.outputs):
        if v.name in src_model.graph.initializers:
            continue
        if v.name not in src_io:
            fail(f"its {'input' if v.is_graph_input() else 'output'} {v.name!r} is not one of the source's")
        if not same_shape(v, src_io[v.name]):
            fail(f"{v.name!r} has shape {v.shape} there, {src_io[v.name].shape} in the source")
    shared = [(v, src_model.graph.initializers[name]) for name, v in model.graph.initializers.items()
              if name in src_model.graph.initializers]
    differ = [v.name for v, w in shared if not same_shape(v, w)]
    if shared and len(differ) > 0.1 * len(shared):
        fail(f"{len(differ)} of the {len(shared)} weights it shares by name have other shapes (e.g. {differ[0]!r})")
    share = traced_share(placements)
    if share < MIN_TRACED:
        fail(f"only {share:.0%} of its nodes trace back to it (at least {MIN_TRACED:.0%} expected)")


def _module_text(src_model: ir.Model) -> tuple[dict[str, str], dict[str, str]]:
    """Tags and namespaces of every module named in the source, and of their ancestors (derived from
    a descendant's: one tag segment per non-container module, one namespace segment per module)."""
    tags, spaces = {}, {}
    for n in src_model.graph:
        m = n.metadata_props.get(MODULE_KEY)
        if m is None or m in tags:
            continue
        tag, space = n.metadata_props.get(TAG_KEY, ""), n.metadata_props.get(NAMESPACE_KEY, "")
        tags[m], spaces[m] = tag, space
        segments = space.split("/") if space else []
        tag_parts = tag.split("/")  # "" then one segment per non-container module
        kept = 0
        for i, seg in enumerate(segments):
            name, _, class_path = seg.partition(": ")
            if not class_path.startswith("torch.nn.modules.container."):
                kept += 1
            name = name.replace("\u2215", "/")
            if name not in tags:
                tags[name] = "/".join(tag_parts[: kept + 1]) if kept + 1 <= len(tag_parts) else tag
                spaces[name] = "/".join(segments[: i + 1])
    return tags, spaces


def _write_tags(model: ir.Model, src_model: ir.Model, placements) -> None:
    tags, spaces = _module_text(src_model)
    for node, p in placements.items():
        props = node.metadata_props
        for key in _PROPS:
            props.pop(key, None)
        props[MODULE_KEY] = p.module
        tag = tags.get(p.module, "")
        props[TAG_KEY] = tag
        props[NAMESPACE_KEY] = spaces.get(p.module, "")
        confidence = CONFIDENCE[p.rule]
        if p.rule == "carried":
            carried = p.carrier.metadata_props
            confidence *= float(carried.get(CONFIDENCE_KEY) or 1.0)
            props[SOURCE_KEY] = carried.get(SOURCE_KEY, "inferred")
        else:
            props[SOURCE_KEY] = "inferred"
        props[CONFIDENCE_KEY] = confidence_text(confidence)
        props[RULE_KEY] = p.rule
        if p.rule == "fused" and p.fused:
            props[FUSED_KEY] = fused_text(p.fused)
        node.doc_string = tag


def write(result, model: ir.Model, out_path: Path) -> None:
    """Write the retagged ``model`` and its sidecar (from ``result``'s tables) to ``out_path``, staged beside it."""
    with files.staging(out_path.parent) as tmp:
        staged = files.stage_model(model, tmp, out_path, external_data_threshold=EXTERNAL_DATA_THRESHOLD)
        side_path = sidecar.sidecar_path_for(out_path)
        doc = sidecar.build(onnx_file=out_path.name, model_class=result.model_class, strategy=result.strategy,
                            structure_only=result.structure_only, seconds=0.0, version=__version__, attempts=[],
                            coverage=result.coverage, coverage_pct=result.coverage_pct, modules=result.modules,
                            module_extra={}, nodes=result.nodes, warnings=[])
        sidecar.write(doc, tmp / side_path.name)
        files.publish([*staged, (tmp / side_path.name, side_path)])
    result.onnx_path, result.sidecar_path = out_path, side_path
    # The file on disk is what later answers read.
    result.onnx_model = None


def rule_counts(result) -> Counter:
    """How many nodes each rule placed (from the nodes' ``hierx.rule``)."""
    model = result.onnx().ir
    return Counter(n.metadata_props.get(RULE_KEY) for n in model.graph)


__all__ = ["tag_from", "transformed_model", "write", "RULES", "CONFIDENCE", "rule_counts", "traced_share"]
