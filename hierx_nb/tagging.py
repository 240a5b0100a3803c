"""Write the attribution into the ONNX model as metadata (never as node attributes)."""
from __future__ import annotations

import onnx_ir as ir

from .attribution import NodeAttribution, all_nodes
from .hierarchy import ModuleTree

MODULE_KEY = "hierx.module"
TAG_KEY = "hierx.tag"
CONFIDENCE_KEY = "hierx.confidence"
SOURCE_KEY = "hierx.source"
STRATEGY_KEY = "hierx.strategy"
VERSION_KEY = "hierx.version"
STRUCTURE_ONLY_KEY = "hierx.structure_only"


def apply_tags(model: ir.Model, attrs: dict[ir.Node, NodeAttribution], tree: ModuleTree, *,
               strategy: str, version: str, structure_only: bool,
               torch_nn_exceptions: frozenset[str] | None) -> list[tuple]:
    """Tag every node; return one row per node: (node, op_type, module, module_class, tag, confidence, source).

    ``hierx.module`` is always the exact qualified name; the readable ``hierx.tag`` (also the node's
    ``doc_string``) folds torch.nn leaves outside ``torch_nn_exceptions`` when that is not None.
    Node names and the graph are left exactly as the exporter made them.
    """
    rows = []
    tag_cache: dict[str, str] = {}
    for node in all_nodes(model):
        a = attrs[node]
        module = a.module if a.module is not None else ""
        tag = tag_cache.get(module)
        if tag is None:
            tag = tag_cache[module] = tree.filtered_tag(module, torch_nn_exceptions)
        confidence = f"{a.confidence:.3g}"
        props = node.metadata_props
        props[MODULE_KEY] = module
        props[TAG_KEY] = tag
        props[CONFIDENCE_KEY] = confidence
        props[SOURCE_KEY] = a.source
        node.doc_string = tag
        rows.append((node.name or "", node.op_type, module, tree.infos[module].cls, tag, float(confidence), a.source))
    model.metadata_props[STRATEGY_KEY] = strategy
    model.metadata_props[VERSION_KEY] = version
    model.metadata_props[STRUCTURE_ONLY_KEY] = "true" if structure_only else "false"
    return rows
