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
# Google Model Explorer groups nodes into nested layers by this '/'-separated path.
NAMESPACE_KEY = "namespace"


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
    namespace_cache: dict[str, str] = {}
    for node in all_nodes(model):
        a = attrs[node]
        module = a.module if a.module is not None else ""
        tag = tag_cache.get(module)
        if tag is None:
            tag = tag_cache[module] = tree.filtered_tag(module, torch_nn_exceptions)
        namespace = namespace_cache.get(module)
        if namespace is None:
            namespace = namespace_cache[module] = module_namespace(tree, module)
        confidence = f"{a.confidence:.3g}"
        props = node.metadata_props
        props[NAMESPACE_KEY] = namespace
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


def module_namespace(tree: ModuleTree, module: str) -> str:
    """Model Explorer's ``namespace`` for a node of ``module``: one ``name: package.Class`` segment
    per module from the root (``: pkg.BertModel/encoder: pkg.BertEncoder/...``), the form
    torch.onnx's dynamo exporter writes, so every strategy groups alike. A ``/`` inside a name
    (a ModuleDict key) is written as ``∕`` (U+2215): Model Explorer splits on ``/``."""
    segments = []
    for name in reversed(tree.ancestors(module)):
        info = tree.infos[name]
        segments.append(f"{name}: {info.class_path}".replace("/", "\u2215"))
    return "/".join(segments)
